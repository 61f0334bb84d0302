/*
 * scheduler: scan, dispatch, attempt, outcome. One wake timer armed to the
 * earliest thing that needs doing (OpenSMTPD's scheduler), one scan timer
 * every scan_interval, and a zero-delay step timer that runs scan batches
 * and dispatch rounds so no single callback holds the loop for long.
 */
#define _GNU_SOURCE
#include "scheduler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "notifiers/alert.h"
#include "scheduler/policy.h"

#define MAX_BUCKETS 64
#define MDM_DOWN_AFTER 3 /* transport failures in a row */
#define FULL_PROBE_MIN_MS 1000	/* store full: first write probe after */
#define FULL_PROBE_MAX_MS 30000 /* ... doubling up to */
#define FULL_CALM_MS 60000	/* full again within this: keep doubling */
#define CAREFUL_ROUNDS 64	/* rounds with a savepoint per job after an error */
#define PENDING_MAX 100000	/* outcomes held while the store is full */

typedef struct bucket {
	char name[64];
	double tokens;
	int64_t last;
} bucket;

/*
 * An outcome of an attempt (pushed, failed, back to the queue) waiting to
 * be written. Outcomes queue in order and the next step writes them all
 * in one transaction (group commit: a commit per loop iteration, not per
 * job). When the database is full they stay queued, with the times they
 * happened, until the store probe finds room. A restart before they are
 * written loses them, and the jobs, still 'running' in the store, are
 * recovered and pushed again like after a crash.
 */
enum { PEND_PUSHED, PEND_FAILED, PEND_REQUEUE };

typedef struct pending {
	int kind;
	int rc;	  /* what writing it said */
	int late; /* held while the database was full */
	int64_t job_id;
	int64_t at;
	int64_t verify_at;	    /* PEND_PUSHED */
	int64_t retry_at, rearm_at; /* PEND_FAILED; retry_at 0 = final */
	int attempts;
	char from[16];
	char host[64], ca[64], profile[128];
	char *event, *detail, *command_uuid; /* queued: in the same block */
	struct pending *next;
} pending;

typedef struct scan_waiter {
	sched_scan_cb cb;
	void *arg;
	struct scan_waiter *next;
} scan_waiter;

struct sched {
	uv_loop_t *loop;
	store *s;
	const rn_conf *conf;
	net_http *http;
	mdm *mdm;
	int once;
	int stopping;
	int failures;
	size_t in_flight;

	uv_timer_t scan_timer; /* every scan_interval */
	uv_timer_t wake_timer; /* next due job / verify deadline */
	uv_timer_t step_timer; /* scan batches and dispatch, zero delay */
	uv_timer_t grace_timer;
	uv_timer_t full_timer; /* write probe while the store is full */
	int closing;

	int store_full;	      /* a write failed with RN_EFULL */
	int scan_after_full;  /* a scan was cut short or refused meanwhile */
	uint64_t full_probe_ms, full_left_ms;
	pending *pend_head, **pend_tail;
	size_t npending;

	int scanning;	     /* a scan is in progress */
	int scan_again;	     /* a trigger arrived during a scan */
	sched_scan cur, last;
	uint64_t scan_t0;
	scan_waiter *waiters, *next_waiters;
	int dispatch_pending;
	int64_t rearm_cursor; /* policy recompute: next id, -1 = idle */
	int64_t rearm_total;

	int64_t rate_wait_at; /* earliest rate-limit refill, 0 = none */
	int careful;	      /* rounds left that give each job a savepoint */
	bucket buckets[MAX_BUCKETS];
	size_t nbuckets;

	int mdm_failures;    /* transport failures in a row */
	int mdm_down;	     /* mdm.unreachable is open */
	sched_hooks hooks;

	void (*idle_cb)(void *);
	void *idle_arg;
	void (*done_cb)(void *);
	void *done_arg;
	int handles_open;
};

typedef struct attempt {
	sched *sc;
	int64_t job_id;
	int attempts;
	char host[64], profile[128], ca[64];
	char command_uuid[37];
	uint64_t t0; /* uv_hrtime at the start of the push */
} attempt;

static void schedule_step(sched *sc);
static void arm_wake(sched *sc);
static void maybe_finish(sched *sc);
static void on_wake(uv_timer_t *t);
static void full_enter(sched *sc, const char *during);
static void pending_add(sched *sc, const pending *p);
static void outcomes_write(sched *sc);

/* ---- rate limits ------------------------------------------------------ */

/*
 * A token bucket per policy: rate_limit tokens refilled over rate_period.
 * Returns 1 and takes a token, or 0 and sets *wait_s until one is there.
 */
static int
bucket_take(sched *sc, const cfg_policy *p, int64_t now, int64_t *wait_s)
{
	bucket *b = NULL;
	double rate;
	size_t i;

	if (p->rate_limit <= 0)
		return 1;
	for (i = 0; i < sc->nbuckets; i++)
		if (strcmp(sc->buckets[i].name, p->name) == 0)
			b = &sc->buckets[i];
	if (b == NULL) {
		if (sc->nbuckets == MAX_BUCKETS)
			return 1;
		b = &sc->buckets[sc->nbuckets++];
		snprintf(b->name, sizeof(b->name), "%s", p->name);
		b->tokens = p->rate_limit;
		b->last = now;
	}
	rate = (double)p->rate_limit / (double)p->rate_period;
	b->tokens += (double)(now - b->last) * rate;
	if (b->tokens > p->rate_limit)
		b->tokens = p->rate_limit;
	b->last = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 1;
	}
	*wait_s = (int64_t)((1.0 - b->tokens) / rate) + 1;
	return 0;
}

/* ---- outcomes --------------------------------------------------------- */

/*
 * renewd_job_outcomes_total: what this process recorded (pushed, retry,
 * failed here; verified in renewal.c, cancelled in daemon/mdmhook.c).
 * renewctl's own changes (jobs cancel, certs import) are not seen.
 */
static void
outcome(const char *result)
{
	metrics_counter_add("renewd_job_outcomes_total", 1, "result", result,
			    NULL);
}

/* New rows in the notifications outbox: let the notifiers know. */
static void
sched_notify(sched *sc)
{
	if (sc->hooks.outbox)
		sc->hooks.outbox(sc->hooks.arg);
}

static const cfg_policy *
policy_for(sched *sc, const char *ca, const char *profile)
{
	return renewal_conf_policy(sc->conf, ca, profile);
}

/*
 * The store side of a failed attempt; when it is the last one, the
 * renewal.failed alert commits with it.
 */
static int
final_or_retry(sched *sc, int64_t id, const char *from, int attempts,
	       const char *event, const char *err, int64_t retry_at,
	       int64_t rearm_at, int64_t now)
{
	notif_subject x;
	store_job j;
	int own, rc;

	if (retry_at)
		return store_job_attempt_failed(sc->s, id, from, event, err,
						retry_at, rearm_at, now);
	rc = store_tx_begin(sc->s, &own);
	if (rc == RN_OK)
		rc = store_job_attempt_failed(sc->s, id, from, event, err, 0,
					      rearm_at, now);
	if (rc == RN_OK && (rc = store_job_get(sc->s, id, &j)) == RN_OK) {
		memset(&x, 0, sizeof(x));
		x.host = j.host_uuid;
		x.profile = j.profile_uuid;
		x.ca = j.ca_name;
		x.job = id;
		x.error = err;
		x.attempts = attempts;
		rc = notif_renewal_failed(sc->s, &x, now);
		store_job_release(&j);
	}
	rc = store_tx_end(sc->s, own, rc);
	if (rc == RN_OK)
		sched_notify(sc);
	return rc;
}

/* Write one outcome; RN_EBUSY: the job moved on meanwhile. */
static int
outcome_write(sched *sc, const pending *p)
{
	switch (p->kind) {
	case PEND_PUSHED:
		return store_job_pushed(sc->s, p->job_id, p->command_uuid,
					p->verify_at, p->detail, p->at);
	case PEND_FAILED:
		return final_or_retry(sc, p->job_id, p->from, p->attempts,
				      p->event, p->detail, p->retry_at,
				      p->rearm_at, p->at);
	default:
		return store_job_requeue(sc->s, p->job_id, p->detail, p->at);
	}
}

/* Log and count an outcome once its write committed (or failed). */
static void
outcome_log(const pending *p)
{
	char jid[24], when[RN_TIME_LEN];

	snprintf(jid, sizeof(jid), "%lld", (long long)p->job_id);
	if (p->rc == RN_EBUSY)
		return; /* a device's report or a cancel got there first */
	if (p->rc) {
		log_kv(RN_LOG_ERROR, "cannot record outcome", "job", jid,
		       "err", rn_strerror(p->rc), NULL);
		return;
	}
	switch (p->kind) {
	case PEND_PUSHED:
		outcome("pushed");
		log_kv(RN_LOG_INFO, "profile pushed", "job", jid, "host",
		       p->host, "profile", p->profile, "ca", p->ca, "detail",
		       p->detail, "recorded", p->late ? "late" : NULL, NULL);
		break;
	case PEND_FAILED:
		if (p->retry_at) {
			outcome("retry");
			rn_time_format(p->retry_at, when, sizeof(when));
			log_kv(RN_LOG_WARN, "attempt failed, will retry",
			       "job", jid, "host", p->host, "profile",
			       p->profile, "ca", p->ca, "retry_at", when,
			       "err", p->detail, NULL);
		} else {
			outcome("failed");
			log_kv(RN_LOG_ERROR, "renewal failed", "job", jid,
			       "host", p->host, "profile", p->profile, "ca",
			       p->ca, "err", p->detail, NULL);
		}
		break;
	default:
		break;
	}
}

/*
 * A failed attempt: wait a backoff and try again, or, when the attempts
 * are used up (or the failure cannot get better by retrying), mark the
 * job failed and re-arm its certificate for later. `defer` queues it for
 * the next group write (the push and dispatch paths); otherwise it is
 * written now, for callers that answer someone once it is stored. A full
 * database keeps the outcome in memory until it can be written.
 */
static void
attempt_failed(sched *sc, int64_t id, const char *from, int attempts,
	       const char *host, const char *ca, const char *profile,
	       const char *event, const char *err, int final, int defer)
{
	const cfg_policy *p = policy_for(sc, ca, profile);
	uint64_t rnd = 0;
	pending rec;

	sc->failures++;
	memset(&rec, 0, sizeof(rec));
	rec.kind = PEND_FAILED;
	rec.job_id = id;
	rec.at = rn_now();
	rec.attempts = attempts;
	snprintf(rec.from, sizeof(rec.from), "%s", from);
	snprintf(rec.host, sizeof(rec.host), "%s", host);
	snprintf(rec.ca, sizeof(rec.ca), "%s", ca);
	snprintf(rec.profile, sizeof(rec.profile), "%s", profile);
	rec.event = (char *)event;
	rec.detail = (char *)err;
	rn_random_bytes(&rnd, sizeof(rnd));
	if (!final && attempts < p->max_attempts)
		rec.retry_at = rec.at + sched_backoff(p, attempts, rnd);
	rec.rearm_at = rec.at + p->backoff_max;
	if (!defer && !sc->store_full) {
		rec.rc = outcome_write(sc, &rec);
		if (rec.rc != RN_EFULL) {
			outcome_log(&rec);
			return;
		}
		full_enter(sc, "recording a failed attempt");
	}
	pending_add(sc, &rec);
	schedule_step(sc);
}

/*
 * MDM reachability from push and command results: mdm.unreachable after
 * MDM_DOWN_AFTER transport failures in a row, mdm.recovered at the next
 * success. Only transitions touch the store.
 */
static void
mdm_health(sched *sc, const mdm_result *r)
{
	const char *drv = mdm_driver_name(sc->conf->cfg->mdm.driver);
	int rc = RN_OK;

	if (r->ok) {
		sc->mdm_failures = 0;
		if (sc->mdm_down)
			rc = notif_mdm_state(sc->s, drv, 1, NULL, rn_now());
		if (rc == RN_OK)
			sc->mdm_down = 0;
	} else if (r->unreachable && ++sc->mdm_failures >= MDM_DOWN_AFTER &&
		   !sc->mdm_down) {
		rc = notif_mdm_state(sc->s, drv, 0, r->detail, rn_now());
		if (rc == RN_OK) {
			sc->mdm_down = 1;
			log_kv(RN_LOG_ERROR, "mdm unreachable", "err",
			       r->detail, NULL);
		}
	}
	if (rc)
		log_kv(RN_LOG_ERROR, "cannot record mdm health", "err",
		       rn_strerror(rc), NULL);
	else if (r->ok || r->unreachable)
		sched_notify(sc);
	metrics_gauge_set("renewd_mdm_up", sc->mdm_down ? 0 : 1, NULL);
}

static void
on_pushed(void *arg, const mdm_result *r)
{
	attempt *a = arg;
	sched *sc = a->sc;
	int64_t now = rn_now();

	sc->in_flight--;
	metrics_observe("renewd_push_duration_seconds",
			(double)(uv_hrtime() - a->t0) / 1e9);
	mdm_health(sc, r);
	if (r->ok) {
		const cfg_policy *p = policy_for(sc, a->ca, a->profile);
		pending rec;

		memset(&rec, 0, sizeof(rec));
		rec.kind = PEND_PUSHED;
		rec.job_id = a->job_id;
		rec.at = now;
		rec.verify_at = now + p->verify_timeout;
		/* the MDM's own command UUID when it assigns one */
		rec.command_uuid = (char *)(r->command_uuid ? r->command_uuid
							    : a->command_uuid);
		rec.detail = (char *)r->detail;
		snprintf(rec.host, sizeof(rec.host), "%s", a->host);
		snprintf(rec.ca, sizeof(rec.ca), "%s", a->ca);
		snprintf(rec.profile, sizeof(rec.profile), "%s", a->profile);
		pending_add(sc, &rec);
	} else {
		attempt_failed(sc, a->job_id, JOB_RUNNING, a->attempts, a->host,
			       a->ca, a->profile, "attempt_failed", r->detail,
			       0, 1);
	}
	free(a);
	if (sc->stopping)
		maybe_finish(sc);
	else
		schedule_step(sc);
}

/* ---- a dispatch round --------------------------------------------------- */

/*
 * An attempt prepared inside the round's transaction (job started, renewal
 * ID and token stored, profile rendered). Its push starts only once that
 * transaction has committed: a push never carries a renewal ID or a token
 * the store does not have.
 */
typedef struct launch {
	store_job j;
	store_host host;
	rn_buf prof;
	struct launch *next;
} launch;

typedef struct dispatch_ctx {
	sched *sc;
	int64_t now;
	int64_t rate_wait; /* earliest rate-limit refill, 0 = none */
	int started;
	int retries;	/* verify timeouts sent back to the queue */
	int abort;	/* the round's transaction is lost: why */
	int64_t abort_job;	  /* the job that lost it, 0 = none */
	char abort_msg[200];	  /* SQLite's message, before the rollback */
	launch *launches, **ltail;
} dispatch_ctx;

static void
launch_free(launch *l)
{
	store_job_release(&l->j);
	store_host_release(&l->host);
	rn_buf_release(&l->prof);
	free(l);
}

/*
 * Prepare one attempt of a queued job. Returns 1 when the job was taken
 * (prepared, or its failure queued), 0 when the store refused it
 * (cancelled meanwhile, or a database error in a careful round), so
 * dispatch does not spin on a job it cannot take, and -1 when the round's
 * transaction is lost: the round stops and rolls back.
 *
 * A job the store refuses must leave nothing behind. Usually the refusal
 * is the job-start UPDATE finding the job no longer queued, before any
 * write, so a job needs no savepoint of its own: a savepoint copies every
 * page the job then changes to its journal, about a tenth of the loop's
 * work per renewal. Any other error rolls the whole round back instead,
 * and the next CAREFUL_ROUNDS rounds give each job a savepoint, so one
 * job the store keeps refusing is skipped rather than stopping them all.
 */
static int
prepare_attempt(dispatch_ctx *d, const store_job *queued)
{
	sched *sc = d->sc;
	char rid[64], uuid[37], *err = NULL;
	launch *l;
	int rc, rrc = RN_OK, careful = sc->careful > 0;

	if (rn_uuid_v7(uuid) || (l = calloc(1, sizeof(*l))) == NULL)
		return 0;
	snprintf(rid, sizeof(rid), "renewd-%s", uuid);
	rc = careful ? store_unit_begin(sc->s) : RN_OK;
	if (rc == RN_OK)
		rc = store_job_start(sc->s, queued->id, rid, d->now, &l->j);
	if (rc == RN_OK) {
		/* the MDM's enrollment ID (when it differs from the UDID) for
		 * the push, the serial number for the profile */
		if (store_host_get(sc->s, l->j.host_uuid, &l->host) != RN_OK)
			memset(&l->host, 0, sizeof(l->host));
		rrc = renewal_render(sc->s, sc->conf, &l->j, &l->host, d->now,
				     &l->prof, &err);
		if (rrc == RN_EFULL)
			rc = rrc;
	}
	if (careful)
		rc = store_unit_end(sc->s, rc);
	else if (rc != RN_OK && rc != RN_EBUSY)
		sc->careful = CAREFUL_ROUNDS; /* and the round rolls back */
	if (rc == RN_EFULL || !store_in_tx(sc->s) ||
	    (rc != RN_OK && rc != RN_EBUSY && !careful)) {
		d->abort = rc ? rc : RN_ESTORE;
		d->abort_job = queued->id;
		snprintf(d->abort_msg, sizeof(d->abort_msg), "%s",
			 store_errmsg(sc->s));
		launch_free(l);
		free(err);
		return -1;
	}
	if (rc) {
		launch_free(l);
		free(err);
		return 0;
	}
	if (rrc) {
		/* A template problem does not get better with retries. */
		attempt_failed(sc, l->j.id, JOB_RUNNING, l->j.attempts,
			       l->j.host_uuid, l->j.ca_name, l->j.profile_uuid,
			       "render_failed", err, 1, 1);
		launch_free(l);
		free(err);
		return 1;
	}
	*d->ltail = l;
	d->ltail = &l->next;
	return 1;
}

/* Start the push of a prepared attempt; its transaction has committed. */
static void
launch_push(sched *sc, launch *l)
{
	const store_job *j = &l->j;
	attempt *a = calloc(1, sizeof(*a));
	char jid[24], *d;
	mdm_push push;
	int rc;

	if (a == NULL || rn_uuid_v7(a->command_uuid)) {
		free(a);
		attempt_failed(sc, j->id, JOB_RUNNING, j->attempts, j->host_uuid,
			       j->ca_name, j->profile_uuid, "attempt_failed",
			       "out of memory", 0, 1);
		return;
	}
	a->sc = sc;
	a->job_id = j->id;
	a->attempts = j->attempts;
	snprintf(a->host, sizeof(a->host), "%s", j->host_uuid);
	snprintf(a->profile, sizeof(a->profile), "%s", j->profile_uuid);
	snprintf(a->ca, sizeof(a->ca), "%s", j->ca_name);
	memset(&push, 0, sizeof(push));
	push.job_id = j->id;
	push.host_uuid = j->host_uuid;
	push.profile_uuid = j->profile_uuid;
	push.ca_name = j->ca_name;
	push.renewal_id = j->renewal_id;
	push.kind = j->kind;
	push.command_uuid = a->command_uuid;
	push.enrollment_id = l->host.enrollment_id;
	push.profile = l->prof.data;
	push.profile_len = l->prof.len;
	a->t0 = uv_hrtime();
	rc = mdm_push_start(sc->mdm, &push, on_pushed, a);
	if (rc) {
		free(a);
		d = rn_asprintf("cannot start push: %s", rn_strerror(rc));
		attempt_failed(sc, j->id, JOB_RUNNING, j->attempts, j->host_uuid,
			       j->ca_name, j->profile_uuid, "attempt_failed",
			       d ? d : "cannot start push", 0, 1);
		free(d);
		return;
	}
	sc->in_flight++;
	snprintf(jid, sizeof(jid), "%lld", (long long)j->id);
	log_kv(RN_LOG_DEBUG, "attempt started", "job", jid, "host",
	       j->host_uuid, "profile", j->profile_uuid, "ca", j->ca_name,
	       "renewal_id", j->renewal_id, NULL);
}

/* ---- MDM commands ----------------------------------------------------- */

/* One command in flight; owned by its callback, counted in in_flight. */
typedef struct command_ctx {
	sched *sc;
	int64_t job_id;
	char request_type[64];
	char command_uuid[37];
} command_ctx;

static void
on_command(void *arg, const mdm_result *r)
{
	command_ctx *x = arg;
	sched *sc = x->sc;
	const char *uuid = r->command_uuid ? r->command_uuid
					   : x->command_uuid;
	char jid[24];
	int rc;

	sc->in_flight--;
	mdm_health(sc, r);
	snprintf(jid, sizeof(jid), "%lld", (long long)x->job_id);
	rc = store_job_event(sc->s, x->job_id,
			     r->ok ? "certificate_list_requested"
				   : "certificate_list_failed",
			     r->ok ? uuid : r->detail, rn_now());
	if (rc)
		log_kv(RN_LOG_ERROR, "cannot record mdm command", "job", jid,
		       "err", rn_strerror(rc), NULL);
	log_kv(r->ok ? RN_LOG_INFO : RN_LOG_WARN,
	       r->ok ? "mdm command sent" : "mdm command failed", "job", jid,
	       "request_type", x->request_type, "command_uuid", uuid,
	       "detail", r->detail, NULL);
	free(x);
	if (sc->stopping)
		maybe_finish(sc);
	else
		schedule_step(sc);
}

int
sched_mdm_command(sched *sc, const char *host, const char *request_type,
		  int64_t job_id)
{
	command_ctx *x;
	mdm_command c;
	store_host h;
	int rc;

	if (sc == NULL || host == NULL || request_type == NULL ||
	    strlen(request_type) >= sizeof(x->request_type))
		return RN_EINVAL;
	if (sc->stopping || sc->closing)
		return RN_ECANCELED;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return RN_ENOMEM;
	if (rn_uuid_v7(x->command_uuid)) {
		free(x);
		return RN_ENOMEM;
	}
	x->sc = sc;
	x->job_id = job_id;
	snprintf(x->request_type, sizeof(x->request_type), "%s",
		 request_type);
	memset(&h, 0, sizeof(h));
	memset(&c, 0, sizeof(c));
	c.host_uuid = host;
	c.request_type = request_type;
	c.command_uuid = x->command_uuid;
	/* the MDM's enrollment ID when it differs from the UDID */
	if (store_host_get(sc->s, host, &h) == RN_OK)
		c.enrollment_id = h.enrollment_id;
	rc = mdm_command_start(sc->mdm, &c, on_command, x);
	store_host_release(&h);
	if (rc == RN_OK) {
		sc->in_flight++;
		return RN_OK;
	}
	free(x);
	if (rc != RN_EINVAL) {
		char jid[24], *d = rn_asprintf("cannot start command: %s",
					       rn_strerror(rc));
		snprintf(jid, sizeof(jid), "%lld", (long long)job_id);
		if (store_job_event(sc->s, job_id, "certificate_list_failed",
				    d ? d : "cannot start command",
				    rn_now()) != RN_OK)
			log_kv(RN_LOG_ERROR, "cannot record mdm command",
			       "job", jid, NULL);
		free(d);
	}
	/* RN_EINVAL: the driver has no command channel (exec, webhook) */
	return rc;
}

/* ---- a full database ---------------------------------------------------- */

/* Copy s to *at and return the copy (NULL stays NULL). */
static char *
pending_str(char **at, const char *s)
{
	char *d = *at;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*at = d + n;
	return d;
}

/* Queue a copy of p: one allocation, its strings after the struct. */
static void
pending_add(sched *sc, const pending *p)
{
	size_t len = sizeof(pending) +
		     (p->event ? strlen(p->event) + 1 : 0) +
		     (p->detail ? strlen(p->detail) + 1 : 0) +
		     (p->command_uuid ? strlen(p->command_uuid) + 1 : 0);
	pending *n = sc->npending < PENDING_MAX ? malloc(len) : NULL;
	char *str;

	if (n == NULL) {
		char jid[24];
		snprintf(jid, sizeof(jid), "%lld", (long long)p->job_id);
		log_kv(RN_LOG_ERROR, "cannot keep an outcome for later; the "
		       "job is pushed again at the next start", "job", jid,
		       NULL);
		return;
	}
	*n = *p;
	n->next = NULL;
	n->late = p->late || sc->store_full;
	str = (char *)(n + 1);
	n->event = pending_str(&str, p->event);
	n->detail = pending_str(&str, p->detail);
	n->command_uuid = pending_str(&str, p->command_uuid);
	*sc->pend_tail = n;
	sc->pend_tail = &n->next;
	sc->npending++;
}


static void
pending_free_all(sched *sc)
{
	pending *p, *nx;

	for (p = sc->pend_head; p; p = nx) {
		nx = p->next;
		free(p);
	}
	sc->pend_head = NULL;
	sc->pend_tail = &sc->pend_head;
	sc->npending = 0;
}

/* Drop the first `n` queued outcomes, logging each as written. */
static void
pending_done(sched *sc, size_t n)
{
	pending *p;

	while (n-- > 0 && (p = sc->pend_head) != NULL) {
		outcome_log(p);
		sc->pend_head = p->next;
		if (sc->pend_head == NULL)
			sc->pend_tail = &sc->pend_head;
		sc->npending--;
		free(p);
	}
}

/*
 * Write the queued outcomes in order inside the caller's transaction, a
 * savepoint each (one outcome the store refuses, say a job a device's
 * report moved on, undoes only its own rows) but for pushes, as in
 * prepare_attempt. *n: how many were written. Anything but RN_OK: the
 * transaction must be rolled back.
 */
static int
pending_write_tx(sched *sc, size_t *n)
{
	pending *p;
	int rc = RN_OK;

	*n = 0;
	for (p = sc->pend_head; rc == RN_OK && p; p = p->next, (*n)++) {
		if (p->kind == PEND_PUSHED) {
			/* its only refusal (RN_EBUSY) comes before any write;
			 * any other error undoes the transaction, and the
			 * caller writes the outcomes one by one */
			p->rc = outcome_write(sc, p);
			if (p->rc != RN_OK && p->rc != RN_EBUSY)
				rc = p->rc;
			continue;
		}
		p->rc = store_unit_begin(sc->s);
		if (p->rc == RN_OK)
			p->rc = store_unit_end(sc->s, outcome_write(sc, p));
		if (p->rc == RN_EFULL || !store_in_tx(sc->s))
			rc = p->rc ? p->rc : RN_ESTORE;
	}
	return rc;
}

/*
 * Write the queued outcomes, all in one transaction; logged once
 * committed. RN_EFULL: nothing was written and the queue stays, to be
 * written when there is room. Any other failure of the whole transaction:
 * the outcomes are written one at a time instead, so each says what is
 * wrong with it.
 */
static int
pending_flush(sched *sc, size_t *written)
{
	pending *p;
	size_t n = 0;
	int rc;

	*written = 0;
	if (sc->pend_head == NULL)
		return RN_OK;
	rc = store_begin(sc->s);
	if (rc == RN_OK)
		rc = pending_write_tx(sc, &n);
	if (rc == RN_OK)
		rc = store_commit(sc->s);
	if (rc == RN_OK) {
		pending_done(sc, n);
		*written = n;
		return RN_OK;
	}
	store_rollback(sc->s);
	for (n = 0, p = sc->pend_head; rc != RN_EFULL && p; p = p->next) {
		rc = p->rc = outcome_write(sc, p);
		if (rc != RN_EFULL)
			n++;
	}
	pending_done(sc, n);
	*written = n;
	if (rc != RN_EFULL)
		return RN_OK;
	for (p = sc->pend_head; p; p = p->next)
		p->late = 1; /* the rest waits for room */
	return RN_EFULL;
}

/* Write what the last loop iteration produced, in a transaction of its own. */
static void
outcomes_write(sched *sc)
{
	size_t written = 0;

	if (sc->store_full || sc->pend_head == NULL)
		return;
	if (pending_flush(sc, &written) == RN_EFULL)
		full_enter(sc, "recording outcomes");
}

static void on_full_timer(uv_timer_t *t);

/*
 * A write failed for lack of space. Stop taking work (no scan, no new
 * attempt: each would fail and log) and probe the store with a small
 * write, 1 s after the first failure, doubling to 30 s while it stays
 * full. Attempts in flight finish; their outcomes wait in memory.
 */
static void
full_enter(sched *sc, const char *during)
{
	char every[32];
	uint64_t now = uv_now(sc->loop);

	if (sc->stopping || sc->closing || sc->store_full)
		return;
	sc->store_full = 1;
	if (sc->full_probe_ms == 0 || now - sc->full_left_ms > FULL_CALM_MS)
		sc->full_probe_ms = FULL_PROBE_MIN_MS;
	else if ((sc->full_probe_ms *= 2) > FULL_PROBE_MAX_MS)
		sc->full_probe_ms = FULL_PROBE_MAX_MS;
	snprintf(every, sizeof(every), "%llus",
		 (unsigned long long)(sc->full_probe_ms / 1000));
	log_kv(RN_LOG_ERROR, "database is full: not starting new work until "
	       "it can be written again", "during", during, "database",
	       sc->conf->cfg->daemon.database, "next_check_in", every, NULL);
	uv_timer_stop(&sc->wake_timer);
	if (sc->once) {
		/* no waiting for room: the run ends with exit status 1 */
		sc->failures++;
		schedule_step(sc);
		return;
	}
	uv_timer_start(&sc->full_timer, on_full_timer, sc->full_probe_ms, 0);
}

static void
on_full_timer(uv_timer_t *t)
{
	sched *sc = t->data;
	size_t written = 0;
	char n[24];
	int rc;

	if (sc->stopping || sc->closing)
		return;
	rc = store_write_probe(sc->s, rn_now());
	if (rc == RN_OK)
		rc = pending_flush(sc, &written);
	if (rc == RN_EFULL) {
		if ((sc->full_probe_ms *= 2) > FULL_PROBE_MAX_MS)
			sc->full_probe_ms = FULL_PROBE_MAX_MS;
		snprintf(n, sizeof(n), "%zu", sc->npending);
		log_kv(RN_LOG_DEBUG, "database still full", "outcomes_held", n,
		       NULL);
		uv_timer_start(&sc->full_timer, on_full_timer,
			       sc->full_probe_ms, 0);
		return;
	}
	sc->store_full = 0;
	sc->full_left_ms = uv_now(sc->loop);
	snprintf(n, sizeof(n), "%zu", written);
	log_kv(RN_LOG_INFO, "database writable again, resuming work",
	       "outcomes_recorded", n, NULL);
	if (written)
		sched_notify(sc);
	if (sc->scan_after_full) {
		sc->scan_after_full = 0;
		sched_trigger(sc, NULL, NULL);
	}
	schedule_step(sc);
}

int64_t
sched_store_full(const sched *sc)
{
	if (sc == NULL || !sc->store_full)
		return 0;
	return (int64_t)(sc->full_probe_ms + 999) / 1000;
}

void
sched_store_error(sched *sc, int rc, const char *during)
{
	if (sc != NULL && rc == RN_EFULL)
		full_enter(sc, during);
}

/* ---- dispatch --------------------------------------------------------- */

static int
on_due_job(void *arg, const store_job *j)
{
	dispatch_ctx *d = arg;
	sched *sc = d->sc;
	const cfg_policy *p;
	int64_t wait = 0;
	int rc;

	if (sc->stopping || sc->in_flight + (size_t)d->started >=
				    (size_t)sc->conf->cfg->daemon.max_in_flight)
		return 1;
	p = policy_for(sc, j->ca_name, j->profile_uuid);
	if (!bucket_take(sc, p, d->now, &wait)) {
		if (d->rate_wait == 0 || d->now + wait < d->rate_wait)
			d->rate_wait = d->now + wait;
		return 0;
	}
	rc = prepare_attempt(d, j);
	if (rc < 0)
		return 1; /* the round's transaction is lost: stop here */
	d->started += rc;
	return 0;
}

/*
 * A pushed job whose verify deadline passed is pushed again as a new
 * attempt with a new renewal ID, or fails when its attempts are used up.
 */
static int
on_verify_timeout(void *arg, const store_job *j)
{
	dispatch_ctx *d = arg;
	char msg[96], dur[32];
	const cfg_policy *p = policy_for(d->sc, j->ca_name, j->profile_uuid);
	int rc;

	rn_duration_format(p->verify_timeout, dur, sizeof(dur));
	snprintf(msg, sizeof(msg), "no certificate with the renewal ID "
		 "within %s", dur);
	if (j->attempts >= p->max_attempts) {
		attempt_failed(d->sc, j->id, JOB_PUSHED, j->attempts,
			       j->host_uuid, j->ca_name, j->profile_uuid,
			       "verify_timeout", msg, 1, 1);
		return 0;
	}
	/* retry at once: the wait was the verify timeout itself */
	rc = store_unit_begin(d->sc->s);
	if (rc == RN_OK)
		rc = store_unit_end(d->sc->s, store_job_attempt_failed(
				    d->sc->s, j->id, JOB_PUSHED,
				    "verify_timeout", msg, d->now, 0, d->now));
	if (rc == RN_EFULL || !store_in_tx(d->sc->s)) {
		d->abort = rc ? rc : RN_ESTORE;
		return 1;
	}
	if (rc && rc != RN_EBUSY)
		log_errorx("cannot record verify timeout: %s",
			   rn_strerror(rc));
	else if (rc == RN_OK)
		d->retries++;
	return 0;
}

/*
 * One dispatch round: verify deadlines, then as many queued jobs as there
 * is room for in flight, prepared in one transaction; their pushes start
 * once it has committed.
 */
static void
dispatch(sched *sc)
{
	dispatch_ctx d;
	launch *l, *nx;
	size_t cap, outcomes = 0;
	int rc;

	if (sc->stopping || sc->store_full)
		return;
	memset(&d, 0, sizeof(d));
	d.sc = sc;
	d.now = rn_now();
	if (sc->careful > 0)
		sc->careful--;
	d.ltail = &d.launches;
	rc = store_begin(sc->s);
	/* the outcomes of the last iteration commit with the round: one
	 * commit instead of two, and the pages both change written once */
	if (rc == RN_OK && sc->pend_head &&
	    pending_write_tx(sc, &outcomes) != RN_OK) {
		store_rollback(sc->s);
		outcomes = 0;
		outcomes_write(sc); /* on their own, each with its error */
		if (sc->store_full)
			return;
		rc = store_begin(sc->s);
	}
	if (rc) {
		d.abort = rc;
	} else {
		store_jobs_due(sc->s, JOB_PUSHED, d.now, 256,
			       on_verify_timeout, &d);
		if (!d.abort && sc->in_flight <
				    (size_t)sc->conf->cfg->daemon.max_in_flight) {
			cap = (size_t)sc->conf->cfg->daemon.max_in_flight -
			      sc->in_flight;
			if (cap > 512)
				cap = 512;
			store_jobs_due(sc->s, JOB_QUEUED, d.now, (int)cap,
				       on_due_job, &d);
		}
		if (!d.abort)
			d.abort = store_commit(sc->s);
		if (d.abort)
			store_rollback(sc->s);
	}
	sc->rate_wait_at = d.rate_wait;
	if (!d.abort)
		pending_done(sc, outcomes);
	for (l = d.launches; l; l = nx) {
		nx = l->next;
		if (!d.abort)
			launch_push(sc, l);
		launch_free(l);
	}
	if (d.abort == RN_EFULL) {
		full_enter(sc, "starting attempts");
		return; /* the write probe resumes the work */
	}
	if (d.abort) {
		/* nothing of the round was kept: the wake timer tries again */
		char jid[24];

		snprintf(jid, sizeof(jid), "%lld", (long long)d.abort_job);
		log_kv(RN_LOG_ERROR, "cannot start attempts", "err",
		       rn_strerror(d.abort), "detail",
		       d.abort_msg[0] ? d.abort_msg : store_errmsg(sc->s),
		       "job", d.abort_job ? jid : NULL, NULL);
		d.started = 0;
	}
	while (d.retries-- > 0)
		outcome("retry");
	/* More due work than one round took: come back next iteration. */
	if (d.started > 0 &&
	    sc->in_flight < (size_t)sc->conf->cfg->daemon.max_in_flight)
		sc->dispatch_pending = 1;
	arm_wake(sc);
	if (sc->once && sc->idle_cb && sc->in_flight == 0 && !sc->scanning &&
	    !sc->dispatch_pending && sc->pend_head == NULL) {
		int64_t next = store_jobs_next_at(sc->s, JOB_QUEUED);
		if (next == 0 || next > d.now || d.rate_wait) {
			void (*cb)(void *) = sc->idle_cb;
			sc->idle_cb = NULL;
			cb(sc->idle_arg);
		}
	}
}

/* Arm the wake timer to the earliest retry, verify deadline or refill. */
static void
arm_wake(sched *sc)
{
	int64_t now = rn_now(), next = 0, t;

	if (sc->stopping || sc->closing || sc->store_full)
		return;
	t = store_jobs_next_at(sc->s, JOB_QUEUED);
	if (t && (next == 0 || t < next))
		next = t;
	t = store_jobs_next_at(sc->s, JOB_PUSHED);
	if (t && (next == 0 || t < next))
		next = t;
	if (sc->rate_wait_at && (next == 0 || sc->rate_wait_at < next))
		next = sc->rate_wait_at;
	uv_timer_stop(&sc->wake_timer);
	if (next == 0)
		return;
	if (next <= now) {
		/* due now but no capacity: a completion will dispatch; poll
		 * once a second in case the capacity was used by nothing */
		next = now + 1;
	}
	uv_timer_start(&sc->wake_timer, on_wake, (uint64_t)(next - now) * 1000,
		       0);
}

/* ---- scan ------------------------------------------------------------- */

static void
scan_finish(sched *sc)
{
	scan_waiter *w, *nx;
	char due[24], enq[24], ms[32];

	sc->scanning = 0;
	sc->cur.duration_ms = (double)(uv_hrtime() - sc->scan_t0) / 1e6;
	sc->last = sc->cur;
	metrics_counter_add("renewd_scans_total", 1, NULL);
	metrics_gauge_set("renewd_scan_duration_seconds",
			  sc->cur.duration_ms / 1000, NULL);
	metrics_gauge_set("renewd_last_scan_timestamp_seconds",
			  (double)sc->cur.at, NULL);
	snprintf(due, sizeof(due), "%lld", (long long)sc->cur.due);
	snprintf(enq, sizeof(enq), "%lld", (long long)sc->cur.enqueued);
	snprintf(ms, sizeof(ms), "%.1f", sc->cur.duration_ms);
	if (sc->cur.rc)
		log_kv(RN_LOG_WARN, "scan stopped", "err",
		       rn_strerror(sc->cur.rc), "due", due, "enqueued", enq,
		       NULL);
	else
		log_kv(sc->cur.enqueued ? RN_LOG_INFO : RN_LOG_DEBUG,
		       "scan done", "due", due, "enqueued", enq,
		       "duration_ms", ms, NULL);
	if (sc->hooks.scan_done)
		sc->hooks.scan_done(sc->hooks.arg, &sc->last);
	w = sc->waiters;
	sc->waiters = NULL;
	for (; w; w = nx) {
		nx = w->next;
		if (w->cb)
			w->cb(w->arg, &sc->last);
		free(w);
	}
	sc->dispatch_pending = 1;
	if (sc->scan_again && sc->store_full) {
		/* no scan can run now: answer, and scan once there is room */
		sched_scan none;
		memset(&none, 0, sizeof(none));
		none.at = rn_now();
		none.rc = RN_EFULL;
		sc->scan_again = 0;
		sc->scan_after_full = 1;
		w = sc->next_waiters;
		sc->next_waiters = NULL;
		for (; w; w = nx) {
			nx = w->next;
			if (w->cb)
				w->cb(w->arg, &none);
			free(w);
		}
	} else if (sc->scan_again) {
		sc->scan_again = 0;
		sc->waiters = sc->next_waiters;
		sc->next_waiters = NULL;
		sc->scanning = 1;
		sc->scan_t0 = uv_hrtime();
		memset(&sc->cur, 0, sizeof(sc->cur));
		sc->cur.at = rn_now();
	}
}

/* One batch of the scan; the step timer calls it until it is done. */
static void
scan_batch(sched *sc)
{
	int seen = 0, enq = 0, rc;

	rc = store_scan_due(sc->s, rn_now(), SCHED_SCAN_BATCH, &seen, &enq);
	if (rc == RN_EFULL) {
		full_enter(sc, "scanning");
		sc->cur.rc = rc;
		sc->scan_after_full = 1;
		scan_finish(sc);
		return;
	}
	if (rc) {
		log_errorx("scan failed: %s (%s)", rn_strerror(rc),
			   store_errmsg(sc->s));
		sc->cur.rc = rc;
		scan_finish(sc);
		return;
	}
	sc->cur.due += seen;
	sc->cur.enqueued += enq;
	if (seen < SCHED_SCAN_BATCH)
		scan_finish(sc);
}

/* New renew_at of an active certificate under the current policies. */
static int
rearm_one(void *arg, const store_cert *c, int64_t *renew_at,
	  const char **policy)
{
	sched *sc = arg;
	const cfg_policy *p = policy_for(sc, c->ca_name, c->profile_uuid);

	*renew_at = sched_renew_at(p, c->not_valid_before, c->not_valid_after,
				   c->host_uuid, c->profile_uuid);
	*policy = p->name;
	return 0;
}

/*
 * One batch of the policy recompute that follows a start or a reload, so
 * renew_at always reflects the policies in force without a full-table
 * transaction.
 */
static void
rearm_batch(sched *sc)
{
	int64_t last = -1;
	int n = 0, rc;

	rc = store_certs_rearm(sc->s, sc->rearm_cursor, SCHED_SCAN_BATCH,
			       rearm_one, sc, &last, &n);
	if (rc == RN_EFULL) {
		/* the cursor stays: the batch runs again once there is room */
		full_enter(sc, "recomputing renewal times");
		return;
	}
	if (rc) {
		log_errorx("cannot recompute renewal times: %s",
			   rn_strerror(rc));
		sc->rearm_cursor = -1;
		return;
	}
	sc->rearm_total += n;
	sc->rearm_cursor = last;
	if (last < 0 && sc->rearm_total > 0) {
		char cnt[24];
		snprintf(cnt, sizeof(cnt), "%lld", (long long)sc->rearm_total);
		log_kv(RN_LOG_INFO, "renewal times recomputed for the current "
		       "policies", "certificates", cnt, NULL);
		sched_trigger(sc, NULL, NULL);
	}
}

/*
 * Whether a dispatch round now is worth its fixed cost (a transaction,
 * the due queries, re-arming the wake timer): while pushes are in flight,
 * wait until a quarter of max_in_flight is free, so rounds start several
 * jobs at a time instead of one per completion. The completions that free
 * the slots bring the next step; with nothing in flight it always runs.
 */
static int
dispatch_worth(const sched *sc)
{
	size_t max = (size_t)sc->conf->cfg->daemon.max_in_flight;

	return sc->in_flight == 0 ||
	       (sc->in_flight < max && max - sc->in_flight >= (max + 3) / 4);
}

static void
on_step(uv_timer_t *t)
{
	sched *sc = t->data;

	if (sc->stopping)
		return;
	if (sc->store_full) {
		/* a scan asked for meanwhile is answered, and runs later */
		if (sc->scanning) {
			sc->cur.rc = RN_EFULL;
			sc->scan_after_full = 1;
			scan_finish(sc);
		}
		/* --once does not wait for room: it ends, failed */
		if (sc->once && sc->idle_cb && sc->in_flight == 0) {
			void (*cb)(void *) = sc->idle_cb;
			sc->idle_cb = NULL;
			cb(sc->idle_arg);
		}
		return;
	}
	if (sc->rearm_cursor >= 0 && !sc->store_full)
		rearm_batch(sc);
	if (sc->store_full)
		return;
	if (sc->scanning)
		scan_batch(sc);
	if (sc->dispatch_pending && !sc->store_full) {
		sc->dispatch_pending = 0;
		if (dispatch_worth(sc))
			dispatch(sc);
	}
	/* the last iteration's outcomes, unless a dispatch round wrote them
	 * in its transaction */
	if (sc->pend_head && !sc->store_full)
		outcomes_write(sc);
	if (!sc->store_full &&
	    (sc->scanning || sc->dispatch_pending || sc->rearm_cursor >= 0))
		schedule_step(sc);
}

static void
schedule_step(sched *sc)
{
	if (sc->stopping || sc->closing)
		return;
	sc->dispatch_pending = 1;
	if (!uv_is_active((uv_handle_t *)&sc->step_timer))
		uv_timer_start(&sc->step_timer, on_step, 0, 0);
}

void
sched_trigger(sched *sc, sched_scan_cb cb, void *arg)
{
	scan_waiter *w = calloc(1, sizeof(*w));

	if (w) {
		w->cb = cb;
		w->arg = arg;
	}
	if (sc->scanning) {
		/* the running scan may have passed rows that are due by now */
		sc->scan_again = 1;
		if (w) {
			w->next = sc->next_waiters;
			sc->next_waiters = w;
		}
	} else {
		if (w) {
			w->next = sc->waiters;
			sc->waiters = w;
		}
		sc->scanning = 1;
		sc->scan_t0 = uv_hrtime();
		memset(&sc->cur, 0, sizeof(sc->cur));
		sc->cur.at = rn_now();
	}
	schedule_step(sc);
}

void
sched_kick(sched *sc)
{
	schedule_step(sc);
}

static void
on_scan_timer(uv_timer_t *t)
{
	sched_trigger(t->data, NULL, NULL);
}

static void
on_wake(uv_timer_t *t)
{
	schedule_step(t->data);
}

/* ---- life cycle ------------------------------------------------------- */

int
sched_new(uv_loop_t *loop, store *s, const rn_conf *conf, net_http *http,
	  int once, sched **out)
{
	sched *sc = calloc(1, sizeof(*sc));
	int rc;

	*out = NULL;
	if (sc == NULL)
		return RN_ENOMEM;
	sc->loop = loop;
	sc->s = s;
	sc->conf = conf;
	sc->http = http;
	sc->once = once;
	sc->rearm_cursor = -1;
	rc = mdm_new(loop, http, &conf->cfg->mdm, &sc->mdm);
	if (rc) {
		free(sc);
		return rc;
	}
	uv_timer_init(loop, &sc->scan_timer);
	uv_timer_init(loop, &sc->wake_timer);
	uv_timer_init(loop, &sc->step_timer);
	uv_timer_init(loop, &sc->grace_timer);
	uv_timer_init(loop, &sc->full_timer);
	sc->scan_timer.data = sc->wake_timer.data = sc;
	sc->step_timer.data = sc->grace_timer.data = sc;
	sc->full_timer.data = sc;
	sc->pend_tail = &sc->pend_head;
	*out = sc;
	return RN_OK;
}

int
sched_start(sched *sc)
{
	int n = 0, rc;
	int64_t level;
	uint64_t every = (uint64_t)sc->conf->cfg->daemon.scan_interval * 1000;
	static const char *const results[] = {"pushed", "verified", "retry",
					      "failed", "cancelled"};
	size_t i;

	rc = store_jobs_recover(sc->s, rn_now(), &n);
	if (rc)
		return rc;
	/* every outcome from 0, so rate() and increase() see the first */
	for (i = 0; i < 5; i++)
		metrics_counter_add("renewd_job_outcomes_total", 0, "result",
				    results[i], NULL);
	/* an MDM outage alert from before the restart resolves on success */
	sc->mdm_down = store_alert_level(sc->s, "mdm.unreachable", &level) ==
		       RN_OK;
	metrics_gauge_set("renewd_mdm_up", sc->mdm_down ? 0 : 1, NULL);
	if (n > 0) {
		char cnt[16];
		snprintf(cnt, sizeof(cnt), "%d", n);
		log_kv(RN_LOG_WARN, "jobs interrupted by a restart re-queued",
		       "count", cnt, NULL);
	}
	if (!sc->once)
		uv_timer_start(&sc->scan_timer, on_scan_timer, every, every);
	sc->rearm_cursor = 0;
	sc->rearm_total = 0;
	sched_trigger(sc, NULL, NULL);
	return RN_OK;
}

int
sched_set_conf(sched *sc, const rn_conf *conf)
{
	mdm *m;
	uint64_t every = (uint64_t)conf->cfg->daemon.scan_interval * 1000;
	int rc = mdm_new(sc->loop, sc->http, &conf->cfg->mdm, &m);

	if (rc)
		return rc;
	/* pushes in flight own their context and outlive the old driver */
	mdm_free(sc->mdm);
	sc->mdm = m;
	sc->conf = conf;
	sc->nbuckets = 0;
	sc->rearm_cursor = 0; /* policies may have changed */
	sc->rearm_total = 0;
	if (!sc->once)
		uv_timer_start(&sc->scan_timer, on_scan_timer, every, every);
	schedule_step(sc);
	return RN_OK;
}

static void
on_closed(uv_handle_t *h)
{
	sched *sc = h->data;
	void (*done)(void *);
	void *arg;

	if (--sc->handles_open > 0)
		return;
	done = sc->done_cb;
	arg = sc->done_arg;
	mdm_free(sc->mdm);
	free(sc);
	if (done)
		done(arg);
}

static void
free_waiters(scan_waiter *w)
{
	scan_waiter *nx;

	for (; w; w = nx) {
		nx = w->next;
		if (w->cb)
			w->cb(w->arg, NULL);
		free(w);
	}
}

/* Close once nothing is in flight (or the grace time ran out). */
static void
maybe_finish(sched *sc)
{
	if (sc->closing || sc->in_flight > 0)
		return;
	sc->closing = 1;
	free_waiters(sc->waiters);
	free_waiters(sc->next_waiters);
	sc->waiters = sc->next_waiters = NULL;
	outcomes_write(sc);
	if (sc->npending > 0) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", sc->npending);
		log_kv(RN_LOG_WARN, "outcomes not recorded (database full); "
		       "their jobs are pushed again at the next start",
		       "count", n, NULL);
	}
	pending_free_all(sc);
	sc->handles_open = 5;
	uv_close((uv_handle_t *)&sc->full_timer, on_closed);
	uv_close((uv_handle_t *)&sc->scan_timer, on_closed);
	uv_close((uv_handle_t *)&sc->wake_timer, on_closed);
	uv_close((uv_handle_t *)&sc->step_timer, on_closed);
	uv_close((uv_handle_t *)&sc->grace_timer, on_closed);
}

static void
on_grace(uv_timer_t *t)
{
	sched *sc = t->data;
	char n[16];

	snprintf(n, sizeof(n), "%zu", sc->in_flight);
	log_kv(RN_LOG_WARN, "grace time over, stopping attempts in flight",
	       "count", n, NULL);
	/* Killed children and cancelled requests call back as failures;
	 * their jobs go back to the queue with a backoff. */
	net_proc_kill_all();
}

void
sched_stop(sched *sc, int64_t grace_ms, void (*done)(void *arg), void *arg)
{
	sc->stopping = 1;
	sc->done_cb = done;
	sc->done_arg = arg;
	uv_timer_stop(&sc->scan_timer);
	uv_timer_stop(&sc->wake_timer);
	uv_timer_stop(&sc->step_timer);
	uv_timer_stop(&sc->full_timer);
	if (sc->in_flight > 0) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", sc->in_flight);
		log_kv(RN_LOG_INFO, "waiting for attempts in flight", "count",
		       n, NULL);
		uv_timer_start(&sc->grace_timer, on_grace, (uint64_t)grace_ms,
			       0);
	}
	maybe_finish(sc);
}

int
sched_job_refused(sched *sc, int64_t job_id, const char *event,
		  const char *detail)
{
	store_job j;
	int rc = store_job_get(sc->s, job_id, &j);

	if (rc)
		return rc;
	if (strcmp(j.state, JOB_PUSHED) && strcmp(j.state, JOB_ACKNOWLEDGED)) {
		store_job_release(&j);
		return RN_EBUSY;
	}
	attempt_failed(sc, j.id, j.state, j.attempts, j.host_uuid, j.ca_name,
		       j.profile_uuid, event, detail, 0, 0);
	store_job_release(&j);
	schedule_step(sc);
	return RN_OK;
}

int
sched_job_repush(sched *sc, int64_t job_id, const char *event,
		 const char *detail)
{
	store_job j;
	int64_t now = rn_now();
	int rc = store_job_get(sc->s, job_id, &j);

	if (rc)
		return rc;
	if (strcmp(j.state, JOB_PUSHED) && strcmp(j.state, JOB_ACKNOWLEDGED))
		rc = RN_EBUSY;
	else
		rc = store_job_attempt_failed(sc->s, j.id, j.state, event,
					      detail, now, 0, now);
	store_job_release(&j);
	if (rc == RN_OK) {
		outcome("retry");
		schedule_step(sc);
	}
	return rc;
}

size_t
sched_in_flight(const sched *sc)
{
	return sc->in_flight;
}

int
sched_failures(const sched *sc)
{
	return sc->failures;
}

const sched_scan *
sched_last_scan(const sched *sc)
{
	return &sc->last;
}

void
sched_on_idle(sched *sc, void (*cb)(void *arg), void *arg)
{
	sc->idle_cb = cb;
	sc->idle_arg = arg;
}

void
sched_set_hooks(sched *sc, const sched_hooks *h)
{
	if (h)
		sc->hooks = *h;
	else
		memset(&sc->hooks, 0, sizeof(sc->hooks));
}
