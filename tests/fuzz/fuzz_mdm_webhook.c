/*
 * The MDM webhook body (POST /webhook/mdm): mdm_wh_parse on the input as
 * NanoMDM/MicroMDM JSON, with its base64 raw_payload plist inside, and
 * mdm_wh_verify of the HMAC signature over it.
 */
#include "tests/fuzz/webhook_check.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

static const char key[] = "fuzz-hmac-key";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	mdm_wh_event ev;
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	char *err = NULL, *sig, *s;
	int rc;

	memset(&ev, 0x5a, sizeof(ev)); /* need not be initialised */
	rc = mdm_wh_parse(data, size, &ev, &err);
	wh_check(rc, &ev, err);

	/* The right signature verifies; any other text is refused or,
	 * by chance, the same signature. */
	if (HMAC(EVP_sha256(), key, (int)strlen(key), data, size, mac,
		 &maclen) == NULL)
		abort();
	sig = rn_base64(mac, maclen);
	if (sig == NULL)
		abort();
	FUZZ_CHECK(mdm_wh_verify(key, strlen(key), data, size, sig) == 0);
	s = fuzz_cstr(data, size);
	rc = mdm_wh_verify(key, strlen(key), data, size, s);
	FUZZ_CHECK(rc == RN_EPROTO || rc == 0);
	free(s);
	free(sig);
	return 0;
}
