/*
 * The device's own plist inside an MDM webhook event: the input is the
 * raw_payload (XML or binary plist, before base64), wrapped here in a
 * check-in event and in a command-result event, so the fuzzer mutates the
 * plist itself rather than its base64.
 */
#include "tests/fuzz/webhook_check.h"

static void
one(const char *fmt, const char *b64)
{
	mdm_wh_event ev;
	char *body = rn_asprintf(fmt, b64), *err = NULL;
	int rc;

	if (body == NULL)
		abort();
	rc = mdm_wh_parse(body, strlen(body), &ev, &err);
	wh_check(rc, &ev, err);
	free(body);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *b64 = rn_base64(data, size);

	if (b64 == NULL)
		abort();
	one("{\"topic\":\"mdm.Authenticate\",\"event_id\":\"e1\","
	    "\"created_at\":\"2026-01-01T00:00:00Z\",\"checkin_event\":"
	    "{\"udid\":\"0000-AAAA\",\"raw_payload\":\"%s\"}}", b64);
	one("{\"topic\":\"mdm.Connect\",\"event_id\":\"e2\","
	    "\"acknowledge_event\":{\"udid\":\"0000-AAAA\","
	    "\"raw_payload\":\"%s\"}}", b64);
	free(b64);
	return 0;
}
