/*
 * net: the HTTP client (inline and threaded) against a tiny HTTP/1.1
 * server on 127.0.0.1 on the test's loop, and child processes with real programs (sh, cat, sleep).
 * Every test ends with uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "net/net.h"
#include "tests/unit/support/testhttp.h"

/* ---- HTTP client ------------------------------------------------------ */

/*
 * Every HTTP test runs twice: on the loop's own client and on the
 * threaded one (net_http_new_threaded), which must behave the same.
 */
static int g_threaded;

static int
client_new(uv_loop_t *loop, net_http **h)
{
	return g_threaded ? net_http_new_threaded(loop, h)
			  : net_http_new(loop, h);
}

static int
use_threaded(void **state)
{
	g_threaded = 1;
	return 0;
}

typedef struct got {
	int n;
	int rc;
	long status;
	char *body;
	size_t body_len;
	int body_nul;
	char *ctype;
	char *error;
	net_http *free_me; /* net_http_free from inside the callback */
} got;

static void
got_cb(void *arg, const net_http_resp *r)
{
	got *g = arg;

	g->n++;
	g->rc = r->rc;
	g->status = r->status;
	free(g->body);
	free(g->ctype);
	free(g->error);
	g->body = malloc(r->body_len + 1);
	memcpy(g->body, r->body, r->body_len + 1);
	g->body_len = r->body_len;
	g->body_nul = r->body[r->body_len] == '\0';
	g->ctype = rn_strdup(r->content_type);
	g->error = rn_strdup(r->error);
	if (g->free_me)
		net_http_free(g->free_me);
}

static void
got_release(got *g)
{
	free(g->body);
	free(g->ctype);
	free(g->error);
	memset(g, 0, sizeof(*g));
}

static void
test_http_post_roundtrip(void **state)
{
	static const char sent[] = {'a', 0, 'b', '\r', '\n', '\xff', 'z'};
	const char *hdrs[] = {"X-Renewd-Token: abc123",
			      "Content-Type: application/octet-stream", NULL};
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url, *body;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.status = 201;
	s.ctype = "application/json";
	s.body = "{\"ok\":true}";
	s.body_len = strlen(s.body);
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/enroll?x=1");

	/* the body must be copied: clobber and free ours right away */
	body = malloc(sizeof(sent));
	memcpy(body, sent, sizeof(sent));
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = sizeof(sent);
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	memset(body, 'X', sizeof(sent));
	free(body);
	assert_int_equal(g.n, 0); /* never from inside the call */
	assert_int_equal(net_http_active(h), 1);

	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(net_http_active(h), 0);
	assert_int_equal(s.requests, 1);
	assert_string_equal(s.method, "POST");
	assert_string_equal(s.target, "/enroll?x=1");
	assert_non_null(strstr(s.headers, "\r\nX-Renewd-Token: abc123\r\n"));
	assert_non_null(strstr(s.headers,
			       "\r\nContent-Type: application/octet-stream\r\n"));
	assert_null(strcasestr(s.headers, "\r\nauthorization:"));
	assert_int_equal(s.req_body_len, sizeof(sent));
	assert_memory_equal(s.req_body, sent, sizeof(sent));

	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 201);
	assert_int_equal(g.body_len, 11);
	assert_string_equal(g.body, "{\"ok\":true}");
	assert_true(g.body_nul);
	assert_non_null(g.ctype);
	assert_string_equal(g.ctype, "application/json");

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 1);
	free(url);
	got_release(&g);
}

static void
test_http_basic_auth(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url, *b64, *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/devices");
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.userpwd = "renewd:s3cr:et";
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));

	b64 = rn_base64("renewd:s3cr:et", 14);
	want = rn_asprintf("\r\nAuthorization: Basic %s\r\n", b64);
	assert_string_equal(s.method, "GET");
	assert_string_equal(s.target, "/devices");
	assert_non_null(strstr(s.headers, want));
	assert_int_equal(s.req_body_len, 0);
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 200);
	assert_string_equal(g.body, "ok");
	assert_string_equal(g.ctype, "text/plain");

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(b64);
	free(want);
	free(url);
	got_release(&g);
}

/* 4xx/5xx and 3xx are answers, not transport errors; no redirects. */
static void
test_http_status_is_not_error(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.status = 500;
	s.body = "boom";
	s.body_len = 4;
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/x");
	memset(&req, 0, sizeof(req));
	req.url = url;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 500);
	assert_string_equal(g.body, "boom");
	assert_string_equal(s.method, "GET");

	s.status = 302;
	s.extra_header = "Location: /elsewhere";
	s.body_len = 0;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 3000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 302);
	assert_int_equal(g.body_len, 0);
	/* the redirect was not followed */
	assert_int_equal(s.requests, 2);
	assert_string_equal(s.target, "/x");

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(url);
	got_release(&g);
}

static void
test_http_connection_reuse(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/one");
	memset(&req, 0, sizeof(req));
	req.url = url;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(g.rc, 0);

	req.method = "PUT";
	req.body = "second";
	req.body_len = 6;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 3000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.status, 200);
	assert_int_equal(s.requests, 2);
	assert_string_equal(s.method, "PUT");
	assert_int_equal(s.req_body_len, 6);
	assert_string_equal(s.req_body, "second");
	assert_int_equal(s.accepts, 1);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(url);
	got_release(&g);
}

static void
test_http_concurrent(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g[5];
	int i, done = 0;
	char *url;

	memset(g, 0, sizeof(g));
	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/many");
	memset(&req, 0, sizeof(req));
	req.url = url;
	for (i = 0; i < 5; i++)
		assert_int_equal(net_http_request(h, &req, got_cb, &g[i]), 0);
	assert_int_equal(net_http_active(h), 5);
	for (i = 0; i < 5; i++) {
		assert_true(th_run_until(&loop, &g[i].n, 1, 3000));
		done++;
	}
	assert_int_equal(done, 5);
	for (i = 0; i < 5; i++) {
		assert_int_equal(g[i].n, 1);
		assert_int_equal(g[i].rc, 0);
		assert_int_equal(g[i].status, 200);
		assert_string_equal(g[i].body, "ok");
		got_release(&g[i]);
	}
	assert_int_equal(s.requests, 5);
	assert_int_equal(net_http_active(h), 0);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(url);
}

static void
test_http_timeout(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url;
	uint64_t t0, ms;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.respond = 0;
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/slow");
	memset(&req, 0, sizeof(req));
	req.url = url;
	req.timeout_ms = 300;
	t0 = uv_hrtime();
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	ms = th_ms_since(t0);
	assert_int_equal(g.rc, RN_ETIMEDOUT);
	assert_int_equal(g.status, 0);
	assert_non_null(g.error);
	assert_true(g.error[0] != '\0');
	assert_true(ms >= 250);
	assert_true(ms < 1500);
	/* the request did arrive: it is the answer that timed out */
	assert_int_equal(s.requests, 1);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(url);
	got_release(&g);
}

static void
test_http_refused(void **state)
{
	uv_loop_t loop;
	int port;
	net_http *h;
	net_http_req req;
	got g = {0};
	char *url;

	uv_loop_init(&loop);
	/* a port that was just ours and is now closed */
	port = th_closed_port(&loop);

	assert_int_equal(client_new(&loop, &h), 0);
	url = rn_asprintf("http://127.0.0.1:%d/", port);
	memset(&req, 0, sizeof(req));
	req.url = url;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(g.rc, RN_EIO);
	assert_int_equal(g.status, 0);
	assert_non_null(g.error);
	assert_true(g.error[0] != '\0');

	net_http_free(h);
	th_drain_and_close(&loop);
	free(url);
	got_release(&g);
}

/* Only http and https: a file:// URL must not read a local file. */
static void
test_http_other_scheme(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	got g = {0};

	uv_loop_init(&loop);
	assert_int_equal(client_new(&loop, &h), 0);
	memset(&req, 0, sizeof(req));
	req.url = "file:///etc/passwd";
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_int_equal(g.n, 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(g.rc, RN_EIO);
	assert_int_equal(g.body_len, 0);

	req.method = "GET\r\nX-Evil: 1";
	assert_int_equal(net_http_request(h, &req, got_cb, &g), RN_EINVAL);
	req.method = NULL;
	req.url = NULL;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), RN_EINVAL);
	assert_int_equal(net_http_active(h), 0);

	net_http_free(h);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 1);
	got_release(&g);
}

static char *
big_body(size_t n)
{
	char *b = malloc(n);
	size_t i;

	for (i = 0; i < n; i++)
		b[i] = (char)('a' + i % 26);
	return b;
}

/* The cap holds with a Content-Length and without one (read to EOF). */
static void
test_http_response_cap(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g = {0};
	char *url, *body = big_body(5000);

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.body = body;
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/big");
	memset(&req, 0, sizeof(req));
	req.url = url;
	req.max_response = 1000;

	/* exactly the cap is fine */
	s.body_len = 1000;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 3000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.body_len, 1000);
	assert_memory_equal(g.body, body, 1000);

	s.body_len = 5000;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 3000));
	assert_int_equal(g.rc, RN_ETOOBIG);
	assert_true(g.body_len <= 1000);

	s.no_length = 1;
	assert_int_equal(net_http_request(h, &req, got_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 3, 3000));
	assert_int_equal(g.rc, RN_ETOOBIG);
	assert_true(g.body_len <= 1000);
	assert_non_null(g.error);
	assert_int_equal(s.requests, 3);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(url);
	free(body);
	got_release(&g);
}

static void
test_http_free_in_flight(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s;
	got g1 = {0}, g2 = {0};
	char *url;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.respond = 0;
	assert_int_equal(client_new(&loop, &h), 0);
	url = th_url_for(&s, "/hang");
	memset(&req, 0, sizeof(req));
	req.url = url;
	req.timeout_ms = 5000;
	assert_int_equal(net_http_request(h, &req, got_cb, &g1), 0);
	assert_true(th_run_until(&loop, &s.requests, 1, 3000));
	assert_int_equal(g1.n, 0);
	/* one on the wire, one not even started */
	assert_int_equal(net_http_request(h, &req, got_cb, &g2), 0);
	assert_int_equal(net_http_active(h), 2);
	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g1.n, 1);
	assert_int_equal(g1.rc, RN_ECANCELED);
	assert_int_equal(g2.n, 1);
	assert_int_equal(g2.rc, RN_ECANCELED);
	net_http_free(NULL);
	free(url);
	got_release(&g1);
	got_release(&g2);
}

/* Freeing from a response callback cancels the rest and still closes. */
static void
test_http_free_from_callback(void **state)
{
	uv_loop_t loop;
	net_http *h;
	net_http_req req;
	th_srv s, hang;
	got g1 = {0}, g2 = {0};
	char *url1, *url2;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	th_srv_start(&loop, &hang);
	hang.respond = 0;
	assert_int_equal(client_new(&loop, &h), 0);
	url1 = th_url_for(&s, "/fast");
	url2 = th_url_for(&hang, "/hang");
	memset(&req, 0, sizeof(req));
	req.url = url2;
	assert_int_equal(net_http_request(h, &req, got_cb, &g2), 0);
	assert_true(th_run_until(&loop, &hang.requests, 1, 3000));
	req.url = url1;
	g1.free_me = h;
	assert_int_equal(net_http_request(h, &req, got_cb, &g1), 0);
	assert_true(th_run_until(&loop, &g1.n, 1, 3000));
	assert_int_equal(g1.rc, 0);
	assert_int_equal(g1.status, 200);
	assert_int_equal(g2.n, 1);
	assert_int_equal(g2.rc, RN_ECANCELED);
	th_srv_stop(&s);
	th_srv_stop(&hang);
	th_drain_and_close(&loop);
	assert_int_equal(g1.n, 1);
	assert_int_equal(g2.n, 1);
	free(url1);
	free(url2);
	got_release(&g1);
	got_release(&g2);
}

/* ---- child processes -------------------------------------------------- */

typedef struct pgot {
	int n;
	int rc;
	int64_t exit_status;
	int term_signal;
	char *out;
	size_t out_len;
	int out_nul;
	size_t active_in_cb;
} pgot;

static void
pgot_cb(void *arg, const net_proc_result *r)
{
	pgot *g = arg;

	g->n++;
	g->rc = r->rc;
	g->exit_status = r->exit_status;
	g->term_signal = r->term_signal;
	free(g->out);
	g->out = malloc(r->output_len + 1);
	memcpy(g->out, r->output, r->output_len + 1);
	g->out_len = r->output_len;
	g->out_nul = r->output[r->output_len] == '\0';
	g->active_in_cb = net_proc_active();
}

static void
test_proc_stdin_and_output(void **state)
{
	char *argv[] = {"sh", "-c", "cat; echo err >&2; exit 3", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g = {0};
	char *in = strdup("hello");

	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.stdin_data = in;
	o.stdin_len = 5;
	o.timeout_ms = 5000;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), 0);
	memset(in, 'X', 5); /* stdin must have been copied */
	free(in);
	assert_int_equal(g.n, 0);
	assert_int_equal(net_proc_active(), 1);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.exit_status, 3);
	assert_int_equal(g.term_signal, 0);
	/* stdout, then stderr */
	assert_int_equal(g.out_len, 9);
	assert_string_equal(g.out, "helloerr\n");
	assert_true(g.out_nul);
	assert_int_equal(net_proc_active(), 0);
	/* every handle was closed before the callback */
	assert_int_equal(uv_loop_close(&loop), 0);
	free(g.out);
}

static void
test_proc_env(void **state)
{
	char *argv[] = {"sh", "-c", "printf %s \"$FOO:$RN_T_OVER:$RN_T_KEEP\"",
			NULL};
	char *extra[] = {"FOO=first", "RN_T_OVER=new", "FOO=bar", NULL};
	char *bad[] = {"NOEQUALS", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g = {0};

	setenv("RN_T_OVER", "old", 1);
	setenv("RN_T_KEEP", "kept", 1);
	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.env_extra = extra;
	o.timeout_ms = 5000;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.rc, 0);
	assert_int_equal(g.exit_status, 0);
	assert_string_equal(g.out, "bar:new:kept");

	o.env_extra = bad;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), RN_EINVAL);
	assert_int_equal(net_proc_active(), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	assert_int_equal(g.n, 1);
	unsetenv("RN_T_OVER");
	unsetenv("RN_T_KEEP");
	free(g.out);
}

/*
 * Run argv with a timeout of timeout_ms, wait up to wait_ms for the result
 * in *g, and return the milliseconds that took. The loop must close.
 */
static uint64_t
proc_timed(char **argv, int64_t timeout_ms, uint64_t wait_ms, pgot *g)
{
	uv_loop_t loop;
	net_proc_opts o;
	uint64_t t0, ms;

	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.timeout_ms = timeout_ms;
	t0 = uv_hrtime();
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, g), 0);
	assert_true(th_run_until(&loop, &g->n, 1, wait_ms));
	ms = th_ms_since(t0);
	assert_int_equal(uv_loop_close(&loop), 0);
	return ms;
}

static void
test_proc_timeout_term(void **state)
{
	char *argv[] = {"sleep", "10", NULL};
	pgot g = {0};
	uint64_t ms;

	ms = proc_timed(argv, 200, 5000, &g);
	assert_int_equal(g.rc, RN_ETIMEDOUT);
	assert_int_equal(g.term_signal, SIGTERM);
	assert_true(ms >= 150);
	assert_true(ms < 1500);
	free(g.out);
}

static void
test_proc_timeout_kill(void **state)
{
	char *argv[] = {"sh", "-c", "trap '' TERM; sleep 10", NULL};
	pgot g = {0};
	uint64_t ms;

	ms = proc_timed(argv, 200, 6000, &g);
	assert_int_equal(g.rc, RN_ETIMEDOUT);
	assert_int_equal(g.term_signal, SIGKILL);
	assert_true(ms >= 2100);
	assert_true(ms < 4000);
	free(g.out);
}

/* A background grandchild holding stdout dies with the group. */
static void
test_proc_timeout_group(void **state)
{
	char *argv[] = {"sh", "-c", "sleep 10 & echo started", NULL};
	pgot g = {0};
	uint64_t ms;

	ms = proc_timed(argv, 300, 6000, &g);
	assert_int_equal(g.rc, RN_ETIMEDOUT);
	assert_int_equal(g.exit_status, 0);
	assert_string_equal(g.out, "started\n");
	assert_true(ms < 1500);
	free(g.out);
}

static void
test_proc_output_cap(void **state)
{
	char *argv[] = {"sh", "-c", "yes | head -c 1000000", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g = {0};
	size_t i;

	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.timeout_ms = 5000;
	o.output_cap = 1000;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.rc, 0);
	/* it completed: head wrote everything and exited on its own */
	assert_int_equal(g.exit_status, 0);
	assert_int_equal(g.term_signal, 0);
	assert_int_equal(g.out_len, 1000);
	assert_true(g.out_nul);
	for (i = 0; i < 1000; i++)
		assert_int_equal(g.out[i], i % 2 ? '\n' : 'y');
	assert_int_equal(uv_loop_close(&loop), 0);
	free(g.out);
}

/* Children that read part of stdin, or none, or get none. */
static void
test_proc_stdin_edges(void **state)
{
	char *head[] = {"head", "-c", "10", NULL};
	char *tru[] = {"true", NULL};
	char *cat[] = {"cat", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g1 = {0}, g2 = {0}, g3 = {0};
	size_t big = 1024 * 1024;
	char *in = malloc(big);

	memset(in, 'a', big);
	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 5000;
	o.stdin_data = in;
	o.stdin_len = big;
	o.argv = head;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g1), 0);
	o.argv = tru;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g2), 0);
	o.argv = cat;
	o.stdin_data = NULL;
	o.stdin_len = 0;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g3), 0);
	free(in);
	assert_int_equal(net_proc_active(), 3);
	assert_true(th_run_until(&loop, &g1.n, 1, 5000));
	assert_true(th_run_until(&loop, &g2.n, 1, 5000));
	assert_true(th_run_until(&loop, &g3.n, 1, 5000));
	assert_int_equal(g1.rc, 0);
	assert_int_equal(g1.exit_status, 0);
	assert_string_equal(g1.out, "aaaaaaaaaa");
	assert_int_equal(g2.rc, 0);
	assert_int_equal(g2.exit_status, 0);
	assert_int_equal(g2.out_len, 0);
	assert_int_equal(g3.rc, 0);
	assert_int_equal(g3.exit_status, 0);
	assert_int_equal(g3.out_len, 0);
	assert_int_equal(net_proc_active(), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(g1.out);
	free(g2.out);
	free(g3.out);
}

static void
test_proc_spawn_failure(void **state)
{
	char *abs[] = {"/nonexistent/rn-no-such-program", NULL};
	char *rel[] = {"rn-no-such-program-on-path", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g = {0};

	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.timeout_ms = 5000;
	o.stdin_data = "x";
	o.stdin_len = 1;
	o.argv = abs;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), RN_ENOTFOUND);
	o.argv = rel;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g), RN_ENOTFOUND);
	assert_int_equal(net_proc_active(), 0);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 0);
}

static void
test_proc_kill_all(void **state)
{
	char *argv[] = {"sleep", "10", NULL};
	uv_loop_t loop;
	net_proc_opts o;
	pgot g1 = {0}, g2 = {0};
	uint64_t t0;

	uv_loop_init(&loop);
	memset(&o, 0, sizeof(o));
	o.argv = argv;
	o.timeout_ms = 10000;
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g1), 0);
	assert_int_equal(net_proc_run(&loop, &o, pgot_cb, &g2), 0);
	assert_int_equal(net_proc_active(), 2);
	t0 = uv_hrtime();
	net_proc_kill_all();
	assert_int_equal(g1.n + g2.n, 0); /* callbacks follow, from the loop */
	assert_true(th_run_until(&loop, &g1.n, 1, 3000));
	assert_true(th_run_until(&loop, &g2.n, 1, 3000));
	assert_true(th_ms_since(t0) < 1500);
	assert_int_equal(g1.rc, RN_ECANCELED);
	assert_int_equal(g1.term_signal, SIGKILL);
	assert_int_equal(g2.rc, RN_ECANCELED);
	assert_int_equal(g2.term_signal, SIGKILL);
	assert_int_equal(net_proc_active(), 0);
	assert_int_equal(uv_loop_close(&loop), 0);
	free(g1.out);
	free(g2.out);
}

int
main(void)
{
	const struct CMUnitTest http[] = {
		cmocka_unit_test(test_http_post_roundtrip),
		cmocka_unit_test(test_http_basic_auth),
		cmocka_unit_test(test_http_status_is_not_error),
		cmocka_unit_test(test_http_connection_reuse),
		cmocka_unit_test(test_http_concurrent),
		cmocka_unit_test(test_http_timeout),
		cmocka_unit_test(test_http_refused),
		cmocka_unit_test(test_http_other_scheme),
		cmocka_unit_test(test_http_response_cap),
		cmocka_unit_test(test_http_free_in_flight),
		cmocka_unit_test(test_http_free_from_callback),
	};
	const struct CMUnitTest proc[] = {
		cmocka_unit_test(test_proc_stdin_and_output),
		cmocka_unit_test(test_proc_env),
		cmocka_unit_test(test_proc_timeout_term),
		cmocka_unit_test(test_proc_timeout_kill),
		cmocka_unit_test(test_proc_timeout_group),
		cmocka_unit_test(test_proc_output_cap),
		cmocka_unit_test(test_proc_stdin_edges),
		cmocka_unit_test(test_proc_spawn_failure),
		cmocka_unit_test(test_proc_kill_all),
	};

	/* the daemon ignores SIGPIPE; stdin writes to dead children need it */
	signal(SIGPIPE, SIG_IGN);
	/* talk to 127.0.0.1 directly whatever proxy the environment names */
	setenv("no_proxy", "127.0.0.1", 1);
	setenv("NO_PROXY", "127.0.0.1", 1);
	int failed = cmocka_run_group_tests_name("http", http, NULL, NULL);

	failed += cmocka_run_group_tests_name("http threaded", http,
					      use_threaded, NULL);
	failed += cmocka_run_group_tests_name("proc", proc, NULL, NULL);
	return failed;
}
