/*
 * store: the SQLite database. Every SQL statement of renewd lives in
 * store.c, prepared once per connection and bound, never built with printf.
 *
 * Invariants:
 *  - WAL mode, foreign keys on for every write of outside input, a busy
 *    timeout, schema versioned by PRAGMA user_version and migrated
 *    forward on open (read-write only); the due scan writes on a second
 *    connection without foreign keys, copying only keys of checked rows;
 *  - at most one certificate in state active|renewing per host x profile x
 *    CA, and at most one job not in a final state per triple (partial
 *    unique indexes enforce both);
 *  - every job state change and the job_events row that records it commit
 *    in one transaction;
 *  - a due scan reads and deletes one key range of the due queue
 *    (renewal_schedule, clustered by renew_at): certificates with an open
 *    job are not in it, and are shown as 'renewing'.
 *
 * Strings in the structs below are malloc'd and owned by the struct; the
 * *_release functions free them. Callbacks get borrowed structs valid only
 * during the call; a callback returning non-zero stops the iteration and
 * that value is returned.
 */
#ifndef RN_STORE_H
#define RN_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

#define STORE_SCHEMA_VERSION 6

typedef struct store store;

/* Job states and kinds, as stored. */
#define JOB_QUEUED "queued"
#define JOB_RUNNING "running"
#define JOB_PUSHED "pushed"
#define JOB_ACKNOWLEDGED "acknowledged"
#define JOB_VERIFIED "verified"
#define JOB_FAILED "failed"
#define JOB_CANCELLED "cancelled"

typedef struct store_cert {
	int64_t id;
	char *host_uuid, *profile_uuid, *ca_name;
	char *serial;  /* hex */
	char *subject; /* one-line RFC 2253 */
	char *issuer;
	char *sha256;  /* hex of the DER */
	char *renewal_id; /* renewal ID found in CN/OU, or NULL */
	char *state;	  /* active | renewing | superseded | expired */
	char *policy;	  /* policy name used for renew_at */
	int64_t not_valid_before, not_valid_after, renew_at;
	int64_t job_id; /* the job this certificate verified, 0 if none */
	int64_t created_at, updated_at;
} store_cert;

typedef struct store_job {
	int64_t id;
	char *host_uuid, *profile_uuid, *ca_name;
	char *kind;	  /* issue | renew | resend */
	char *renewal_id; /* of the current attempt, or NULL */
	char *command_uuid;
	char *state;
	char *last_error;
	int attempts;
	int64_t cert_id; /* certificate being renewed, 0 for issue */
	int64_t next_attempt_at;
	int64_t created_at, updated_at;
} store_job;

typedef struct store_host {
	char *uuid, *serial_number, *enrollment_id, *state;
	int64_t first_seen, last_seen;
} store_host;

typedef struct store_profile {
	char *uuid, *identifier, *name, *ca_name, *sha256, *source_path;
	char *template; /* may be NULL in listings */
	size_t template_len;
} store_profile;

void store_cert_release(store_cert *c);
void store_job_release(store_job *j);
void store_host_release(store_host *h);
void store_profile_release(store_profile *p);

/* ---- connection ------------------------------------------------------- */

/*
 * Open (creating when read-write and missing) and migrate. Read-only opens
 * never create or migrate and fail with a clear message on an older or
 * newer schema. On failure *errmsg (malloc'd) says why.
 */
int store_open(const char *path, int readonly, store **out, char **errmsg);
/*
 * Close; a checkpoint thread (below) is stopped and joined first. The
 * last connection to close checkpoints the whole WAL.
 */
void store_close(store *s);
/*
 * For the daemon: WAL checkpoints on a thread of their own, with a second
 * connection to `path`, instead of inside the commit that crosses 1000 WAL
 * frames on the caller's (loop) thread. The thread catches up once writes
 * pause (within about 50 ms), so the next write restarts the WAL. A
 * commit still checkpoints inline when the WAL reaches 8192 frames, so it
 * stays bounded. Read-write stores only; at most once per store.
 */
int store_checkpoint_start(store *s, const char *path);
/* Last SQLite error text of this connection. */
const char *store_errmsg(store *s);
int store_schema_version(store *s);

int store_begin(store *s); /* BEGIN IMMEDIATE */
int store_commit(store *s);
void store_rollback(store *s);
/*
 * Join the open transaction or begin one (*own = 1); store_tx_end commits
 * what it began when rc is 0, else rolls back, and returns the result.
 * For callers that add their own rows (alerts) to a store change.
 */
int store_tx_begin(store *s, int *own);
int store_tx_end(store *s, int own, int rc);
/* 1 while a transaction is open on this connection. */
int store_in_tx(store *s);
/*
 * One unit inside the caller's transaction (a savepoint): store_unit_end
 * keeps the unit's writes when rc is 0, else undoes them and only them;
 * it returns rc (or its own failure). When SQLite has rolled the whole
 * transaction back (RN_EFULL, an I/O error), store_in_tx says 0.
 */
int store_unit_begin(store *s);
int store_unit_end(store *s, int rc);

/* ---- hosts and profiles ----------------------------------------------- */

/* Insert or refresh; serial NULL keeps the stored one. */
int store_host_upsert(store *s, const char *uuid, const char *serial,
		      int64_t now);
int store_host_get(store *s, const char *uuid, store_host *out);
int store_profile_upsert(store *s, const store_profile *p, int64_t now);
int store_profile_get(store *s, const char *uuid, store_profile *out);
int store_host_profile_add(store *s, const char *host, const char *profile);
/* Set the host's enrollment ID (MDM user channel or device ID). */
int store_host_set_enrollment(store *s, const char *uuid,
			      const char *enrollment_id, int64_t now);
/* Host state 'active' or 'retired'; RN_ENOTFOUND for an unknown host. */
int store_host_set_state(store *s, const char *uuid, const char *state,
			 int64_t now);

/* ---- MDM webhook events ----------------------------------------------- */

/* Remember an event ID; RN_EEXIST when it was seen before (a redelivery). */
int store_mdm_event_record(store *s, const char *event_id, const char *topic,
			   int64_t now);

typedef struct store_unmatched {
	const char *host_uuid, *sha256, *subject, *serial;
	int64_t not_valid_after, seen_at;
} store_unmatched;
typedef int (*store_unmatched_cb)(void *arg, const store_unmatched *u);
/* Remember a reported certificate that verified no job; nothing is stored
 * when the host already has it as a managed certificate. */
int store_unmatched_add(store *s, const char *host, const store_cert *c,
			int64_t now);
/* Newest first; host NULL = all. */
int store_unmatched_each(store *s, const char *host, store_unmatched_cb cb,
			 void *arg);

/* ---- certificates ----------------------------------------------------- */

/*
 * Make `c` the current certificate of its host x profile x CA inside one
 * transaction: the previous current row becomes 'superseded' (kept as
 * history); when job_id is not 0 and that job is open, the job becomes
 * 'verified' with a 'verified' event. Importing a certificate that is
 * already stored for the triple (same sha256) changes nothing and sets
 * *dup. c->id is set to the row id.
 */
int store_cert_install(store *s, store_cert *c, int64_t job_id, int64_t now,
		       int *dup);
int store_cert_get(store *s, int64_t id, store_cert *out);
/* Current (active|renewing) certificate of a triple. */
int store_cert_current(store *s, const char *host, const char *profile,
		       const char *ca, store_cert *out);

typedef struct store_cert_filter {
	const char *host_uuid;	/* or NULL */
	const char *state;	/* or NULL = all */
	int64_t expiring_before; /* not_valid_after < this, 0 = no filter */
	int64_t renew_before;	/* in the due queue with renew_at <= this */
	int open_job;		/* current, and its triple has an open job */
	int64_t limit;		/* 0 = no limit */
} store_cert_filter;

typedef int (*store_cert_cb)(void *arg, const store_cert *c);
int store_certs_each(store *s, const store_cert_filter *f, store_cert_cb cb,
		     void *arg);

/*
 * Recompute after a policy change: iterate active rows after id `after`,
 * at most `limit`, letting cb compute a new renew_at and policy name
 * (*policy points to a string that outlives the call); rows that changed
 * are updated in one transaction. *last_id is the cursor for the next
 * batch, -1 when the table is done; *n counts updated rows.
 */
typedef int (*store_renew_at_cb)(void *arg, const store_cert *c,
				 int64_t *renew_at, const char **policy);
int store_certs_rearm(store *s, int64_t after, int limit,
		      store_renew_at_cb cb, void *arg, int64_t *last_id,
		      int *n);

/* ---- scan ------------------------------------------------------------- */

/*
 * One batch of the due scan, in one transaction: up to `limit` queued
 * certificates with renew_at <= now, earliest first, each gets a 'renew'
 * job (unless its triple already has an open one) with an 'enqueued'
 * event, and leaves the due queue ('renewing'). *seen counts due rows
 * taken, *enqueued new jobs. Set-based: a handful of statements per
 * batch, whatever its size. Runs on the store's scan connection (foreign
 * keys off, opened on first use), or inside the caller's transaction on
 * the main connection when one is open.
 */
int store_scan_due(store *s, int64_t now, int limit, int *seen,
		   int *enqueued);
/* Earliest renew_at of an active certificate, 0 when none. */
int64_t store_next_due(store *s);

/* ---- jobs ------------------------------------------------------------- */

/* New job for a triple; RN_EEXIST (and *id of the open one) if open. */
int store_job_enqueue(store *s, const char *host, const char *profile,
		      const char *ca, const char *kind, int64_t cert_id,
		      const char *detail, int64_t now, int64_t *id);
int store_job_get(store *s, int64_t id, store_job *out);
/* The job that a renewal ID (of any of its attempts) belongs to. */
int store_job_by_renewal_id(store *s, const char *renewal_id,
			    store_job *out);

/* The job last pushed with this command UUID; RN_ENOTFOUND when none. */
int store_job_by_command_uuid(store *s, const char *command_uuid,
			      store_job *out);

typedef int (*store_job_cb)(void *arg, const store_job *j);
/* Open jobs of a host, oldest first. */
int store_host_open_jobs_each(store *s, const char *host, store_job_cb cb,
			      void *arg);
/* pushed -> acknowledged with an 'acknowledged' event; RN_EBUSY when the
 * job is not pushed. */
int store_job_acknowledged(store *s, int64_t id, const char *detail,
			   int64_t now);
/* Jobs in `state` with next_attempt_at <= before, oldest first, at most
 * limit (the dispatcher and the verify-timeout sweep). */
int store_jobs_due(store *s, const char *state, int64_t before, int limit,
		   store_job_cb cb, void *arg);
/* Earliest next_attempt_at in `state`, 0 when none. */
int64_t store_jobs_next_at(store *s, const char *state);
/* Listing, newest first; state NULL = all. */
int store_jobs_each(store *s, const char *state, int64_t limit,
		    store_job_cb cb, void *arg);

/*
 * queued -> running: attempts + 1; renewal_id kept when the job still has
 * one (an interrupted attempt is pushed again with the same ID), else
 * `new_renewal_id`, which is also indexed in job_renewal_ids. Returns
 * RN_EBUSY when the job is no longer queued, found before any write (an
 * error after the first write is never RN_EBUSY: the caller's transaction
 * then holds part of the change). *out gets the updated row.
 */
int store_job_start(store *s, int64_t id, const char *new_renewal_id,
		    int64_t now, store_job *out);
/* running -> pushed, next_attempt_at = verify deadline; RN_EBUSY if the
 * job is no longer running (cancelled meanwhile), before any write, as
 * for store_job_start. */
int store_job_pushed(store *s, int64_t id, const char *command_uuid,
		     int64_t verify_at, const char *detail, int64_t now);
/*
 * A failed attempt (running -> queued at retry_at, renewal ID dropped so
 * the next attempt gets a fresh one), or, with retry_at == 0, the end
 * (-> failed; the certificate being renewed goes back to 'active' with
 * renew_at = rearm_at so it is tried again later, not forgotten).
 * `from` is the state the job must be in (running, or pushed for a
 * verify timeout). RN_EBUSY if it is not.
 */
int store_job_attempt_failed(store *s, int64_t id, const char *from,
			     const char *event, const char *err,
			     int64_t retry_at, int64_t rearm_at, int64_t now);
/* Cancel an open job (certificate re-armed at rearm_at). RN_EBUSY when
 * the job is final. */
int store_job_cancel(store *s, int64_t id, const char *why, int64_t rearm_at,
		     int64_t now);
/* A queued job runs now; a failed or cancelled one is reopened with
 * attempts reset (RN_EEXIST if its triple has another open job). */
int store_job_retry(store *s, int64_t id, int64_t now);
/* Record an event on its own (its own transaction unless one is open). */
int store_job_event(store *s, int64_t id, const char *event,
		    const char *detail, int64_t now);
/* At start-up: running -> queued (the attempt did not finish and does not
 * count); returns the number of jobs recovered through *n. */
int store_jobs_recover(store *s, int64_t now, int *n);
/* The same for one job whose attempt never reached the MDM (its profile
 * could not be rendered into a full database), with a 'requeued' event;
 * RN_EBUSY when the job is not running. */
int store_job_requeue(store *s, int64_t id, const char *detail, int64_t now);
/*
 * Write a row and delete it again in one transaction: RN_OK when the
 * database can take a write now, RN_EFULL while the disk is full.
 */
int store_write_probe(store *s, int64_t now);

typedef struct store_event {
	int64_t id, job_id, at;
	const char *event, *detail;
} store_event;
typedef int (*store_event_cb)(void *arg, const store_event *e);
int store_job_events_each(store *s, int64_t job_id, store_event_cb cb,
			  void *arg);

/* ---- SCEP tokens ------------------------------------------------------ */

/*
 * A token is stored under its key (rn_token_key: the token's time digits
 * and its SHA-256, in the column token_hash), never as itself.
 */
int store_token_insert(store *s, const char *token_key, const char *host,
		       const char *profile, const char *ca, int64_t job_id,
		       int64_t expires_at, int64_t now);

typedef struct store_token {
	char host_uuid[160], profile_uuid[160], ca_name[80];
	int64_t job_id;	     /* job that minted it, 0 if none */
	int64_t expires_at;
	int64_t consumed_at; /* 0 = not consumed */
} store_token;

/* The token stored under this key; RN_ENOTFOUND when none. */
int store_token_get(store *s, const char *token_key, store_token *out);
/*
 * What the SCEP proxy checks, in one read: the token under this key and,
 * for the token's own host, profile and CA, whether the host is assigned
 * the profile, the open job's id (0 when none) and whether a current
 * certificate exists. RN_ENOTFOUND when no token has this key.
 */
typedef struct store_proxy_auth {
	store_token tok;
	int assigned;	  /* host_profiles has (host, profile) */
	int64_t open_job; /* the triple's job in an open state, or 0 */
	int has_cert;	  /* the triple has an 'active' certificate */
} store_proxy_auth;
int store_proxy_auth_get(store *s, const char *token_key,
			 store_proxy_auth *out);
/* Mark consumed once; RN_EBUSY when it already was. */
int store_token_consume(store *s, const char *token_key, int64_t now);
/* Is the profile assigned to the host? 1 / 0 (or a negative error). */
int store_host_profile_has(store *s, const char *host, const char *profile);
/* The open job of a triple; RN_ENOTFOUND when none. */
int store_job_open(store *s, const char *host, const char *profile,
		   const char *ca, store_job *out);

/* ---- notifications outbox ---------------------------------------------- */

/*
 * Queue an alert for the notifiers (delivered asynchronously by the
 * notifier module): event name, a dedup key for the condition, JSON
 * payload. Written inside the caller's transaction, so the alert exists
 * exactly when the state change that caused it does.
 */
int store_notification_add(store *s, const char *event, const char *key,
			   const char *payload, int64_t now);

/*
 * Delivery (notifier engine). An event row (notifier NULL) is fanned out
 * into one delivery row per matching notifier, then deleted; delivery rows
 * are leased while in flight (next_attempt_at pushed past their timeout,
 * so a crash re-delivers them), then delivered, retried or given up.
 * Strings in store_notification are borrowed for the callback.
 */
typedef struct store_notification {
	int64_t id;
	const char *event, *key, *payload;
	const char *notifier; /* NULL for an event not yet fanned out */
	int attempts;
	int64_t created_at;
} store_notification;
typedef int (*store_notification_cb)(void *arg,
				     const store_notification *n);

/* Events not fanned out yet, oldest first. */
int store_notifications_unfanned(store *s, int limit,
				 store_notification_cb cb, void *arg);
/* A delivery row for `notifier` copying event row id, due at now. */
int store_notification_fan(store *s, int64_t id, const char *notifier,
			   int64_t now);
int store_notification_delete(store *s, int64_t id);
/* Pending delivery rows due at now, earliest first. */
int store_notifications_due(store *s, int64_t now, int limit,
			    store_notification_cb cb, void *arg);
/* Earliest next_attempt_at of a pending row (either kind), 0 if none. */
int64_t store_notifications_next_at(store *s);
int store_notification_lease(store *s, int64_t id, int64_t until);
int store_notification_delivered(store *s, int64_t id, int64_t now);
/* attempts + 1, try again at next_at. */
int store_notification_retry(store *s, int64_t id, int64_t next_at,
			     const char *err);
/* Final: state 'failed' (given up) or 'dropped' (no such notifier any
 * more); attempted counts one more attempt. */
int store_notification_give_up(store *s, int64_t id, const char *state,
			       const char *err, int attempted);
/* Delete finished rows created before `before`; *n gets the count. */
int store_notifications_prune(store *s, int64_t before, int *n);

/* ---- alert conditions ------------------------------------------------- */

/*
 * Open condition `key` at `level` (lower = more severe; 0 when the event
 * has no levels). *raised = 1 when it was not open or was open at a
 * higher level (an escalation); 0 when nothing changed. Use inside the
 * transaction of the change that caused it.
 */
int store_alert_raise(store *s, const char *key, const char *event,
		      int64_t level, int64_t now, int *raised);
/* Close `key`; *was_open = 1 when it was open. */
int store_alert_resolve(store *s, const char *key, int *was_open);
/* Level of an open condition; RN_ENOTFOUND when closed. */
int store_alert_level(store *s, const char *key, int64_t *level);
/*
 * Current certificates with not_valid_after < before, after the cursor
 * (not_valid_after, id) = (after_nva, after_id), in that order, at most
 * limit: the deadline sweep's batches.
 */
int store_certs_expiring(store *s, int64_t before, int64_t after_nva,
			 int64_t after_id, int limit, store_cert_cb cb,
			 void *arg);

/* ---- status ----------------------------------------------------------- */

typedef struct store_count {
	char name[32];
	int64_t n;
} store_count;

/* Counts by state; *n entries written to out (at most max). */
int store_job_counts(store *s, store_count *out, size_t max, size_t *n);
int store_cert_counts(store *s, store_count *out, size_t max, size_t *n);

/* ---- metrics and health ----------------------------------------------- */

#define STORE_STATS_WINDOWS 6

/*
 * Fleet aggregates for /metrics, all from one read transaction. "Current"
 * certificates are those in state active (renewing included). Array
 * orders: certs = active, renewing, superseded, expired; jobs = queued,
 * running, pushed, acknowledged, verified, failed, cancelled.
 */
typedef struct store_stats {
	int64_t certs[4];
	int64_t current;	/* active + renewing */
	int64_t expiring[STORE_STATS_WINDOWS]; /* nva < now + within[i] */
	int64_t expired;	/* current with nva < now */
	int64_t earliest_expiry; /* min nva of a current one */
	int has_earliest;	/* 0 when there is no current certificate */
	int64_t jobs[7];
	int64_t notifications_pending;
} store_stats;

/*
 * Aggregates only, but full scans of an index or table on a large fleet
 * (about 1 s per million rows): never on the loop thread. Use a
 * connection of its own (store_open read-only) from a uv_queue_work
 * callback. within[] are the expiring windows in seconds.
 */
int store_stats_get(store *s, int64_t now,
		    const int64_t within[STORE_STATS_WINDOWS],
		    store_stats *out);
/* A trivial read of the database file (health checks): 0 or an error,
 * store_errmsg says why. */
int store_ping(store *s);

#endif
