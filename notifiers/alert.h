/*
 * notifiers/alert.h: alert conditions and the events they write to the
 * notifications outbox. The delivery side (notifier drivers, fan-out,
 * retries) is notifiers/notify.h.
 *
 * Invariants:
 *  - every function here writes inside the caller's store transaction
 *    when one is open (else in its own), so an alert exists exactly when
 *    the state change that caused it does;
 *  - a condition (renewal.failed, certificate.deadline,
 *    certificate.expired, ca.unhealthy, mdm.unreachable) is sent once when
 *    it starts (again only when it escalates to a tighter deadline) and
 *    its resolution once, tracked by the `alerts` table;
 *  - one-off events (renewal.verified, host.retired) are sent each time;
 *  - an event no configured notifier subscribes to is not written to the
 *    outbox at all (notif_alerts_configure), but conditions are tracked
 *    either way.
 *
 * Payloads are JSON objects (documented in renewd.yaml(5)): id is added
 * at delivery; event, status (firing|resolved|info), severity
 * (info|warning|error|critical), summary, at, key, and host, profile, ca,
 * job, renewal_id, not_valid_after, error when they apply.
 */
#ifndef RN_NOTIF_ALERT_H
#define RN_NOTIF_ALERT_H

#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "store/store.h"

/* What an alert is about; any field may be NULL / 0. */
typedef struct notif_subject {
	const char *host, *profile, *ca;
	int64_t job;
	const char *renewal_id;
	int64_t not_valid_after;
	const char *error;
	int attempts;
} notif_subject;

/*
 * Remember which events the notifiers of c subscribe to (NULL: all, the
 * default before any call). Process-wide; call on load and reload.
 */
void notif_alerts_configure(const cfg *c);

/* Does a notifier subscribed to events[] get `event`? "*" matches all;
 * a recovery (ca.recovered, mdm.recovered) also goes to those who
 * subscribed to the alert it resolves. */
int notif_event_wanted(char *const *events, size_t n, const char *event);

/* A job failed for good: opens renewal.failed for its host/profile/CA. */
int notif_renewal_failed(store *s, const notif_subject *x, int64_t now);
/* A job verified: renewal.verified, and renewal.failed of the triple
 * resolved. */
int notif_renewal_verified(store *s, const notif_subject *x, int64_t now);
/* A new current certificate for the triple: certificate.deadline and
 * certificate.expired resolved. */
int notif_cert_replaced(store *s, const notif_subject *x, int64_t now);
/*
 * The deadline check of one current certificate against its policy's
 * deadlines (descending, seconds): certificate.expired when past
 * not_valid_after, else certificate.deadline at the tightest deadline
 * crossed (critical for the last one, warning before).
 */
int notif_cert_check(store *s, const store_cert *c, const int64_t *deadlines,
		     int ndeadlines, int64_t now);
/* CA health changes: ca.unhealthy opened, or resolved as ca.recovered. */
int notif_ca_state(store *s, const char *ca, int healthy, const char *err,
		   int64_t now);
/* MDM reachability: mdm.unreachable opened, or resolved as mdm.recovered. */
int notif_mdm_state(store *s, const char *driver, int reachable,
		    const char *err, int64_t now);
/* An MDM CheckOut retired the host: host.retired. */
int notif_host_retired(store *s, const char *host, int ncancelled,
		       int64_t now);

/* The payload of `renewctl notify test` (malloc'd JSON). */
char *notif_test_payload(const char *notifier, int64_t now);

#endif
