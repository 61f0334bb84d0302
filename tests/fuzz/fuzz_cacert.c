/*
 * scep_cacert_parse: a GetCACert answer, under each content type the
 * parser tells apart (one DER certificate, an RA bundle as degenerate CMS
 * SignedData, and unknown: both in turn). It fills the certificate fields
 * or leaves *out untouched, and never touches ok/error.
 */
#include "tests/fuzz/fuzz.h"

#include "scep/scep.h"

static const char *const ctypes[] = {
	NULL,
	"application/x-x509-ca-cert",
	" Application/X-X509-CA-RA-Cert ;charset=binary",
};

static void
one(const uint8_t *data, size_t size, const char *ct)
{
	scep_ca_info info, before;
	size_t i;
	int rc;

	memset(&info, 0x5a, sizeof(info));
	info.ok = 7;
	before = info;
	rc = scep_cacert_parse(data, size, ct, &info);
	if (rc != RN_OK) {
		FUZZ_CHECK(memcmp(&info, &before, sizeof(info)) == 0);
		return;
	}
	FUZZ_CHECK(info.ok == 7);
	FUZZ_CHECK(memcmp(info.error, before.error, sizeof(info.error)) == 0);
	FUZZ_CHECK(memcmp(info.capabilities, before.capabilities,
			  sizeof(info.capabilities)) == 0);
	FUZZ_CHECK(strlen(info.sha256) == 64);
	for (i = 0; i < 64; i++)
		FUZZ_CHECK(strchr("0123456789abcdef", info.sha256[i]));
	FUZZ_CHECK(fuzz_clean_text(info.ca_subject, sizeof(info.ca_subject)));
	FUZZ_CHECK(fuzz_clean_text(info.content_type,
				   sizeof(info.content_type)));
	FUZZ_CHECK(info.ncerts >= 1);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t i;

	for (i = 0; i < sizeof(ctypes) / sizeof(ctypes[0]); i++)
		one(data, size, ctypes[i]);
	return 0;
}
