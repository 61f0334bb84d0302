/*
 * Schema migrations, applied in order; PRAGMA user_version is the index of
 * the last one applied. Add a new string at the end to change the schema;
 * never edit one that has shipped. Private to store.c.
 */
/*
 * The open job states as SQL. Written out as ORs, not IN (...): SQLite
 * builds a temporary table for an IN list of more than two values every
 * time a statement runs (for a CHECK or a partial index, every UPDATE
 * that changes the state), about 15 us each. Used by migrations 4 and 5:
 * never change it, add a migration. Since migration 5 the queries test
 * is_open instead (OPEN_STATES in store.c).
 */
#define RJ_OPEN_PRED                                                       \
	"(state = 'queued' OR state = 'running' OR state = 'pushed' OR "  \
	"state = 'acknowledged')"

static const char *const store_migrations[] = {
	/* 1: initial schema */
	"CREATE TABLE hosts ("
	"  uuid TEXT PRIMARY KEY,"
	"  serial_number TEXT,"
	"  enrollment_id TEXT,"
	"  state TEXT NOT NULL DEFAULT 'active'"
	"    CHECK (state IN ('active','retired')),"
	"  first_seen INTEGER NOT NULL,"
	"  last_seen INTEGER NOT NULL);"
	"CREATE TABLE profiles ("
	"  uuid TEXT PRIMARY KEY,"
	"  identifier TEXT NOT NULL,"
	"  name TEXT,"
	"  ca_name TEXT,"
	"  template BLOB NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  source_path TEXT,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE TABLE host_profiles ("
	"  host_uuid TEXT NOT NULL REFERENCES hosts(uuid),"
	"  profile_uuid TEXT NOT NULL REFERENCES profiles(uuid),"
	"  PRIMARY KEY (host_uuid, profile_uuid)) WITHOUT ROWID;"
	"CREATE TABLE managed_certificates ("
	"  id INTEGER PRIMARY KEY,"
	"  host_uuid TEXT NOT NULL REFERENCES hosts(uuid),"
	"  profile_uuid TEXT NOT NULL REFERENCES profiles(uuid),"
	"  ca_name TEXT NOT NULL,"
	"  serial TEXT NOT NULL,"
	"  subject TEXT NOT NULL,"
	"  issuer TEXT,"
	"  sha256 TEXT NOT NULL,"
	"  not_valid_before INTEGER NOT NULL,"
	"  not_valid_after INTEGER NOT NULL,"
	"  renewal_id TEXT,"
	"  state TEXT NOT NULL"
	"    CHECK (state IN ('active','superseded','expired')),"
	"  renew_at INTEGER NOT NULL,"
	"  policy TEXT,"
	"  job_id INTEGER,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX mc_current ON managed_certificates"
	"  (host_uuid, profile_uuid, ca_name) WHERE state = 'active';"
	/* The due queue: one row per current certificate without an open
	 * job, clustered by renew_at, so a scan reads and deletes one
	 * contiguous range and never rewrites certificate rows. A queued
	 * row's renew_at always equals its certificate's, so a certificate's
	 * queue row is found by primary key without a second index. */
	"CREATE TABLE renewal_schedule ("
	"  renew_at INTEGER NOT NULL,"
	"  cert_id INTEGER NOT NULL REFERENCES managed_certificates(id),"
	"  PRIMARY KEY (renew_at, cert_id)) WITHOUT ROWID;"
	"CREATE INDEX mc_host ON managed_certificates"
	"  (host_uuid, profile_uuid, ca_name);"
	"CREATE INDEX mc_expiry ON managed_certificates (not_valid_after);"
	"CREATE TABLE renewal_jobs ("
	"  id INTEGER PRIMARY KEY,"
	"  host_uuid TEXT NOT NULL REFERENCES hosts(uuid),"
	"  profile_uuid TEXT NOT NULL REFERENCES profiles(uuid),"
	"  ca_name TEXT NOT NULL,"
	"  kind TEXT NOT NULL CHECK (kind IN ('issue','renew','resend')),"
	"  cert_id INTEGER REFERENCES managed_certificates(id),"
	"  renewal_id TEXT,"
	"  command_uuid TEXT,"
	"  state TEXT NOT NULL CHECK (state IN ('queued','running','pushed',"
	"    'acknowledged','verified','failed','cancelled')),"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at INTEGER NOT NULL,"
	"  last_error TEXT,"
	"  created_at INTEGER NOT NULL,"
	"  updated_at INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX rj_open ON renewal_jobs"
	"  (host_uuid, profile_uuid, ca_name)"
	"  WHERE state IN ('queued','running','pushed','acknowledged');"
	"CREATE INDEX rj_due ON renewal_jobs (state, next_attempt_at);"
	"CREATE TABLE job_renewal_ids ("
	"  renewal_id TEXT PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES renewal_jobs(id),"
	"  created_at INTEGER NOT NULL) WITHOUT ROWID;"
	"CREATE TABLE job_events ("
	"  id INTEGER PRIMARY KEY,"
	"  job_id INTEGER NOT NULL REFERENCES renewal_jobs(id),"
	"  at INTEGER NOT NULL,"
	"  event TEXT NOT NULL,"
	"  detail TEXT);"
	"CREATE INDEX je_job ON job_events (job_id, id);"
	"CREATE TABLE scep_tokens ("
	"  token_hash TEXT PRIMARY KEY,"
	"  host_uuid TEXT NOT NULL,"
	"  profile_uuid TEXT NOT NULL,"
	"  ca_name TEXT NOT NULL,"
	"  job_id INTEGER REFERENCES renewal_jobs(id),"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  consumed_at INTEGER) WITHOUT ROWID;"
	"CREATE INDEX st_expiry ON scep_tokens (expires_at);"
	"CREATE TABLE notifications ("
	"  id INTEGER PRIMARY KEY,"
	"  event TEXT NOT NULL,"
	"  key TEXT NOT NULL,"
	"  payload TEXT NOT NULL,"
	"  state TEXT NOT NULL DEFAULT 'pending',"
	"  attempts INTEGER NOT NULL DEFAULT 0,"
	"  next_attempt_at INTEGER NOT NULL,"
	"  created_at INTEGER NOT NULL);"
	"CREATE INDEX nt_due ON notifications (state, next_attempt_at);",
	/* 2: MDM webhook ingestion */
	/* Event IDs already processed: a redelivered webhook is a no-op. */
	"CREATE TABLE mdm_events ("
	"  event_id TEXT PRIMARY KEY,"
	"  topic TEXT,"
	"  received_at INTEGER) WITHOUT ROWID;"
	/* Command results name the job by the command UUID it was pushed
	 * with. */
	"CREATE INDEX rj_command ON renewal_jobs (command_uuid);"
	/* Certificates a device reported that verify no job and are not
	 * managed, so an operator can see what else is installed. */
	"CREATE TABLE unmatched_certificates ("
	"  host_uuid TEXT NOT NULL,"
	"  sha256 TEXT NOT NULL,"
	"  subject TEXT,"
	"  serial TEXT,"
	"  not_valid_after INTEGER,"
	"  seen_at INTEGER NOT NULL,"
	"  PRIMARY KEY (host_uuid, sha256)) WITHOUT ROWID;",
	/* 3: alerts and notifier delivery */
	/* An outbox row is first written with notifier NULL (the event, in
	 * the transaction of the change that caused it); the notifier
	 * engine fans it out into one delivery row per matching notifier,
	 * each retried on its own. */
	"ALTER TABLE notifications ADD COLUMN notifier TEXT;"
	"ALTER TABLE notifications ADD COLUMN last_error TEXT;"
	"ALTER TABLE notifications ADD COLUMN delivered_at INTEGER;"
	"CREATE INDEX nt_fanout ON notifications (id) WHERE notifier IS NULL"
	"  AND state = 'pending';"
	/* Open alert conditions: one row while a condition holds, so an
	 * alert is sent once and its resolution once. `level` orders
	 * escalations (the deadline threshold crossed, in seconds). */
	"CREATE TABLE alerts ("
	"  key TEXT PRIMARY KEY,"
	"  event TEXT NOT NULL,"
	"  level INTEGER NOT NULL DEFAULT 0,"
	"  raised_at INTEGER NOT NULL) WITHOUT ROWID;"
	/* Certificates by state and expiry: the deadline sweep reads a
	 * short range of the current ones instead of all the history, and
	 * the metrics count by state from the index alone (1M current +
	 * 1M superseded: 0.25 s instead of 1.1-1.8 s for the table). */
	"CREATE INDEX mc_state_expiry ON managed_certificates"
	"  (state, not_valid_after);",
	/* 4: state predicates without IN lists (RJ_OPEN_PRED); the CHECK
	 * constraints are rewritten the same way (schema_rewrites). Inside a
	 * CHECK or a partial index's WHERE, SQLite 3.40 builds the IN list's
	 * table again for every row written: three per job, about 40% of the
	 * instructions of a scan enqueuing 10,000 jobs. rj_command becomes
	 * partial: queued jobs have no command UUID, and only lookups by a
	 * UUID use it. */
	"DROP INDEX rj_open;"
	"CREATE UNIQUE INDEX rj_open ON renewal_jobs"
	"  (host_uuid, profile_uuid, ca_name) WHERE " RJ_OPEN_PRED ";"
	"DROP INDEX rj_command;"
	"CREATE INDEX rj_command ON renewal_jobs (command_uuid)"
	"  WHERE command_uuid IS NOT NULL;",
	/* 5: rj_open on a flag that only changes when a job opens or
	 * closes. With the state in a partial index's WHERE, SQLite
	 * deletes and inserts the job's rj_open entry on every state
	 * change, queued -> running -> pushed included: a random page of
	 * the index (keyed by host UUID) written twice per renewal. An
	 * UPDATE that leaves is_open alone leaves rj_open alone. The CHECK
	 * (schema_rewrites) keeps the flag equal to the state's openness. */
	"ALTER TABLE renewal_jobs ADD COLUMN is_open INTEGER DEFAULT 1;"
	"UPDATE renewal_jobs SET is_open = NULL WHERE NOT " RJ_OPEN_PRED ";"
	"DROP INDEX rj_open;"
	"CREATE UNIQUE INDEX rj_open ON renewal_jobs"
	"  (host_uuid, profile_uuid, ca_name) WHERE is_open = 1;",
	/* 6: the due queue carries its certificate's triple, so a scan
	 * makes its jobs from one contiguous range of the queue and reads
	 * no certificate row. Before, each due certificate's row was read
	 * by id: contiguous pages when the certificates due together were
	 * written together, one page per certificate after a bulk import
	 * in another order (10,000 page reads in a 10,000-job scan). A
	 * certificate's triple never changes (a renewal installs a new
	 * row), so the copy cannot go stale. The table is rebuilt in key
	 * order; foreign keys stay on (nothing references the queue). */
	"CREATE TABLE renewal_schedule_v6 ("
	"  renew_at INTEGER NOT NULL,"
	"  cert_id INTEGER NOT NULL REFERENCES managed_certificates(id),"
	"  host_uuid TEXT NOT NULL,"
	"  profile_uuid TEXT NOT NULL,"
	"  ca_name TEXT NOT NULL,"
	"  PRIMARY KEY (renew_at, cert_id)) WITHOUT ROWID;"
	"INSERT INTO renewal_schedule_v6 SELECT s.renew_at, s.cert_id,"
	"  c.host_uuid, c.profile_uuid, c.ca_name FROM renewal_schedule s"
	"  JOIN managed_certificates c ON c.id = s.cert_id"
	"  ORDER BY s.renew_at, s.cert_id;"
	"DROP TABLE renewal_schedule;"
	"ALTER TABLE renewal_schedule_v6 RENAME TO renewal_schedule;",
};

/*
 * CHECK constraints rewritten in place by a migration (store.c edits the
 * table's CREATE text in sqlite_schema, SQLite's documented way to change
 * a CHECK without copying the table): each `from` must be found exactly
 * once, and `to` must accept exactly the same rows.
 */
static const struct schema_rewrite {
	int migration;
	const char *table, *from, *to;
} schema_rewrites[] = {
	{4, "renewal_jobs",
	 "CHECK (state IN ('queued','running','pushed',"
	 "    'acknowledged','verified','failed','cancelled'))",
	 "CHECK (state = 'queued' OR state = 'running' OR state = 'pushed' "
	 "OR state = 'acknowledged' OR state = 'verified' OR "
	 "state = 'failed' OR state = 'cancelled')"},
	{4, "renewal_jobs", "CHECK (kind IN ('issue','renew','resend'))",
	 "CHECK (kind = 'issue' OR kind = 'renew' OR kind = 'resend')"},
	{4, "managed_certificates",
	 "CHECK (state IN ('active','superseded','expired'))",
	 "CHECK (state = 'active' OR state = 'superseded' OR "
	 "state = 'expired')"},
	{5, "renewal_jobs", "is_open INTEGER DEFAULT 1",
	 "is_open INTEGER DEFAULT 1 CHECK ((is_open IS 1) = " RJ_OPEN_PRED
	 ")"},
};
