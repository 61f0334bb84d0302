/*
 * renewal_cert_parse: a device certificate as `renewctl certs import`,
 * the API and a CertificateList hand it over, PEM (the first CERTIFICATE
 * block) or DER. It fills serial, subject, issuer, sha256 and validity,
 * and the renewal ID when a CN or OU carries one, or says what is wrong.
 */
#include "tests/fuzz/fuzz.h"

#include <ctype.h>

#include "renewal/renewal.h"

static void
check_rid(const char *r)
{
	size_t i;

	FUZZ_CHECK(strlen(r) == 43 && strncmp(r, "renewd-", 7) == 0);
	for (i = 7; i < 43; i++) {
		if (i == 15 || i == 20 || i == 25 || i == 30)
			FUZZ_CHECK(r[i] == '-');
		else
			FUZZ_CHECK(isxdigit((unsigned char)r[i]) &&
				   !isupper((unsigned char)r[i]));
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const store_cert zero;
	store_cert c;
	char *err = (char *)1;
	int rc;

	memset(&c, 0x5a, sizeof(c));
	rc = renewal_cert_parse(data, size, &c, &err);
	if (rc != RN_OK) {
		FUZZ_CHECK(err != NULL);
		FUZZ_CHECK(memcmp(&c, &zero, sizeof(c)) == 0);
		free(err);
		return 0;
	}
	FUZZ_CHECK(err == NULL);
	FUZZ_CHECK(c.serial && c.subject && c.issuer && c.sha256);
	FUZZ_CHECK(strlen(c.sha256) == 64);
	FUZZ_CHECK(c.not_valid_after > c.not_valid_before);
	if (c.renewal_id)
		check_rid(c.renewal_id);
	store_cert_release(&c);
	return 0;
}
