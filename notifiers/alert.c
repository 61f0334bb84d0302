/*
 * Alert conditions and outbox events (see alert.h). Each public function
 * decides whether a condition starts, escalates or resolves (the `alerts`
 * table), builds the payload with jansson and writes the outbox row, all
 * inside one store transaction.
 */
#include "notifiers/alert.h"

#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/common.h"

/* Events in the order of the config's event list; a bit each. */
static const char *const events[] = {
	"renewal.verified", "renewal.failed", "certificate.deadline",
	"certificate.expired", "ca.unhealthy", "ca.recovered",
	"mdm.unreachable", "mdm.recovered", "host.retired",
};
#define NEVENTS (sizeof(events) / sizeof(events[0]))

static unsigned wanted_mask = ~0u; /* all until configured */

static int
event_bit(const char *event)
{
	size_t i;

	for (i = 0; i < NEVENTS; i++)
		if (strcmp(events[i], event) == 0)
			return (int)i;
	return -1;
}

int
notif_event_wanted(char *const *evs, size_t n, const char *event)
{
	const char *alt = NULL;
	size_t i;

	/* a recovery is the resolution of an alert: its subscribers get it */
	if (strcmp(event, "ca.recovered") == 0)
		alt = "ca.unhealthy";
	else if (strcmp(event, "mdm.recovered") == 0)
		alt = "mdm.unreachable";
	for (i = 0; i < n; i++)
		if (strcmp(evs[i], "*") == 0 || strcmp(evs[i], event) == 0 ||
		    (alt && strcmp(evs[i], alt) == 0))
			return 1;
	return 0;
}

void
notif_alerts_configure(const cfg *c)
{
	size_t i, j;
	unsigned m = 0;

	if (c == NULL) {
		wanted_mask = ~0u;
		return;
	}
	for (i = 0; i < c->nnotifiers; i++)
		for (j = 0; j < NEVENTS; j++)
			if (notif_event_wanted(c->notifiers[i].events,
					       c->notifiers[i].nevents,
					       events[j]))
				m |= 1u << j;
	wanted_mask = m;
}

static int
wanted(const char *event)
{
	int b = event_bit(event);

	/* "test" and anything unknown always go out */
	return b < 0 || (wanted_mask & (1u << b));
}

static void
set_str(json_t *o, const char *k, const char *v)
{
	if (v && *v)
		json_object_set_new(o, k, json_string(v));
}

static void
set_time(json_t *o, const char *k, int64_t t)
{
	char buf[RN_TIME_LEN];

	if (t <= 0)
		return;
	rn_time_format(t, buf, sizeof(buf));
	json_object_set_new(o, k, json_string(buf));
}

/*
 * Write one outbox row for `event`: the payload is the subject's fields
 * plus the event, status, severity and summary.
 */
static int
emit(store *s, const char *event, const char *status, const char *severity,
     const char *key, const notif_subject *x, const char *summary,
     int64_t now)
{
	json_t *o;
	char *text;
	int rc;

	if (!wanted(event))
		return RN_OK;
	o = json_object();
	if (o == NULL)
		return RN_ENOMEM;
	set_str(o, "event", event);
	set_str(o, "status", status);
	set_str(o, "severity", severity);
	set_str(o, "summary", summary);
	set_time(o, "at", now);
	set_str(o, "key", key);
	if (x) {
		set_str(o, "host", x->host);
		set_str(o, "profile", x->profile);
		set_str(o, "ca", x->ca);
		if (x->job > 0)
			json_object_set_new(o, "job", json_integer(x->job));
		set_str(o, "renewal_id", x->renewal_id);
		set_time(o, "not_valid_after", x->not_valid_after);
		set_str(o, "error", x->error);
		if (x->attempts > 0)
			json_object_set_new(o, "attempts",
					    json_integer(x->attempts));
	}
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (text == NULL)
		return RN_ENOMEM;
	rc = store_notification_add(s, event, key, text, now);
	free(text);
	return rc;
}

static char *
triple_key(const char *event, const notif_subject *x)
{
	return rn_asprintf("%s:%s/%s/%s", event, x->host ? x->host : "",
			   x->profile ? x->profile : "", x->ca ? x->ca : "");
}

/* "certificate for host H, profile P (CA C)" */
static char *
about(const notif_subject *x)
{
	return rn_asprintf("host %s, profile %s (CA %s)",
			   x->host ? x->host : "?",
			   x->profile ? x->profile : "?", x->ca ? x->ca : "?");
}

/*
 * Open condition `key` at `level` and, when that is news, emit `event`
 * as firing; else nothing. In the caller's transaction.
 */
static int
raise_cond(store *s, const char *event, const char *severity,
	   const char *key, int64_t level, const notif_subject *x,
	   const char *summary, int64_t now)
{
	int own, raised = 0, rc = store_tx_begin(s, &own);

	if (rc == RN_OK)
		rc = store_alert_raise(s, key, event, level, now, &raised);
	if (rc == RN_OK && raised)
		rc = emit(s, event, "firing", severity, key, x, summary, now);
	return store_tx_end(s, own, rc);
}

/* Close `key`; when it was open, emit `event` as resolved. */
static int
resolve_cond(store *s, const char *event, const char *key,
	     const notif_subject *x, const char *summary, int64_t now)
{
	int own, was = 0, rc = store_tx_begin(s, &own);

	if (rc == RN_OK)
		rc = store_alert_resolve(s, key, &was);
	if (rc == RN_OK && was)
		rc = emit(s, event, "resolved", "info", key, x, summary, now);
	return store_tx_end(s, own, rc);
}

int
notif_renewal_failed(store *s, const notif_subject *x, int64_t now)
{
	char *key = triple_key("renewal.failed", x), *who = about(x);
	char *sum = NULL;
	int rc = RN_ENOMEM;

	if (key && who)
		sum = rn_asprintf("renewal failed for %s after %d attempt%s: "
				  "%s", who, x->attempts,
				  x->attempts == 1 ? "" : "s",
				  x->error ? x->error : "unknown error");
	if (sum)
		rc = raise_cond(s, "renewal.failed", "error", key, 0, x, sum,
				now);
	free(sum);
	free(who);
	free(key);
	return rc;
}

int
notif_renewal_verified(store *s, const notif_subject *x, int64_t now)
{
	char *key = triple_key("renewal.failed", x), *who = about(x);
	char *sum = NULL, *fixed = NULL, *vkey = NULL;
	int own, rc = RN_ENOMEM;

	if (key && who) {
		sum = rn_asprintf("certificate renewed for %s", who);
		fixed = rn_asprintf("renewal works again for %s", who);
		vkey = triple_key("renewal.verified", x);
	}
	if (sum && fixed && vkey) {
		rc = store_tx_begin(s, &own);
		if (rc == RN_OK)
			rc = emit(s, "renewal.verified", "info", "info", vkey,
				  x, sum, now);
		if (rc == RN_OK)
			rc = resolve_cond(s, "renewal.failed", key, x, fixed,
					  now);
		rc = store_tx_end(s, own, rc);
	}
	free(vkey);
	free(fixed);
	free(sum);
	free(who);
	free(key);
	return rc;
}

int
notif_cert_replaced(store *s, const notif_subject *x, int64_t now)
{
	char *dkey = triple_key("certificate.deadline", x);
	char *ekey = triple_key("certificate.expired", x), *who = about(x);
	char *sum = NULL;
	int own, rc = RN_ENOMEM;

	if (dkey && ekey && who)
		sum = rn_asprintf("a new certificate is installed for %s",
				  who);
	if (sum) {
		rc = store_tx_begin(s, &own);
		if (rc == RN_OK)
			rc = resolve_cond(s, "certificate.deadline", dkey, x,
					  sum, now);
		if (rc == RN_OK)
			rc = resolve_cond(s, "certificate.expired", ekey, x,
					  sum, now);
		rc = store_tx_end(s, own, rc);
	}
	free(sum);
	free(who);
	free(ekey);
	free(dkey);
	return rc;
}

int
notif_cert_check(store *s, const store_cert *c, const int64_t *deadlines,
		 int ndeadlines, int64_t now)
{
	notif_subject x;
	int64_t left = c->not_valid_after - now, level = 0, last = 0;
	char *key = NULL, *who = NULL, *sum = NULL, when[RN_TIME_LEN];
	char dur[32];
	int i, rc = RN_ENOMEM;

	memset(&x, 0, sizeof(x));
	x.host = c->host_uuid;
	x.profile = c->profile_uuid;
	x.ca = c->ca_name;
	x.not_valid_after = c->not_valid_after;
	who = about(&x);
	rn_time_format(c->not_valid_after, when, sizeof(when));
	if (who == NULL)
		goto out;
	if (left <= 0) {
		key = triple_key("certificate.expired", &x);
		sum = rn_asprintf("certificate of %s expired at %s and is "
				  "not replaced", who, when);
		if (key && sum)
			rc = raise_cond(s, "certificate.expired", "critical",
					key, 0, &x, sum, now);
		goto out;
	}
	/* the tightest deadline crossed; deadlines are descending */
	for (i = 0; i < ndeadlines; i++) {
		if (left < deadlines[i])
			level = deadlines[i];
		last = deadlines[i];
	}
	if (level == 0) {
		rc = RN_OK;
		goto out;
	}
	rn_duration_format(left, dur, sizeof(dur));
	key = triple_key("certificate.deadline", &x);
	sum = rn_asprintf("certificate of %s expires in %s (%s) and is not "
			  "renewed yet", who, dur, when);
	if (key && sum)
		rc = raise_cond(s, "certificate.deadline",
				level == last ? "critical" : "warning", key,
				level, &x, sum, now);
out:
	free(sum);
	free(key);
	free(who);
	return rc;
}

int
notif_ca_state(store *s, const char *ca, int healthy, const char *err,
	       int64_t now)
{
	notif_subject x;
	char *key = rn_asprintf("ca.unhealthy:%s", ca), *sum;
	int rc;

	memset(&x, 0, sizeof(x));
	x.ca = ca;
	x.error = healthy ? NULL : err;
	if (healthy)
		sum = rn_asprintf("CA %s is healthy again", ca);
	else
		sum = rn_asprintf("CA %s is unhealthy: %s", ca,
				  err ? err : "check failed");
	if (key == NULL || sum == NULL)
		rc = RN_ENOMEM;
	else if (healthy)
		rc = resolve_cond(s, "ca.recovered", key, &x, sum, now);
	else
		rc = raise_cond(s, "ca.unhealthy", "error", key, 0, &x, sum,
				now);
	free(sum);
	free(key);
	return rc;
}

int
notif_mdm_state(store *s, const char *driver, int reachable, const char *err,
		int64_t now)
{
	notif_subject x;
	char *sum;
	int rc;

	memset(&x, 0, sizeof(x));
	x.error = reachable ? NULL : err;
	if (reachable)
		sum = rn_asprintf("the MDM (%s driver) is reachable again",
				  driver);
	else
		sum = rn_asprintf("the MDM (%s driver) is unreachable: %s",
				  driver, err ? err : "push failed");
	if (sum == NULL)
		return RN_ENOMEM;
	if (reachable)
		rc = resolve_cond(s, "mdm.recovered", "mdm.unreachable", &x,
				  sum, now);
	else
		rc = raise_cond(s, "mdm.unreachable", "error",
				"mdm.unreachable", 0, &x, sum, now);
	free(sum);
	return rc;
}

int
notif_host_retired(store *s, const char *host, int ncancelled, int64_t now)
{
	notif_subject x;
	char *key = rn_asprintf("host.retired:%s", host);
	char *sum = rn_asprintf("host %s checked out of the MDM and is "
				"retired; %d open renewal job%s cancelled",
				host, ncancelled, ncancelled == 1 ? "" : "s");
	int rc = RN_ENOMEM;

	memset(&x, 0, sizeof(x));
	x.host = host;
	if (key && sum)
		rc = emit(s, "host.retired", "info", "info", key, &x, sum,
			  now);
	free(sum);
	free(key);
	return rc;
}

char *
notif_test_payload(const char *notifier, int64_t now)
{
	json_t *o = json_object();
	char *sum = rn_asprintf("test message from renewd to notifier %s",
				notifier), *text = NULL;

	if (o && sum) {
		set_str(o, "event", "test");
		set_str(o, "status", "info");
		set_str(o, "severity", "info");
		set_str(o, "summary", sum);
		set_time(o, "at", now);
		set_str(o, "key", "test");
		text = json_dumps(o, JSON_COMPACT);
	}
	json_decref(o);
	free(sum);
	return text;
}
