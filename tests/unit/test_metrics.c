/*
 * metrics: the registry's text rendering (HELP/TYPE once per family,
 * label escaping, cumulative histogram buckets with _sum and _count), the
 * series cap and the misuses it ignores; and the store aggregates behind
 * /metrics (store_stats_get, store_ping) on a real SQLite file, read
 * through a second, read-only connection as the daemon does.
 *
 * Every test starts and ends with metrics_reset, so ASan sees no leak.
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

#include <cmocka.h>

#include "common/common.h"
#include "common/metrics.h"
#include "store/store.h"

#define DAY INT64_C(86400)
#define NOW INT64_C(1700000000)

/* The registry rendered as a NUL-terminated string (caller frees). */
static char *
render(void)
{
	rn_buf b;

	rn_buf_init(&b, 0);
	assert_int_equal(metrics_render(&b), RN_OK);
	if (b.data == NULL)
		return strdup("");
	return rn_buf_detach(&b, NULL);
}

/* Occurrences of the whole line `line` in text. */
static int
count_line(const char *text, const char *line)
{
	size_t n = strlen(line);
	const char *p = text;
	int k = 0;

	while ((p = strstr(p, line)) != NULL) {
		if ((p == text || p[-1] == '\n') && p[n] == '\n')
			k++;
		p += n;
	}
	return k;
}

static void
assert_line(const char *text, const char *line)
{
	if (count_line(text, line) != 1)
		print_message("want the line once: %s\nin:\n%s\n", line, text);
	assert_int_equal(count_line(text, line), 1);
}

static void
assert_no(const char *text, const char *needle)
{
	if (strstr(text, needle))
		print_message("unexpected '%s' in:\n%s\n", needle, text);
	assert_null(strstr(text, needle));
}

static int
setup(void **state)
{
	metrics_reset();
	return 0;
}

static int
teardown(void **state)
{
	metrics_reset();
	return 0;
}

/* ---- rendering -------------------------------------------------------- */

static void
test_fresh_registry_has_only_zero_families(void **state)
{
	char *t = render();

	/* unlabeled counter and histogram start at 0; nothing else */
	assert_line(t, "# TYPE renewd_scans_total counter");
	assert_line(t, "renewd_scans_total 0");
	assert_line(t, "# TYPE renewd_push_duration_seconds histogram");
	assert_line(t, "renewd_push_duration_seconds_bucket{le=\"+Inf\"} 0");
	assert_line(t, "renewd_push_duration_seconds_count 0");
	assert_line(t, "renewd_push_duration_seconds_sum 0");
	assert_no(t, "renewd_ca_up");
	assert_no(t, "renewd_job_outcomes_total");
	free(t);
}

static void
test_counters_and_gauges(void **state)
{
	char *t;

	metrics_counter_add("renewd_job_outcomes_total", 1, "result", "pushed",
			    NULL);
	metrics_counter_add("renewd_job_outcomes_total", 2, "result", "pushed",
			    NULL);
	metrics_counter_add("renewd_job_outcomes_total", 1, "result", "failed",
			    NULL);
	metrics_counter_add("renewd_scep_proxy_requests_total", 1, "operation",
			    "GetCACaps", "status", "200", NULL);
	metrics_gauge_set("renewd_ca_up", 1, "ca", "Test_SCEP", NULL);
	metrics_gauge_set("renewd_ca_up", 0, "ca", "Test_SCEP", NULL);
	metrics_gauge_set("renewd_scan_duration_seconds", 0.25, NULL);
	metrics_gauge_set("renewd_start_time_seconds", 1700000000.0, NULL);
	metrics_counter_add("renewd_scans_total", 1, NULL);
	t = render();

	assert_line(t, "# HELP renewd_job_outcomes_total Renewal job outcomes "
		       "recorded by this process since it started "
		       "(renewctl's own changes are not counted).");
	assert_line(t, "# TYPE renewd_job_outcomes_total counter");
	assert_line(t, "renewd_job_outcomes_total{result=\"pushed\"} 3");
	assert_line(t, "renewd_job_outcomes_total{result=\"failed\"} 1");
	assert_line(t, "renewd_scep_proxy_requests_total{operation="
		       "\"GetCACaps\",status=\"200\"} 1");
	/* a gauge is replaced, not added to */
	assert_line(t, "# TYPE renewd_ca_up gauge");
	assert_line(t, "renewd_ca_up{ca=\"Test_SCEP\"} 0");
	assert_line(t, "renewd_scan_duration_seconds 0.25");
	/* no exponent: Prometheus would parse it, people read it */
	assert_line(t, "renewd_start_time_seconds 1700000000");
	assert_line(t, "renewd_scans_total 1");
	assert_int_equal(count_line(t, "renewd_scans_total 0"), 0);
	/* HELP and TYPE come before the family's samples */
	assert_true(strstr(t, "# TYPE renewd_ca_up gauge") <
		    strstr(t, "renewd_ca_up{"));
	free(t);
}

static void
test_label_values_are_escaped(void **state)
{
	char *t;

	metrics_gauge_set("renewd_ca_up", 1, "ca", "a\\b\"c\nd", NULL);
	metrics_gauge_set("renewd_ca_up", 1, "ca", NULL, NULL);
	t = render();
	assert_line(t, "renewd_ca_up{ca=\"a\\\\b\\\"c\\nd\"} 1");
	assert_line(t, "renewd_ca_up{ca=\"\"} 1");
	free(t);
}

static void
test_histogram_buckets_are_cumulative(void **state)
{
	static const char *const want[] = {
		"renewd_push_duration_seconds_bucket{le=\"0.005\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.01\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.025\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.05\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.1\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.25\"} 2",
		"renewd_push_duration_seconds_bucket{le=\"0.5\"} 3",
		"renewd_push_duration_seconds_bucket{le=\"1\"} 3",
		"renewd_push_duration_seconds_bucket{le=\"2.5\"} 4",
		"renewd_push_duration_seconds_bucket{le=\"5\"} 4",
		"renewd_push_duration_seconds_bucket{le=\"10\"} 4",
		"renewd_push_duration_seconds_bucket{le=\"30\"} 4",
		"renewd_push_duration_seconds_bucket{le=\"+Inf\"} 5",
		"renewd_push_duration_seconds_count 5",
		"renewd_push_duration_seconds_sum 33.809",
	};
	const char *prev = NULL, *p;
	char *t;
	size_t i;

	metrics_observe("renewd_push_duration_seconds", 0.004);
	metrics_observe("renewd_push_duration_seconds", 0.005); /* le is <= */
	metrics_observe("renewd_push_duration_seconds", 0.3);
	metrics_observe("renewd_push_duration_seconds", 2.5);
	metrics_observe("renewd_push_duration_seconds", 31);
	metrics_observe("renewd_push_duration_seconds", 0.0 / 0.0); /* NaN */
	t = render();
	assert_int_equal(count_line(t, "# TYPE renewd_push_duration_seconds "
				       "histogram"), 1);
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		assert_line(t, want[i]);
		/* in order: the buckets ascending, +Inf last */
		p = strstr(t, want[i]);
		if (prev && i < 13)
			assert_true(p > prev);
		prev = p;
	}
	free(t);
}

static void
test_series_cap(void **state)
{
	char v[16], *t;
	int i;

	for (i = 0; i < METRICS_MAX_SERIES + 50; i++) {
		snprintf(v, sizeof(v), "ca-%d", i);
		metrics_gauge_set("renewd_ca_up", 1, "ca", v, NULL);
	}
	/* an existing series still changes once the family is full */
	metrics_gauge_set("renewd_ca_up", 0, "ca", "ca-0", NULL);
	t = render();
	assert_line(t, "renewd_ca_up{ca=\"ca-0\"} 0");
	snprintf(v, sizeof(v), "\"ca-%d\"", METRICS_MAX_SERIES - 1);
	assert_non_null(strstr(t, v));
	snprintf(v, sizeof(v), "\"ca-%d\"", METRICS_MAX_SERIES);
	assert_null(strstr(t, v));
	{
		int n = 0;
		const char *p = t;
		while ((p = strstr(p, "\nrenewd_ca_up{")) != NULL) {
			n++;
			p++;
		}
		assert_int_equal(n, METRICS_MAX_SERIES);
	}
	/* other families are not affected by a full one */
	metrics_gauge_set("renewd_mdm_up", 1, NULL);
	free(t);
	t = render();
	assert_line(t, "renewd_mdm_up 1");
	free(t);
}

static void
test_misuse_is_ignored(void **state)
{
	char *t;

	metrics_counter_add("renewd_no_such_metric", 1, NULL);
	metrics_gauge_set("renewd_no_such_metric", 1, NULL);
	metrics_observe("renewd_no_such_metric", 1);
	metrics_counter_add("renewd_ca_up", 1, "ca", "x", NULL); /* a gauge */
	metrics_gauge_set("renewd_scans_total", 5, NULL);	/* a counter */
	metrics_observe("renewd_scans_total", 5);
	metrics_counter_add("renewd_scans_total", -1, NULL);
	metrics_counter_add("renewd_scans_total", 0.0 / 0.0, NULL);
	metrics_gauge_set("renewd_ca_up", 1, "bad-name", "x", NULL);
	metrics_gauge_set("renewd_ca_up", 1, "__reserved", "x", NULL);
	/* store aggregates are rendered from the database, never here */
	metrics_gauge_set("renewd_certificates", 7, "state", "active", NULL);
	metrics_gauge_set("renewd_notifications_pending", 3, NULL);
	t = render();
	assert_no(t, "renewd_no_such_metric");
	assert_no(t, "renewd_ca_up");
	assert_no(t, "renewd_certificates");
	assert_no(t, "renewd_notifications_pending");
	assert_line(t, "renewd_scans_total 0");
	free(t);
}

static void
test_family_clear_and_help(void **state)
{
	rn_buf b;
	char *t;

	metrics_gauge_set("renewd_ca_up", 1, "ca", "old", NULL);
	metrics_family_clear("renewd_ca_up");
	metrics_gauge_set("renewd_ca_up", 1, "ca", "new", NULL);
	t = render();
	assert_no(t, "\"old\"");
	assert_line(t, "renewd_ca_up{ca=\"new\"} 1");
	free(t);

	rn_buf_init(&b, 0);
	assert_int_equal(metrics_help_render(&b, "renewd_jobs"), RN_OK);
	assert_string_equal(b.data, "# HELP renewd_jobs Renewal jobs by "
				    "state.\n# TYPE renewd_jobs gauge\n");
	assert_int_equal(metrics_help_render(&b, "renewd_nope"),
			 RN_ENOTFOUND);
	rn_buf_release(&b);
}

static void
test_render_respects_the_buffer_cap(void **state)
{
	rn_buf b;

	metrics_gauge_set("renewd_build_info", 1, "version", "0.1.0", NULL);
	rn_buf_init(&b, 64);
	assert_int_equal(metrics_render(&b), RN_ETOOBIG);
	rn_buf_release(&b);
}

/* ---- store aggregates ------------------------------------------------- */

typedef struct sfx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	store *s;
} sfx;

static const char *const PROF = "6f1c2f64-3b0e-4c51-9d0f-0a4b8f3c2e11";
static const char TEMPLATE[] = "<plist/>";
static const int64_t WITHIN[STORE_STATS_WINDOWS] = {
	DAY, 7 * DAY, 14 * DAY, 30 * DAY, 90 * DAY, 365 * DAY};

static int
rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static sfx *
sfx_new(void)
{
	sfx *f = calloc(1, sizeof(*f));
	store_profile p;
	char sha[65], *err = NULL;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/renewd-metrics-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/renewd.db", f->dir);
	assert_int_equal(store_open(f->path, 0, &f->s, &err), RN_OK);
	memset(&p, 0, sizeof(p));
	rn_sha256_hex(TEMPLATE, sizeof(TEMPLATE) - 1, sha);
	p.uuid = (char *)PROF;
	p.identifier = (char *)"com.example.wifi";
	p.ca_name = (char *)"ca1";
	p.template = (char *)TEMPLATE;
	p.template_len = sizeof(TEMPLATE) - 1;
	p.sha256 = sha;
	assert_int_equal(store_profile_upsert(f->s, &p, NOW), RN_OK);
	return f;
}

static void
sfx_free(sfx *f)
{
	store_close(f->s);
	nftw(f->dir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
}

/* Host i's certificate number n expiring at nva, due at renew_at. */
static void
add_cert(sfx *f, int i, int n, int64_t nva, int64_t renew_at)
{
	char host[37], subj[64], sha[65], ser[16];
	store_cert c;
	int dup = -1;

	snprintf(host, sizeof(host), "00000000-0000-4000-8000-%012d", i);
	snprintf(subj, sizeof(subj), "CN=%s,OU=%d", host, n);
	snprintf(ser, sizeof(ser), "%04x", n);
	rn_sha256_hex(subj, strlen(subj), sha);
	assert_int_equal(store_host_upsert(f->s, host, "C02X", NOW), RN_OK);
	memset(&c, 0, sizeof(c));
	c.host_uuid = host;
	c.profile_uuid = (char *)PROF;
	c.ca_name = (char *)"ca1";
	c.serial = ser;
	c.subject = subj;
	c.issuer = (char *)"CN=Test CA";
	c.sha256 = sha;
	c.policy = (char *)"default";
	c.not_valid_before = nva - 365 * DAY;
	c.not_valid_after = nva;
	c.renew_at = renew_at;
	assert_int_equal(store_cert_install(f->s, &c, 0, NOW, &dup), RN_OK);
	assert_int_equal(dup, 0);
}

static void
test_store_stats_empty(void **state)
{
	sfx *f = sfx_new();
	store_stats st;
	int i;

	memset(&st, 0xff, sizeof(st));
	assert_int_equal(store_stats_get(f->s, NOW, WITHIN, &st), RN_OK);
	assert_int_equal(st.has_earliest, 0);
	assert_int_equal(st.current, 0);
	assert_int_equal(st.expired, 0);
	for (i = 0; i < 4; i++)
		assert_int_equal(st.certs[i], 0);
	for (i = 0; i < 7; i++)
		assert_int_equal(st.jobs[i], 0);
	for (i = 0; i < STORE_STATS_WINDOWS; i++)
		assert_int_equal(st.expiring[i], 0);
	assert_int_equal(st.notifications_pending, 0);
	assert_int_equal(store_ping(f->s), RN_OK);
	sfx_free(f);
}

/*
 * Eight hosts: current certificates expired 2 days ago, and expiring in
 * 12 h, 3 d, 10 d, 20 d, 60 d, 200 d and 400 d; host 0 also has a
 * superseded one. A scan makes the due ones (renew_at <= NOW) renewing
 * with a queued job; one job is then cancelled, re-arming its
 * certificate. Two outbox rows: one pending, one delivered.
 */
static void
test_store_stats_fleet(void **state)
{
	static const int64_t nva[8] = {
		-2 * DAY, DAY / 2, 3 * DAY, 10 * DAY,
		20 * DAY, 60 * DAY, 200 * DAY, 400 * DAY};
	sfx *f = sfx_new();
	store *ro = NULL;
	store_stats st;
	store_job j;
	char *err = NULL;
	int seen = 0, enq = 0, i;

	add_cert(f, 0, 100, NOW - 30 * DAY, NOW + 999 * DAY); /* superseded */
	for (i = 0; i < 8; i++)
		/* the first three are due (renew_at <= NOW) */
		add_cert(f, i, i, NOW + nva[i],
			 i < 3 ? NOW - 10 : NOW + 100 * DAY);
	assert_int_equal(store_scan_due(f->s, NOW, 100, &seen, &enq), RN_OK);
	assert_int_equal(enq, 3);
	/* cancel the newest queued job: its certificate is active again */
	{
		int64_t id = 0;
		assert_int_equal(store_job_enqueue(f->s,
			"00000000-0000-4000-8000-000000000002", PROF, "ca1",
			"renew", 0, NULL, NOW, &id), RN_EEXIST);
		assert_int_equal(store_job_get(f->s, id, &j), RN_OK);
		assert_string_equal(j.state, JOB_QUEUED);
		store_job_release(&j);
		assert_int_equal(store_job_cancel(f->s, id, "test",
						  NOW + 100 * DAY, NOW),
				 RN_OK);
	}
	assert_int_equal(store_notification_add(f->s, "renewal.failed", "k1",
						"{}", NOW),
			 RN_OK);
	assert_int_equal(store_notification_add(f->s, "renewal.failed", "k2",
						"{}", NOW),
			 RN_OK);
	assert_int_equal(store_notification_delivered(f->s, 2, NOW), RN_OK);

	/* the daemon's way: a read-only connection of its own */
	assert_int_equal(store_open(f->path, 1, &ro, &err), RN_OK);
	assert_int_equal(store_stats_get(ro, NOW, WITHIN, &st), RN_OK);
	assert_int_equal(store_ping(ro), RN_OK);

	assert_int_equal(st.certs[0], 6);  /* active */
	assert_int_equal(st.certs[1], 2);  /* renewing */
	assert_int_equal(st.certs[2], 1);  /* superseded */
	assert_int_equal(st.certs[3], 0);  /* expired (never stored) */
	assert_int_equal(st.current, 8);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.expiring[0], 2); /* 1d: expired + 12 h */
	assert_int_equal(st.expiring[1], 3); /* 7d */
	assert_int_equal(st.expiring[2], 4); /* 14d */
	assert_int_equal(st.expiring[3], 5); /* 30d */
	assert_int_equal(st.expiring[4], 6); /* 90d */
	assert_int_equal(st.expiring[5], 7); /* 365d */
	assert_int_equal(st.has_earliest, 1);
	assert_true(st.earliest_expiry == NOW - 2 * DAY);
	assert_int_equal(st.jobs[0], 2); /* queued */
	assert_int_equal(st.jobs[6], 1); /* cancelled */
	for (i = 1; i < 6; i++)
		assert_int_equal(st.jobs[i], 0);
	assert_int_equal(st.notifications_pending, 1);
	/* consistent with renewctl status's certificate counts */
	assert_int_equal(st.certs[0] + st.certs[1], st.current);

	store_close(ro);
	sfx_free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
		    test_fresh_registry_has_only_zero_families, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_counters_and_gauges,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_label_values_are_escaped,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_histogram_buckets_are_cumulative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_series_cap, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_misuse_is_ignored, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_family_clear_and_help,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_render_respects_the_buffer_cap, setup, teardown),
		cmocka_unit_test(test_store_stats_empty),
		cmocka_unit_test(test_store_stats_fleet),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
