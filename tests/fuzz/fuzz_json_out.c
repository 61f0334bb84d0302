/*
 * The JSON renewd writes itself (mdm/mdm.c, the jw_* writer behind the
 * webhook push body), checked against jansson: the input is split at NUL
 * bytes into the push's text members, a member may hold any bytes (an
 * enrollment ID comes from an MDM event), and the last piece is the
 * profile. When jansson takes every member as a string, the body must be
 * byte for byte json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) of the
 * same object; when jansson refuses one (not UTF-8), so must renewd.
 */
#include "tests/fuzz/fuzz.h"

#include <jansson.h>

#include "common/common.h"
#include "mdm/mdm.h"

#define NTEXT 7

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const names[NTEXT] = {
		"kind", "host_uuid", "enrollment_id", "profile_uuid",
		"ca_name", "renewal_id", "command_uuid",
	};
	const char *text[NTEXT] = {0};
	char *copy = malloc(size + 1), *at, *body = NULL, *want, *b64;
	const char *prof = "";
	size_t plen = 0, i, left;
	mdm_push p;
	json_t *o, *v;
	int rc, valid = 1;

	if (copy == NULL)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	/* members up to NUL; a member of one byte 0x01 stands for "absent" */
	for (i = 0, at = copy, left = size; i < NTEXT && left; i++) {
		size_t n = strnlen(at, left);

		text[i] = (n == 1 && at[0] == 1) ? NULL : at;
		at += n < left ? n + 1 : n;
		left -= n < left ? n + 1 : n;
	}
	prof = at;
	plen = left;

	memset(&p, 0, sizeof(p));
	p.job_id = (int64_t)size * 7919 - 1000000;
	p.kind = text[0];
	p.host_uuid = text[1];
	p.enrollment_id = text[2];
	p.profile_uuid = text[3];
	p.ca_name = text[4];
	p.renewal_id = text[5];
	p.command_uuid = text[6];
	p.profile = prof;
	p.profile_len = plen;
	rc = mdm_webhook_body(&p, &body);

	o = json_object();
	json_object_set_new(o, "event", json_string("profile.push"));
	json_object_set_new(o, "job_id", json_integer(p.job_id));
	for (i = 0; i < NTEXT; i++) {
		const char *s = text[i];

		if (i == 2 && s == NULL)
			s = text[1]; /* enrollment_id falls back to the host */
		v = s ? json_string(s) : json_null();
		if (v == NULL)
			valid = 0;
		else
			json_object_set_new(o, names[i], v);
	}
	if (valid) {
		b64 = rn_base64(prof, plen);
		FUZZ_CHECK(b64 != NULL);
		json_object_set_new(o, "profile", json_string(b64));
		free(b64);
		want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
		FUZZ_CHECK(want != NULL);
		FUZZ_CHECK(rc == RN_OK && body != NULL);
		FUZZ_CHECK(strcmp(body, want) == 0);
		free(want);
	} else {
		FUZZ_CHECK(rc == RN_EINVAL && body == NULL);
	}
	json_decref(o);
	free(body);
	free(copy);
	return 0;
}
