/*
 * sdnotify: systemd's notify protocol against a real datagram socket the
 * test binds, by path (in a temp dir) and by abstract name; the watchdog
 * and the periodic status on a real loop.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/sdnotify.h"
#include "tests/unit/support/testhttp.h"

/* The "systemd" end: a bound datagram socket, and what arrived. */
typedef struct recv_end {
	int fd;
	char dir[64];
	char path[96];
	char env[128]; /* NOTIFY_SOCKET value */
	uv_poll_t poll;
	int polling;
	int n_watchdog;
	int n_status;
	char last_status[256];
} recv_end;

static void
clear_env(void)
{
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
}

static void
bind_path(recv_end *r)
{
	struct sockaddr_un sa;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/rn-sdn-XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	snprintf(r->path, sizeof(r->path), "%s/notify", r->dir);
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(r->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", r->path);
	assert_int_equal(bind(r->fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	snprintf(r->env, sizeof(r->env), "%s", r->path);
}

/* Abstract names live in the network namespace, not the file system. */
static void
bind_abstract(recv_end *r)
{
	struct sockaddr_un sa;
	unsigned char rnd[6];
	char name[64];
	size_t n;

	memset(r, 0, sizeof(*r));
	assert_int_equal(rn_random_bytes(rnd, sizeof(rnd)), 0);
	snprintf(name, sizeof(name), "renewd-test-%d-%02x%02x%02x%02x%02x%02x",
		 (int)getpid(), rnd[0], rnd[1], rnd[2], rnd[3], rnd[4],
		 rnd[5]);
	n = strlen(name);
	r->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	assert_true(r->fd >= 0);
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path + 1, name, n);
	assert_int_equal(bind(r->fd, (struct sockaddr *)&sa,
			      (socklen_t)(offsetof(struct sockaddr_un,
						   sun_path) + 1 + n)),
			 0);
	snprintf(r->env, sizeof(r->env), "@%s", name);
}

static void
recv_release(recv_end *r)
{
	if (r->fd >= 0)
		close(r->fd);
	if (r->path[0])
		unlink(r->path);
	if (r->dir[0])
		rmdir(r->dir);
	clear_env();
}

/* One datagram within ms, NUL-terminated; 0 when none came. */
static int
recv_one(recv_end *r, char *buf, size_t len, int ms)
{
	struct pollfd p = { .fd = r->fd, .events = POLLIN };
	ssize_t n;

	if (poll(&p, 1, ms) != 1)
		return 0;
	n = recv(r->fd, buf, len - 1, 0);
	if (n < 0)
		return 0;
	buf[n] = '\0';
	return 1;
}

static void
expect_msg(recv_end *r, const char *want)
{
	char buf[4096];

	assert_true(recv_one(r, buf, sizeof(buf), 2000));
	assert_string_equal(buf, want);
}

static void
expect_nothing(recv_end *r)
{
	char buf[4096];

	if (recv_one(r, buf, sizeof(buf), 50))
		fail_msg("unexpected message '%s'", buf);
}

/* Counts what reaches the socket while the loop runs. */
static void
on_readable(uv_poll_t *p, int status, int events)
{
	recv_end *r = p->data;
	char buf[4096];
	ssize_t n;

	while ((n = recv(r->fd, buf, sizeof(buf) - 1, 0)) >= 0) {
		buf[n] = '\0';
		if (strcmp(buf, "WATCHDOG=1") == 0)
			r->n_watchdog++;
		else if (strncmp(buf, "STATUS=", 7) == 0) {
			r->n_status++;
			snprintf(r->last_status, sizeof(r->last_status), "%s",
				 buf + 7);
		}
	}
}

static void
poll_start(uv_loop_t *loop, recv_end *r)
{
	assert_int_equal(uv_poll_init(loop, &r->poll, r->fd), 0);
	r->poll.data = r;
	r->polling = 1;
	uv_poll_start(&r->poll, UV_READABLE, on_readable);
}

static void
poll_stop(recv_end *r)
{
	if (r->polling)
		uv_close((uv_handle_t *)&r->poll, NULL);
	r->polling = 0;
}

/* ---- tests ------------------------------------------------------------ */

static void
test_no_notify_socket_does_nothing(void **state)
{
	uv_loop_t loop;
	sdn *n = (sdn *)1;

	clear_env();
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_null(n);
	/* Every call is a no-op on NULL. */
	assert_int_equal(sdn_ready(NULL), 0);
	assert_int_equal(sdn_status(NULL, "x %d", 1), 0);
	assert_int_equal(sdn_reloading(NULL), 0);
	assert_int_equal(sdn_stopping(NULL), 0);
	assert_int_equal(sdn_watchdog_interval(NULL), 0);
	sdn_close(NULL);
	/* No handle was created: the loop closes at once. */
	assert_int_equal(uv_loop_close(&loop), 0);

	setenv("NOTIFY_SOCKET", "", 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_null(n);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void
test_path_socket_messages(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;
	char buf[4096];
	unsigned long long us;

	bind_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_non_null(n);
	/* Children must not inherit the notify address. */
	assert_null(getenv("NOTIFY_SOCKET"));
	assert_int_equal(sdn_watchdog_interval(n), 0);

	assert_int_equal(sdn_ready(n), 0);
	expect_msg(&r, "READY=1");
	assert_int_equal(sdn_status(n, "last scan: %d due", 3), 0);
	expect_msg(&r, "STATUS=last scan: 3 due");
	/* A newline would start a new assignment: it becomes a space. */
	assert_int_equal(sdn_status(n, "two\nlines\r"), 0);
	expect_msg(&r, "STATUS=two lines ");
	assert_int_equal(sdn_reloading(n), 0);
	assert_true(recv_one(&r, buf, sizeof(buf), 2000));
	assert_int_equal(sscanf(buf, "RELOADING=1\nMONOTONIC_USEC=%llu", &us),
			 1);
	assert_true(us > 0);
	assert_int_equal(sdn_stopping(n), 0);
	expect_msg(&r, "STOPPING=1");
	expect_nothing(&r);

	sdn_close(n);
	th_drain_and_close(&loop);
	recv_release(&r);
}

static void
test_abstract_socket_messages(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;

	bind_abstract(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_non_null(n);
	assert_int_equal(sdn_ready(n), 0);
	expect_msg(&r, "READY=1");
	assert_int_equal(sdn_notify(n, "STATUS=a\nSTOPPING=1"), 0);
	expect_msg(&r, "STATUS=a\nSTOPPING=1");
	sdn_close(n);
	th_drain_and_close(&loop);
	recv_release(&r);
}

static void
test_bad_addresses(void **state)
{
	static const char *bad[] = {
		"relative/notify", "@", "vsock:2:1234",
		/* 108 bytes of path: no room for the NUL */
		"/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	uv_loop_t loop;
	sdn *n;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setenv("NOTIFY_SOCKET", bad[i], 1);
		setenv("WATCHDOG_USEC", "1000000", 1);
		uv_loop_init(&loop);
		n = (sdn *)1;
		assert_int_equal(sdn_init(&loop, &n), RN_EINVAL);
		assert_null(n);
		assert_null(getenv("NOTIFY_SOCKET"));
		assert_null(getenv("WATCHDOG_USEC"));
		assert_int_equal(uv_loop_close(&loop), 0);
	}
	clear_env();
}

/* Nobody listens: an error, once logged, and never a crash or a hang. */
static void
test_gone_receiver(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;

	bind_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	close(r.fd);
	r.fd = -1;
	unlink(r.path);
	assert_int_equal(sdn_ready(n), RN_EIO);
	assert_int_equal(sdn_stopping(n), RN_EIO);
	sdn_close(n);
	th_drain_and_close(&loop);
	recv_release(&r);
}

/* A receiver that never reads: sends are dropped, never blocking. */
static void
test_full_queue_never_blocks(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;
	uint64_t start;
	int i;

	bind_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	start = uv_hrtime();
	/* Far past net.unix.max_dgram_qlen (512 by default). */
	for (i = 0; i < 3000; i++)
		assert_int_equal(sdn_status(n, "message %d", i), 0);
	assert_true(th_ms_since(start) < 2000);
	/* The oldest ones were queued and are there to read. */
	expect_msg(&r, "STATUS=message 0");
	sdn_close(n);
	th_drain_and_close(&loop);
	recv_release(&r);
}

static void
test_watchdog_pings(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;
	uint64_t start;

	bind_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	setenv("WATCHDOG_USEC", "40000", 1); /* 40 ms: a ping every 20 */
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_null(getenv("WATCHDOG_USEC"));
	assert_int_equal(sdn_watchdog_interval(n), 20);
	poll_start(&loop, &r);
	start = uv_hrtime();
	assert_true(th_run_until(&loop, &r.n_watchdog, 5, 3000));
	/* Five pings at 20 ms apart take about 100 ms, not much less. */
	assert_true(th_ms_since(start) >= 80);
	sdn_close(n);
	poll_stop(&r);
	th_drain_and_close(&loop);
	recv_release(&r);
}

/* The watchdog belongs to the process WATCHDOG_PID names. */
static void
test_watchdog_pid(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;
	char pid[32];

	bind_path(&r);
	uv_loop_init(&loop);

	setenv("NOTIFY_SOCKET", r.env, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_non_null(n);
	assert_int_equal(sdn_watchdog_interval(n), 0);
	assert_null(getenv("WATCHDOG_PID"));
	sdn_close(n);

	setenv("NOTIFY_SOCKET", r.env, 1);
	setenv("WATCHDOG_USEC", "2000000", 1);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_int_equal(sdn_watchdog_interval(n), 1000);
	sdn_close(n);

	setenv("NOTIFY_SOCKET", r.env, 1);
	setenv("WATCHDOG_USEC", "soon", 1);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_non_null(n);
	assert_int_equal(sdn_watchdog_interval(n), 0);
	sdn_close(n);

	th_drain_and_close(&loop);
	recv_release(&r);
}

typedef struct status_src {
	int calls;
	char text[64];
} status_src;

static void
status_fn(void *arg, char *buf, size_t len)
{
	status_src *s = arg;

	s->calls++;
	snprintf(buf, len, "%s", s->text);
}

/* Sent when it changes, not every tick; silent after STOPPING=1. */
static void
test_status_every(void **state)
{
	uv_loop_t loop;
	recv_end r;
	sdn *n = NULL;
	status_src src = { 0, "scan A" };
	int want;

	bind_path(&r);
	setenv("NOTIFY_SOCKET", r.env, 1);
	uv_loop_init(&loop);
	assert_int_equal(sdn_init(&loop, &n), 0);
	assert_int_equal(sdn_status_every(n, 0, status_fn, &src), RN_EINVAL);
	assert_int_equal(sdn_status_every(n, 10, status_fn, &src), 0);
	poll_start(&loop, &r);

	assert_true(th_run_until(&loop, &src.calls, 8, 3000));
	assert_int_equal(r.n_status, 1);
	assert_string_equal(r.last_status, "scan A");

	snprintf(src.text, sizeof(src.text), "scan B");
	want = src.calls + 5;
	assert_true(th_run_until(&loop, &src.calls, want, 3000));
	assert_int_equal(r.n_status, 2);
	assert_string_equal(r.last_status, "scan B");

	/* The same text set by hand is not sent again by the timer. */
	assert_int_equal(sdn_status(n, "manual"), 0);
	snprintf(src.text, sizeof(src.text), "manual");
	want = src.calls + 5;
	assert_true(th_run_until(&loop, &src.calls, want, 3000));
	assert_int_equal(r.n_status, 3);

	assert_int_equal(sdn_stopping(n), 0);
	snprintf(src.text, sizeof(src.text), "scan C");
	want = src.calls + 1;
	assert_false(th_run_until(&loop, &src.calls, want, 100));
	assert_int_equal(r.n_status, 3);

	sdn_close(n);
	poll_stop(&r);
	th_drain_and_close(&loop);
	recv_release(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_no_notify_socket_does_nothing),
		cmocka_unit_test(test_path_socket_messages),
		cmocka_unit_test(test_abstract_socket_messages),
		cmocka_unit_test(test_bad_addresses),
		cmocka_unit_test(test_gone_receiver),
		cmocka_unit_test(test_full_queue_never_blocks),
		cmocka_unit_test(test_watchdog_pings),
		cmocka_unit_test(test_watchdog_pid),
		cmocka_unit_test(test_status_every),
	};

	log_setup(RN_LOG_ERROR, RN_LOGFMT_LOGFMT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
