/*
 * scheduler: the renewal loop on one libuv loop. It scans for due
 * certificates (at start, every scan_interval, on demand), dispatches
 * queued jobs under max_in_flight and each policy's rate limit, runs each
 * attempt (render + push), records the outcome, applies backoff and
 * verify timeouts, and drains in-flight work on shutdown.
 *
 * The scan runs in batches, one per loop iteration, so a large backlog
 * never blocks the loop for long.
 */
#ifndef RN_SCHEDULER_H
#define RN_SCHEDULER_H

#include <stdint.h>

#include <uv.h>

#include "net/net.h"
#include "renewal/renewal.h"
#include "store/store.h"

#define SCHED_SCAN_BATCH 1000

typedef struct sched sched;

typedef struct sched_scan {
	int64_t at;	/* start, Unix seconds; 0 = never ran */
	int64_t due;	/* due certificates read */
	int64_t enqueued;
	double duration_ms;
	int rc;		/* 0, or why the scan stopped (RN_EFULL: it runs
			 * again once the database has room) */
} sched_scan;

typedef void (*sched_scan_cb)(void *arg, const sched_scan *res);

/*
 * `conf` is borrowed until replaced with sched_set_conf. With `once`, the
 * scheduler stops by itself when no job is due now and none is in flight,
 * then calls done (see sched_stop).
 */
int sched_new(uv_loop_t *loop, store *s, const rn_conf *conf, net_http *http,
	      int once, sched **out);
/* Recover jobs left running, then scan and start the timers. */
int sched_start(sched *sc);
/* Swap configuration (reload); the MDM driver is rebuilt. On error the
 * old configuration stays in use. */
int sched_set_conf(sched *sc, const rn_conf *conf);
/* Scan now; cb (may be NULL) is called when the scan finished. */
void sched_trigger(sched *sc, sched_scan_cb cb, void *arg);
/* Look for due work now (after renewctl changed the store). */
void sched_kick(sched *sc);
/*
 * Stop taking work; let in-flight attempts finish for at most grace_ms,
 * then kill what is left; close every handle and call done. sc is freed
 * after done returns.
 */
void sched_stop(sched *sc, int64_t grace_ms, void (*done)(void *arg),
		void *arg);
/*
 * Something outside refused a pushed job (the CA's CertRep FAILURE,
 * "ca_refused"; the device's Error result, "device_error"): count it as a
 * failed attempt recorded as `event`, with backoff or final failure like a
 * failed push. RN_EBUSY when the job is not pushed or acknowledged any
 * more. Usable inside a store transaction.
 */
int sched_job_refused(sched *sc, int64_t job_id, const char *event,
		      const char *detail);
/*
 * Push an open pushed/acknowledged job again now, as a new attempt with
 * a new renewal ID and token (its token expired before the device used
 * it). RN_EBUSY when the job is in another state.
 */
int sched_job_repush(sched *sc, int64_t job_id, const char *event,
		     const char *detail);
/*
 * Send a bare MDM command (e.g. "CertificateList") for `host` through the
 * current driver, with a fresh command UUID and the host's enrollment ID.
 * When it completes, job `job_id` gets the event
 * "certificate_list_requested" (detail: the command UUID) or
 * "certificate_list_failed" (detail: the driver's result). Counted in
 * sched_in_flight, so sched_stop waits for it; survives driver swaps.
 * RN_EINVAL (no event) when the driver has no command channel (exec,
 * webhook). Not inside a store transaction: it may record an event at
 * once when the command cannot start.
 */
int sched_mdm_command(sched *sc, const char *host, const char *request_type,
		      int64_t job_id);
/*
 * A full database (a write failed with RN_EFULL): the scheduler takes no
 * new work, keeps the outcomes of attempts in flight in memory, and
 * probes the store with a small write after 1 s, doubling to 30 s; when
 * the probe succeeds it writes what it held, scans again and resumes.
 * sched_store_full: 0 when the store is writable, else the seconds until
 * the next probe (for Retry-After). sched_store_error: tell the
 * scheduler that a write elsewhere (HTTP routes) failed with rc; only
 * RN_EFULL matters.
 */
int64_t sched_store_full(const sched *sc);
void sched_store_error(sched *sc, int rc, const char *during);
/* For --once and status. */
size_t sched_in_flight(const sched *sc);
int sched_failures(const sched *sc);
const sched_scan *sched_last_scan(const sched *sc);
/*
 * Hooks for the notifiers: scan_done after every scan (the deadline
 * sweep runs then), outbox whenever the scheduler committed rows to the
 * notifications outbox. Either may be NULL.
 */
typedef struct sched_hooks {
	void (*scan_done)(void *arg, const sched_scan *res);
	void (*outbox)(void *arg);
	void *arg;
} sched_hooks;
void sched_set_hooks(sched *sc, const sched_hooks *h);
/* Called when a --once run is complete. */
void sched_on_idle(sched *sc, void (*cb)(void *arg), void *arg);

#endif
