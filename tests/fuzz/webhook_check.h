/*
 * The invariants mdm/webhook.h promises of a parsed event (or of a
 * refused body), checked after every mdm_wh_parse of the webhook targets.
 */
#ifndef RN_FUZZ_WEBHOOK_CHECK_H
#define RN_FUZZ_WEBHOOK_CHECK_H

#include "tests/fuzz/fuzz.h"

#include "common/common.h"
#include "mdm/webhook.h"

/* NULL, or a non-empty string (never "") without control characters
 * when clean is set. */
static inline int
wh_opt(const char *s, size_t max, int clean)
{
	size_t n;

	if (s == NULL)
		return 1;
	n = strlen(s);
	if (n == 0 || n > max)
		return 0;
	return !clean || fuzz_clean_text(s, n + 1);
}

static inline void
wh_check(int rc, mdm_wh_event *ev, char *err)
{
	static const mdm_wh_event zero;
	size_t i;

	if (rc != RN_OK) {
		FUZZ_CHECK(rc == RN_EINVAL || rc == RN_ETOOBIG ||
			   rc == RN_ENOMEM);
		FUZZ_CHECK(memcmp(ev, &zero, sizeof(zero)) == 0);
		FUZZ_CHECK(rc == RN_ENOMEM || err != NULL);
		free(err);
		return;
	}
	FUZZ_CHECK(err == NULL);
	FUZZ_CHECK(ev->topic_text != NULL && ev->udid != NULL);
	FUZZ_CHECK(wh_opt(ev->topic_text, MDM_WH_MAX_ID, 0));
	FUZZ_CHECK(wh_opt(ev->event_id, MDM_WH_MAX_ID, 1));
	FUZZ_CHECK(wh_opt(ev->enrollment_id, 256, 1));
	FUZZ_CHECK(strlen(ev->udid) >= 1 && strlen(ev->udid) <= 64 &&
		   strspn(ev->udid, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "abcdefghijklmnopqrstuvwxyz0123456789-") ==
			   strlen(ev->udid));
	FUZZ_CHECK(ev->created_at >= 0);
	if (ev->topic == MDM_WH_AUTHENTICATE ||
	    ev->topic == MDM_WH_TOKEN_UPDATE || ev->topic == MDM_WH_CHECKOUT)
		FUZZ_CHECK(ev->kind == MDM_WH_KIND_CHECKIN);
	if (ev->topic == MDM_WH_CONNECT)
		FUZZ_CHECK(ev->kind == MDM_WH_KIND_ACK);
	if (ev->kind == MDM_WH_KIND_CHECKIN) {
		FUZZ_CHECK(wh_opt(ev->message_type, MDM_WH_MAX_ID, 0) &&
			   ev->message_type != NULL);
		FUZZ_CHECK(wh_opt(ev->serial_number, 128, 0));
		FUZZ_CHECK(!ev->has_cert_list && ev->certs == NULL);
	} else {
		FUZZ_CHECK(ev->kind == MDM_WH_KIND_ACK);
		FUZZ_CHECK(ev->status_text != NULL);
		FUZZ_CHECK(ev->status >= MDM_WH_STATUS_ACKNOWLEDGED &&
			   ev->status <= MDM_WH_STATUS_OTHER);
		FUZZ_CHECK(wh_opt(ev->command_uuid, MDM_WH_MAX_ID, 0));
		FUZZ_CHECK(wh_opt(ev->request_type, MDM_WH_MAX_ID, 0));
		if (ev->error_text != NULL)
			FUZZ_CHECK(fuzz_clean_text(ev->error_text,
						   MDM_WH_MAX_ERROR_TEXT));
	}
	FUZZ_CHECK(ev->certs == NULL || ev->has_cert_list);
	FUZZ_CHECK(ev->ncerts <= MDM_WH_MAX_CERTS);
	FUZZ_CHECK(ev->ncerts == 0 || ev->certs != NULL);
	for (i = 0; i < ev->ncerts; i++) {
		FUZZ_CHECK(ev->certs[i].der != NULL && ev->certs[i].len > 0 &&
			   ev->certs[i].len <= MDM_WH_MAX_CERT_LEN);
		FUZZ_CHECK(wh_opt(ev->certs[i].common_name, 1024, 0));
	}
	mdm_wh_event_release(ev);
	FUZZ_CHECK(memcmp(ev, &zero, sizeof(zero)) == 0);
}

#endif
