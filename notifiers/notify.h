/*
 * notifiers/notify.h: deliver the notifications outbox to the configured
 * notifiers (webhook, exec, smtp, syslog), and the deadline sweep that
 * raises certificate.deadline / certificate.expired.
 *
 * Invariants:
 *  - delivery is at least once: an outbox event is fanned out into one
 *    delivery row per notifier whose `events` filter matches, each leased
 *    while in flight (a crash or restart delivers it again), retried with
 *    backoff (10 s doubling to 10 min, jittered) and given up, logged,
 *    after NOTIF_GIVE_UP_AFTER;
 *  - nothing here blocks the loop or the scheduler: every driver is
 *    asynchronous, with at most NOTIF_MAX_IN_FLIGHT deliveries in flight
 *    and NOTIF_MAX_PER_NOTIFIER per notifier, so a notifier that is down
 *    never delays renewals or the other notifiers for long;
 *  - the outbox is read by indexed range only; finished rows are pruned
 *    after a week.
 */
#ifndef RN_NOTIF_NOTIFY_H
#define RN_NOTIF_NOTIFY_H

#include <stdint.h>

#include <uv.h>

#include "config/config.h"
#include "net/net.h"
#include "store/store.h"

#define NOTIF_MAX_IN_FLIGHT 32
#define NOTIF_MAX_PER_NOTIFIER 4
#define NOTIF_GIVE_UP_AFTER (3 * 86400)

/* ---- one delivery ------------------------------------------------------ */

typedef void (*notif_send_cb)(void *arg, int ok, const char *detail);

/*
 * Deliver `payload` (the outbox JSON; `id` is added to it) through
 * notifier n, which is only read during the call. ok = 1 when the receiver
 * took it (2xx, exit 0, SMTP 250, syslog written); detail says what
 * happened, never a secret. Returns an error (and never calls cb) when
 * it cannot start.
 */
int notif_send(uv_loop_t *loop, net_http *http, const cfg_notifier *n,
	       int64_t id, const char *payload, notif_send_cb cb, void *arg);

/* ---- the engine -------------------------------------------------------- */

typedef struct notif_engine notif_engine;

/* c is borrowed until replaced with notif_engine_set_conf. */
int notif_engine_new(uv_loop_t *loop, store *s, net_http *http, const cfg *c,
		     notif_engine **out);
void notif_engine_set_conf(notif_engine *e, const cfg *c);
/* The outbox has new rows: deliver now rather than at the next poll. */
void notif_engine_kick(notif_engine *e);
/* Check current certificates against their deadlines (in batches). */
void notif_engine_sweep(notif_engine *e);
/*
 * For a run that ends (renewd --once): call cb once everything the outbox
 * holds now has been tried (fanned out, every due delivery attempted once
 * and answered, the deadline sweep done), or after max_ms. A delivery
 * that failed keeps its retry time for the next run, as in the daemon.
 */
void notif_engine_drain(notif_engine *e, uint64_t max_ms,
			void (*cb)(void *arg), void *arg);
/* Stop; deliveries in flight end into nothing (their rows stay leased and
 * are delivered after the next start). e is freed once they are done. */
void notif_engine_stop(notif_engine *e);

#endif
