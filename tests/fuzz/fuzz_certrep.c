/*
 * scep_certrep_parse: the signed attributes of the CertRep a CA answers a
 * PKIOperation with (DER CMS SignedData). It fills every field or leaves
 * *out untouched; text fields are NUL-terminated without control bytes.
 */
#include "tests/fuzz/fuzz.h"

#include "scep/scep.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	scep_certrep r, before;
	int rc;

	memset(&r, 0x5a, sizeof(r));
	before = r;
	rc = scep_certrep_parse(data, size, &r);
	if (rc != RN_OK) {
		FUZZ_CHECK(rc == RN_EINVAL);
		FUZZ_CHECK(memcmp(&r, &before, sizeof(r)) == 0);
		return 0;
	}
	FUZZ_CHECK(r.status == SCEP_SUCCESS || r.status == SCEP_FAILURE ||
		   r.status == SCEP_PENDING || r.status == SCEP_UNKNOWN);
	FUZZ_CHECK(r.fail_info >= SCEP_FAIL_NONE &&
		   r.fail_info <= SCEP_FAIL_UNKNOWN);
	FUZZ_CHECK(r.message_type >= -1 && r.message_type <= 99999);
	FUZZ_CHECK(fuzz_clean_text(r.fail_info_text,
				   sizeof(r.fail_info_text)));
	FUZZ_CHECK(fuzz_clean_text(r.transaction_id,
				   sizeof(r.transaction_id)));
	FUZZ_CHECK(scep_status_name(r.status) != NULL);
	FUZZ_CHECK(scep_failinfo_name(r.fail_info) != NULL);
	return 0;
}
