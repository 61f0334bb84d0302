/*
 * store: schema, WAL, the due scan and the job state machine against a
 * real SQLite file in a private temp directory.
 *
 * Fixtures go in through the API only (profile, hosts, certificates);
 * the layout checks open the file with sqlite3 directly. Every struct
 * the API fills is released so ASan sees no leak.
 */
#define _GNU_SOURCE
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/common.h"
#include "store/store.h"

#define DAY INT64_C(86400)
#define NOW INT64_C(1700000000)
#define NCERTS 10
#define NDUE 3
#define CA "ca1"

static const char *const PROF = "6f1c2f64-3b0e-4c51-9d0f-0a4b8f3c2e11";
static const char *const PROF2 = "7a2d3e75-4c1f-4d62-8e10-1b5c904d3f22";
static const char TEMPLATE[] = "<plist><string>$RENEWAL_ID</string></plist>";

typedef struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	store *s;
	char hosts[NCERTS][37];
	int64_t cert[NCERTS]; /* ids of the fixture certificates */
} fx;

/* ---- helpers ---------------------------------------------------------- */

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static void
host_uuid(int i, char out[37])
{
	snprintf(out, 37, "00000000-0000-4000-8000-%012d", i);
}

static void
fill_cert(store_cert *c, const char *host, const char *profile, int serial,
	  int64_t renew_at)
{
	static char sha[4][65];
	static char ser[4][16], subj[4][64];
	static int slot;

	slot = (slot + 1) % 4;
	memset(c, 0, sizeof(*c));
	snprintf(ser[slot], sizeof(ser[slot]), "%04x", serial);
	snprintf(subj[slot], sizeof(subj[slot]), "CN=%s,OU=cert-%d", host,
		 serial);
	rn_sha256_hex(subj[slot], strlen(subj[slot]), sha[slot]);
	/* borrowed strings: the API only reads them */
	c->host_uuid = (char *)host;
	c->profile_uuid = (char *)profile;
	c->ca_name = (char *)CA;
	c->serial = ser[slot];
	c->subject = subj[slot];
	c->issuer = (char *)"CN=Test CA";
	c->sha256 = sha[slot];
	c->policy = (char *)"default";
	c->not_valid_before = NOW - 300 * DAY;
	c->not_valid_after = NOW + 65 * DAY;
	c->renew_at = renew_at;
}

static void
add_profile(store *s, const char *uuid, const char *ident)
{
	store_profile p;
	char sha[65];

	memset(&p, 0, sizeof(p));
	rn_sha256_hex(TEMPLATE, sizeof(TEMPLATE) - 1, sha);
	p.uuid = (char *)uuid;
	p.identifier = (char *)ident;
	p.name = (char *)"Wi-Fi";
	p.ca_name = (char *)CA;
	p.template = (char *)TEMPLATE;
	p.template_len = sizeof(TEMPLATE) - 1;
	p.sha256 = sha;
	p.source_path = (char *)"/etc/renewd/profiles/wifi.mobileconfig";
	assert_int_equal(store_profile_upsert(s, &p, NOW - 400 * DAY), RN_OK);
}

static int
open_rw(fx *f)
{
	char *err = NULL;
	int rc = store_open(f->path, 0, &f->s, &err);

	if (rc)
		print_message("store_open: %s\n", err ? err : "?");
	free(err);
	return rc;
}

/* Fresh directory and database; with_data adds the fixture fleet: 10
 * hosts with one certificate each, the first NDUE due before NOW. */
static fx *
fx_new(int with_data)
{
	fx *f = calloc(1, sizeof(*f));
	int i;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/renewd-store-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/renewd.db", f->dir);
	if (!with_data)
		return f;
	assert_int_equal(open_rw(f), RN_OK);
	add_profile(f->s, PROF, "com.example.wifi");
	add_profile(f->s, PROF2, "com.example.vpn");
	for (i = 0; i < NCERTS; i++) {
		store_cert c;
		int dup = -1;

		host_uuid(i, f->hosts[i]);
		assert_int_equal(store_host_upsert(f->s, f->hosts[i], "C02X",
						   NOW - 400 * DAY),
				 RN_OK);
		assert_int_equal(store_host_profile_add(f->s, f->hosts[i],
							PROF),
				 RN_OK);
		fill_cert(&c, f->hosts[i], PROF, i,
			  i < NDUE ? NOW - 100 + i : NOW + 1000 * i);
		assert_int_equal(store_cert_install(f->s, &c, 0,
						    NOW - 300 * DAY, &dup),
				 RN_OK);
		assert_int_equal(dup, 0);
		assert_true(c.id > 0);
		f->cert[i] = c.id;
	}
	return f;
}

static void
fx_free(fx *f)
{
	store_close(f->s);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
}

static int
setup_data(void **state)
{
	*state = fx_new(1);
	return 0;
}

static int
setup_empty(void **state)
{
	*state = fx_new(0);
	return 0;
}

static int
teardown(void **state)
{
	fx_free(*state);
	return 0;
}

static char *query_text(sqlite3 *db, const char *sql);

/*
 * After every test on the fixture fleet: each due-queue row carries its
 * certificate's triple and renew_at, and only current certificates are
 * queued (the scan makes jobs from the queue rows alone).
 */
static int
teardown_data(void **state)
{
	fx *f = *state;
	sqlite3 *db;
	char *v;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
					 NULL),
			 SQLITE_OK);
	v = query_text(db, "SELECT COUNT(*) || ' of ' || (SELECT COUNT(*) "
			   "FROM renewal_schedule) FROM renewal_schedule s "
			   "LEFT JOIN managed_certificates c ON c.id = "
			   "s.cert_id WHERE c.id IS NULL OR s.renew_at IS NOT "
			   "c.renew_at OR s.host_uuid IS NOT c.host_uuid OR "
			   "s.profile_uuid IS NOT c.profile_uuid OR s.ca_name "
			   "IS NOT c.ca_name OR c.state IS NOT 'active'");
	assert_non_null(v);
	if (strncmp(v, "0 of", 4) != 0)
		print_message("due queue rows that disagree with their "
			      "certificate: %s\n", v);
	assert_true(strncmp(v, "0 of", 4) == 0);
	free(v);
	sqlite3_close(db);
	return teardown(state);
}

static void
expect_cert(store *s, int64_t id, const char *state, int64_t renew_at)
{
	store_cert c;

	assert_int_equal(store_cert_get(s, id, &c), RN_OK);
	if (strcmp(c.state, state) != 0)
		print_message("certificate %lld: state %s, want %s\n",
			      (long long)id, c.state, state);
	assert_string_equal(c.state, state);
	if (renew_at >= 0)
		assert_true(c.renew_at == renew_at);
	store_cert_release(&c);
}

static void
get_job(store *s, int64_t id, store_job *j)
{
	assert_int_equal(store_job_get(s, id, j), RN_OK);
	assert_true(j->id == id);
}

/* Events of a job as "a,b,c". */
typedef struct evlist {
	char text[1024];
	int n;
} evlist;

static int
ev_cb(void *arg, const store_event *e)
{
	evlist *l = arg;
	size_t len = strlen(l->text);

	snprintf(l->text + len, sizeof(l->text) - len, "%s%s",
		 l->n ? "," : "", e->event);
	l->n++;
	return 0;
}

static void
expect_events(store *s, int64_t job, const char *want)
{
	evlist l;

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_job_events_each(s, job, ev_cb, &l), RN_OK);
	if (strcmp(l.text, want) != 0)
		print_message("job %lld events '%s', want '%s'\n",
			      (long long)job, l.text, want);
	assert_string_equal(l.text, want);
}

/* Collected jobs from a listing callback (ids and a few fields). */
typedef struct joblist {
	int n;
	int64_t id[64], cert[64], next[64];
	int attempts[64];
	char state[64][16], kind[64][16];
} joblist;

static int
job_cb(void *arg, const store_job *j)
{
	joblist *l = arg;

	assert_true(l->n < 64);
	l->id[l->n] = j->id;
	l->cert[l->n] = j->cert_id;
	l->next[l->n] = j->next_attempt_at;
	l->attempts[l->n] = j->attempts;
	snprintf(l->state[l->n], 16, "%s", j->state);
	snprintf(l->kind[l->n], 16, "%s", j->kind);
	l->n++;
	return 0;
}

static int64_t
count_of(const store_count *c, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(c[i].name, name) == 0)
			return c[i].n;
	return 0;
}

/* The open job of certificate `cert` (via the queued listing). */
static int64_t
job_of_cert(store *s, int64_t cert)
{
	joblist l;
	int i;

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_each(s, NULL, 0, job_cb, &l), RN_OK);
	for (i = 0; i < l.n; i++)
		if (l.cert[i] == cert)
			return l.id[i];
	return 0;
}

/* ---- open and schema -------------------------------------------------- */

static void
test_open_creates_schema(void **state)
{
	fx *f = *state;
	store *ro = NULL;
	char *err = NULL;

	assert_int_equal(access(f->path, F_OK), -1);
	assert_int_equal(open_rw(f), RN_OK);
	assert_non_null(f->s);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(access(f->path, F_OK), 0);

	/* reopen read-write: no migration, same version */
	assert_int_equal(open_rw(f), RN_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);

	/* read-only open of an initialised database works */
	assert_int_equal(store_open(f->path, 1, &ro, &err), RN_OK);
	assert_null(err);
	assert_non_null(ro);
	assert_int_equal(store_schema_version(ro), STORE_SCHEMA_VERSION);
	store_close(ro);
}

static void
test_open_readonly_missing(void **state)
{
	fx *f = *state;
	store *ro = (store *)0x1;
	char *err = NULL;

	assert_int_not_equal(store_open(f->path, 1, &ro, &err), RN_OK);
	assert_null(ro);
	assert_non_null(err);
	assert_true(strlen(err) > 0);
	free(err);
	/* and it did not create the file */
	assert_int_equal(access(f->path, F_OK), -1);
}

static void
test_open_readonly_uninitialised(void **state)
{
	fx *f = *state;
	store *ro = (store *)0x1;
	char *err = NULL;
	sqlite3 *db;

	/* a valid but empty SQLite database (user_version 0) */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "CREATE TABLE x (a)", NULL, NULL,
				      NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	assert_int_equal(store_open(f->path, 1, &ro, &err), RN_ESTORE);
	assert_null(ro);
	assert_non_null(err);
	assert_non_null(strstr(err, "not initialised"));
	free(err);

	/* read-only did not migrate it */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	{
		sqlite3_stmt *st;
		assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version",
						    -1, &st, NULL),
				 SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int(st, 0), 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

static void
test_open_newer_schema(void **state)
{
	fx *f = *state;
	store *s = (store *)0x1;
	char *err = NULL;
	sqlite3 *db;

	assert_int_equal(open_rw(f), RN_OK);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL,
				      NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);

	assert_int_not_equal(store_open(f->path, 0, &s, &err), RN_OK);
	assert_null(s);
	assert_non_null(err);
	assert_non_null(strstr(err, "99"));
	free(err);
	err = NULL;
	s = (store *)0x1;
	assert_int_not_equal(store_open(f->path, 1, &s, &err), RN_OK);
	assert_null(s);
	assert_non_null(err);
	free(err);
}

static char *
query_text(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	char *v = NULL;

	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
			 SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0))
		v = strdup((const char *)sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	return v;
}

static void
test_layout_wal_indexes_plan(void **state)
{
	fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *st;
	char *v;
	int uses_range = 0, scans_table = 0;
	size_t i;
	static const char *const objects[][2] = {
		{ "table", "hosts" },
		{ "table", "profiles" },
		{ "table", "host_profiles" },
		{ "table", "managed_certificates" },
		{ "table", "renewal_jobs" },
		{ "table", "job_renewal_ids" },
		{ "table", "job_events" },
		{ "table", "scep_tokens" },
		{ "table", "notifications" },
		{ "table", "renewal_schedule" },
		{ "index", "mc_current" },
		{ "index", "rj_open" },
	};

	/* keep the store open meanwhile, as renewd and renewctl would */
	assert_non_null(f->s);
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
					 NULL),
			 SQLITE_OK);
	v = query_text(db, "PRAGMA journal_mode");
	assert_non_null(v);
	assert_string_equal(v, "wal");
	free(v);

	for (i = 0; i < sizeof(objects) / sizeof(objects[0]); i++) {
		assert_int_equal(sqlite3_prepare_v2(
				     db,
				     "SELECT count(*) FROM sqlite_master "
				     "WHERE type = ?1 AND name = ?2",
				     -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_text(st, 1, objects[i][0], -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, objects[i][1], -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		if (sqlite3_column_int(st, 0) != 1)
			print_message("missing %s %s\n", objects[i][0],
				      objects[i][1]);
		assert_int_equal(sqlite3_column_int(st, 0), 1);
		sqlite3_finalize(st);
	}

	/* the due scan is a range read on the renewal_schedule primary key
	 * and nothing else: the queue rows carry what a job needs, so no
	 * certificate row is read (schema 6) */
	assert_int_equal(
	    sqlite3_prepare_v2(db,
			       "EXPLAIN QUERY PLAN SELECT host_uuid, "
			       "profile_uuid, ca_name, cert_id FROM "
			       "renewal_schedule WHERE (renew_at, cert_id) <= "
			       "(5, 9) ORDER BY renew_at, cert_id",
			       -1, &st, NULL),
	    SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *d = (const char *)sqlite3_column_text(st, 3);
		if (d == NULL)
			continue;
		if (strstr(d, "SEARCH renewal_schedule USING PRIMARY KEY "
			      "((renew_at,cert_id)<"))
			uses_range = 1;
		else
			scans_table = 1; /* another table, or another way */
		if (strncmp(d, "SCAN", 4) == 0 && strstr(d, "INDEX") == NULL)
			scans_table = 1;
		if (strstr(d, "TEMP B-TREE"))
			scans_table = 1; /* sorting instead of index order */
	}
	sqlite3_finalize(st);
	assert_true(uses_range);
	assert_false(scans_table);
	sqlite3_close(db);
}

static void
test_foreign_keys_on(void **state)
{
	fx *f = *state;
	store_cert c;
	int dup = 0;
	size_t n = 0;
	store_count cnt[8];

	/* unknown host: refused by the foreign key, nothing written */
	fill_cert(&c, "ffffffff-ffff-4fff-bfff-ffffffffffff", PROF, 99, NOW);
	assert_int_not_equal(store_cert_install(f->s, &c, 0, NOW, &dup),
			     RN_OK);
	assert_int_equal(store_cert_counts(f->s, cnt, 8, &n), RN_OK);
	assert_true(count_of(cnt, n, "active") == NCERTS);
}

static void
test_host_profile_roundtrip(void **state)
{
	fx *f = *state;
	store_host h;
	store_profile p;

	/* serial NULL keeps the stored one, last_seen moves */
	assert_int_equal(store_host_upsert(f->s, f->hosts[0], NULL, NOW),
			 RN_OK);
	assert_int_equal(store_host_get(f->s, f->hosts[0], &h), RN_OK);
	assert_string_equal(h.uuid, f->hosts[0]);
	assert_string_equal(h.serial_number, "C02X");
	assert_true(h.first_seen == NOW - 400 * DAY);
	assert_true(h.last_seen == NOW);
	store_host_release(&h);
	assert_int_equal(store_host_get(f->s, "nope", &h), RN_ENOTFOUND);

	assert_int_equal(store_profile_get(f->s, PROF, &p), RN_OK);
	assert_string_equal(p.identifier, "com.example.wifi");
	assert_string_equal(p.ca_name, CA);
	assert_int_equal(p.template_len, sizeof(TEMPLATE) - 1);
	assert_memory_equal(p.template, TEMPLATE, sizeof(TEMPLATE) - 1);
	store_profile_release(&p);
}

/* ---- scan ------------------------------------------------------------- */

static void
test_scan_due(void **state)
{
	fx *f = *state;
	int seen = -1, enq = -1, i;
	joblist l;

	assert_true(store_next_due(f->s) == NOW - 100);
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, NDUE);
	assert_int_equal(enq, NDUE);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_each(f->s, JOB_QUEUED, 0, job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, NDUE);
	for (i = 0; i < NCERTS; i++) {
		int64_t j = job_of_cert(f->s, f->cert[i]);
		if (i < NDUE) {
			store_job job;
			assert_true(j > 0);
			get_job(f->s, j, &job);
			assert_string_equal(job.state, JOB_QUEUED);
			assert_string_equal(job.kind, "renew");
			assert_string_equal(job.host_uuid, f->hosts[i]);
			assert_string_equal(job.profile_uuid, PROF);
			assert_string_equal(job.ca_name, CA);
			assert_int_equal(job.attempts, 0);
			assert_null(job.renewal_id);
			assert_true(job.next_attempt_at <= NOW);
			store_job_release(&job);
			expect_events(f->s, j, "enqueued");
			expect_cert(f->s, f->cert[i], "renewing", -1);
		} else {
			assert_true(j == 0);
			expect_cert(f->s, f->cert[i], "active",
				    NOW + 1000 * i);
		}
	}
	/* renewing certificates left the due index */
	assert_true(store_next_due(f->s) == NOW + 3000);

	/* second scan: nothing left */
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, 0);
	assert_int_equal(enq, 0);

	/* limit: a later scan takes at most `limit`, earliest first */
	assert_int_equal(store_scan_due(f->s, NOW + 6000, 2, &seen, &enq),
			 RN_OK);
	assert_int_equal(seen, 2);
	assert_int_equal(enq, 2);
	expect_cert(f->s, f->cert[3], "renewing", -1);
	expect_cert(f->s, f->cert[4], "renewing", -1);
	expect_cert(f->s, f->cert[5], "active", -1);
}

static void
test_enqueue_open_triple(void **state)
{
	fx *f = *state;
	int seen, enq;
	int64_t j0, id = -1;
	size_t n = 0;
	store_count cnt[8];

	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	j0 = job_of_cert(f->s, f->cert[0]);
	assert_true(j0 > 0);
	assert_int_equal(store_job_enqueue(f->s, f->hosts[0], PROF, CA,
					   "resend", 0, "again", NOW + 1, &id),
			 RN_EEXIST);
	assert_true(id == j0);
	assert_int_equal(store_job_counts(f->s, cnt, 8, &n), RN_OK);
	assert_int_equal(n, 1);
	assert_true(count_of(cnt, n, JOB_QUEUED) == NDUE);

	/* a fresh triple gets a new job */
	assert_int_equal(store_job_enqueue(f->s, f->hosts[0], PROF2, CA,
					   "issue", 0, "new profile", NOW + 2,
					   &id),
			 RN_OK);
	assert_true(id > 0 && id != j0);
	expect_events(f->s, id, "enqueued");
	/* enqueue with a cert id takes the certificate out of the scan */
	assert_int_equal(store_job_enqueue(f->s, f->hosts[9], PROF, CA,
					   "renew", f->cert[9], "operator",
					   NOW + 3, &id),
			 RN_OK);
	expect_cert(f->s, f->cert[9], "renewing", -1);
}

/*
 * A certificate installed for a triple while a job is open for it leaves
 * the due queue at its due time without a job of its own (the open job
 * renews it). When that job ends without a certificate, the triple's
 * current certificate goes back into the queue, even when it is not the
 * one the job was started for; one still queued keeps its due time.
 */
static void
test_job_end_rearms_current(void **state)
{
	fx *f = *state;
	store_cert c;
	int64_t issue = 0, resend = 0, x, y;
	int seen, enq, dup = -1;

	/* an issue job for a triple without a certificate */
	assert_int_equal(store_job_enqueue(f->s, f->hosts[0], PROF2, CA,
					   "issue", 0, "enrolled", NOW - 500,
					   &issue),
			 RN_OK);
	/* a certificate for it arrives by import, already due */
	fill_cert(&c, f->hosts[0], PROF2, 100, NOW - 50);
	assert_int_equal(store_cert_install(f->s, &c, 0, NOW - 400, &dup),
			 RN_OK);
	x = c.id;
	expect_cert(f->s, x, "active", NOW - 50);
	/* the scan takes it out of the queue: the issue job renews it */
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, NDUE + 1);
	assert_int_equal(enq, NDUE);
	expect_cert(f->s, x, "renewing", -1);
	/* the issue job is cancelled: the certificate is queued again */
	assert_int_equal(store_job_cancel(f->s, issue, "operator", NOW + DAY,
					  NOW + 1),
			 RN_OK);
	expect_cert(f->s, x, "active", NOW + DAY);

	/* a resend of x, then a newer certificate y while it is open */
	assert_int_equal(store_job_enqueue(f->s, f->hosts[0], PROF2, CA,
					   "resend", x, "operator", NOW + 2,
					   &resend),
			 RN_OK);
	expect_cert(f->s, x, "renewing", -1);
	fill_cert(&c, f->hosts[0], PROF2, 101, NOW + 5 * DAY);
	assert_int_equal(store_cert_install(f->s, &c, 0, NOW + 3, &dup),
			 RN_OK);
	y = c.id;
	expect_cert(f->s, x, "superseded", -1);
	expect_cert(f->s, y, "active", NOW + 5 * DAY);
	/* the resend fails for good: y, still queued, keeps its time */
	assert_int_equal(store_job_cancel(f->s, resend, "operator", NOW + DAY,
					  NOW + 4),
			 RN_OK);
	expect_cert(f->s, y, "active", NOW + 5 * DAY);
}

/* The start-up pass: due times as they are, each state seen counted. */
static int
keep_renew_at(void *arg, const store_cert *c, int64_t *at, const char **pol)
{
	int *renewing = arg;

	(void)at;
	(void)pol;
	if (strcmp(c->state, "renewing") == 0)
		(*renewing)++;
	return RN_OK;
}

/*
 * A current certificate out of the due queue without an open job for its
 * triple (left by an older renewd, or by hand) is queued again by the
 * pass over every certificate after a start; one whose job is open stays
 * out.
 */
static void
test_rearm_requeues_orphan(void **state)
{
	fx *f = *state;
	sqlite3 *db;
	int64_t last = 0;
	int seen, enq, n = 0, renewing = 0;

	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	assert_int_equal(sqlite3_exec(db, "DELETE FROM renewal_schedule WHERE "
					  "cert_id = 6",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_changes(db), 1);
	sqlite3_close(db);
	assert_true(f->cert[5] == 6);
	expect_cert(f->s, f->cert[5], "renewing", -1);

	assert_int_equal(store_certs_rearm(f->s, 0, 100, keep_renew_at,
					   &renewing, &last, &n),
			 RN_OK);
	assert_true(last == -1);
	assert_int_equal(n, 0);
	assert_int_equal(renewing, NDUE); /* the orphan was seen as queued */
	expect_cert(f->s, f->cert[5], "active", NOW + 5000);
	for (n = 0; n < NDUE; n++)
		expect_cert(f->s, f->cert[n], "renewing", -1);
}

/* ---- job life cycle --------------------------------------------------- */

static void
test_job_lifecycle(void **state)
{
	fx *f = *state;
	int seen, enq, dup = -1, n = -1;
	int64_t j0, j1, j2, verify_at = NOW + 3 * DAY, new_id, jm = 0;
	store_job j;
	store_cert c, cur;
	joblist l;
	size_t cn = 0;
	store_count cnt[8];

	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	j0 = job_of_cert(f->s, f->cert[0]);
	j1 = job_of_cert(f->s, f->cert[1]);
	j2 = job_of_cert(f->s, f->cert[2]);
	assert_true(j0 > 0 && j1 > 0 && j2 > 0);

	/* queued -> running */
	assert_int_equal(store_job_start(f->s, j0, "RID-A", NOW + 10, &j),
			 RN_OK);
	assert_true(j.id == j0);
	assert_string_equal(j.state, JOB_RUNNING);
	assert_int_equal(j.attempts, 1);
	assert_string_equal(j.renewal_id, "RID-A");
	store_job_release(&j);
	assert_int_equal(store_job_by_renewal_id(f->s, "RID-A", &j), RN_OK);
	assert_true(j.id == j0);
	assert_string_equal(j.state, JOB_RUNNING);
	store_job_release(&j);
	assert_int_equal(store_job_by_renewal_id(f->s, "RID-none", &j),
			 RN_ENOTFOUND);
	/* not queued any more */
	assert_int_equal(store_job_start(f->s, j0, "RID-X", NOW + 11, &j),
			 RN_EBUSY);
	store_job_release(&j);

	/* running -> pushed with the verify deadline */
	assert_int_equal(store_job_pushed(f->s, j0, "cmd-1", verify_at,
					  "accepted", NOW + 20),
			 RN_OK);
	get_job(f->s, j0, &j);
	assert_string_equal(j.state, JOB_PUSHED);
	assert_string_equal(j.command_uuid, "cmd-1");
	assert_true(j.next_attempt_at == verify_at);
	assert_int_equal(j.attempts, 1);
	store_job_release(&j);
	assert_int_equal(store_job_pushed(f->s, j0, "cmd-2", verify_at, "x",
					  NOW + 21),
			 RN_EBUSY);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_due(f->s, JOB_PUSHED, verify_at - 1, 10,
					job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, 0);
	assert_int_equal(store_jobs_due(f->s, JOB_PUSHED, verify_at, 10,
					job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, 1);
	assert_true(l.id[0] == j0);

	/* the renewed certificate arrives: job verified, old superseded */
	fill_cert(&c, f->hosts[0], PROF, 100, NOW + 335 * DAY);
	c.renewal_id = (char *)"RID-A";
	c.not_valid_before = NOW;
	c.not_valid_after = NOW + 365 * DAY;
	assert_int_equal(store_cert_install(f->s, &c, j0, NOW + 30, &dup),
			 RN_OK);
	assert_int_equal(dup, 0);
	new_id = c.id;
	assert_true(new_id > f->cert[NCERTS - 1]);
	get_job(f->s, j0, &j);
	assert_string_equal(j.state, JOB_VERIFIED);
	store_job_release(&j);
	expect_cert(f->s, f->cert[0], "superseded", -1);
	expect_cert(f->s, new_id, "active", NOW + 335 * DAY);
	assert_int_equal(store_cert_current(f->s, f->hosts[0], PROF, CA, &cur),
			 RN_OK);
	assert_true(cur.id == new_id);
	assert_true(cur.job_id == j0);
	assert_string_equal(cur.renewal_id, "RID-A");
	assert_string_equal(cur.sha256, c.sha256);
	assert_true(cur.not_valid_after == NOW + 365 * DAY);
	store_cert_release(&cur);
	expect_events(f->s, j0, "enqueued,attempt_started,pushed,verified");

	/* the same certificate again (e.g. CertificateList): a no-op */
	assert_int_equal(store_cert_install(f->s, &c, j0, NOW + 40, &dup),
			 RN_OK);
	assert_int_equal(dup, 1);
	assert_true(c.id == new_id);
	expect_cert(f->s, new_id, "active", NOW + 335 * DAY);
	expect_cert(f->s, f->cert[0], "superseded", -1);
	expect_events(f->s, j0, "enqueued,attempt_started,pushed,verified");
	assert_int_equal(store_cert_counts(f->s, cnt, 8, &cn), RN_OK);
	assert_true(count_of(cnt, cn, "superseded") == 1);
	assert_true(count_of(cnt, cn, "active") == NCERTS - NDUE + 1);

	/* a failed attempt with a retry: back to queued, ID dropped */
	assert_int_equal(store_job_start(f->s, j1, "RID-B1", NOW + 50, &j),
			 RN_OK);
	store_job_release(&j);
	assert_int_equal(store_job_attempt_failed(f->s, j1, JOB_RUNNING,
						  "attempt_failed", "mdm 500",
						  NOW + 500, 0, NOW + 60),
			 RN_OK);
	get_job(f->s, j1, &j);
	assert_string_equal(j.state, JOB_QUEUED);
	assert_null(j.renewal_id);
	assert_true(j.next_attempt_at == NOW + 500);
	assert_int_equal(j.attempts, 1);
	assert_string_equal(j.last_error, "mdm 500");
	store_job_release(&j);
	/* the old renewal ID still maps to the job */
	assert_int_equal(store_job_by_renewal_id(f->s, "RID-B1", &j), RN_OK);
	assert_true(j.id == j1);
	store_job_release(&j);
	expect_cert(f->s, f->cert[1], "renewing", -1);
	/* wrong `from` state */
	assert_int_equal(store_job_attempt_failed(f->s, j1, JOB_RUNNING,
						  "attempt_failed", "x",
						  NOW + 600, 0, NOW + 61),
			 RN_EBUSY);

	/* second attempt gets a fresh ID; then attempts exhausted */
	assert_int_equal(store_job_start(f->s, j1, "RID-B2", NOW + 500, &j),
			 RN_OK);
	assert_int_equal(j.attempts, 2);
	assert_string_equal(j.renewal_id, "RID-B2");
	store_job_release(&j);
	assert_int_equal(store_job_attempt_failed(f->s, j1, JOB_RUNNING,
						  "attempt_failed", "mdm 500",
						  0, NOW + 7 * DAY, NOW + 510),
			 RN_OK);
	get_job(f->s, j1, &j);
	assert_string_equal(j.state, JOB_FAILED);
	store_job_release(&j);
	expect_cert(f->s, f->cert[1], "active", NOW + 7 * DAY);
	expect_events(f->s, j1,
		      "enqueued,attempt_started,attempt_failed,"
		      "attempt_started,attempt_failed,failed");

	/* restart during an attempt: running -> queued, attempt not
	 * counted, same renewal ID kept for the next attempt */
	assert_int_equal(store_job_start(f->s, j2, "RID-C", NOW + 600, &j),
			 RN_OK);
	store_job_release(&j);
	assert_int_equal(store_jobs_recover(f->s, NOW + 700, &n), RN_OK);
	assert_int_equal(n, 1);
	get_job(f->s, j2, &j);
	assert_string_equal(j.state, JOB_QUEUED);
	assert_int_equal(j.attempts, 0);
	store_job_release(&j);
	expect_events(f->s, j2, "enqueued,attempt_started,recovered");
	assert_int_equal(store_jobs_recover(f->s, NOW + 701, &n), RN_OK);
	assert_int_equal(n, 0);
	assert_int_equal(store_job_start(f->s, j2, "RID-C2", NOW + 800, &j),
			 RN_OK);
	assert_int_equal(j.attempts, 1);
	assert_string_equal(j.renewal_id, "RID-C");
	store_job_release(&j);

	/* cancel: final job refused, open job cancelled and cert re-armed */
	assert_int_equal(store_job_cancel(f->s, j0, "operator", NOW + DAY,
					  NOW + 900),
			 RN_EBUSY);
	get_job(f->s, j0, &j);
	assert_string_equal(j.state, JOB_VERIFIED);
	store_job_release(&j);
	assert_int_equal(store_job_cancel(f->s, j2, "operator", NOW + 2 * DAY,
					  NOW + 900),
			 RN_OK);
	get_job(f->s, j2, &j);
	assert_string_equal(j.state, JOB_CANCELLED);
	store_job_release(&j);
	expect_cert(f->s, f->cert[2], "active", NOW + 2 * DAY);
	expect_events(f->s, j2,
		      "enqueued,attempt_started,recovered,attempt_started,"
		      "cancelled");
	assert_int_equal(store_job_cancel(f->s, j2, "again", NOW, NOW + 901),
			 RN_EBUSY);

	/* retry a failed job: reopened with attempts reset */
	assert_int_equal(store_job_retry(f->s, j1, NOW + 1000), RN_OK);
	get_job(f->s, j1, &j);
	assert_string_equal(j.state, JOB_QUEUED);
	assert_int_equal(j.attempts, 0);
	assert_null(j.renewal_id);
	assert_true(j.next_attempt_at == NOW + 1000);
	store_job_release(&j);
	expect_cert(f->s, f->cert[1], "renewing", -1);
	/* a verified job is not reopened */
	assert_int_not_equal(store_job_retry(f->s, j0, NOW + 1001), RN_OK);
	get_job(f->s, j0, &j);
	assert_string_equal(j.state, JOB_VERIFIED);
	store_job_release(&j);
	/* a cancelled job whose triple has another open job: RN_EEXIST */
	assert_int_equal(store_job_enqueue(f->s, f->hosts[2], PROF, CA,
					   "resend", 0, "operator", NOW + 1100,
					   &jm),
			 RN_OK);
	assert_int_equal(store_job_retry(f->s, j2, NOW + 1200), RN_EEXIST);
	get_job(f->s, j2, &j);
	assert_string_equal(j.state, JOB_CANCELLED);
	store_job_release(&j);

	/* counts: j0 verified, j1 queued, j2 cancelled, jm queued */
	assert_int_equal(store_job_counts(f->s, cnt, 8, &cn), RN_OK);
	assert_int_equal(cn, 3);
	assert_true(count_of(cnt, cn, JOB_VERIFIED) == 1);
	assert_true(count_of(cnt, cn, JOB_QUEUED) == 2);
	assert_true(count_of(cnt, cn, JOB_CANCELLED) == 1);
	assert_int_equal(store_cert_counts(f->s, cnt, 8, &cn), RN_OK);
	assert_int_equal(cn, 3);
	/* 11 rows: cert0 superseded, cert1 renewing, rest active */
	assert_true(count_of(cnt, cn, "superseded") == 1);
	assert_true(count_of(cnt, cn, "renewing") == 1);
	assert_true(count_of(cnt, cn, "active") == NCERTS - 1);
}

static void
test_jobs_due_order(void **state)
{
	fx *f = *state;
	static const int64_t at[] = { 500, 100, 300, 200, 400, 300 };
	int64_t id[6];
	joblist l;
	store_job j;
	int i;

	for (i = 0; i < 6; i++)
		assert_int_equal(store_job_enqueue(f->s, f->hosts[i], PROF2,
						   CA, "issue", 0, NULL,
						   NOW + at[i], &id[i]),
				 RN_OK);
	/* one of them running: not listed as queued */
	assert_int_equal(store_job_start(f->s, id[3], "R", NOW, &j), RN_OK);
	store_job_release(&j);

	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_due(f->s, JOB_QUEUED, NOW + 350, 10,
					job_cb, &l),
			 RN_OK);
	/* 100 (id1), 300 (id2), 300 (id5): ties by id */
	assert_int_equal(l.n, 3);
	assert_true(l.id[0] == id[1]);
	assert_true(l.id[1] == id[2]);
	assert_true(l.id[2] == id[5]);
	for (i = 0; i < l.n; i++) {
		assert_string_equal(l.state[i], JOB_QUEUED);
		assert_true(l.next[i] <= NOW + 350);
	}
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_due(f->s, JOB_QUEUED, NOW + 1000, 2,
					job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, 2);
	assert_true(l.id[0] == id[1]);
	assert_true(l.id[1] == id[2]);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_due(f->s, JOB_QUEUED, NOW + 99, 10,
					job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, 0);
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_jobs_due(f->s, JOB_RUNNING, NOW + 1000, 10,
					job_cb, &l),
			 RN_OK);
	assert_int_equal(l.n, 1);
	assert_true(l.id[0] == id[3]);
	assert_true(store_jobs_next_at(f->s, JOB_QUEUED) == NOW + 100);
	assert_true(store_jobs_next_at(f->s, JOB_PUSHED) == 0);
}

/* ---- listing ---------------------------------------------------------- */

typedef struct certlist {
	int n;
	int64_t id[64];
	char host[64][37];
	char state[64][16];
} certlist;

static int
cert_cb(void *arg, const store_cert *c)
{
	certlist *l = arg;

	assert_true(l->n < 64);
	l->id[l->n] = c->id;
	snprintf(l->host[l->n], 37, "%s", c->host_uuid);
	snprintf(l->state[l->n], 16, "%s", c->state);
	l->n++;
	return 0;
}

static int
stop_cb(void *arg, const store_cert *c)
{
	(*(int *)arg)++;
	return 42;
}

static void
test_certs_each_filters(void **state)
{
	fx *f = *state;
	store_cert_filter flt;
	certlist l;
	store_cert c;
	int seen, enq, dup, calls = 0, i;

	/* host 4 gets a second (new) certificate; 0..2 become renewing */
	fill_cert(&c, f->hosts[4], PROF, 200, NOW + 100 * DAY);
	assert_int_equal(store_cert_install(f->s, &c, 0, NOW, &dup), RN_OK);
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, NDUE);

	memset(&flt, 0, sizeof(flt));
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, NCERTS + 1);
	for (i = 1; i < l.n; i++)
		assert_true(l.id[i] > l.id[i - 1]);

	flt.host_uuid = f->hosts[4];
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, 2);
	assert_true(l.id[0] == f->cert[4]);
	assert_string_equal(l.state[0], "superseded");
	assert_true(l.id[1] == c.id);
	assert_string_equal(l.state[1], "active");

	flt.state = "active";
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, 1);
	assert_true(l.id[0] == c.id);

	/* state only */
	flt.host_uuid = NULL;
	flt.state = "renewing";
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, NDUE);
	for (i = 0; i < NDUE; i++) {
		assert_true(l.id[i] == f->cert[i]);
		assert_string_equal(l.host[i], f->hosts[i]);
		assert_string_equal(l.state[i], "renewing");
	}
	flt.state = "active";
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, NCERTS - NDUE); /* 3..9 minus 4, plus new */

	/* host with nothing in that state */
	flt.host_uuid = f->hosts[0];
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, 0);

	/* plan: active ones due by a time, in renew_at order */
	memset(&flt, 0, sizeof(flt));
	flt.state = "active";
	flt.renew_before = NOW + 5999; /* cert 6 is due at NOW + 6000 */
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, 2); /* certs 3 and 5 (4 superseded) */
	assert_true(l.id[0] == f->cert[3]);
	assert_true(l.id[1] == f->cert[5]);
	/* ... a certificate with an open job is not among them, however
	 * early its renew_at */
	flt.renew_before = NOW + 100 * DAY;
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, NCERTS - NDUE);
	for (i = 0; i < l.n; i++)
		assert_true(l.id[i] != f->cert[0] && l.id[i] != f->cert[1] &&
			    l.id[i] != f->cert[2]);

	/* plan: the current certificates whose triple has an open job,
	 * the scan's (0..2) and one taken over by an earlier job: host 6's
	 * certificate superseded by an import while a resend of it is open
	 * (the import is what the job now renews) */
	{
		int64_t rj = 0, imported;

		assert_int_equal(store_job_enqueue(f->s, f->hosts[6], PROF, CA,
						   "resend", f->cert[6], "op",
						   NOW, &rj),
				 RN_OK);
		fill_cert(&c, f->hosts[6], PROF, 201, NOW + 200 * DAY);
		assert_int_equal(store_cert_install(f->s, &c, 0, NOW, &dup),
				 RN_OK);
		imported = c.id;
		memset(&flt, 0, sizeof(flt));
		flt.state = "renewing";
		flt.open_job = 1;
		memset(&l, 0, sizeof(l));
		assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l),
				 RN_OK);
		assert_int_equal(l.n, NDUE);
		for (i = 0; i < NDUE; i++)
			assert_true(l.id[i] == f->cert[i]);
		flt.state = NULL; /* current ones with an open job, any state */
		memset(&l, 0, sizeof(l));
		assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l),
				 RN_OK);
		assert_int_equal(l.n, NDUE + 1);
		assert_true(l.id[NDUE] == imported);
		assert_string_equal(l.state[NDUE], "active");
	}

	/* limit and a callback that stops */
	memset(&flt, 0, sizeof(flt));
	flt.limit = 4;
	memset(&l, 0, sizeof(l));
	assert_int_equal(store_certs_each(f->s, &flt, cert_cb, &l), RN_OK);
	assert_int_equal(l.n, 4);
	flt.limit = 0;
	assert_int_equal(store_certs_each(f->s, &flt, stop_cb, &calls), 42);
	assert_int_equal(calls, 1);
}


/* ---- SCEP tokens and proxy lookups ------------------------------------ */

static void
test_tokens_and_lookups(void **state)
{
	fx *f = *state;
	store_token t;
	store_job j;
	int seen, enq;
	int64_t j0;

	/* a token is stored by hash, found once, consumed once */
	assert_int_equal(store_token_get(f->s, "feed", &t), RN_ENOTFOUND);
	assert_int_equal(store_token_insert(f->s, "feed", f->hosts[0], PROF,
					    CA, 0, NOW + 7 * DAY, NOW),
			 RN_OK);
	assert_int_equal(store_token_get(f->s, "feed", &t), RN_OK);
	assert_string_equal(t.host_uuid, f->hosts[0]);
	assert_string_equal(t.profile_uuid, PROF);
	assert_string_equal(t.ca_name, CA);
	assert_true(t.expires_at == NOW + 7 * DAY);
	assert_true(t.consumed_at == 0);
	assert_int_equal(store_token_consume(f->s, "feed", NOW + 5), RN_OK);
	assert_int_equal(store_token_consume(f->s, "feed", NOW + 6), RN_EBUSY);
	assert_int_equal(store_token_get(f->s, "feed", &t), RN_OK);
	assert_true(t.consumed_at == NOW + 5);
	assert_int_equal(store_token_consume(f->s, "none", NOW), RN_EBUSY);
	/* the same hash twice is refused */
	assert_int_not_equal(store_token_insert(f->s, "feed", f->hosts[1],
						PROF, CA, 0, NOW, NOW),
			     RN_OK);

	/* assignment and open-job lookups */
	assert_int_equal(store_host_profile_has(f->s, f->hosts[0], PROF), 1);
	assert_int_equal(store_host_profile_has(f->s, f->hosts[0], PROF2), 0);
	assert_int_equal(store_job_open(f->s, f->hosts[0], PROF, CA, &j),
			 RN_ENOTFOUND);
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	j0 = job_of_cert(f->s, f->cert[0]);
	assert_int_equal(store_job_open(f->s, f->hosts[0], PROF, CA, &j),
			 RN_OK);
	assert_true(j.id == j0);
	assert_string_equal(j.state, JOB_QUEUED);
	store_job_release(&j);
}

/*
 * The proxy's one read answers what the four separate lookups answer:
 * the token row, the assignment, the open job and the current
 * certificate, each for the token's own host, profile and CA.
 */
static void
test_proxy_auth_one_read(void **state)
{
	fx *f = *state;
	store_proxy_auth a;
	int seen, enq;
	int64_t j0;

	assert_int_equal(store_proxy_auth_get(f->s, "cafe", &a),
			 RN_ENOTFOUND);
	assert_int_equal(store_token_insert(f->s, "cafe", f->hosts[0], PROF,
					    CA, 0, NOW + DAY, NOW),
			 RN_OK);
	assert_int_equal(store_token_insert(f->s, "beef", f->hosts[0], PROF2,
					    CA, 0, NOW + DAY, NOW),
			 RN_OK);
	assert_int_equal(store_token_insert(f->s, "d00d", f->hosts[1], PROF,
					    "other-ca", 0, NOW + DAY, NOW),
			 RN_OK);

	/* assigned, a current certificate, no job yet */
	assert_int_equal(store_proxy_auth_get(f->s, "cafe", &a), RN_OK);
	assert_string_equal(a.tok.host_uuid, f->hosts[0]);
	assert_string_equal(a.tok.profile_uuid, PROF);
	assert_string_equal(a.tok.ca_name, CA);
	assert_true(a.tok.job_id == 0);
	assert_true(a.tok.expires_at == NOW + DAY);
	assert_true(a.tok.consumed_at == 0);
	assert_int_equal(a.assigned, 1);
	assert_int_equal(a.has_cert, 1);
	assert_true(a.open_job == 0);

	/* a profile the host is not assigned, nothing current */
	assert_int_equal(store_proxy_auth_get(f->s, "beef", &a), RN_OK);
	assert_int_equal(a.assigned, 0);
	assert_int_equal(a.has_cert, 0);
	assert_true(a.open_job == 0);

	/* assigned, but the CA of the token has no certificate */
	assert_int_equal(store_proxy_auth_get(f->s, "d00d", &a), RN_OK);
	assert_int_equal(a.assigned, 1);
	assert_int_equal(a.has_cert, 0);

	/* a scan opens the job; the read sees it, and stops seeing it once
	 * the job is cancelled */
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	j0 = job_of_cert(f->s, f->cert[0]);
	assert_true(j0 > 0);
	assert_int_equal(store_proxy_auth_get(f->s, "cafe", &a), RN_OK);
	assert_true(a.open_job == j0);
	assert_int_equal(a.has_cert, 1);
	assert_int_equal(store_job_cancel(f->s, j0, "test", NOW + DAY, NOW),
			 RN_OK);
	assert_int_equal(store_proxy_auth_get(f->s, "cafe", &a), RN_OK);
	assert_true(a.open_job == 0);

	/* consumption shows */
	assert_int_equal(store_token_consume(f->s, "cafe", NOW + 5), RN_OK);
	assert_int_equal(store_proxy_auth_get(f->s, "cafe", &a), RN_OK);
	assert_true(a.tok.consumed_at == NOW + 5);
}

static int
count_job(void *arg, const store_job *j)
{
	int64_t *ids = arg;

	ids[ids[0] + 1] = j->id;
	ids[0]++;
	return 0;
}

static int
count_unmatched(void *arg, const store_unmatched *u)
{
	int *n = arg;

	assert_string_equal(u->host_uuid, "HOST-X");
	assert_string_equal(u->serial, "00ff");
	assert_true(u->not_valid_after == NOW + DAY);
	(*n)++;
	return 0;
}

/* What /webhook/mdm needs: event idempotency, host state and enrollment,
 * jobs by command UUID and by host, acknowledgement, unmatched certs. */
static void
test_mdm_ingest(void **state)
{
	fx *f = *state;
	store_host h;
	store_job j;
	store_cert c;
	int64_t id, ids[8] = {0};
	int n = 0;

	/* an event ID is taken once */
	assert_int_equal(store_mdm_event_record(f->s, "e1", "mdm.CheckOut",
						NOW), RN_OK);
	assert_int_equal(store_mdm_event_record(f->s, "e1", "mdm.CheckOut",
						NOW + 1), RN_EEXIST);
	assert_int_equal(store_mdm_event_record(f->s, "e2", NULL, NOW),
			 RN_OK);

	/* host state and enrollment ID */
	assert_int_equal(store_host_set_state(f->s, "HOST-X", "retired", NOW),
			 RN_ENOTFOUND);
	assert_int_equal(store_host_upsert(f->s, "HOST-X", "SN1", NOW), RN_OK);
	assert_int_equal(store_host_set_enrollment(f->s, "HOST-X", "enr-1",
						   NOW), RN_OK);
	assert_int_equal(store_host_set_state(f->s, "HOST-X", "retired", NOW),
			 RN_OK);
	assert_int_equal(store_host_get(f->s, "HOST-X", &h), RN_OK);
	assert_string_equal(h.state, "retired");
	assert_string_equal(h.enrollment_id, "enr-1");
	assert_string_equal(h.serial_number, "SN1");
	store_host_release(&h);
	assert_int_not_equal(store_host_set_state(f->s, "HOST-X", "gone",
						  NOW), RN_OK);
	assert_int_equal(store_host_set_state(f->s, "HOST-X", "active", NOW),
			 RN_OK);

	/* an issue job, pushed, found by its command UUID, acknowledged */
	assert_int_equal(store_job_enqueue(f->s, "HOST-X", PROF, CA, "issue",
					   0, "mdm.Authenticate", NOW, &id),
			 RN_OK);
	assert_int_equal(store_job_by_command_uuid(f->s, "CMD-1", &j),
			 RN_ENOTFOUND);
	assert_int_equal(store_job_acknowledged(f->s, id, NULL, NOW),
			 RN_EBUSY);
	assert_int_equal(store_job_start(f->s, id, "renewd-x", NOW, &j),
			 RN_OK);
	store_job_release(&j);
	assert_int_equal(store_job_pushed(f->s, id, "CMD-1", NOW + DAY, NULL,
					  NOW), RN_OK);
	assert_int_equal(store_job_by_command_uuid(f->s, "CMD-1", &j), RN_OK);
	assert_true(j.id == id);
	store_job_release(&j);
	assert_int_equal(store_job_acknowledged(f->s, id, "installed", NOW),
			 RN_OK);
	assert_int_equal(store_job_acknowledged(f->s, id, "again", NOW),
			 RN_EBUSY);
	assert_int_equal(store_job_get(f->s, id, &j), RN_OK);
	assert_string_equal(j.state, JOB_ACKNOWLEDGED);
	store_job_release(&j);

	/* open jobs of the host: this one only, none once cancelled */
	assert_int_equal(store_host_open_jobs_each(f->s, "HOST-X", count_job,
						   ids), RN_OK);
	assert_true(ids[0] == 1 && ids[1] == id);
	assert_int_equal(store_job_cancel(f->s, id, "host checked out", 0,
					  NOW), RN_OK);
	ids[0] = 0;
	assert_int_equal(store_host_open_jobs_each(f->s, "HOST-X", count_job,
						   ids), RN_OK);
	assert_true(ids[0] == 0);

	/* unmatched certificates: once per host and sha256; a managed one
	 * is never listed */
	memset(&c, 0, sizeof(c));
	c.sha256 = (char *)"aa";
	c.subject = (char *)"CN=other";
	c.serial = (char *)"00ff";
	c.not_valid_after = NOW + DAY;
	assert_int_equal(store_unmatched_add(f->s, "HOST-X", &c, NOW), RN_OK);
	assert_int_equal(store_unmatched_add(f->s, "HOST-X", &c, NOW + 5),
			 RN_OK);
	fill_cert(&c, f->hosts[0], PROF, 0, NOW);
	assert_int_equal(store_cert_current(f->s, f->hosts[0], PROF, CA,
					    &c), RN_OK);
	assert_int_equal(store_unmatched_add(f->s, f->hosts[0], &c, NOW),
			 RN_OK);
	store_cert_release(&c);
	assert_int_equal(store_unmatched_each(f->s, NULL, count_unmatched,
					      &n), RN_OK);
	assert_int_equal(n, 1);
	n = 0;
	assert_int_equal(store_unmatched_each(f->s, f->hosts[0],
					      count_unmatched, &n), RN_OK);
	assert_int_equal(n, 0);
}

#include "store/schema.h"

/* A database at schema `version` (the migration strings up to it; not
 * the CHECK rewrites) with `sql` run on it by a plain connection (foreign
 * keys off, as sqlite3's default). */
static void
make_at(fx *f, int version, const char *sql)
{
	sqlite3 *db;
	char pragma[64];
	int i;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	for (i = 0; i < version; i++)
		assert_int_equal(sqlite3_exec(db, store_migrations[i], NULL,
					      NULL, NULL),
				 SQLITE_OK);
	snprintf(pragma, sizeof(pragma), "PRAGMA user_version = %d", version);
	assert_int_equal(sqlite3_exec(db, pragma, NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/*
 * A database written by schema version 1 is migrated forward on open, its
 * rows kept: the same migration strings the store applies, stopped at 1.
 */
static void
test_migrate_from_v1(void **state)
{
	fx *f = *state;
	store_host h;
	char *err = NULL;

	make_at(f, 1,
		"INSERT INTO hosts (uuid, serial_number, first_seen, "
		"last_seen) VALUES ('h-old', 'C02OLD', 1, 1)");

	/* read-only refuses the old schema rather than migrating it */
	assert_int_not_equal(store_open(f->path, 1, &f->s, &err), RN_OK);
	free(err);
	err = NULL;
	assert_int_equal(open_rw(f), RN_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);
	assert_int_equal(store_host_get(f->s, "h-old", &h), RN_OK);
	assert_string_equal(h.serial_number, "C02OLD");
	store_host_release(&h);
}

/* Does the program of `sql` open the index `name` for writing? */
static int
writes_index(sqlite3 *db, const char *sql, const char *name)
{
	sqlite3_stmt *st;
	char *q = sqlite3_mprintf("SELECT rootpage FROM sqlite_master WHERE "
				  "name = %Q", name);
	char *root = query_text(db, q);
	int found = 0;

	sqlite3_free(q);
	assert_non_null(root);
	q = sqlite3_mprintf("EXPLAIN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db, q, -1, &st, NULL), SQLITE_OK);
	sqlite3_free(q);
	while (sqlite3_step(st) == SQLITE_ROW)
		if (strcmp((const char *)sqlite3_column_text(st, 1),
			   "OpenWrite") == 0 &&
		    sqlite3_column_int(st, 3) == atoi(root))
			found = 1;
	sqlite3_finalize(st);
	free(root);
	return found;
}

#define V3_ROWS                                                            \
	"INSERT INTO hosts (uuid, first_seen, last_seen) VALUES "          \
	"('h-1', 1, 1), ('h-2', 1, 1);"                                    \
	"INSERT INTO profiles (uuid, identifier, template, sha256, "       \
	"updated_at) VALUES ('p-1', 'com.example.wifi', x'00', 'ab', 1);"  \
	"INSERT INTO managed_certificates (id, host_uuid, profile_uuid, "  \
	"ca_name, serial, subject, sha256, not_valid_before, "             \
	"not_valid_after, state, renew_at, created_at, updated_at) VALUES "\
	"(7, 'h-1', 'p-1', 'ca1', '01', 'CN=h-1', 'cd', 1, 9, 'active', 5, "\
	"1, 1);"                                                           \
	"INSERT INTO renewal_jobs (id, host_uuid, profile_uuid, ca_name, " \
	"kind, cert_id, renewal_id, command_uuid, state, attempts, "       \
	"next_attempt_at, last_error, created_at, updated_at) VALUES "     \
	"(3, 'h-1', 'p-1', 'ca1', 'renew', 7, 'RID-3', NULL, 'verified', " \
	"1, 10, NULL, 2, 3),"                                              \
	"(4, 'h-1', 'p-1', 'ca1', 'resend', 7, 'RID-4', 'CMD-4', "         \
	"'pushed', 2, 20, 'timeout', 4, 5),"                               \
	"(5, 'h-2', 'p-1', 'ca1', 'issue', NULL, NULL, NULL, 'queued', 0, "\
	"30, NULL, 6, 6);"                                                 \
	"INSERT INTO job_events (job_id, at, event, detail) VALUES "       \
	"(3, 2, 'enqueued', NULL), (3, 3, 'verified', NULL), "             \
	"(4, 4, 'enqueued', NULL), (4, 5, 'pushed', 'CMD-4');"             \
	"INSERT INTO job_renewal_ids (renewal_id, job_id, created_at) "    \
	"VALUES ('RID-4', 4, 5);"                                          \
	"INSERT INTO scep_tokens (token_hash, host_uuid, profile_uuid, "   \
	"ca_name, job_id, created_at, expires_at) VALUES "                 \
	"('t-4', 'h-1', 'p-1', 'ca1', 4, 5, 99);"

/*
 * Migration 4 rewrites renewal_jobs' constraints without IN lists and
 * migration 5 adds is_open under rj_open: an old database keeps its jobs
 * with their ids, events, renewal IDs and tokens, and the table still
 * enforces the states, one open job per triple, command UUID lookups and
 * its foreign keys.
 */
static void
test_migrate_v3_jobs(void **state)
{
	fx *f = *state;
	store_job j;
	store_token t;
	sqlite3 *db;
	char *v;
	int64_t id = 0;

	make_at(f, 3, V3_ROWS);
	assert_int_equal(open_rw(f), RN_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);

	get_job(f->s, 4, &j);
	assert_string_equal(j.host_uuid, "h-1");
	assert_string_equal(j.profile_uuid, "p-1");
	assert_string_equal(j.ca_name, "ca1");
	assert_string_equal(j.kind, "resend");
	assert_string_equal(j.renewal_id, "RID-4");
	assert_string_equal(j.command_uuid, "CMD-4");
	assert_string_equal(j.state, JOB_PUSHED);
	assert_string_equal(j.last_error, "timeout");
	assert_int_equal(j.attempts, 2);
	assert_true(j.cert_id == 7 && j.next_attempt_at == 20 &&
		    j.created_at == 4 && j.updated_at == 5);
	store_job_release(&j);
	get_job(f->s, 3, &j);
	assert_string_equal(j.state, JOB_VERIFIED);
	store_job_release(&j);
	expect_events(f->s, 3, "enqueued,verified");
	expect_events(f->s, 4, "enqueued,pushed");
	assert_int_equal(store_job_by_renewal_id(f->s, "RID-4", &j), RN_OK);
	assert_true(j.id == 4);
	store_job_release(&j);
	assert_int_equal(store_token_get(f->s, "t-4", &t), RN_OK);
	assert_true(t.job_id == 4);

	/* the rebuilt indexes: by command UUID, and the open job */
	assert_int_equal(store_job_by_command_uuid(f->s, "CMD-4", &j), RN_OK);
	assert_true(j.id == 4);
	store_job_release(&j);
	assert_int_equal(store_job_open(f->s, "h-1", "p-1", "ca1", &j), RN_OK);
	assert_true(j.id == 4);
	store_job_release(&j);
	assert_int_equal(store_job_enqueue(f->s, "h-1", "p-1", "ca1", "resend",
					   0, "again", 40, &id),
			 RN_EEXIST);
	assert_true(id == 4);
	/* a new job goes after the old ids */
	assert_int_equal(store_job_enqueue(f->s, "h-2", "p-1", "ca2", "issue",
					   0, "new", 40, &id),
			 RN_OK);
	assert_true(id == 6);
	/* foreign keys are back on after the migration */
	assert_int_not_equal(store_job_event(f->s, 999, "note", "x", 41),
			     RN_OK);
	assert_int_not_equal(store_job_enqueue(f->s, "h-none", "p-1", "ca1",
					       "issue", 0, "x", 41, &id),
			     RN_OK);
	store_close(f->s);
	f->s = NULL;

	/* the constraints hold, written as ORs of equalities */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET state = "
					  "'bogus' WHERE id = 3",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET kind = "
					  "'bogus' WHERE id = 3",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET state = "
					  "'queued', is_open = 1 WHERE id = 3",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT); /* a second open job for h-1 */
	/* migration 5: is_open follows the state, and the CHECK keeps it */
	v = query_text(db, "SELECT group_concat(id || ':' || "
			   "coalesce(is_open, '-'), ' ') FROM (SELECT * FROM "
			   "renewal_jobs WHERE id <= 5 ORDER BY id)");
	assert_string_equal(v, "3:- 4:1 5:1");
	free(v);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET state = "
					  "'queued' WHERE id = 3",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET state = "
					  "'failed' WHERE id = 5",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	assert_int_equal(sqlite3_exec(db, "UPDATE renewal_jobs SET is_open = "
					  "2 WHERE id = 5",
				      NULL, NULL, NULL),
			 SQLITE_CONSTRAINT);
	/* a move between open states leaves rj_open alone; closing or
	 * opening a job writes it */
	assert_false(writes_index(db, "UPDATE renewal_jobs SET state = "
				      "'running' WHERE id = 5", "rj_open"));
	assert_true(writes_index(db, "UPDATE renewal_jobs SET state = "
				     "'failed', is_open = NULL WHERE id = 5",
				 "rj_open"));
	v = query_text(db, "SELECT group_concat(sql, ' ') FROM sqlite_master "
			   "WHERE tbl_name = 'renewal_jobs'");
	assert_non_null(v);
	assert_null(strstr(v, " IN "));
	assert_non_null(strstr(v, "WHERE command_uuid IS NOT NULL"));
	free(v);
	v = query_text(db, "SELECT sql FROM sqlite_master WHERE name = "
			   "'managed_certificates'");
	assert_null(strstr(v, " IN "));
	free(v);
	v = query_text(db, "SELECT integrity_check FROM "
			   "pragma_integrity_check");
	assert_string_equal(v, "ok");
	free(v);
	/* the open-job lookup is still served by the partial index */
	{
		sqlite3_stmt *st;
		assert_int_equal(
		    sqlite3_prepare_v2(db, "EXPLAIN QUERY PLAN SELECT id FROM "
				       "renewal_jobs WHERE host_uuid = 'h-1' "
				       "AND profile_uuid = 'p-1' AND ca_name ="
				       " 'ca1' AND is_open = 1", -1, &st,
				       NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_non_null(strstr((const char *)sqlite3_column_text(st, 3),
				       "rj_open"));
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
}

/*
 * The scan writes on its own connection with foreign keys off; the main
 * connection keeps them on, and a scan inside the caller's transaction
 * runs in that transaction (its rollback takes the jobs back).
 */
static void
test_scan_connection(void **state)
{
	fx *f = *state;
	store_cert c;
	int seen = -1, enq = -1, own = 0, dup = 0;

	assert_int_equal(store_tx_begin(f->s, &own), RN_OK);
	assert_true(own);
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(enq, NDUE);
	assert_true(job_of_cert(f->s, f->cert[0]) > 0);
	assert_int_equal(store_tx_end(f->s, own, RN_EINVAL), RN_EINVAL);
	assert_true(job_of_cert(f->s, f->cert[0]) == 0);
	expect_cert(f->s, f->cert[0], "active", NOW - 100);

	/* on its own: the same jobs, seen at once by the main connection */
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, NDUE);
	assert_int_equal(enq, NDUE);
	assert_true(job_of_cert(f->s, f->cert[0]) > 0);
	expect_events(f->s, job_of_cert(f->s, f->cert[0]), "enqueued");
	expect_cert(f->s, f->cert[0], "renewing", -1);

	/* writes with outside input still check their keys */
	fill_cert(&c, "ffffffff-ffff-4fff-bfff-ffffffffffff", PROF, 98, NOW);
	assert_int_not_equal(store_cert_install(f->s, &c, 0, NOW, &dup),
			     RN_OK);
	assert_int_not_equal(store_job_event(f->s, 999999, "note", "x", NOW),
			     RN_OK);
}

/*
 * What the scheduler uses while the disk is full: a write probe that
 * leaves nothing behind, and putting back a job whose attempt never got
 * out (it does not count, and keeps its renewal ID).
 */
static void
test_full_disk_helpers(void **state)
{
	fx *f = *state;
	sqlite3 *db;
	sqlite3_stmt *st;
	store_job j;
	int64_t id = 0;
	int rows = -1;

	assert_int_equal(store_write_probe(f->s, NOW), RN_OK);
	assert_int_equal(store_write_probe(f->s, NOW + 1), RN_OK);
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
					 NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT COUNT(*) FROM "
					    "mdm_events", -1, &st, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	rows = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(rows, 0);

	assert_int_equal(store_job_enqueue(f->s, f->hosts[0], PROF2, CA,
					   "issue", 0, "new", NOW, &id),
			 RN_OK);
	/* only a running job can be put back */
	assert_int_equal(store_job_requeue(f->s, id, "full", NOW), RN_EBUSY);
	assert_int_equal(store_job_start(f->s, id, "RID-F1", NOW + 1, &j),
			 RN_OK);
	assert_int_equal(j.attempts, 1);
	store_job_release(&j);
	assert_int_equal(store_job_requeue(f->s, id, "database full",
					   NOW + 2),
			 RN_OK);
	get_job(f->s, id, &j);
	assert_string_equal(j.state, JOB_QUEUED);
	assert_int_equal(j.attempts, 0);
	assert_string_equal(j.renewal_id, "RID-F1");
	assert_true(j.next_attempt_at == NOW + 2);
	store_job_release(&j);
	expect_events(f->s, id, "enqueued,attempt_started,requeued");
	/* the next attempt is the first one again, with the same ID */
	assert_int_equal(store_job_start(f->s, id, "RID-F2", NOW + 3, &j),
			 RN_OK);
	assert_int_equal(j.attempts, 1);
	assert_string_equal(j.renewal_id, "RID-F1");
	store_job_release(&j);
}

/*
 * Migration 6 copies each due-queue row's certificate triple into it: an
 * old queue keeps its order, a certificate with an open job stays out,
 * and the first scan after the upgrade makes the job from the queue row.
 */
static void
test_migrate_v5_queue(void **state)
{
	fx *f = *state;
	store_job j;
	sqlite3 *db;
	char *v;
	int seen = -1, enq = -1;

	make_at(f, 5,
		"INSERT INTO hosts (uuid, first_seen, last_seen) VALUES "
		"('h-1', 1, 1), ('h-2', 1, 1), ('h-3', 1, 1);"
		"INSERT INTO profiles (uuid, identifier, template, sha256, "
		"updated_at) VALUES ('p-1', 'com.example.wifi', x'00', 'ab', "
		"1);"
		"INSERT INTO managed_certificates (id, host_uuid, profile_uuid, "
		"ca_name, serial, subject, sha256, not_valid_before, "
		"not_valid_after, state, renew_at, created_at, updated_at) "
		"VALUES (7, 'h-1', 'p-1', 'ca1', '07', 'CN=h-1', 'c7', 1, 99, "
		"'active', 5, 1, 1), (8, 'h-2', 'p-1', 'ca2', '08', 'CN=h-2', "
		"'c8', 1, 99, 'active', 50, 1, 1), (9, 'h-3', 'p-1', 'ca1', "
		"'09', 'CN=h-3', 'c9', 1, 99, 'active', 6, 1, 1), (6, 'h-1', "
		"'p-1', 'ca1', '06', 'CN=h-1', 'c6', 1, 9, 'superseded', 2, 1, "
		"1);"
		"INSERT INTO renewal_jobs (id, host_uuid, profile_uuid, ca_name, "
		"kind, cert_id, state, next_attempt_at, created_at, updated_at) "
		"VALUES (1, 'h-3', 'p-1', 'ca1', 'renew', 9, 'pushed', 6, 6, 6);"
		"INSERT INTO renewal_schedule (renew_at, cert_id) VALUES "
		"(50, 8), (5, 7);");
	assert_int_equal(open_rw(f), RN_OK);
	assert_int_equal(store_schema_version(f->s), STORE_SCHEMA_VERSION);

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
					 NULL),
			 SQLITE_OK);
	v = query_text(db, "SELECT group_concat(renew_at || ':' || cert_id || "
			   "':' || host_uuid || ':' || profile_uuid || ':' || "
			   "ca_name, ' ') FROM renewal_schedule");
	assert_string_equal(v, "5:7:h-1:p-1:ca1 50:8:h-2:p-1:ca2");
	free(v);
	sqlite3_close(db);

	assert_int_equal(store_scan_due(f->s, 10, 100, &seen, &enq), RN_OK);
	assert_int_equal(seen, 1);
	assert_int_equal(enq, 1);
	assert_int_equal(store_job_open(f->s, "h-1", "p-1", "ca1", &j), RN_OK);
	assert_string_equal(j.kind, "renew");
	assert_true(j.cert_id == 7);
	assert_string_equal(j.state, JOB_QUEUED);
	store_job_release(&j);
	assert_true(store_next_due(f->s) == 50);
	/* a certificate installed now is queued with its triple */
	{
		store_cert c;
		int dup = -1;

		memset(&c, 0, sizeof(c));
		c.host_uuid = (char *)"h-2";
		c.profile_uuid = (char *)"p-1";
		c.ca_name = (char *)"ca2";
		c.serial = (char *)"0A";
		c.subject = (char *)"CN=h-2";
		c.sha256 = (char *)"ca";
		c.not_valid_before = 1;
		c.not_valid_after = 999;
		c.renew_at = 70;
		c.policy = (char *)"default";
		assert_int_equal(store_cert_install(f->s, &c, 0, 10, &dup),
				 RN_OK);
		assert_int_equal(dup, 0);
	}
	assert_true(store_next_due(f->s) == 70);
	assert_int_equal(store_scan_due(f->s, 80, 100, &seen, &enq), RN_OK);
	assert_int_equal(enq, 1);
	assert_int_equal(store_job_open(f->s, "h-2", "p-1", "ca2", &j), RN_OK);
	assert_false(j.cert_id == 8);
	store_job_release(&j);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_open_creates_schema,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_open_readonly_missing,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(
		    test_open_readonly_uninitialised, setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v1,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_open_newer_schema,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v3_jobs,
						setup_empty, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_v5_queue,
						setup_empty, teardown_data),
		cmocka_unit_test_setup_teardown(test_scan_connection,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_layout_wal_indexes_plan,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_foreign_keys_on,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_host_profile_roundtrip,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_scan_due, setup_data,
						teardown_data),
		cmocka_unit_test_setup_teardown(test_enqueue_open_triple,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_job_end_rearms_current,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_rearm_requeues_orphan,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_job_lifecycle, setup_data,
						teardown_data),
		cmocka_unit_test_setup_teardown(test_jobs_due_order,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_certs_each_filters,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_tokens_and_lookups,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_proxy_auth_one_read,
						setup_data, teardown_data),
		cmocka_unit_test_setup_teardown(test_mdm_ingest, setup_data,
						teardown_data),
		cmocka_unit_test_setup_teardown(test_full_disk_helpers,
						setup_data, teardown_data),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
