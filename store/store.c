/*
 * store: SQLite schema, migrations and every statement of renewd.
 * Statements are prepared lazily once per connection and cached by id.
 */
#define _GNU_SOURCE
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "schema.h"

enum {
	ST_HOST_UPSERT, ST_HOST_GET, ST_PROFILE_UPSERT, ST_PROFILE_GET,
	ST_HP_ADD, ST_CERT_INSERT, ST_CERT_DUP, ST_CERT_SUPERSEDE,
	ST_CERT_GET, ST_CERT_CURRENT, ST_SCAN_MARK,
	ST_NEXT_DUE, ST_JOB_INSERT, ST_JOB_OPEN, ST_JOB_GET, ST_JOB_BY_RID,
	ST_JOBS_DUE, ST_JOBS_NEXT, ST_JOB_START, ST_RID_INSERT,
	ST_JOB_PUSHED, ST_JOB_RETRYWAIT, ST_JOB_FINAL, ST_CERT_REARM,
	ST_JOB_RETRY, ST_EVENT_INSERT, ST_JOBS_RECOVER_SEL, ST_JOB_RECOVER,
	ST_EVENTS, ST_TOKEN_INSERT, ST_JOB_COUNTS, ST_CERT_COUNTS,
	ST_JOB_VERIFY, ST_CERT_SET_RENEW_AT, ST_REARM_SELECT, ST_JOBS_LIST,
	ST_JOBS_LIST_STATE, ST_SCHED_INSERT, ST_SCHED_DROP_CURRENT,
	ST_SCHED_SET, ST_TOKEN_CONSUME,
	ST_HP_HAS, ST_JOB_OPEN_ROW, ST_PROXY_AUTH, ST_NOTIF_ADD, ST_HOST_ENROLL, ST_HOST_STATE,
	ST_MDM_EVENT, ST_JOB_BY_CMD, ST_HOST_OPEN_JOBS, ST_JOB_ACK,
	ST_UNMATCHED_ADD, ST_UNMATCHED_ALL, ST_UNMATCHED_HOST,
	/* notifications and alerts (migration 3) */
	ST_NOTIF_FANOUT, ST_NOTIF_FAN, ST_NOTIF_DEL, ST_NOTIF_DUE,
	ST_NOTIF_NEXT, ST_NOTIF_LEASE, ST_NOTIF_DONE, ST_NOTIF_RETRY,
	ST_NOTIF_GIVEUP, ST_NOTIF_PRUNE, ST_ALERT_GET, ST_ALERT_PUT,
	ST_ALERT_DEL, ST_EXPIRY_SELECT,
	/* disk-full handling: a write that leaves nothing behind */
	ST_PROBE_PUT, ST_PROBE_DEL,
	/* metrics and health */
	ST_STATS_EXPIRY, ST_NOTIF_PENDING, ST_PING,
	/* the set-based due scan */
	ST_SCAN_BOUND, ST_SCAN_COUNT, ST_JOB_MAXID, ST_SCAN_ENQUEUE,
	ST_SCAN_EVENTS, ST_SCAN_DEQUEUE,
	/* one unit of a batched transaction */
	ST_SP_BEGIN, ST_SP_RELEASE, ST_SP_UNDO,
	/* ST_JOBS_DUE and ST_JOBS_NEXT for the dispatcher's two states */
	ST_JOBS_DUE_Q, ST_JOBS_DUE_P, ST_JOBS_NEXT_Q, ST_JOBS_NEXT_P,
	ST__COUNT
};

/* WAL frames before the checkpoint thread is woken, and before a commit
 * checkpoints inline because the thread has not kept up. */
#define CKPT_WAKE_FRAMES 1000
#define CKPT_INLINE_FRAMES 8192
/* How long the thread lets commits settle before it checkpoints the frames
 * fewer than CKPT_WAKE_FRAMES left behind (once the WAL holds at least
 * CKPT_SETTLE_FRAMES: fewer are not worth a checkpoint's two fsyncs), and
 * retries a checkpoint that did not reach the WAL's end; doubled while a
 * retry makes no progress (a reader holds the frames, the disk is full),
 * up to CKPT_RETRY_MAX_MS. */
#define CKPT_SETTLE_MS 50
#define CKPT_SETTLE_FRAMES 256
#define CKPT_RETRY_MAX_MS 2000
/*
 * The size the WAL file is cut back to when it starts over (PRAGMA
 * journal_size_limit). SQLite otherwise keeps the file at the largest size
 * it ever reached: one big transaction (an import of 100,000 certificates
 * writes a WAL of about 100 MiB) would hold that disk space for good. Above
 * the CKPT_INLINE_FRAMES bound (32 MiB), so steady work never truncates.
 */
#define WAL_SIZE_LIMIT "67108864"

struct store {
	sqlite3 *db;
	int readonly;
	sqlite3_stmt *st[ST__COUNT];
	/* store_checkpoint_start: a thread with its own connection */
	sqlite3 *ckpt_db;
	pthread_t ckpt_thread;
	pthread_mutex_t ckpt_mu;
	pthread_cond_t ckpt_cv;
	int ckpt_on, ckpt_want, ckpt_stop;
	int ckpt_idle;	    /* the thread sleeps with the WAL backfilled */
	uint64_t ckpt_gen;  /* commits so far (under ckpt_mu) */
	int ckpt_frames; /* WAL size at the last wake (committing thread) */
	/* store_scan_due's connection, foreign keys off (see there) */
	sqlite3 *scan_db;
	sqlite3_stmt *scan_st[ST__COUNT];
	int scan_off; /* no scan connection: scan on db */
};

/*
 * 'renewing' is not stored: a current certificate is renewing exactly when
 * it is not in renewal_schedule (its job took it out), so the scan never
 * has to rewrite certificate rows.
 */
#define CERT_STATE                                                         \
	"(CASE WHEN state = 'active' AND NOT EXISTS (SELECT 1 FROM "        \
	"renewal_schedule rs WHERE rs.renew_at = "                        \
	"managed_certificates.renew_at AND "                               \
	"rs.cert_id = managed_certificates.id) "                           \
	"THEN 'renewing' ELSE state END)"
#define CERT_COLS                                                          \
	"id, host_uuid, profile_uuid, ca_name, serial, subject, issuer, "   \
	"sha256, renewal_id, " CERT_STATE ", policy, not_valid_before, "   \
	"not_valid_after, renew_at, job_id, created_at, updated_at"
#define JOB_COLS                                                           \
	"id, host_uuid, profile_uuid, ca_name, kind, renewal_id, "         \
	"command_uuid, state, last_error, attempts, cert_id, "             \
	"next_attempt_at, created_at, updated_at"
/* A job in an open state: rj_open's WHERE, so the queries can use it. */
#define OPEN_STATES "is_open = 1"
/*
 * Due jobs of a state. With a bound `state = ?1` that can imply a partial
 * index's WHERE (rj_open's, up to schema 4), SQLite ties the plan to the
 * value and prepares the statement again at every bind (about 80 us, on
 * every dispatch round): the two states the dispatcher asks for are
 * written into their own statements; any other state uses the bound one.
 * Since schema 5 no index's WHERE reads the state; the statements stay
 * so a future one cannot bring the cost back unnoticed.
 */
#define JOBS_DUE_SQL(st)                                                   \
	"SELECT " JOB_COLS " FROM renewal_jobs WHERE state = " st " AND " \
	"next_attempt_at <= ?2 ORDER BY next_attempt_at, id LIMIT ?3"
#define JOBS_NEXT_SQL(st)                                                  \
	"SELECT MIN(next_attempt_at) FROM renewal_jobs WHERE state = " st
#define CUR_NVA                                                            \
	"FROM managed_certificates WHERE state = 'active' AND "           \
	"not_valid_after "

static const char *const sql_text[ST__COUNT] = {
	[ST_HOST_UPSERT] =
	    "INSERT INTO hosts (uuid, serial_number, first_seen, last_seen) "
	    "VALUES (?1, ?2, ?3, ?3) ON CONFLICT (uuid) DO UPDATE SET "
	    "serial_number = COALESCE(?2, serial_number), last_seen = ?3",
	[ST_HOST_GET] = "SELECT uuid, serial_number, enrollment_id, state, "
			"first_seen, last_seen FROM hosts WHERE uuid = ?1",
	[ST_PROFILE_UPSERT] =
	    "INSERT INTO profiles (uuid, identifier, name, ca_name, template, "
	    "sha256, source_path, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8) "
	    "ON CONFLICT (uuid) DO UPDATE SET identifier = ?2, name = ?3, "
	    "ca_name = ?4, template = ?5, sha256 = ?6, source_path = ?7, "
	    "updated_at = ?8 WHERE sha256 IS NOT ?6 OR source_path IS NOT ?7",
	[ST_PROFILE_GET] = "SELECT uuid, identifier, name, ca_name, sha256, "
			   "source_path, template FROM profiles WHERE uuid = ?1",
	[ST_HP_ADD] = "INSERT OR IGNORE INTO host_profiles (host_uuid, "
		      "profile_uuid) VALUES (?1, ?2)",
	[ST_CERT_INSERT] =
	    "INSERT INTO managed_certificates (host_uuid, profile_uuid, "
	    "ca_name, serial, subject, issuer, sha256, renewal_id, state, "
	    "policy, not_valid_before, not_valid_after, renew_at, job_id, "
	    "created_at, updated_at) VALUES "
	    "(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?15)",
	[ST_CERT_DUP] = "SELECT id FROM managed_certificates WHERE "
			"host_uuid = ?1 AND profile_uuid = ?2 AND ca_name = ?3 "
			"AND sha256 = ?4",
	[ST_CERT_SUPERSEDE] =
	    "UPDATE managed_certificates SET state = 'superseded', "
	    "updated_at = ?4 WHERE host_uuid = ?1 AND profile_uuid = ?2 AND "
	    "ca_name = ?3 AND state = 'active'",
	[ST_CERT_GET] = "SELECT " CERT_COLS
			" FROM managed_certificates WHERE id = ?1",
	[ST_CERT_CURRENT] = "SELECT " CERT_COLS
			    " FROM managed_certificates WHERE host_uuid = ?1 "
			    "AND profile_uuid = ?2 AND ca_name = ?3 AND "
			    "state = 'active'",
	/*
	 * A scan batch is the first `limit` rows of the due queue, up to
	 * and including the key (renew_at, cert_id) found by ST_SCAN_BOUND,
	 * handled by four set-based statements: one INSERT ... SELECT for
	 * the jobs (from the queue rows alone: each carries its
	 * certificate's triple), one for their events, one range DELETE.
	 * Per-row
	 * statements cost 3 executions per certificate, each rebuilding the
	 * CHECK constraints' IN lists.
	 */
	[ST_SCAN_BOUND] = "SELECT renew_at, cert_id FROM renewal_schedule "
			  "WHERE renew_at <= ?1 ORDER BY renew_at, cert_id "
			  "LIMIT 1 OFFSET ?2",
	[ST_SCAN_COUNT] = "SELECT COUNT(*) FROM renewal_schedule WHERE "
			  "renew_at <= ?1",
	[ST_JOB_MAXID] = "SELECT MAX(id) FROM renewal_jobs",
	[ST_SCAN_ENQUEUE] =
	    "INSERT INTO renewal_jobs (host_uuid, profile_uuid, ca_name, kind, "
	    "cert_id, state, attempts, next_attempt_at, created_at, "
	    "updated_at) SELECT host_uuid, profile_uuid, ca_name, 'renew', "
	    "cert_id, 'queued', 0, ?1, ?1, ?1 FROM renewal_schedule WHERE "
	    "(renew_at, cert_id) <= (?2, ?3) ORDER BY renew_at, cert_id "
	    "ON CONFLICT DO NOTHING",
	[ST_SCAN_EVENTS] = "INSERT INTO job_events (job_id, at, event, "
			   "detail) SELECT id, ?1, 'enqueued', 'certificate ' "
			   "|| cert_id || ' is due' FROM renewal_jobs WHERE "
			   "id > ?2 ORDER BY id",
	[ST_SCAN_DEQUEUE] = "DELETE FROM renewal_schedule WHERE "
			    "(renew_at, cert_id) <= (?1, ?2)",
	[ST_SCAN_MARK] = "DELETE FROM renewal_schedule WHERE cert_id = ?1 AND "
			 "renew_at = (SELECT renew_at FROM "
			 "managed_certificates WHERE id = ?1)",
	[ST_SCHED_INSERT] = "INSERT OR IGNORE INTO renewal_schedule "
			    "(renew_at, cert_id, host_uuid, profile_uuid, "
			    "ca_name) SELECT ?2, id, host_uuid, profile_uuid, "
			    "ca_name FROM managed_certificates WHERE id = ?1 "
			    "AND state = 'active'",
	[ST_SCHED_DROP_CURRENT] =
	    "DELETE FROM renewal_schedule WHERE (renew_at, cert_id) IN "
	    "(SELECT renew_at, id FROM managed_certificates WHERE "
	    "host_uuid = ?1 AND profile_uuid = ?2 AND ca_name = ?3 AND "
	    "state = 'active')",
	[ST_SCHED_SET] = "UPDATE renewal_schedule SET renew_at = ?2 "
			 "WHERE renew_at = ?3 AND cert_id = ?1",
	[ST_NEXT_DUE] = "SELECT MIN(renew_at) FROM renewal_schedule",
	[ST_NOTIF_FANOUT] = "SELECT id, event, key, payload, notifier, "
			    "attempts, created_at FROM notifications WHERE "
			    "notifier IS NULL AND state = 'pending' "
			    "ORDER BY id LIMIT ?1",
	[ST_NOTIF_FAN] = "INSERT INTO notifications (event, key, payload, "
			 "state, attempts, next_attempt_at, created_at, "
			 "notifier) SELECT event, key, payload, 'pending', 0, "
			 "?3, created_at, ?2 FROM notifications WHERE id = ?1",
	[ST_NOTIF_DEL] = "DELETE FROM notifications WHERE id = ?1",
	[ST_NOTIF_DUE] = "SELECT id, event, key, payload, notifier, "
			 "attempts, created_at FROM notifications WHERE "
			 "state = 'pending' AND next_attempt_at <= ?1 AND "
			 "notifier IS NOT NULL ORDER BY next_attempt_at, id "
			 "LIMIT ?2",
	[ST_NOTIF_NEXT] = "SELECT MIN(next_attempt_at) FROM notifications "
			  "WHERE state = 'pending'",
	[ST_NOTIF_LEASE] = "UPDATE notifications SET next_attempt_at = ?2 "
			   "WHERE id = ?1 AND state = 'pending'",
	[ST_NOTIF_DONE] = "UPDATE notifications SET state = 'delivered', "
			  "attempts = attempts + 1, delivered_at = ?2, "
			  "last_error = NULL WHERE id = ?1",
	[ST_NOTIF_RETRY] = "UPDATE notifications SET attempts = attempts + 1, "
			   "next_attempt_at = ?2, last_error = ?3 "
			   "WHERE id = ?1 AND state = 'pending'",
	[ST_NOTIF_GIVEUP] = "UPDATE notifications SET state = ?2, "
			    "attempts = attempts + ?4, last_error = ?3 "
			    "WHERE id = ?1",
	[ST_NOTIF_PRUNE] = "DELETE FROM notifications WHERE state <> 'pending' "
			   "AND created_at < ?1",
	[ST_ALERT_GET] = "SELECT level FROM alerts WHERE key = ?1",
	[ST_ALERT_PUT] = "INSERT INTO alerts (key, event, level, raised_at) "
			 "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (key) DO UPDATE "
			 "SET event = excluded.event, level = excluded.level, "
			 "raised_at = excluded.raised_at",
	[ST_ALERT_DEL] = "DELETE FROM alerts WHERE key = ?1",
	[ST_EXPIRY_SELECT] = "SELECT " CERT_COLS " FROM managed_certificates "
			     "WHERE state = 'active' AND not_valid_after < ?1 "
			     "AND NOT EXISTS (SELECT 1 FROM hosts h WHERE "
			     "h.uuid = host_uuid AND h.state = 'retired') "
			     "AND (not_valid_after > ?2 OR (not_valid_after "
			     "= ?2 AND id > ?3)) ORDER BY not_valid_after, id "
			     "LIMIT ?4",
	[ST_NOTIF_ADD] = "INSERT INTO notifications (event, key, payload, "
			 "state, attempts, next_attempt_at, created_at) "
			 "VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4)",
	[ST_TOKEN_CONSUME] = "UPDATE scep_tokens SET consumed_at = ?2 WHERE "
			     "token_hash = ?1 AND consumed_at IS NULL",
	[ST_HP_HAS] = "SELECT 1 FROM host_profiles WHERE host_uuid = ?1 AND "
		      "profile_uuid = ?2",
	[ST_JOB_OPEN_ROW] = "SELECT " JOB_COLS " FROM renewal_jobs WHERE "
			    "host_uuid = ?1 AND profile_uuid = ?2 AND "
			    "ca_name = ?3 AND " OPEN_STATES,
	/*
	 * The SCEP proxy's checks in one read: the token's row, then for
	 * the token's own host/profile/CA the assignment, the open job
	 * (rj_open) and whether a current certificate exists (mc_current).
	 */
	[ST_PROXY_AUTH] =
	    "SELECT t.host_uuid, t.profile_uuid, t.ca_name, t.job_id, "
	    "t.expires_at, t.consumed_at, "
	    "EXISTS (SELECT 1 FROM host_profiles h WHERE "
	    "h.host_uuid = t.host_uuid AND h.profile_uuid = t.profile_uuid), "
	    "(SELECT j.id FROM renewal_jobs j WHERE j.host_uuid = t.host_uuid "
	    "AND j.profile_uuid = t.profile_uuid AND j.ca_name = t.ca_name "
	    "AND " OPEN_STATES "), " /* state: j's, t has none */
	    "EXISTS (SELECT 1 FROM managed_certificates m WHERE "
	    "m.host_uuid = t.host_uuid AND m.profile_uuid = t.profile_uuid "
	    "AND m.ca_name = t.ca_name AND m.state = 'active') "
	    "FROM scep_tokens t WHERE t.token_hash = ?1",
	[ST_JOB_INSERT] =
	    "INSERT INTO renewal_jobs (host_uuid, profile_uuid, ca_name, kind, "
	    "cert_id, state, attempts, next_attempt_at, created_at, "
	    "updated_at) VALUES (?1,?2,?3,?4,?5,'queued',0,?6,?6,?6) "
	    "ON CONFLICT DO NOTHING",
	[ST_JOB_OPEN] = "SELECT id FROM renewal_jobs WHERE host_uuid = ?1 AND "
			"profile_uuid = ?2 AND ca_name = ?3 AND "
			OPEN_STATES,
	[ST_JOB_GET] = "SELECT " JOB_COLS " FROM renewal_jobs WHERE id = ?1",
	[ST_JOB_BY_RID] = "SELECT j.id, j.host_uuid, j.profile_uuid, "
			  "j.ca_name, j.kind, j.renewal_id, j.command_uuid, "
			  "j.state, j.last_error, j.attempts, j.cert_id, "
			  "j.next_attempt_at, j.created_at, j.updated_at "
			  "FROM job_renewal_ids r JOIN renewal_jobs j ON "
			  "j.id = r.job_id WHERE r.renewal_id = ?1",
	[ST_JOBS_DUE] = JOBS_DUE_SQL("?1"),
	[ST_JOBS_DUE_Q] = JOBS_DUE_SQL("'queued'"),
	[ST_JOBS_DUE_P] = JOBS_DUE_SQL("'pushed'"),
	[ST_JOBS_NEXT] = JOBS_NEXT_SQL("?1"),
	[ST_JOBS_NEXT_Q] = JOBS_NEXT_SQL("'queued'"),
	[ST_JOBS_NEXT_P] = JOBS_NEXT_SQL("'pushed'"),
	[ST_JOB_START] = "UPDATE renewal_jobs SET state = 'running', "
			 "attempts = attempts + 1, renewal_id = "
			 "COALESCE(renewal_id, ?2), command_uuid = NULL, "
			 "updated_at = ?3 WHERE id = ?1 AND state = 'queued'",
	[ST_RID_INSERT] = "INSERT OR IGNORE INTO job_renewal_ids (renewal_id, "
			  "job_id, created_at) VALUES (?1, ?2, ?3)",
	[ST_JOB_PUSHED] = "UPDATE renewal_jobs SET state = 'pushed', "
			  "command_uuid = ?2, next_attempt_at = ?3, "
			  "last_error = NULL, updated_at = ?4 "
			  "WHERE id = ?1 AND state = 'running'",
	[ST_JOB_RETRYWAIT] = "UPDATE renewal_jobs SET state = 'queued', "
			     "renewal_id = NULL, next_attempt_at = ?3, "
			     "last_error = ?4, updated_at = ?5 "
			     "WHERE id = ?1 AND state = ?2",
	[ST_JOB_FINAL] = "UPDATE renewal_jobs SET state = ?3, is_open = NULL, "
			 "last_error = ?4, updated_at = ?5 WHERE id = ?1 AND "
			 "state = ?2",
	[ST_CERT_REARM] = "UPDATE managed_certificates SET renew_at = ?2, "
			  "updated_at = ?3 WHERE id = ?1 AND state = 'active'",
	[ST_JOB_RETRY] = "UPDATE renewal_jobs SET state = 'queued', "
			 "is_open = 1, attempts = CASE WHEN state = 'queued' "
			 "THEN attempts ELSE 0 END, renewal_id = CASE WHEN "
			 "state = 'queued' THEN renewal_id ELSE NULL END, "
			 "next_attempt_at = ?2, "
			 "updated_at = ?2 WHERE id = ?1 AND state IN "
			 "('queued','failed','cancelled')",
	[ST_EVENT_INSERT] = "INSERT INTO job_events (job_id, at, event, "
			    "detail) VALUES (?1, ?2, ?3, ?4)",
	[ST_JOBS_RECOVER_SEL] = "SELECT id FROM renewal_jobs WHERE "
				"state = 'running'",
	[ST_JOB_RECOVER] = "UPDATE renewal_jobs SET state = 'queued', "
			   "attempts = MAX(attempts - 1, 0), "
			   "next_attempt_at = ?2, updated_at = ?2 "
			   "WHERE id = ?1 AND state = 'running'",
	[ST_EVENTS] = "SELECT id, job_id, at, event, detail FROM job_events "
		      "WHERE job_id = ?1 ORDER BY id",
	[ST_TOKEN_INSERT] = "INSERT INTO scep_tokens (token_hash, host_uuid, "
			    "profile_uuid, ca_name, job_id, created_at, "
			    "expires_at) VALUES (?1,?2,?3,?4,?5,?6,?7)",
	[ST_JOB_COUNTS] = "SELECT state, COUNT(*) FROM renewal_jobs "
			  "GROUP BY state",
	[ST_CERT_COUNTS] = "SELECT state, COUNT(*) FROM managed_certificates "
			   "GROUP BY state UNION ALL SELECT 'scheduled', "
			   "COUNT(*) FROM renewal_schedule",
	[ST_JOB_VERIFY] = "UPDATE renewal_jobs SET state = 'verified', "
			  "is_open = NULL, last_error = NULL, updated_at = ?2 "
			  "WHERE id = ?1 AND " OPEN_STATES,
	[ST_CERT_SET_RENEW_AT] = "UPDATE managed_certificates SET renew_at = "
				 "?2, policy = ?3 WHERE id = ?1",
	/*
	 * A rowid range, never the (state, ...) index: through mc_state_expiry
	 * each batch read and sorted every active row (1M certificates: a
	 * 3.5-minute start-up with the loop starved). `+state` keeps the
	 * planner on the rowid.
	 */
	[ST_REARM_SELECT] = "SELECT " CERT_COLS " FROM managed_certificates "
			    "WHERE id > ?1 AND +state = 'active' ORDER BY id "
			    "LIMIT ?2",
	[ST_JOBS_LIST] = "SELECT " JOB_COLS " FROM renewal_jobs ORDER BY id "
			 "DESC LIMIT ?1",
	[ST_HOST_ENROLL] = "UPDATE hosts SET enrollment_id = ?2, "
			   "last_seen = ?3 WHERE uuid = ?1",
	[ST_HOST_STATE] = "UPDATE hosts SET state = ?2, last_seen = ?3 "
			  "WHERE uuid = ?1",
	[ST_MDM_EVENT] = "INSERT OR IGNORE INTO mdm_events (event_id, topic, "
			 "received_at) VALUES (?1, ?2, ?3)",
	/* A command UUID is fresh per push; the newest job wins should an
	 * MDM ever reuse one. */
	[ST_JOB_BY_CMD] = "SELECT " JOB_COLS " FROM renewal_jobs WHERE "
			  "command_uuid = ?1 ORDER BY id DESC LIMIT 1",
	[ST_HOST_OPEN_JOBS] = "SELECT " JOB_COLS " FROM renewal_jobs WHERE "
			      "host_uuid = ?1 AND " OPEN_STATES
			      " ORDER BY id",
	[ST_JOB_ACK] = "UPDATE renewal_jobs SET state = 'acknowledged', "
		       "updated_at = ?2 WHERE id = ?1 AND state = 'pushed'",
	[ST_UNMATCHED_ADD] =
	    "INSERT INTO unmatched_certificates (host_uuid, sha256, subject, "
	    "serial, not_valid_after, seen_at) SELECT ?1, ?2, ?3, ?4, ?5, ?6 "
	    "WHERE NOT EXISTS (SELECT 1 FROM managed_certificates WHERE "
	    "host_uuid = ?1 AND sha256 = ?2) ON CONFLICT (host_uuid, sha256) "
	    "DO UPDATE SET seen_at = ?6",
	[ST_UNMATCHED_ALL] = "SELECT host_uuid, sha256, subject, serial, "
			     "not_valid_after, seen_at FROM "
			     "unmatched_certificates ORDER BY seen_at DESC, "
			     "host_uuid, sha256",
	[ST_UNMATCHED_HOST] = "SELECT host_uuid, sha256, subject, serial, "
			      "not_valid_after, seen_at FROM "
			      "unmatched_certificates WHERE host_uuid = ?1 "
			      "ORDER BY seen_at DESC, sha256",
	[ST_JOBS_LIST_STATE] = "SELECT " JOB_COLS " FROM renewal_jobs WHERE "
			       "state = ?2 ORDER BY id DESC LIMIT ?1",
	/*
	 * Current certificates counted in disjoint not_valid_after ranges
	 * (tag 0: expired, 1..6: up to each window, 7: beyond), each a
	 * range of the current-expiry index, plus the earliest one. At a
	 * million current certificates: 0.08 s, against 0.6 s for one pass
	 * computing a SUM per window.
	 */
	[ST_STATS_EXPIRY] =
	    "SELECT 0, COUNT(*) " CUR_NVA "< ?1 UNION ALL "
	    "SELECT 1, COUNT(*) " CUR_NVA ">= ?1 AND not_valid_after < ?2 "
	    "UNION ALL "
	    "SELECT 2, COUNT(*) " CUR_NVA ">= ?2 AND not_valid_after < ?3 "
	    "UNION ALL "
	    "SELECT 3, COUNT(*) " CUR_NVA ">= ?3 AND not_valid_after < ?4 "
	    "UNION ALL "
	    "SELECT 4, COUNT(*) " CUR_NVA ">= ?4 AND not_valid_after < ?5 "
	    "UNION ALL "
	    "SELECT 5, COUNT(*) " CUR_NVA ">= ?5 AND not_valid_after < ?6 "
	    "UNION ALL "
	    "SELECT 6, COUNT(*) " CUR_NVA ">= ?6 AND not_valid_after < ?7 "
	    "UNION ALL "
	    "SELECT 7, COUNT(*) " CUR_NVA ">= ?7 UNION ALL "
	    "SELECT 8, MIN(not_valid_after) FROM managed_certificates "
	    "WHERE state = 'active'",
	[ST_NOTIF_PENDING] = "SELECT COUNT(*) FROM notifications WHERE "
			     "state = 'pending'",
	[ST_PING] = "SELECT 1 FROM hosts LIMIT 1",
	/* An UPDATE that changes nothing writes no page; an insert and a
	 * delete in one transaction do. mdm_events is a dedup table that
	 * never sees this key from outside (event IDs come from MDMs). */
	[ST_PROBE_PUT] = "INSERT OR REPLACE INTO mdm_events (event_id, topic, "
			 "received_at) VALUES (' renewd write probe', NULL, ?1)",
	[ST_PROBE_DEL] = "DELETE FROM mdm_events WHERE event_id = "
			 "' renewd write probe'",
	[ST_SP_BEGIN] = "SAVEPOINT rn_unit",
	[ST_SP_RELEASE] = "RELEASE rn_unit",
	[ST_SP_UNDO] = "ROLLBACK TO rn_unit",
};

/* ---- plumbing --------------------------------------------------------- */

/* The statement `id` cached in `cache` for connection `db`, reset and
 * with bindings cleared. */
static sqlite3_stmt *
stmt_on(sqlite3 *db, sqlite3_stmt **cache, int id)
{
	sqlite3_stmt *st = cache[id];

	if (st == NULL) {
		if (sqlite3_prepare_v3(db, sql_text[id], -1,
				       SQLITE_PREPARE_PERSISTENT, &st,
				       NULL) != SQLITE_OK) {
			log_errorx("cannot prepare statement %d: %s", id,
				   sqlite3_errmsg(db));
			return NULL;
		}
		cache[id] = st;
	}
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

static sqlite3_stmt *
stmt(store *s, int id)
{
	return stmt_on(s->db, s->st, id);
}

/* Map an SQLite result code of connection `db` to ours, logging
 * unexpected ones. */
static int
db_err(sqlite3 *db, int rc)
{
	switch (rc) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return RN_OK;
	case SQLITE_FULL:
		log_errorx("database is full: %s", sqlite3_errmsg(db));
		return RN_EFULL;
	case SQLITE_IOERR:
		/* e.g. the -shm file could not grow: the disk is full too */
		if (sqlite3_system_errno(db) == ENOSPC) {
			log_errorx("database is full: %s: %s",
				   sqlite3_errmsg(db), strerror(ENOSPC));
			return RN_EFULL;
		}
		log_errorx("database error: %s", sqlite3_errmsg(db));
		return RN_ESTORE;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return RN_EBUSY;
	case SQLITE_CONSTRAINT:
		return RN_EEXIST;
	default:
		log_errorx("database error: %s", sqlite3_errmsg(db));
		return RN_ESTORE;
	}
}

static int
sqerr(store *s, int rc)
{
	return db_err(s->db, rc);
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

static void
bind_id(sqlite3_stmt *st, int i, int64_t v)
{
	if (v)
		sqlite3_bind_int64(st, i, v);
	else
		sqlite3_bind_null(st, i);
}

static char *
col_text(sqlite3_stmt *st, int i)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	return t ? strdup((const char *)t) : NULL;
}

/* Run a statement that returns no rows; *changes gets the row count. */
static int
exec_stmt(store *s, sqlite3_stmt *st, int *changes)
{
	int rc = sqlite3_step(st);

	if (changes)
		*changes = sqlite3_changes(s->db);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		return sqerr(s, rc);
	return RN_OK;
}

static int
exec_sql(store *s, const char *sql)
{
	char *msg = NULL;
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		if (rc != SQLITE_BUSY && rc != SQLITE_FULL)
			log_errorx("database error: %s", msg ? msg : "?");
		sqlite3_free(msg);
		return sqerr(s, rc);
	}
	return RN_OK;
}

int
store_begin(store *s)
{
	return exec_sql(s, "BEGIN IMMEDIATE");
}

int
store_commit(store *s)
{
	return exec_sql(s, "COMMIT");
}

void
store_rollback(store *s)
{
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

int
store_in_tx(store *s)
{
	return !sqlite3_get_autocommit(s->db);
}

int
store_unit_begin(store *s)
{
	sqlite3_stmt *st = stmt(s, ST_SP_BEGIN);

	return st ? exec_stmt(s, st, NULL) : RN_ESTORE;
}

int
store_unit_end(store *s, int rc)
{
	sqlite3_stmt *st;

	/* SQLite may have rolled the whole transaction back (a full disk,
	 * an I/O error): then there is no savepoint left to end */
	if (!store_in_tx(s))
		return rc ? rc : RN_ESTORE;
	if (rc) {
		st = stmt(s, ST_SP_UNDO);
		if (st == NULL || exec_stmt(s, st, NULL) != RN_OK)
			return rc;
	}
	st = stmt(s, ST_SP_RELEASE);
	if (st == NULL)
		return rc ? rc : RN_ESTORE;
	if (exec_stmt(s, st, NULL) != RN_OK && rc == RN_OK)
		return RN_ESTORE;
	return rc;
}

const char *
store_errmsg(store *s)
{
	return sqlite3_errmsg(s->db);
}

void
store_cert_release(store_cert *c)
{
	if (c == NULL)
		return;
	free(c->host_uuid);
	free(c->profile_uuid);
	free(c->ca_name);
	free(c->serial);
	free(c->subject);
	free(c->issuer);
	free(c->sha256);
	free(c->renewal_id);
	free(c->state);
	free(c->policy);
	memset(c, 0, sizeof(*c));
}

void
store_job_release(store_job *j)
{
	if (j == NULL)
		return;
	free(j->host_uuid);
	free(j->profile_uuid);
	free(j->ca_name);
	free(j->kind);
	free(j->renewal_id);
	free(j->command_uuid);
	free(j->state);
	free(j->last_error);
	memset(j, 0, sizeof(*j));
}

void
store_host_release(store_host *h)
{
	if (h == NULL)
		return;
	free(h->uuid);
	free(h->serial_number);
	free(h->enrollment_id);
	free(h->state);
	memset(h, 0, sizeof(*h));
}

void
store_profile_release(store_profile *p)
{
	if (p == NULL)
		return;
	free(p->uuid);
	free(p->identifier);
	free(p->name);
	free(p->ca_name);
	free(p->sha256);
	free(p->source_path);
	free(p->template);
	memset(p, 0, sizeof(*p));
}

static void
read_cert(sqlite3_stmt *st, store_cert *c)
{
	c->id = sqlite3_column_int64(st, 0);
	c->host_uuid = col_text(st, 1);
	c->profile_uuid = col_text(st, 2);
	c->ca_name = col_text(st, 3);
	c->serial = col_text(st, 4);
	c->subject = col_text(st, 5);
	c->issuer = col_text(st, 6);
	c->sha256 = col_text(st, 7);
	c->renewal_id = col_text(st, 8);
	c->state = col_text(st, 9);
	c->policy = col_text(st, 10);
	c->not_valid_before = sqlite3_column_int64(st, 11);
	c->not_valid_after = sqlite3_column_int64(st, 12);
	c->renew_at = sqlite3_column_int64(st, 13);
	c->job_id = sqlite3_column_int64(st, 14);
	c->created_at = sqlite3_column_int64(st, 15);
	c->updated_at = sqlite3_column_int64(st, 16);
}

static void
read_job(sqlite3_stmt *st, store_job *j)
{
	j->id = sqlite3_column_int64(st, 0);
	j->host_uuid = col_text(st, 1);
	j->profile_uuid = col_text(st, 2);
	j->ca_name = col_text(st, 3);
	j->kind = col_text(st, 4);
	j->renewal_id = col_text(st, 5);
	j->command_uuid = col_text(st, 6);
	j->state = col_text(st, 7);
	j->last_error = col_text(st, 8);
	j->attempts = sqlite3_column_int(st, 9);
	j->cert_id = sqlite3_column_int64(st, 10);
	j->next_attempt_at = sqlite3_column_int64(st, 11);
	j->created_at = sqlite3_column_int64(st, 12);
	j->updated_at = sqlite3_column_int64(st, 13);
}

/* Step a one-row query into a job; RN_ENOTFOUND without a row. */
static int
one_job(store *s, sqlite3_stmt *st, store_job *out)
{
	int rc = sqlite3_step(st);

	memset(out, 0, sizeof(*out));
	if (rc == SQLITE_ROW) {
		read_job(st, out);
		sqlite3_reset(st);
		return RN_OK;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

static int
one_cert(store *s, sqlite3_stmt *st, store_cert *out)
{
	int rc = sqlite3_step(st);

	memset(out, 0, sizeof(*out));
	if (rc == SQLITE_ROW) {
		read_cert(st, out);
		sqlite3_reset(st);
		return RN_OK;
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

/* ---- open and migrate ------------------------------------------------- */

int
store_schema_version(store *s)
{
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) !=
	    SQLITE_OK)
		return -1;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return v;
}

/* Text of one row of sqlite_schema, or NULL. */
static char *
schema_sql(store *s, const char *table)
{
	sqlite3_stmt *st;
	char *sql = NULL;

	if (sqlite3_prepare_v2(s->db, "SELECT sql FROM sqlite_schema WHERE "
			       "type = 'table' AND name = ?1", -1, &st,
			       NULL) != SQLITE_OK)
		return NULL;
	bind_text(st, 1, table);
	if (sqlite3_step(st) == SQLITE_ROW)
		sql = col_text(st, 0);
	sqlite3_finalize(st);
	return sql;
}

/*
 * The CHECK rewrites of migration `n` (schema.h): edit the CREATE TABLE
 * text in sqlite_schema and bump schema_version so every connection
 * re-reads it, inside the migration's transaction. Changes no row.
 */
static int
rewrite_checks(store *s, int n, char **errmsg)
{
	const size_t count = sizeof(schema_rewrites) / sizeof(schema_rewrites[0]);
	sqlite3_stmt *st = NULL;
	char *sql = NULL, *at, *next = NULL, pragma[64];
	int rc = RN_OK, ver = -1;
	size_t i;

	for (i = 0; i < count && rc == RN_OK; i++) {
		const struct schema_rewrite *w = &schema_rewrites[i];
		if (w->migration != n)
			continue;
		sql = schema_sql(s, w->table);
		at = sql ? strstr(sql, w->from) : NULL;
		if (at == NULL || strstr(at + 1, w->from) != NULL) {
			*errmsg = rn_asprintf("table %s does not have the "
					      "constraint %s once", w->table,
					      w->from);
			free(sql);
			return RN_ESTORE;
		}
		next = rn_asprintf("%.*s%s%s", (int)(at - sql), sql, w->to,
				   at + strlen(w->from));
		free(sql);
		if (next == NULL)
			return RN_ENOMEM;
		rc = exec_sql(s, "PRAGMA writable_schema = ON");
		if (rc == RN_OK &&
		    sqlite3_prepare_v2(s->db, "UPDATE sqlite_schema SET sql = "
				       "?1 WHERE type = 'table' AND name = ?2",
				       -1, &st, NULL) != SQLITE_OK)
			rc = RN_ESTORE;
		if (rc == RN_OK) {
			bind_text(st, 1, next);
			bind_text(st, 2, w->table);
			rc = sqlite3_step(st) == SQLITE_DONE ? RN_OK
							     : RN_ESTORE;
		}
		sqlite3_finalize(st);
		st = NULL;
		free(next);
		if (exec_sql(s, "PRAGMA writable_schema = OFF") && rc == RN_OK)
			rc = RN_ESTORE;
		if (rc == RN_OK) {
			if (sqlite3_prepare_v2(s->db, "PRAGMA schema_version",
					       -1, &st, NULL) == SQLITE_OK &&
			    sqlite3_step(st) == SQLITE_ROW)
				ver = sqlite3_column_int(st, 0);
			sqlite3_finalize(st);
			st = NULL;
			snprintf(pragma, sizeof(pragma),
				 "PRAGMA schema_version = %d", ver + 1);
			rc = ver < 0 ? RN_ESTORE : exec_sql(s, pragma);
		}
	}
	if (rc && *errmsg == NULL)
		*errmsg = rn_asprintf("cannot rewrite a constraint: %s",
				      sqlite3_errmsg(s->db));
	return rc;
}

/* Apply the migrations after the stored version, each in its own
 * transaction together with its user_version bump. */
static int
migrate(store *s, char **errmsg)
{
	int v = store_schema_version(s), n, rc;
	const int last = (int)(sizeof(store_migrations) /
			       sizeof(store_migrations[0]));
	char pragma[64];

	if (v < 0) {
		*errmsg = rn_asprintf("cannot read schema version: %s",
				      sqlite3_errmsg(s->db));
		return RN_ESTORE;
	}
	if (v > last) {
		*errmsg = rn_asprintf("database schema version %d is newer than "
				      "this renewd (%d)", v, last);
		return RN_ESTORE;
	}
	for (n = v; n < last; n++) {
		rc = store_begin(s);
		if (rc == RN_OK)
			rc = exec_sql(s, store_migrations[n]);
		if (rc == RN_OK)
			rc = rewrite_checks(s, n + 1, errmsg);
		snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d",
			 n + 1);
		if (rc == RN_OK)
			rc = exec_sql(s, pragma);
		if (rc == RN_OK)
			rc = store_commit(s);
		if (rc) {
			char *why = *errmsg;
			*errmsg = rn_asprintf("migration %d failed: %s", n + 1,
					      why ? why : sqlite3_errmsg(s->db));
			free(why);
			store_rollback(s);
			return rc;
		}
		if (v > 0) /* an existing database was upgraded */
			log_info("database migrated to schema version %d",
				 n + 1);
	}
	return RN_OK;
}

/*
 * Before SQLite's first use: no memory statistics. renewd never reads
 * them, and keeping them takes a process-wide mutex on every allocation
 * SQLite makes, about 160 lock/unlock pairs per renewal.
 */
static pthread_once_t sqlite_once = PTHREAD_ONCE_INIT;

static void
sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
store_open(const char *path, int readonly, store **out, char **errmsg)
{
	store *s;
	int flags, rc;

	*out = NULL;
	*errmsg = NULL;
	pthread_once(&sqlite_once, sqlite_setup);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return RN_ENOMEM;
	s->readonly = readonly;
	flags = readonly ? SQLITE_OPEN_READONLY
			 : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE;
	flags |= SQLITE_OPEN_NOMUTEX;
	rc = sqlite3_open_v2(path, &s->db, flags, NULL);
	if (rc != SQLITE_OK) {
		*errmsg = rn_asprintf("cannot open database '%s': %s", path,
				      s->db ? sqlite3_errmsg(s->db)
					    : "out of memory");
		store_close(s);
		return RN_ESTORE;
	}
	sqlite3_busy_timeout(s->db, 5000);
	sqlite3_extended_result_codes(s->db, 0);
	if (!readonly) {
		rc = exec_sql(s, "PRAGMA journal_mode = WAL");
		if (rc == RN_OK)
			rc = exec_sql(s, "PRAGMA synchronous = NORMAL");
		/* 16 MiB of page cache instead of SQLite's 2 MiB: a renewal
		 * reads its host, job and index pages at random places, and
		 * at 100,000 jobs 2 MiB missed often enough that the loop
		 * spent 5% of its time in pread; with 16 MiB it took 107-115
		 * us of CPU per renewal against 117-122 in three A/B pairs */
		if (rc == RN_OK)
			rc = exec_sql(s, "PRAGMA cache_size = -16384");
		/* savepoints' journals in memory: past 64 KiB SQLite moved
		 * one to a temp file, opened per transaction, and each page a
		 * savepoint changed then cost a pwrite (the scan connection
		 * does the same, in store_scan_due) */
		if (rc == RN_OK)
			rc = exec_sql(s, "PRAGMA temp_store = MEMORY");
		if (rc == RN_OK)
			rc = exec_sql(s, "PRAGMA journal_size_limit = "
					 WAL_SIZE_LIMIT);
	}
	if (rc == RN_OK)
		rc = exec_sql(s, "PRAGMA foreign_keys = ON");
	if (rc) {
		*errmsg = rn_asprintf("cannot set up database '%s': %s", path,
				      sqlite3_errmsg(s->db));
		store_close(s);
		return rc;
	}
	if (readonly) {
		int v = store_schema_version(s);
		if (v != STORE_SCHEMA_VERSION) {
			*errmsg = rn_asprintf(
			    v <= 0 ? "database '%s' is not initialised (start "
				     "renewd once)"
				   : "database '%s' has schema version %d, "
				     "this renewctl expects %d",
			    path, v, STORE_SCHEMA_VERSION);
			store_close(s);
			return RN_ESTORE;
		}
	} else {
		char *m = NULL;
		rc = migrate(s, &m);
		if (rc) {
			*errmsg = rn_asprintf("database '%s': %s", path,
					      m ? m : "migration failed");
			free(m);
			store_close(s);
			return rc;
		}
	}
	*out = s;
	return RN_OK;
}

/* ---- background checkpoints ------------------------------------------- */

/*
 * SQLite's automatic checkpoint runs inside the commit that crosses 1000
 * WAL frames, on the committing thread: for the daemon that is the loop,
 * stalled for the copy and the fsync (measured up to 0.5 s inside a scan
 * batch on a busy disk). With store_checkpoint_start the commit only wakes
 * a thread that checkpoints (PASSIVE: it never blocks the writer) on a
 * connection of its own: at once every CKPT_WAKE_FRAMES new frames, and
 * CKPT_SETTLE_MS after the first commit that finds it idle with at least
 * CKPT_SETTLE_FRAMES in the WAL, so the frames of the last commits before
 * a pause are backfilled too. SQLite restarts
 * the WAL from its start only when a write begins with every frame
 * backfilled; a WAL the thread keeps backfilled stays short, and the
 * commit that lets the WAL reach CKPT_INLINE_FRAMES (the thread cannot
 * finish while commits keep coming) checkpoints inline as before, so the
 * WAL stays bounded.
 */
static int
on_wal_commit(void *arg, sqlite3 *db, const char *name, int frames)
{
	store *s = arg;
	int wake = 0;

	if (frames < s->ckpt_frames)
		s->ckpt_frames = 0; /* the WAL was reset */
	if (frames >= CKPT_INLINE_FRAMES) {
		sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE,
					  NULL, NULL);
		s->ckpt_frames = frames;
	} else if (frames - s->ckpt_frames >= CKPT_WAKE_FRAMES) {
		/* once per CKPT_WAKE_FRAMES new frames, not every commit */
		s->ckpt_frames = frames;
		wake = 1;
	}
	pthread_mutex_lock(&s->ckpt_mu);
	s->ckpt_gen++;
	if (wake)
		s->ckpt_want = 1;
	if (wake || (s->ckpt_idle && frames >= CKPT_SETTLE_FRAMES)) {
		s->ckpt_idle = 0;
		pthread_cond_signal(&s->ckpt_cv);
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return SQLITE_OK;
}

/* Wait on ckpt_cv until woken for CKPT_WAKE_FRAMES, stopped, or `ms`
 * passed; with ckpt_mu held. */
static void
ckpt_wait(store *s, int ms)
{
	struct timespec until;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	while (!s->ckpt_want && !s->ckpt_stop)
		if (pthread_cond_timedwait(&s->ckpt_cv, &s->ckpt_mu,
					   &until) == ETIMEDOUT)
			break;
}

/*
 * The checkpoint thread. It sleeps only once a checkpoint reached the
 * WAL's end and no commit came after the one it saw; otherwise it checks
 * again after CKPT_SETTLE_MS, so it catches up once the writes pause
 * instead of leaving the frames since its last wake in the WAL.
 */
static void *
ckpt_main(void *arg)
{
	store *s = arg;
	uint64_t gen, done = 0;
	int behind = 0, delay = CKPT_SETTLE_MS, log, ckpt, last_ckpt = -1;
	int rc;

	pthread_setname_np(pthread_self(), "renewd-ckpt");
	pthread_mutex_lock(&s->ckpt_mu);
	for (;;) {
		if (!s->ckpt_want && !s->ckpt_stop) {
			if (!behind && s->ckpt_gen == done) {
				s->ckpt_idle = 1;
				while (s->ckpt_idle && !s->ckpt_want &&
				       !s->ckpt_stop)
					pthread_cond_wait(&s->ckpt_cv,
							  &s->ckpt_mu);
				s->ckpt_idle = 0;
				delay = CKPT_SETTLE_MS;
				continue;
			}
			ckpt_wait(s, delay);
		}
		if (s->ckpt_stop)
			break;
		if (s->ckpt_want)
			delay = CKPT_SETTLE_MS;
		s->ckpt_want = 0;
		gen = s->ckpt_gen;
		pthread_mutex_unlock(&s->ckpt_mu);
		/* SQLITE_BUSY (another checkpoint runs): try again later */
		log = ckpt = -1;
		rc = sqlite3_wal_checkpoint_v2(s->ckpt_db, NULL,
					       SQLITE_CHECKPOINT_PASSIVE, &log,
					       &ckpt);
		pthread_mutex_lock(&s->ckpt_mu);
		done = gen;
		behind = rc != SQLITE_OK || ckpt < log;
		/* no progress: back off (a reader holds the frames, or the
		 * disk is full) */
		if (behind && (rc != SQLITE_OK || ckpt == last_ckpt))
			delay = delay * 2 > CKPT_RETRY_MAX_MS ? CKPT_RETRY_MAX_MS
							      : delay * 2;
		else
			delay = CKPT_SETTLE_MS;
		last_ckpt = ckpt;
	}
	pthread_mutex_unlock(&s->ckpt_mu);
	return NULL;
}

int
store_checkpoint_start(store *s, const char *path)
{
	pthread_condattr_t ca;
	int rc;

	if (s->readonly || s->ckpt_on)
		return RN_EINVAL;
	rc = sqlite3_open_v2(path, &s->ckpt_db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		log_errorx("cannot open database '%s' for checkpoints: %s",
			   path, s->ckpt_db ? sqlite3_errmsg(s->ckpt_db)
					    : "out of memory");
		sqlite3_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return RN_ESTORE;
	}
	sqlite3_busy_timeout(s->ckpt_db, 1000);
	/* SQLite 3.40 checkpoints nothing on a connection that has not read
	 * the database yet (its pager has no WAL open): read once. */
	rc = sqlite3_exec(s->ckpt_db, "SELECT 1 FROM sqlite_master LIMIT 1",
			  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_errorx("cannot read database '%s' for checkpoints: %s",
			   path, sqlite3_errmsg(s->ckpt_db));
		sqlite3_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return RN_ESTORE;
	}
	pthread_mutex_init(&s->ckpt_mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->ckpt_cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&s->ckpt_thread, NULL, ckpt_main, s) != 0) {
		pthread_cond_destroy(&s->ckpt_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		sqlite3_close(s->ckpt_db);
		s->ckpt_db = NULL;
		return RN_ENOMEM;
	}
	s->ckpt_on = 1;
	/* replaces SQLite's own auto-checkpoint on these connections */
	sqlite3_wal_hook(s->db, on_wal_commit, s);
	if (s->scan_db)
		sqlite3_wal_hook(s->scan_db, on_wal_commit, s);
	return RN_OK;
}

void
store_close(store *s)
{
	int i;

	if (s == NULL)
		return;
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->scan_st[i]);
	sqlite3_close(s->scan_db);
	if (s->ckpt_on) {
		sqlite3_wal_hook(s->db, NULL, NULL);
		pthread_mutex_lock(&s->ckpt_mu);
		s->ckpt_stop = 1;
		pthread_cond_signal(&s->ckpt_cv);
		pthread_mutex_unlock(&s->ckpt_mu);
		pthread_join(s->ckpt_thread, NULL);
		pthread_cond_destroy(&s->ckpt_cv);
		pthread_mutex_destroy(&s->ckpt_mu);
		sqlite3_close(s->ckpt_db);
	}
	for (i = 0; i < ST__COUNT; i++)
		sqlite3_finalize(s->st[i]);
	sqlite3_close(s->db);
	free(s);
}

/* ---- hosts and profiles ----------------------------------------------- */

int
store_host_upsert(store *s, const char *uuid, const char *serial,
		  int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_UPSERT);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, uuid);
	bind_text(st, 2, serial);
	sqlite3_bind_int64(st, 3, now);
	return exec_stmt(s, st, NULL);
}

int
store_host_get(store *s, const char *uuid, store_host *out)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_GET);
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, uuid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->uuid = col_text(st, 0);
		out->serial_number = col_text(st, 1);
		out->enrollment_id = col_text(st, 2);
		out->state = col_text(st, 3);
		out->first_seen = sqlite3_column_int64(st, 4);
		out->last_seen = sqlite3_column_int64(st, 5);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return RN_OK;
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

int
store_profile_upsert(store *s, const store_profile *p, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_PROFILE_UPSERT);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, p->uuid);
	bind_text(st, 2, p->identifier);
	bind_text(st, 3, p->name);
	bind_text(st, 4, p->ca_name);
	sqlite3_bind_blob(st, 5, p->template ? p->template : "",
			  (int)p->template_len, SQLITE_TRANSIENT);
	bind_text(st, 6, p->sha256);
	bind_text(st, 7, p->source_path);
	sqlite3_bind_int64(st, 8, now);
	return exec_stmt(s, st, NULL);
}

int
store_profile_get(store *s, const char *uuid, store_profile *out)
{
	sqlite3_stmt *st = stmt(s, ST_PROFILE_GET);
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, uuid);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		out->uuid = col_text(st, 0);
		out->identifier = col_text(st, 1);
		out->name = col_text(st, 2);
		out->ca_name = col_text(st, 3);
		out->sha256 = col_text(st, 4);
		out->source_path = col_text(st, 5);
		out->template_len = (size_t)sqlite3_column_bytes(st, 6);
		out->template = rn_strndup(sqlite3_column_blob(st, 6)
					       ? sqlite3_column_blob(st, 6)
					       : "",
					   out->template_len);
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return RN_OK;
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

int
store_host_profile_add(store *s, const char *host, const char *profile)
{
	sqlite3_stmt *st = stmt(s, ST_HP_ADD);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	bind_text(st, 2, profile);
	return exec_stmt(s, st, NULL);
}

int
store_host_set_enrollment(store *s, const char *uuid,
			  const char *enrollment_id, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_ENROLL);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, uuid);
	bind_text(st, 2, enrollment_id);
	sqlite3_bind_int64(st, 3, now);
	return exec_stmt(s, st, NULL);
}

int
store_host_set_state(store *s, const char *uuid, const char *state,
		     int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_STATE);
	int rc, changes = 0;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, uuid);
	bind_text(st, 2, state);
	sqlite3_bind_int64(st, 3, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_ENOTFOUND;
	return rc;
}

/* ---- MDM webhook events ----------------------------------------------- */

int
store_mdm_event_record(store *s, const char *event_id, const char *topic,
		       int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_MDM_EVENT);
	int rc, changes = 0;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, event_id);
	bind_text(st, 2, topic);
	sqlite3_bind_int64(st, 3, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EEXIST;
	return rc;
}

int
store_unmatched_add(store *s, const char *host, const store_cert *c,
		    int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_UNMATCHED_ADD);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	bind_text(st, 2, c->sha256);
	bind_text(st, 3, c->subject);
	bind_text(st, 4, c->serial);
	sqlite3_bind_int64(st, 5, c->not_valid_after);
	sqlite3_bind_int64(st, 6, now);
	return exec_stmt(s, st, NULL);
}

int
store_unmatched_each(store *s, const char *host, store_unmatched_cb cb,
		     void *arg)
{
	sqlite3_stmt *st = stmt(s, host ? ST_UNMATCHED_HOST
					: ST_UNMATCHED_ALL);
	store_unmatched u;
	int rc, ret = 0;

	if (st == NULL)
		return RN_ESTORE;
	if (host)
		bind_text(st, 1, host);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		u.host_uuid = (const char *)sqlite3_column_text(st, 0);
		u.sha256 = (const char *)sqlite3_column_text(st, 1);
		u.subject = (const char *)sqlite3_column_text(st, 2);
		u.serial = (const char *)sqlite3_column_text(st, 3);
		u.not_valid_after = sqlite3_column_int64(st, 4);
		u.seen_at = sqlite3_column_int64(st, 5);
		ret = cb(arg, &u);
		if (ret)
			break;
	}
	sqlite3_reset(st);
	if (ret)
		return ret;
	return rc == SQLITE_DONE ? RN_OK : sqerr(s, rc);
}

/* ---- events ----------------------------------------------------------- */

static int
event_insert(store *s, int64_t job, const char *event, const char *detail,
	     int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_EVENT_INSERT);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, job);
	sqlite3_bind_int64(st, 2, now);
	bind_text(st, 3, event);
	bind_text(st, 4, detail);
	return exec_stmt(s, st, NULL);
}

/*
 * Transaction helpers: a function that changes state opens a transaction
 * unless the caller already has one, so callers can batch.
 */
static int
tx_begin(store *s, int *own)
{
	*own = sqlite3_get_autocommit(s->db);
	return *own ? store_begin(s) : RN_OK;
}

static int
tx_end(store *s, int own, int rc)
{
	if (!own)
		return rc;
	if (rc == RN_OK) {
		rc = store_commit(s);
		if (rc == RN_OK)
			return RN_OK;
	}
	store_rollback(s);
	return rc;
}

int
store_tx_begin(store *s, int *own)
{
	return tx_begin(s, own);
}

int
store_tx_end(store *s, int own, int rc)
{
	return tx_end(s, own, rc);
}

int
store_job_event(store *s, int64_t id, const char *event, const char *detail,
		int64_t now)
{
	int own, rc = tx_begin(s, &own);

	if (rc)
		return rc;
	rc = event_insert(s, id, event, detail, now);
	return tx_end(s, own, rc);
}

/* ---- certificates ----------------------------------------------------- */

/* Put a current certificate into the due queue at renew_at. */
static int
schedule(store *s, int64_t cert_id, int64_t renew_at)
{
	sqlite3_stmt *st = stmt(s, ST_SCHED_INSERT);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, cert_id);
	sqlite3_bind_int64(st, 2, renew_at);
	return exec_stmt(s, st, NULL);
}

int
store_cert_install(store *s, store_cert *c, int64_t job_id, int64_t now,
		   int *dup)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	*dup = 0;
	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_CERT_DUP);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	bind_text(st, 1, c->host_uuid);
	bind_text(st, 2, c->profile_uuid);
	bind_text(st, 3, c->ca_name);
	bind_text(st, 4, c->sha256);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->id = sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		*dup = 1;
		rc = RN_OK;
		goto out;
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		rc = sqerr(s, rc);
		goto out;
	}
	st = stmt(s, ST_SCHED_DROP_CURRENT);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	bind_text(st, 1, c->host_uuid);
	bind_text(st, 2, c->profile_uuid);
	bind_text(st, 3, c->ca_name);
	rc = exec_stmt(s, st, NULL);
	if (rc)
		goto out;
	st = stmt(s, ST_CERT_SUPERSEDE);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	bind_text(st, 1, c->host_uuid);
	bind_text(st, 2, c->profile_uuid);
	bind_text(st, 3, c->ca_name);
	sqlite3_bind_int64(st, 4, now);
	rc = exec_stmt(s, st, NULL);
	if (rc)
		goto out;
	if (job_id) {
		st = stmt(s, ST_JOB_VERIFY);
		if (st == NULL) {
			rc = RN_ESTORE;
			goto out;
		}
		sqlite3_bind_int64(st, 1, job_id);
		sqlite3_bind_int64(st, 2, now);
		rc = exec_stmt(s, st, &changes);
		if (rc)
			goto out;
		if (changes == 0)
			job_id = 0; /* not open any more: just install */
	}
	st = stmt(s, ST_CERT_INSERT);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	bind_text(st, 1, c->host_uuid);
	bind_text(st, 2, c->profile_uuid);
	bind_text(st, 3, c->ca_name);
	bind_text(st, 4, c->serial);
	bind_text(st, 5, c->subject);
	bind_text(st, 6, c->issuer);
	bind_text(st, 7, c->sha256);
	bind_text(st, 8, c->renewal_id);
	bind_text(st, 9, "active");
	bind_text(st, 10, c->policy);
	sqlite3_bind_int64(st, 11, c->not_valid_before);
	sqlite3_bind_int64(st, 12, c->not_valid_after);
	sqlite3_bind_int64(st, 13, c->renew_at);
	bind_id(st, 14, job_id);
	sqlite3_bind_int64(st, 15, now);
	rc = exec_stmt(s, st, NULL);
	if (rc)
		goto out;
	c->id = sqlite3_last_insert_rowid(s->db);
	c->job_id = job_id;
	rc = schedule(s, c->id, c->renew_at);
	if (rc)
		goto out;
	if (job_id) {
		char *d = rn_asprintf("certificate %lld serial %s sha256 %s",
				      (long long)c->id, c->serial, c->sha256);
		rc = event_insert(s, job_id, "verified", d, now);
		free(d);
	}
out:
	return tx_end(s, own, rc);
}

int
store_cert_get(store *s, int64_t id, store_cert *out)
{
	sqlite3_stmt *st = stmt(s, ST_CERT_GET);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	return one_cert(s, st, out);
}

int
store_cert_current(store *s, const char *host, const char *profile,
		   const char *ca, store_cert *out)
{
	sqlite3_stmt *st = stmt(s, ST_CERT_CURRENT);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	bind_text(st, 2, profile);
	bind_text(st, 3, ca);
	return one_cert(s, st, out);
}

/*
 * Listings are ad-hoc filters an operator types; the statement is built
 * from fixed fragments only (never from input) and every value is bound.
 */
int
store_certs_each(store *s, const store_cert_filter *f, store_cert_cb cb,
		 void *arg)
{
	rn_buf sql = RN_BUF_INIT;
	sqlite3_stmt *st = NULL;
	const char *order = " ORDER BY id";
	int rc, n = 1;

	rn_buf_adds(&sql, "SELECT " CERT_COLS
			  " FROM managed_certificates WHERE 1");
	if (f->host_uuid)
		rn_buf_adds(&sql, " AND host_uuid = ?1");
	if (f->state)
		rn_buf_adds(&sql, " AND " CERT_STATE " = ?2");
	if (f->expiring_before) {
		rn_buf_adds(&sql, " AND not_valid_after < ?3");
		order = " ORDER BY not_valid_after";
	}
	/*
	 * The next two read a range of the due queue, or the open jobs,
	 * instead of every certificate (1,000,000 certificates: 0.8 s and
	 * 5.1 s as a scan of the table). A queued row's renew_at is its
	 * certificate's; CROSS JOIN keeps the open jobs as the outer loop
	 * (SQLite otherwise walks every active certificate).
	 */
	if (f->renew_before) {
		rn_buf_adds(&sql, " AND renew_at <= ?4 AND id IN (SELECT "
				  "cert_id FROM renewal_schedule WHERE "
				  "renew_at <= ?4)");
		order = " ORDER BY renew_at";
	}
	if (f->open_job)
		rn_buf_adds(&sql, " AND id IN (SELECT c.id FROM renewal_jobs j "
				  "CROSS JOIN managed_certificates c ON "
				  "c.host_uuid = j.host_uuid AND c.profile_uuid "
				  "= j.profile_uuid AND c.ca_name = j.ca_name "
				  "AND c.state = 'active' WHERE j." OPEN_STATES
				  ")");
	rn_buf_adds(&sql, order);
	if (f->limit)
		rn_buf_adds(&sql, " LIMIT ?5");
	rc = sqlite3_prepare_v2(s->db, sql.data, -1, &st, NULL);
	rn_buf_release(&sql);
	if (rc != SQLITE_OK)
		return sqerr(s, rc);
	bind_text(st, 1, f->host_uuid);
	bind_text(st, 2, f->state);
	sqlite3_bind_int64(st, 3, f->expiring_before);
	sqlite3_bind_int64(st, 4, f->renew_before);
	sqlite3_bind_int64(st, 5, f->limit);
	rc = RN_OK;
	while ((n = sqlite3_step(st)) == SQLITE_ROW) {
		store_cert c;
		memset(&c, 0, sizeof(c));
		read_cert(st, &c);
		rc = cb(arg, &c);
		store_cert_release(&c);
		if (rc)
			break;
	}
	if (rc == RN_OK && n != SQLITE_DONE)
		rc = sqerr(s, n);
	sqlite3_finalize(st);
	return rc;
}

/*
 * A current certificate out of the due queue must have an open job for
 * its triple, which renews it. One without (a database written before
 * rearm_cert looked at the triple's current certificate, or edited by
 * hand) would never renew: the pass over every certificate after a start
 * or reload queues it again at its renew_at, and says so.
 */
static int
requeue_orphan(store *s, store_cert *c)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_OPEN);
	char id[24];
	int rc;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, c->host_uuid);
	bind_text(st, 2, c->profile_uuid);
	bind_text(st, 3, c->ca_name);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return RN_OK;
	if (rc != SQLITE_DONE)
		return sqerr(s, rc);
	rc = schedule(s, c->id, c->renew_at);
	if (rc == RN_OK) {
		snprintf(id, sizeof(id), "%lld", (long long)c->id);
		log_kv(RN_LOG_WARN, "certificate had no open job and was out "
		       "of the due queue; queued again", "cert", id, "host",
		       c->host_uuid, "profile", c->profile_uuid, "ca",
		       c->ca_name, NULL);
		free(c->state);
		c->state = rn_strdup("active");
		if (c->state == NULL)
			rc = RN_ENOMEM;
	}
	return rc;
}

int
store_certs_rearm(store *s, int64_t after, int limit, store_renew_at_cb cb,
		  void *arg, int64_t *last_id, int *n)
{
	sqlite3_stmt *st, *up;
	store_cert *rows;
	int count = 0, i, rc = RN_OK, own;

	*n = 0;
	*last_id = after;
	rows = calloc((size_t)limit, sizeof(*rows));
	if (rows == NULL)
		return RN_ENOMEM;
	st = stmt(s, ST_REARM_SELECT);
	if (st == NULL) {
		free(rows);
		return RN_ESTORE;
	}
	sqlite3_bind_int64(st, 1, after);
	sqlite3_bind_int(st, 2, limit);
	while (count < limit && (rc = sqlite3_step(st)) == SQLITE_ROW)
		read_cert(st, &rows[count++]);
	sqlite3_reset(st);
	rc = (rc == SQLITE_ROW || rc == SQLITE_DONE) ? RN_OK : sqerr(s, rc);
	if (rc == RN_OK && count > 0)
		rc = tx_begin(s, &own);
	else
		own = 0;
	for (i = 0; rc == RN_OK && i < count; i++) {
		int64_t at = rows[i].renew_at;
		const char *pol = rows[i].policy;
		*last_id = rows[i].id;
		if (strcmp(rows[i].state, "renewing") == 0)
			rc = requeue_orphan(s, &rows[i]);
		if (rc == RN_OK)
			rc = cb(arg, &rows[i], &at, &pol);
		if (rc || (at == rows[i].renew_at && pol &&
			   rows[i].policy && strcmp(pol, rows[i].policy) == 0))
			continue;
		up = stmt(s, ST_CERT_SET_RENEW_AT);
		if (up == NULL) {
			rc = RN_ESTORE;
			break;
		}
		sqlite3_bind_int64(up, 1, rows[i].id);
		sqlite3_bind_int64(up, 2, at);
		bind_text(up, 3, pol);
		rc = exec_stmt(s, up, NULL);
		if (rc)
			break;
		/* no-op for a certificate with an open job */
		up = stmt(s, ST_SCHED_SET);
		sqlite3_bind_int64(up, 1, rows[i].id);
		sqlite3_bind_int64(up, 2, at);
		sqlite3_bind_int64(up, 3, rows[i].renew_at);
		rc = exec_stmt(s, up, NULL);
		(*n)++;
	}
	if (count > 0)
		rc = tx_end(s, own, rc);
	if (count < limit && rc == RN_OK)
		*last_id = -1; /* done */
	for (i = 0; i < count; i++)
		store_cert_release(&rows[i]);
	free(rows);
	return rc;
}

/* ---- scan ------------------------------------------------------------- */

/*
 * The scan writes on a connection of its own with foreign keys off. Every
 * value it writes is copied, inside the same statement, from rows whose
 * keys were checked when they were written: a job's host, profile and
 * certificate from its due-queue row (copied from the certificate,
 * managed_certificates' foreign keys checked), an event's job from the
 * job just inserted; the queue
 * delete references nothing. The checks could only fail on a database
 * that is already broken, and they were half of the scan's instructions
 * (10,000 jobs: random probes of the hosts index by text UUID, the
 * profiles and certificates, the events' job; and a two-pass DELETE,
 * which SQLite uses for a table with a foreign key). PRAGMA foreign_keys
 * cannot change inside a transaction and expires every prepared
 * statement when it does, so the main connection keeps them on for all
 * the writes that carry outside input. Opened on first use; a database
 * without a file (":memory:") or a failed open scans on the main
 * connection, as does a scan called inside the caller's transaction (the
 * second connection would wait for its lock).
 *
 * temp_store = MEMORY keeps the statement journal of the job insert in
 * memory: the insert can fail a CHECK after changing rows, so SQLite
 * journals every page it changes, and past 64 KiB (each batch) it wrote
 * the journal to a new file in /var/tmp, created and unlinked per batch:
 * 2,334 of the scan's 7,594 pwrites for 10,000 jobs. The journal lives
 * only for the statement, a few hundred pages of a 1,000-row batch.
 */
static int
scan_conn(store *s)
{
	const char *path;
	int rc;

	if (s->scan_db)
		return RN_OK;
	if (s->scan_off || s->readonly)
		return RN_EINVAL;
	path = sqlite3_db_filename(s->db, "main");
	if (path == NULL || *path == '\0') {
		s->scan_off = 1;
		return RN_EINVAL;
	}
	rc = sqlite3_open_v2(path, &s->scan_db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc == SQLITE_OK) {
		sqlite3_busy_timeout(s->scan_db, 5000);
		sqlite3_extended_result_codes(s->scan_db, 0);
		rc = sqlite3_exec(s->scan_db,
				  "PRAGMA synchronous = NORMAL;"
				  "PRAGMA temp_store = MEMORY;"
				  "PRAGMA journal_size_limit = " WAL_SIZE_LIMIT ";"
				  "PRAGMA foreign_keys = OFF",
				  NULL, NULL, NULL);
	}
	if (rc != SQLITE_OK) {
		log_warnx("cannot open database '%s' for scans, scanning on "
			  "the main connection: %s", path,
			  s->scan_db ? sqlite3_errmsg(s->scan_db)
				     : "out of memory");
		sqlite3_close(s->scan_db);
		s->scan_db = NULL;
		s->scan_off = 1;
		return RN_ESTORE;
	}
	if (s->ckpt_on)
		sqlite3_wal_hook(s->scan_db, on_wal_commit, s);
	return RN_OK;
}

/* One integer column of a one-row statement; *found = 0 without a row. */
static int
step_int(sqlite3_stmt *st, int col, int64_t *v, int *found)
{
	int rc = sqlite3_step(st);

	*found = rc == SQLITE_ROW;
	if (rc == SQLITE_ROW)
		*v = sqlite3_column_int64(st, col);
	return rc == SQLITE_ROW || rc == SQLITE_DONE
		   ? RN_OK
		   : db_err(sqlite3_db_handle(st), rc);
}

/* Step a statement that returns no rows; *changes gets the row count. */
static int
step_done(sqlite3_stmt *st, int *changes)
{
	sqlite3 *db = sqlite3_db_handle(st);
	int rc = sqlite3_step(st);

	if (changes)
		*changes = sqlite3_changes(db);
	sqlite3_reset(st);
	return rc == SQLITE_DONE || rc == SQLITE_ROW ? RN_OK : db_err(db, rc);
}

/*
 * One batch in one transaction, set-based: the batch ends at the key of
 * its limit-th due row (or at now when fewer are due), every row up to it
 * gets a job (unless its triple has an open one) and an 'enqueued' event,
 * and the range leaves the queue. New jobs are the rows after the largest
 * job id before the insert: nothing else writes inside the transaction.
 */
int
store_scan_due(store *s, int64_t now, int limit, int *seen, int *enqueued)
{
	sqlite3 *db = s->db;
	sqlite3_stmt **cache = s->st, *st;
	int64_t bound_at = now, bound_id = INT64_MAX, maxid = 0, v = 0;
	int own, rc, found, changes = 0;

	*seen = *enqueued = 0;
	if (limit < 1)
		return RN_EINVAL;
	if (sqlite3_get_autocommit(s->db) && scan_conn(s) == RN_OK) {
		db = s->scan_db;
		cache = s->scan_st;
	}
	own = sqlite3_get_autocommit(db);
	if (own) {
		rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
		if (rc != SQLITE_OK)
			return db_err(db, rc);
	}
	if ((st = stmt_on(db, cache, ST_SCAN_BOUND)) == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit - 1);
	rc = step_int(st, 0, &bound_at, &found);
	if (rc == RN_OK && found)
		bound_id = sqlite3_column_int64(st, 1);
	sqlite3_reset(st);
	if (rc)
		goto out;
	if (found) {
		*seen = limit;
	} else {
		bound_at = now;
		if ((st = stmt_on(db, cache, ST_SCAN_COUNT)) == NULL) {
			rc = RN_ESTORE;
			goto out;
		}
		sqlite3_bind_int64(st, 1, now);
		rc = step_int(st, 0, &v, &found);
		sqlite3_reset(st);
		if (rc)
			goto out;
		*seen = (int)v;
	}
	if (*seen == 0)
		goto out;
	if ((st = stmt_on(db, cache, ST_JOB_MAXID)) == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	rc = step_int(st, 0, &maxid, &found);
	sqlite3_reset(st);
	if (rc)
		goto out;
	if ((st = stmt_on(db, cache, ST_SCAN_ENQUEUE)) == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, bound_at);
	sqlite3_bind_int64(st, 3, bound_id);
	rc = step_done(st, &changes);
	if (rc)
		goto out;
	*enqueued = changes;
	if (changes > 0) {
		if ((st = stmt_on(db, cache, ST_SCAN_EVENTS)) == NULL) {
			rc = RN_ESTORE;
			goto out;
		}
		sqlite3_bind_int64(st, 1, now);
		sqlite3_bind_int64(st, 2, maxid);
		rc = step_done(st, NULL);
		if (rc)
			goto out;
	}
	/* With or without a new job (an open one renews it), the
	 * certificates leave the due queue. */
	if ((st = stmt_on(db, cache, ST_SCAN_DEQUEUE)) == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, bound_at);
	sqlite3_bind_int64(st, 2, bound_id);
	rc = step_done(st, NULL);
out:
	if (own) {
		if (rc == RN_OK) {
			int c = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
			if (c != SQLITE_OK)
				rc = db_err(db, c);
		}
		if (rc && !sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (rc)
		*seen = *enqueued = 0;
	return rc;
}

static int64_t
single_int(store *s, sqlite3_stmt *st)
{
	int64_t v = 0;

	if (st == NULL)
		return 0;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return v;
}

int64_t
store_next_due(store *s)
{
	return single_int(s, stmt(s, ST_NEXT_DUE));
}

/* ---- jobs ------------------------------------------------------------- */

int
store_job_enqueue(store *s, const char *host, const char *profile,
		  const char *ca, const char *kind, int64_t cert_id,
		  const char *detail, int64_t now, int64_t *id)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	*id = 0;
	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_JOB_INSERT);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	bind_text(st, 1, host);
	bind_text(st, 2, profile);
	bind_text(st, 3, ca);
	bind_text(st, 4, kind);
	bind_id(st, 5, cert_id);
	sqlite3_bind_int64(st, 6, now);
	rc = exec_stmt(s, st, &changes);
	if (rc)
		goto out;
	if (changes == 0) {
		st = stmt(s, ST_JOB_OPEN);
		bind_text(st, 1, host);
		bind_text(st, 2, profile);
		bind_text(st, 3, ca);
		*id = single_int(s, st);
		rc = RN_EEXIST;
		goto out;
	}
	*id = sqlite3_last_insert_rowid(s->db);
	rc = event_insert(s, *id, "enqueued", detail, now);
	if (rc == RN_OK && cert_id) {
		st = stmt(s, ST_SCAN_MARK);
		sqlite3_bind_int64(st, 1, cert_id);
		rc = exec_stmt(s, st, NULL);
	}
out:
	if (rc == RN_EEXIST) {
		tx_end(s, own, RN_OK);
		return RN_EEXIST;
	}
	return tx_end(s, own, rc);
}

int
store_job_get(store *s, int64_t id, store_job *out)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_GET);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	return one_job(s, st, out);
}

int
store_job_by_renewal_id(store *s, const char *renewal_id, store_job *out)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_BY_RID);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, renewal_id);
	return one_job(s, st, out);
}

int
store_job_by_command_uuid(store *s, const char *command_uuid,
			  store_job *out)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_BY_CMD);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, command_uuid);
	return one_job(s, st, out);
}

int
store_job_acknowledged(store *s, int64_t id, const char *detail,
		       int64_t now)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_JOB_ACK);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK)
		rc = event_insert(s, id, "acknowledged", detail, now);
out:
	return tx_end(s, own, rc);
}

static int
each_job(store *s, sqlite3_stmt *st, store_job_cb cb, void *arg)
{
	store_job *rows = NULL;
	size_t n = 0, alloc = 0, i;
	int rc, crc = RN_OK;

	/*
	 * Rows are read first and the statement reset before calling back,
	 * so callbacks may use the store (including this statement).
	 */
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == alloc) {
			size_t na = alloc ? alloc * 2 : 16;
			store_job *nr = realloc(rows, na * sizeof(*nr));
			if (nr == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			rows = nr;
			alloc = na;
		}
		memset(&rows[n], 0, sizeof(rows[n]));
		read_job(st, &rows[n++]);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		crc = rc == SQLITE_NOMEM ? RN_ENOMEM : sqerr(s, rc);
	for (i = 0; i < n; i++) {
		if (crc == RN_OK)
			crc = cb(arg, &rows[i]);
		store_job_release(&rows[i]);
	}
	free(rows);
	return crc;
}

int
store_host_open_jobs_each(store *s, const char *host, store_job_cb cb,
			  void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_HOST_OPEN_JOBS);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	return each_job(s, st, cb, arg);
}

/* The statement for `state`: its own for queued and pushed (JOBS_DUE_SQL). */
static int
state_stmt(const char *state, int any, int queued, int pushed)
{
	if (strcmp(state, JOB_QUEUED) == 0)
		return queued;
	return strcmp(state, JOB_PUSHED) == 0 ? pushed : any;
}

int
store_jobs_due(store *s, const char *state, int64_t before, int limit,
	       store_job_cb cb, void *arg)
{
	int id = state_stmt(state, ST_JOBS_DUE, ST_JOBS_DUE_Q, ST_JOBS_DUE_P);
	sqlite3_stmt *st = stmt(s, id);

	if (st == NULL)
		return RN_ESTORE;
	if (id == ST_JOBS_DUE)
		bind_text(st, 1, state);
	sqlite3_bind_int64(st, 2, before);
	sqlite3_bind_int(st, 3, limit);
	return each_job(s, st, cb, arg);
}

int64_t
store_jobs_next_at(store *s, const char *state)
{
	int id = state_stmt(state, ST_JOBS_NEXT, ST_JOBS_NEXT_Q,
			    ST_JOBS_NEXT_P);
	sqlite3_stmt *st = stmt(s, id);

	if (st == NULL)
		return 0;
	if (id == ST_JOBS_NEXT)
		bind_text(st, 1, state);
	return single_int(s, st);
}

int
store_jobs_each(store *s, const char *state, int64_t limit, store_job_cb cb,
		void *arg)
{
	sqlite3_stmt *st = stmt(s, state ? ST_JOBS_LIST_STATE : ST_JOBS_LIST);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, limit > 0 ? limit : -1);
	if (state)
		bind_text(st, 2, state);
	return each_job(s, st, cb, arg);
}

/*
 * RN_EBUSY from store_job_start and store_job_pushed means "the job was
 * not in the state this needs", found before anything was written, and
 * the scheduler then keeps the rest of its transaction. A lock error
 * (also RN_EBUSY) from a statement after the first write is not that:
 * it becomes RN_ESTORE, so the caller rolls back.
 */
static int
after_write(int rc)
{
	return rc == RN_EBUSY ? RN_ESTORE : rc;
}

int
store_job_start(store *s, int64_t id, const char *new_renewal_id,
		int64_t now, store_job *out)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;
	char d[128];

	memset(out, 0, sizeof(*out));
	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_JOB_START);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, new_renewal_id);
	sqlite3_bind_int64(st, 3, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY; /* not queued (any more) */
	if (rc)
		goto out;
	/* read back by rowid: UPDATE ... RETURNING buffers its rows in an
	 * ephemeral table, which cost more than the update itself */
	rc = store_job_get(s, id, out);
	if (rc == RN_OK) {
		st = stmt(s, ST_RID_INSERT);
		bind_text(st, 1, out->renewal_id);
		sqlite3_bind_int64(st, 2, id);
		sqlite3_bind_int64(st, 3, now);
		rc = exec_stmt(s, st, NULL);
	}
	if (rc == RN_OK) {
		snprintf(d, sizeof(d), "attempt %d renewal_id %s",
			 out->attempts, out->renewal_id);
		rc = event_insert(s, id, "attempt_started", d, now);
	}
	rc = after_write(rc);
out:
	/* the commit can fail too (a full disk): then *out is not set */
	rc = tx_end(s, own, rc);
	if (rc)
		store_job_release(out);
	return rc;
}

int
store_job_pushed(store *s, int64_t id, const char *command_uuid,
		 int64_t verify_at, const char *detail, int64_t now)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_JOB_PUSHED);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, command_uuid);
	sqlite3_bind_int64(st, 3, verify_at);
	sqlite3_bind_int64(st, 4, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK)
		rc = after_write(event_insert(s, id, "pushed", detail, now));
out:
	return tx_end(s, own, rc);
}

/*
 * A job that ends without a new certificate puts its triple's current
 * certificate back into the due queue at rearm_at, if the certificate is
 * out of it. That is usually the certificate the job was renewing, but
 * not always: a certificate installed while the job was open (an import,
 * the API) leaves the queue at its due time without a job of its own,
 * because the triple's open job renews it. Either way, once no job is
 * open for the triple its current certificate must be queued again, or
 * nothing would ever renew it. One still queued keeps its due time.
 */
static int
rearm_cert(store *s, int64_t id, int64_t rearm_at, int64_t now)
{
	store_job j;
	store_cert cur;
	sqlite3_stmt *st;
	int rc = store_job_get(s, id, &j);

	if (rc)
		return rc;
	if (rearm_at) {
		rc = store_cert_current(s, j.host_uuid, j.profile_uuid,
					j.ca_name, &cur);
		if (rc == RN_ENOTFOUND) {
			rc = RN_OK; /* nothing issued yet */
		} else if (rc == RN_OK) {
			if (strcmp(cur.state, "renewing") == 0) {
				st = stmt(s, ST_CERT_REARM);
				sqlite3_bind_int64(st, 1, cur.id);
				sqlite3_bind_int64(st, 2, rearm_at);
				sqlite3_bind_int64(st, 3, now);
				rc = exec_stmt(s, st, NULL);
				if (rc == RN_OK)
					rc = schedule(s, cur.id, rearm_at);
			}
			store_cert_release(&cur);
		}
	}
	store_job_release(&j);
	return rc;
}

int
store_job_attempt_failed(store *s, int64_t id, const char *from,
			 const char *event, const char *err, int64_t retry_at,
			 int64_t rearm_at, int64_t now)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	if (retry_at) {
		st = stmt(s, ST_JOB_RETRYWAIT);
		sqlite3_bind_int64(st, 1, id);
		bind_text(st, 2, from);
		sqlite3_bind_int64(st, 3, retry_at);
		bind_text(st, 4, err);
		sqlite3_bind_int64(st, 5, now);
	} else {
		st = stmt(s, ST_JOB_FINAL);
		sqlite3_bind_int64(st, 1, id);
		bind_text(st, 2, from);
		bind_text(st, 3, JOB_FAILED);
		bind_text(st, 4, err);
		sqlite3_bind_int64(st, 5, now);
	}
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK)
		rc = event_insert(s, id, event, err, now);
	if (rc == RN_OK && !retry_at) {
		char d[96];
		snprintf(d, sizeof(d), "attempts exhausted");
		rc = event_insert(s, id, "failed", d, now);
		if (rc == RN_OK)
			rc = rearm_cert(s, id, rearm_at, now);
	}
	return tx_end(s, own, rc);
}

int
store_job_cancel(store *s, int64_t id, const char *why, int64_t rearm_at,
		 int64_t now)
{
	store_job j;
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	rc = store_job_get(s, id, &j);
	if (rc)
		goto out;
	st = stmt(s, ST_JOB_FINAL);
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, j.state);
	bind_text(st, 3, JOB_CANCELLED);
	bind_text(st, 4, why);
	sqlite3_bind_int64(st, 5, now);
	if (strcmp(j.state, JOB_QUEUED) && strcmp(j.state, JOB_RUNNING) &&
	    strcmp(j.state, JOB_PUSHED) && strcmp(j.state, JOB_ACKNOWLEDGED))
		rc = RN_EBUSY;
	else
		rc = exec_stmt(s, st, &changes);
	store_job_release(&j);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK)
		rc = event_insert(s, id, "cancelled", why, now);
	if (rc == RN_OK)
		rc = rearm_cert(s, id, rearm_at, now);
out:
	return tx_end(s, own, rc);
}

int
store_job_retry(store *s, int64_t id, int64_t now)
{
	sqlite3_stmt *st;
	store_job j;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	rc = store_job_get(s, id, &j);
	if (rc)
		goto out;
	st = stmt(s, ST_JOB_RETRY);
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK && j.cert_id && strcmp(j.state, JOB_QUEUED) != 0) {
		/* a reopened job renews its certificate again */
		st = stmt(s, ST_SCAN_MARK);
		sqlite3_bind_int64(st, 1, j.cert_id);
		rc = exec_stmt(s, st, NULL);
	}
	if (rc == RN_OK)
		rc = event_insert(s, id, "retry", "requested by operator",
				  now);
	store_job_release(&j);
out:
	return tx_end(s, own, rc);
}

int
store_jobs_recover(store *s, int64_t now, int *n)
{
	sqlite3_stmt *sel, *up;
	int64_t *ids = NULL;
	size_t cnt = 0, alloc = 0, i;
	int own, rc;

	*n = 0;
	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	sel = stmt(s, ST_JOBS_RECOVER_SEL);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		if (cnt == alloc) {
			alloc = alloc ? alloc * 2 : 64;
			int64_t *ni = realloc(ids, alloc * sizeof(*ni));
			if (ni == NULL) {
				rc = SQLITE_NOMEM;
				break;
			}
			ids = ni;
		}
		ids[cnt++] = sqlite3_column_int64(sel, 0);
	}
	sqlite3_reset(sel);
	rc = rc == SQLITE_DONE ? RN_OK : sqerr(s, rc);
	for (i = 0; rc == RN_OK && i < cnt; i++) {
		up = stmt(s, ST_JOB_RECOVER);
		sqlite3_bind_int64(up, 1, ids[i]);
		sqlite3_bind_int64(up, 2, now);
		rc = exec_stmt(s, up, NULL);
		if (rc == RN_OK)
			rc = event_insert(s, ids[i], "recovered",
					  "renewd restarted during the attempt",
					  now);
	}
	free(ids);
	if (rc == RN_OK)
		*n = (int)cnt;
	return tx_end(s, own, rc);
}

int
store_job_requeue(store *s, int64_t id, const char *detail, int64_t now)
{
	sqlite3_stmt *st;
	int own, rc, changes = 0;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_JOB_RECOVER);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	if (rc == RN_OK)
		rc = event_insert(s, id, "requeued", detail, now);
out:
	return tx_end(s, own, rc);
}

int
store_write_probe(store *s, int64_t now)
{
	sqlite3_stmt *st;
	int own, rc;

	rc = tx_begin(s, &own);
	if (rc)
		return rc;
	st = stmt(s, ST_PROBE_PUT);
	if (st == NULL) {
		rc = RN_ESTORE;
		goto out;
	}
	sqlite3_bind_int64(st, 1, now);
	rc = exec_stmt(s, st, NULL);
	if (rc == RN_OK && (st = stmt(s, ST_PROBE_DEL)) == NULL)
		rc = RN_ESTORE;
	if (rc == RN_OK)
		rc = exec_stmt(s, st, NULL);
out:
	return tx_end(s, own, rc);
}

int
store_job_events_each(store *s, int64_t job_id, store_event_cb cb, void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_EVENTS);
	int rc, crc = RN_OK;

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, job_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		store_event e;
		e.id = sqlite3_column_int64(st, 0);
		e.job_id = sqlite3_column_int64(st, 1);
		e.at = sqlite3_column_int64(st, 2);
		e.event = (const char *)sqlite3_column_text(st, 3);
		e.detail = (const char *)sqlite3_column_text(st, 4);
		crc = cb(arg, &e);
		if (crc)
			break;
	}
	if (crc == RN_OK && rc != SQLITE_DONE)
		crc = sqerr(s, rc);
	sqlite3_reset(st);
	return crc;
}

/* ---- tokens and counts ------------------------------------------------ */

int
store_token_insert(store *s, const char *token_hash, const char *host,
		   const char *profile, const char *ca, int64_t job_id,
		   int64_t expires_at, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_TOKEN_INSERT);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, token_hash);
	bind_text(st, 2, host);
	bind_text(st, 3, profile);
	bind_text(st, 4, ca);
	bind_id(st, 5, job_id);
	sqlite3_bind_int64(st, 6, now);
	sqlite3_bind_int64(st, 7, expires_at);
	return exec_stmt(s, st, NULL);
}

int
store_notification_add(store *s, const char *event, const char *key,
		       const char *payload, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_ADD);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, event);
	bind_text(st, 2, key);
	bind_text(st, 3, payload);
	sqlite3_bind_int64(st, 4, now);
	return exec_stmt(s, st, NULL);
}

/* Step through notification rows; the strings are borrowed. */
static int
each_notification(store *s, sqlite3_stmt *st, store_notification_cb cb,
		  void *arg)
{
	store_notification n;
	int rc = RN_OK, sr;

	while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
		n.id = sqlite3_column_int64(st, 0);
		n.event = (const char *)sqlite3_column_text(st, 1);
		n.key = (const char *)sqlite3_column_text(st, 2);
		n.payload = (const char *)sqlite3_column_text(st, 3);
		n.notifier = (const char *)sqlite3_column_text(st, 4);
		n.attempts = sqlite3_column_int(st, 5);
		n.created_at = sqlite3_column_int64(st, 6);
		rc = cb(arg, &n);
		if (rc)
			break;
	}
	if (rc == RN_OK && sr != SQLITE_DONE)
		rc = sqerr(s, sr);
	sqlite3_reset(st);
	return rc;
}

int
store_notifications_unfanned(store *s, int limit, store_notification_cb cb,
			     void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_FANOUT);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int(st, 1, limit);
	return each_notification(s, st, cb, arg);
}

int
store_notification_fan(store *s, int64_t id, const char *notifier,
		       int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_FAN);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, notifier);
	sqlite3_bind_int64(st, 3, now);
	return exec_stmt(s, st, NULL);
}

int
store_notification_delete(store *s, int64_t id)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_DEL);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	return exec_stmt(s, st, NULL);
}

int
store_notifications_due(store *s, int64_t now, int limit,
			store_notification_cb cb, void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_DUE);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, limit);
	return each_notification(s, st, cb, arg);
}

int64_t
store_notifications_next_at(store *s)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_NEXT);

	return st ? single_int(s, st) : 0;
}

int
store_notification_lease(store *s, int64_t id, int64_t until)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_LEASE);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, until);
	return exec_stmt(s, st, NULL);
}

int
store_notification_delivered(store *s, int64_t id, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_DONE);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	return exec_stmt(s, st, NULL);
}

int
store_notification_retry(store *s, int64_t id, int64_t next_at,
			 const char *err)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_RETRY);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, next_at);
	bind_text(st, 3, err);
	return exec_stmt(s, st, NULL);
}

int
store_notification_give_up(store *s, int64_t id, const char *state,
			   const char *err, int attempted)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_GIVEUP);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, id);
	bind_text(st, 2, state);
	bind_text(st, 3, err);
	sqlite3_bind_int(st, 4, attempted ? 1 : 0);
	return exec_stmt(s, st, NULL);
}

int
store_notifications_prune(store *s, int64_t before, int *n)
{
	sqlite3_stmt *st = stmt(s, ST_NOTIF_PRUNE);

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, before);
	return exec_stmt(s, st, n);
}

/* ---- alerts ----------------------------------------------------------- */

int
store_alert_raise(store *s, const char *key, const char *event,
		  int64_t level, int64_t now, int *raised)
{
	sqlite3_stmt *st = stmt(s, ST_ALERT_GET);
	int rc;

	*raised = 0;
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_int64(st, 0) <= level) {
		sqlite3_reset(st);
		return RN_OK; /* open already, as severe or more */
	}
	sqlite3_reset(st);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		return sqerr(s, rc);
	st = stmt(s, ST_ALERT_PUT);
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, key);
	bind_text(st, 2, event);
	sqlite3_bind_int64(st, 3, level);
	sqlite3_bind_int64(st, 4, now);
	rc = exec_stmt(s, st, NULL);
	if (rc == RN_OK)
		*raised = 1;
	return rc;
}

int
store_alert_resolve(store *s, const char *key, int *was_open)
{
	sqlite3_stmt *st = stmt(s, ST_ALERT_DEL);
	int n = 0, rc;

	*was_open = 0;
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, key);
	rc = exec_stmt(s, st, &n);
	*was_open = rc == RN_OK && n > 0;
	return rc;
}

int
store_alert_level(store *s, const char *key, int64_t *level)
{
	sqlite3_stmt *st = stmt(s, ST_ALERT_GET);
	int rc;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, key);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*level = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return RN_OK;
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

int
store_certs_expiring(store *s, int64_t before, int64_t after_nva,
		     int64_t after_id, int limit, store_cert_cb cb, void *arg)
{
	sqlite3_stmt *st = stmt(s, ST_EXPIRY_SELECT);
	int rc = RN_OK, sr;

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, before);
	sqlite3_bind_int64(st, 2, after_nva);
	sqlite3_bind_int64(st, 3, after_id);
	sqlite3_bind_int(st, 4, limit);
	while ((sr = sqlite3_step(st)) == SQLITE_ROW) {
		store_cert c;

		memset(&c, 0, sizeof(c));
		read_cert(st, &c);
		rc = cb(arg, &c);
		store_cert_release(&c);
		if (rc)
			break;
	}
	if (rc == RN_OK && sr != SQLITE_DONE)
		rc = sqerr(s, sr);
	sqlite3_reset(st);
	return rc;
}

static void
copy_col(sqlite3_stmt *st, int i, char *dst, size_t len)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(dst, len, "%s", t ? (const char *)t : "");
}

int
store_token_get(store *s, const char *token_hash, store_token *out)
{
	store_proxy_auth a;
	int rc = store_proxy_auth_get(s, token_hash, &a);

	*out = a.tok;
	return rc;
}

int
store_proxy_auth_get(store *s, const char *token_hash, store_proxy_auth *out)
{
	sqlite3_stmt *st = stmt(s, ST_PROXY_AUTH);
	int rc;

	memset(out, 0, sizeof(*out));
	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, token_hash);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		store_token *t = &out->tok;
		copy_col(st, 0, t->host_uuid, sizeof(t->host_uuid));
		copy_col(st, 1, t->profile_uuid, sizeof(t->profile_uuid));
		copy_col(st, 2, t->ca_name, sizeof(t->ca_name));
		t->job_id = sqlite3_column_int64(st, 3);
		t->expires_at = sqlite3_column_int64(st, 4);
		t->consumed_at = sqlite3_column_int64(st, 5);
		out->assigned = sqlite3_column_int(st, 6) != 0;
		out->open_job = sqlite3_column_int64(st, 7);
		out->has_cert = sqlite3_column_int(st, 8) != 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return RN_OK;
	return rc == SQLITE_DONE ? RN_ENOTFOUND : sqerr(s, rc);
}

int
store_token_consume(store *s, const char *token_hash, int64_t now)
{
	sqlite3_stmt *st = stmt(s, ST_TOKEN_CONSUME);
	int rc, changes = 0;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, token_hash);
	sqlite3_bind_int64(st, 2, now);
	rc = exec_stmt(s, st, &changes);
	if (rc == RN_OK && changes == 0)
		rc = RN_EBUSY;
	return rc;
}

int
store_host_profile_has(store *s, const char *host, const char *profile)
{
	sqlite3_stmt *st = stmt(s, ST_HP_HAS);
	int rc;

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	bind_text(st, 2, profile);
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_ROW)
		return 1;
	return rc == SQLITE_DONE ? 0 : sqerr(s, rc);
}

int
store_job_open(store *s, const char *host, const char *profile,
	       const char *ca, store_job *out)
{
	sqlite3_stmt *st = stmt(s, ST_JOB_OPEN_ROW);

	if (st == NULL)
		return RN_ESTORE;
	bind_text(st, 1, host);
	bind_text(st, 2, profile);
	bind_text(st, 3, ca);
	return one_job(s, st, out);
}

static int
counts(store *s, int id, store_count *out, size_t max, size_t *n)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc;

	*n = 0;
	if (st == NULL)
		return RN_ESTORE;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && *n < max) {
		const char *name = (const char *)sqlite3_column_text(st, 0);
		snprintf(out[*n].name, sizeof(out[*n].name), "%s",
			 name ? name : "");
		out[*n].n = sqlite3_column_int64(st, 1);
		(*n)++;
	}
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? RN_OK : sqerr(s, rc);
}

int
store_job_counts(store *s, store_count *out, size_t max, size_t *n)
{
	return counts(s, ST_JOB_COUNTS, out, max, n);
}

/*
 * Stored states plus the derived one: of the 'active' rows, those not in
 * the due queue are 'renewing'. Two aggregate reads, no per-row probe.
 */
int
store_cert_counts(store *s, store_count *out, size_t max, size_t *n)
{
	store_count tmp[8];
	int64_t scheduled = 0, active = 0;
	size_t m = 0, i;
	int rc = counts(s, ST_CERT_COUNTS, tmp, 8, &m);

	*n = 0;
	if (rc)
		return rc;
	for (i = 0; i < m; i++) {
		if (strcmp(tmp[i].name, "scheduled") == 0)
			scheduled = tmp[i].n;
		else if (strcmp(tmp[i].name, "active") == 0)
			active = tmp[i].n;
	}
	for (i = 0; i < m && *n < max; i++) {
		if (strcmp(tmp[i].name, "scheduled") == 0)
			continue;
		out[*n] = tmp[i];
		if (strcmp(tmp[i].name, "active") == 0)
			out[*n].n = scheduled;
		if (out[*n].n > 0)
			(*n)++;
	}
	if (active > scheduled && *n < max) {
		snprintf(out[*n].name, sizeof(out[*n].name), "renewing");
		out[*n].n = active - scheduled;
		(*n)++;
	}
	return RN_OK;
}

/* ---- metrics and health ----------------------------------------------- */

static const char *const stats_cert_states[] = {"active", "renewing",
						"superseded", "expired"};
static const char *const stats_job_states[] = {
	JOB_QUEUED, JOB_RUNNING, JOB_PUSHED, JOB_ACKNOWLEDGED,
	JOB_VERIFIED, JOB_FAILED, JOB_CANCELLED};

/* Add counts to the slots of their names in states[]; others ignored. */
static void
stats_place(const store_count *c, size_t n, const char *const *states,
	    size_t nstates, int64_t *out)
{
	size_t i, k;

	for (i = 0; i < n; i++)
		for (k = 0; k < nstates; k++)
			if (strcmp(c[i].name, states[k]) == 0)
				out[k] += c[i].n;
}

static int
stats_expiry(store *s, int64_t now, const int64_t *within, store_stats *out)
{
	sqlite3_stmt *st = stmt(s, ST_STATS_EXPIRY);
	int64_t range[8] = {0};
	int i, rc;

	if (st == NULL)
		return RN_ESTORE;
	sqlite3_bind_int64(st, 1, now);
	for (i = 0; i < STORE_STATS_WINDOWS; i++)
		sqlite3_bind_int64(st, i + 2, now + within[i]);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int tag = sqlite3_column_int(st, 0);
		if (tag >= 0 && tag < 8) {
			range[tag] = sqlite3_column_int64(st, 1);
		} else if (tag == 8 &&
			   sqlite3_column_type(st, 1) != SQLITE_NULL) {
			out->earliest_expiry = sqlite3_column_int64(st, 1);
			out->has_earliest = 1;
		}
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE)
		return sqerr(s, rc);
	out->expired = range[0];
	out->current = range[0];
	for (i = 0; i < STORE_STATS_WINDOWS; i++) {
		out->current += range[i + 1];
		out->expiring[i] = out->current;
	}
	out->current += range[7];
	return RN_OK;
}

static int
stats_count1(store *s, int id, int64_t *out)
{
	sqlite3_stmt *st = stmt(s, id);
	int rc;

	if (st == NULL)
		return RN_ESTORE;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return rc == SQLITE_ROW ? RN_OK : sqerr(s, rc);
}

/*
 * One deferred read transaction, so every number comes from the same
 * snapshot (renewing + active equals the expiring "+Inf" count even while
 * the daemon writes). Joins a transaction the caller has open.
 */
int
store_stats_get(store *s, int64_t now,
		const int64_t within[STORE_STATS_WINDOWS], store_stats *out)
{
	store_count c[16];
	size_t n = 0;
	int own = sqlite3_get_autocommit(s->db), rc = RN_OK;

	memset(out, 0, sizeof(*out));
	if (own)
		rc = exec_sql(s, "BEGIN");
	if (rc)
		return rc;
	rc = store_cert_counts(s, c, 16, &n);
	if (rc == RN_OK) {
		stats_place(c, n, stats_cert_states, 4, out->certs);
		rc = store_job_counts(s, c, 16, &n);
	}
	if (rc == RN_OK) {
		stats_place(c, n, stats_job_states, 7, out->jobs);
		rc = stats_expiry(s, now, within, out);
	}
	if (rc == RN_OK)
		rc = stats_count1(s, ST_NOTIF_PENDING,
				  &out->notifications_pending);
	if (own) {
		if (rc == RN_OK)
			rc = exec_sql(s, "COMMIT");
		store_rollback(s);
	}
	return rc;
}

int
store_ping(store *s)
{
	sqlite3_stmt *st = stmt(s, ST_PING);
	int rc;

	if (st == NULL)
		return RN_ESTORE;
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? RN_OK : sqerr(s, rc);
}
