/*
 * notifiers/alert: conditions against a real store. One alert per
 * condition until it resolves, escalation only to a tighter deadline, one
 * resolve message, the subscription filter, and the outbox fan-out rows.
 */
#define _GNU_SOURCE
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
#include <jansson.h>

#include "common/common.h"
#include "config/config.h"
#include "notifiers/alert.h"
#include "store/store.h"

#define DAY INT64_C(86400)
#define NOW INT64_C(1700000000)

typedef struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
	store *s;
} fx;

typedef struct rows {
	int n;
	char event[16][48];
	char status[16][16];
	char severity[16][16];
} rows;

static int
collect(void *arg, const store_notification *n)
{
	rows *r = arg;
	json_t *o = json_loads(n->payload, 0, NULL);

	assert_non_null(o);
	assert_true(r->n < 16);
	snprintf(r->event[r->n], 48, "%s", n->event);
	snprintf(r->status[r->n], 16, "%s",
		 json_string_value(json_object_get(o, "status")));
	snprintf(r->severity[r->n], 16, "%s",
		 json_string_value(json_object_get(o, "severity")));
	json_decref(o);
	r->n++;
	return 0;
}

/* The outbox rows not fanned out yet, in order. */
static rows
outbox(fx *f)
{
	rows r;

	memset(&r, 0, sizeof(r));
	assert_int_equal(store_notifications_unfanned(f->s, 16, collect, &r),
			 0);
	return r;
}

static int
setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));
	char *err = NULL;

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/rn-alert-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/a.db", f->dir);
	assert_int_equal(store_open(f->path, 0, &f->s, &err), 0);
	notif_alerts_configure(NULL);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fx *f = *state;
	char p[PATH_MAX + 32];

	store_close(f->s);
	snprintf(p, sizeof(p), "%s-wal", f->path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", f->path);
	unlink(p);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
	return 0;
}

static notif_subject
subject(void)
{
	notif_subject x;

	memset(&x, 0, sizeof(x));
	x.host = "H1";
	x.profile = "P1";
	x.ca = "CA1";
	x.job = 7;
	x.attempts = 3;
	x.error = "http 500";
	return x;
}

static void
test_failed_once_then_resolved_once(void **state)
{
	fx *f = *state;
	notif_subject x = subject();
	rows r;

	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW + 60), 0);
	r = outbox(f);
	assert_int_equal(r.n, 1);
	assert_string_equal(r.event[0], "renewal.failed");
	assert_string_equal(r.status[0], "firing");
	assert_string_equal(r.severity[0], "error");

	/* verified: the info event and exactly one resolve */
	assert_int_equal(notif_renewal_verified(f->s, &x, NOW + 120), 0);
	assert_int_equal(notif_renewal_verified(f->s, &x, NOW + 180), 0);
	r = outbox(f);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.event[1], "renewal.verified");
	assert_string_equal(r.event[2], "renewal.failed");
	assert_string_equal(r.status[2], "resolved");
	assert_string_equal(r.event[3], "renewal.verified");

	/* another triple is a condition of its own */
	x.host = "H2";
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	assert_int_equal(outbox(f).n, 5);
}

static void
cert_of(store_cert *c, int64_t nva)
{
	memset(c, 0, sizeof(*c));
	c->host_uuid = (char *)"H1";
	c->profile_uuid = (char *)"P1";
	c->ca_name = (char *)"CA1";
	c->not_valid_after = nva;
}

static void
test_deadline_escalates_and_expires(void **state)
{
	fx *f = *state;
	const int64_t dl[2] = { 7 * DAY, 1 * DAY };
	notif_subject x = subject();
	store_cert c;
	rows r;

	cert_of(&c, NOW + 10 * DAY); /* outside both deadlines */
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2, NOW), 0);
	assert_int_equal(outbox(f).n, 0);
	/* 6 days left: warning, once */
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2, NOW + 4 * DAY), 0);
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2, NOW + 5 * DAY), 0);
	/* 12 hours left: escalates to critical, once */
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2,
					  NOW + 9 * DAY + 12 * 3600), 0);
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2,
					  NOW + 9 * DAY + 13 * 3600), 0);
	/* expired: a condition of its own */
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2, NOW + 11 * DAY), 0);
	assert_int_equal(notif_cert_check(f->s, &c, dl, 2, NOW + 12 * DAY), 0);
	r = outbox(f);
	assert_int_equal(r.n, 3);
	assert_string_equal(r.event[0], "certificate.deadline");
	assert_string_equal(r.severity[0], "warning");
	assert_string_equal(r.event[1], "certificate.deadline");
	assert_string_equal(r.severity[1], "critical");
	assert_string_equal(r.event[2], "certificate.expired");
	assert_string_equal(r.severity[2], "critical");

	/* a new certificate resolves both, once each */
	assert_int_equal(notif_cert_replaced(f->s, &x, NOW + 12 * DAY), 0);
	assert_int_equal(notif_cert_replaced(f->s, &x, NOW + 12 * DAY), 0);
	r = outbox(f);
	assert_int_equal(r.n, 5);
	assert_string_equal(r.status[3], "resolved");
	assert_string_equal(r.event[3], "certificate.deadline");
	assert_string_equal(r.event[4], "certificate.expired");
}

static void
test_ca_and_mdm_transitions(void **state)
{
	fx *f = *state;
	rows r;

	/* healthy with nothing open: nothing to say */
	assert_int_equal(notif_ca_state(f->s, "CA1", 1, NULL, NOW), 0);
	assert_int_equal(notif_ca_state(f->s, "CA1", 0, "connect", NOW), 0);
	assert_int_equal(notif_ca_state(f->s, "CA1", 0, "connect", NOW), 0);
	assert_int_equal(notif_ca_state(f->s, "CA1", 1, NULL, NOW), 0);
	assert_int_equal(notif_ca_state(f->s, "CA1", 1, NULL, NOW), 0);
	assert_int_equal(notif_mdm_state(f->s, "nanomdm", 0, "timeout", NOW),
			 0);
	assert_int_equal(notif_mdm_state(f->s, "nanomdm", 1, NULL, NOW), 0);
	r = outbox(f);
	assert_int_equal(r.n, 4);
	assert_string_equal(r.event[0], "ca.unhealthy");
	assert_string_equal(r.event[1], "ca.recovered");
	assert_string_equal(r.status[1], "resolved");
	assert_string_equal(r.event[2], "mdm.unreachable");
	assert_string_equal(r.event[3], "mdm.recovered");
}

static void
test_alert_rolls_back_with_its_transaction(void **state)
{
	fx *f = *state;
	notif_subject x = subject();

	assert_int_equal(store_begin(f->s), 0);
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	store_rollback(f->s);
	assert_int_equal(outbox(f).n, 0);
	/* the condition rolled back too: raising again is news */
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	assert_int_equal(outbox(f).n, 1);
}

static void
test_filter_and_subscriptions(void **state)
{
	fx *f = *state;
	char *ev1[] = { (char *)"ca.unhealthy" };
	char *all[] = { (char *)"*" };
	cfg_notifier n;
	cfg c;
	notif_subject x = subject();

	assert_true(notif_event_wanted(ev1, 1, "ca.unhealthy"));
	/* the recovery goes to the subscribers of the alert */
	assert_true(notif_event_wanted(ev1, 1, "ca.recovered"));
	assert_false(notif_event_wanted(ev1, 1, "mdm.recovered"));
	assert_false(notif_event_wanted(ev1, 1, "renewal.failed"));
	assert_true(notif_event_wanted(all, 1, "host.retired"));

	/* nobody subscribes to renewal.*: conditions tracked, no rows */
	memset(&n, 0, sizeof(n));
	memset(&c, 0, sizeof(c));
	n.events = ev1;
	n.nevents = 1;
	c.notifiers = &n;
	c.nnotifiers = 1;
	notif_alerts_configure(&c);
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	assert_int_equal(notif_ca_state(f->s, "CA1", 0, "down", NOW), 0);
	assert_int_equal(outbox(f).n, 1);
	notif_alerts_configure(NULL);
	/* still open: no second alert once subscribed */
	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	assert_int_equal(outbox(f).n, 1);
}

static void
test_fan_out_rows(void **state)
{
	fx *f = *state;
	notif_subject x = subject();
	rows r;

	assert_int_equal(notif_renewal_failed(f->s, &x, NOW), 0);
	r = outbox(f);
	assert_int_equal(r.n, 1);
	/* the engine's fan-out: two deliveries, the event row deleted */
	assert_int_equal(store_notification_fan(f->s, 1, "a", NOW), 0);
	assert_int_equal(store_notification_fan(f->s, 1, "b", NOW), 0);
	assert_int_equal(store_notification_delete(f->s, 1), 0);
	assert_int_equal(outbox(f).n, 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_notifications_due(f->s, NOW, 10, collect, &r),
			 0);
	assert_int_equal(r.n, 2);
	/* a leased row is not due again until its lease ends */
	assert_int_equal(store_notification_lease(f->s, 2, NOW + 100), 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_notifications_due(f->s, NOW, 10, collect, &r),
			 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(store_notification_delivered(f->s, 3, NOW), 0);
	assert_int_equal(store_notification_retry(f->s, 2, NOW + 10, "down"),
			 0);
	memset(&r, 0, sizeof(r));
	assert_int_equal(store_notifications_due(f->s, NOW + 10, 10, collect,
						 &r), 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(store_notifications_next_at(f->s), NOW + 10);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_failed_once_then_resolved_once, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_deadline_escalates_and_expires, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ca_and_mdm_transitions,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_alert_rolls_back_with_its_transaction, setup,
			teardown),
		cmocka_unit_test_setup_teardown(test_filter_and_subscriptions,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_fan_out_rows, setup,
						teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
