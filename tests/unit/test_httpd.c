/*
 * net_httpd: the HTTP server on the loop, driven by net_http (the client
 * from net.h) on the same loop, 127.0.0.1 and an ephemeral port only.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/common.h"
#include "net/httpd.h"
#include "net/net.h"
#include "tests/unit/support/testhttp.h"

#define MAX_HELD 32

/* What the handler saw, and what it should do. */
typedef struct srv_state {
	int calls;
	int defer; /* 1: keep the request, answer later */
	net_httpd_req *held[MAX_HELD];
	int nheld;
	char method[16];
	char path[256];
	char q_a[64], q_b[64], q_c[64];
	int q_d_null;
	char hdr[64];
	char peer[64];
	unsigned char *body;
	size_t body_len;
	int stop_in_handler;
	unsigned status; /* answer with this (0: 200); tests pass invalid ones */
	net_httpd *h;
} srv_state;

/* One client request's outcome. */
typedef struct cli_res {
	int done;
	int rc;
	long status;
	char body[256];
	char ctype[64];
} cli_res;

typedef struct fixture {
	uv_loop_t loop;
	net_httpd *h;
	net_http *cli;
	srv_state s;
	char base[64];
} fixture;

static void
copy_str(char *dst, size_t n, const char *src)
{
	snprintf(dst, n, "%s", src ? src : "(null)");
}

static void
handler(void *arg, net_httpd_req *req)
{
	srv_state *s = arg;
	const void *b;
	size_t len;

	s->calls++;
	copy_str(s->method, sizeof(s->method), net_httpd_req_method(req));
	copy_str(s->path, sizeof(s->path), net_httpd_req_path(req));
	copy_str(s->q_a, sizeof(s->q_a), net_httpd_req_query(req, "a"));
	copy_str(s->q_b, sizeof(s->q_b), net_httpd_req_query(req, "b"));
	copy_str(s->q_c, sizeof(s->q_c), net_httpd_req_query(req, "c"));
	s->q_d_null = net_httpd_req_query(req, "d") == NULL;
	copy_str(s->hdr, sizeof(s->hdr), net_httpd_req_header(req, "x-test"));
	copy_str(s->peer, sizeof(s->peer), net_httpd_req_peer(req));
	b = net_httpd_req_body(req, &len);
	free(s->body);
	s->body = malloc(len + 1);
	assert_non_null(s->body);
	memcpy(s->body, b, len);
	s->body_len = len;
	if (s->stop_in_handler) {
		s->nheld < MAX_HELD ? (void)(s->held[s->nheld++] = req) : (void)0;
		net_httpd_stop(s->h);
		s->h = NULL;
		return;
	}
	if (s->defer) {
		assert_true(s->nheld < MAX_HELD);
		s->held[s->nheld++] = req;
		return;
	}
	assert_int_equal(net_httpd_req_set_header(req, "X-Reply", "yes"), 0);
	assert_int_equal(net_httpd_req_set_header(req, "X-A: b", "v"),
			 RN_EINVAL);
	assert_int_equal(net_httpd_req_set_header(req, "X-A", "v\r\nX-B: c"),
			 RN_EINVAL);
	assert_int_equal(net_httpd_respond(req, s->status ? s->status : 200,
					   "application/json", "{\"ok\":1}", 8),
			 s->status ? RN_EINVAL : 0);
}

static void
cli_cb(void *arg, const net_http_resp *r)
{
	cli_res *c = arg;

	c->rc = r->rc;
	c->status = r->status;
	copy_str(c->body, sizeof(c->body), r->body);
	copy_str(c->ctype, sizeof(c->ctype), r->content_type);
	c->done = 1;
}

static void
fx_start(fixture *f, const net_httpd_opts *o)
{
	char *err = NULL;

	memset(f, 0, sizeof(*f));
	assert_int_equal(uv_loop_init(&f->loop), 0);
	assert_int_equal(net_httpd_start(&f->loop, "127.0.0.1:0", o, handler,
					 &f->s, &f->h, &err),
			 0);
	assert_null(err);
	assert_true(net_httpd_port(f->h) > 0);
	f->s.h = f->h;
	snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d",
		 net_httpd_port(f->h));
	assert_int_equal(net_http_new(&f->loop, &f->cli), 0);
}

static void
fx_stop(fixture *f)
{
	net_http_free(f->cli);
	net_httpd_stop(f->h);
	th_drain_and_close(&f->loop);
	free(f->s.body);
}

static void
send_req_h(fixture *f, const char *method, const char *path,
	   const void *body, size_t len, int64_t timeout_ms,
	   const char *const *hdrs, cli_res *c)
{
	char url[512];
	net_http_req rq;

	snprintf(url, sizeof(url), "%s%s", f->base, path);
	memset(&rq, 0, sizeof(rq));
	rq.method = method;
	rq.url = url;
	rq.headers = hdrs;
	rq.body = body;
	rq.body_len = len;
	rq.timeout_ms = timeout_ms ? timeout_ms : 10000;
	assert_int_equal(net_http_request(f->cli, &rq, cli_cb, c), 0);
}

static void
send_req(fixture *f, const char *method, const char *path,
	 const void *body, size_t len, int64_t timeout_ms, cli_res *c)
{
	static const char *const hdrs[] = { "X-Test: yes", NULL };

	send_req_h(f, method, path, body, len, timeout_ms, hdrs, c);
}

/* ---- tests ------------------------------------------------------------ */

static void
test_pct_decode(void **state)
{
	char out[32];

	assert_int_equal(net_httpd_pct_decode("/a%2Cb%2fc", out, sizeof(out)),
			 6);
	assert_string_equal(out, "/a,b/c");
	assert_int_equal(net_httpd_pct_decode("a+b", out, sizeof(out)), 3);
	assert_string_equal(out, "a+b");
	assert_int_equal(net_httpd_pct_decode("%zz", out, sizeof(out)),
			 RN_EINVAL);
	assert_int_equal(net_httpd_pct_decode("%4", out, sizeof(out)),
			 RN_EINVAL);
	assert_int_equal(net_httpd_pct_decode("a%00b", out, sizeof(out)),
			 RN_EINVAL);
	assert_int_equal(net_httpd_pct_decode("abcd", out, 4), RN_ETOOBIG);
	assert_int_equal(net_httpd_pct_decode("abc", out, 4), 3);
}

static void
test_start_errors(void **state)
{
	uv_loop_t loop;
	net_httpd *h = NULL, *h2 = (net_httpd *)1;
	char *err = NULL, listen[64];

	assert_int_equal(uv_loop_init(&loop), 0);
	assert_int_equal(net_httpd_start(&loop, "nope", NULL, handler, NULL,
					 &h2, &err),
			 RN_EINVAL);
	assert_null(h2);
	assert_non_null(err);
	assert_non_null(strstr(err, "cannot listen on 'nope'"));
	free(err);
	err = NULL;

	assert_int_equal(net_httpd_start(&loop, "127.0.0.1:0", NULL, handler,
					 NULL, &h, &err),
			 0);
	snprintf(listen, sizeof(listen), "127.0.0.1:%d", net_httpd_port(h));
	assert_int_equal(net_httpd_start(&loop, listen, NULL, handler, NULL,
					 &h2, &err),
			 RN_EIO);
	assert_null(h2);
	assert_non_null(err);
	assert_non_null(strstr(err, "cannot listen on '127.0.0.1:"));
	free(err);
	net_httpd_stop(h);
	th_drain_and_close(&loop);
}

static void
test_get_query_header(void **state)
{
	fixture f;
	cli_res c = { 0 };
	char dec[64];

	fx_start(&f, NULL);
	send_req(&f, "GET", "/v1/items%2Cx?a=hello%20world&b=x+y%2By&c", NULL,
		 0, 0, &c);
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.status, 200);
	assert_string_equal(c.body, "{\"ok\":1}");
	assert_string_equal(c.ctype, "application/json");

	assert_int_equal(f.s.calls, 1);
	assert_string_equal(f.s.method, "GET");
	assert_string_equal(f.s.path, "/v1/items%2Cx");
	assert_int_equal(net_httpd_pct_decode(f.s.path, dec, sizeof(dec)), 11);
	assert_string_equal(dec, "/v1/items,x");
	assert_string_equal(f.s.q_a, "hello world");
	assert_string_equal(f.s.q_b, "x y+y");
	assert_string_equal(f.s.q_c, "");
	assert_true(f.s.q_d_null);
	assert_string_equal(f.s.hdr, "yes");
	assert_string_equal(f.s.peer, "127.0.0.1");
	assert_int_equal(f.s.body_len, 0);
	fx_stop(&f);
}

static void
test_bad_status_is_500(void **state)
{
	fixture f;
	cli_res c = { 0 };

	fx_start(&f, NULL);
	f.s.status = 42;
	send_req(&f, "GET", "/bad", NULL, 0, 0, &c);
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(c.status, 500);
	assert_string_equal(c.body, "internal error");
	fx_stop(&f);
}

static void
test_ipv6(void **state)
{
	uv_loop_t loop;
	net_httpd *h = NULL;
	net_http *cli = NULL;
	srv_state s;
	cli_res c = { 0 };
	net_http_req rq;
	char url[64], *err = NULL;
	int rc;

	memset(&s, 0, sizeof(s));
	assert_int_equal(uv_loop_init(&loop), 0);
	rc = net_httpd_start(&loop, "[::1]:0", NULL, handler, &s, &h, &err);
	if (rc == RN_EIO) { /* no IPv6 loopback here */
		free(err);
		th_drain_and_close(&loop);
		skip();
	}
	assert_int_equal(rc, 0);
	snprintf(url, sizeof(url), "http://[::1]:%d/six", net_httpd_port(h));
	assert_int_equal(net_http_new(&loop, &cli), 0);
	memset(&rq, 0, sizeof(rq));
	rq.url = url;
	assert_int_equal(net_http_request(cli, &rq, cli_cb, &c), 0);
	assert_true(th_run_until(&loop, &c.done, 1, 5000));
	assert_int_equal(c.status, 200);
	assert_string_equal(s.path, "/six");
	assert_string_equal(s.peer, "::1");
	net_http_free(cli);
	net_httpd_stop(h);
	th_drain_and_close(&loop);
	free(s.body);
}

static void
test_post_binary_body(void **state)
{
	fixture f;
	cli_res c = { 0 };
	size_t i, n = 100 * 1024;
	unsigned char *body = malloc(n);

	assert_non_null(body);
	for (i = 0; i < n; i++)
		body[i] = (unsigned char)((i * 7 + i / 256) & 0xff);
	fx_start(&f, NULL);
	send_req(&f, "POST", "/upload", body, n, 0, &c);
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.status, 200);
	assert_int_equal(f.s.calls, 1);
	assert_string_equal(f.s.method, "POST");
	assert_int_equal(f.s.body_len, n);
	assert_memory_equal(f.s.body, body, n);
	fx_stop(&f);
	free(body);
}

static void
test_body_cap(void **state)
{
	fixture f;
	static const char *const expect[] = { "Expect: 100-continue", NULL };
	cli_res ok = { 0 }, big = { 0 }, rude = { 0 };
	size_t cap = (size_t)2 * 1024 * 1024;
	char *body = calloc(1, cap + 1);

	assert_non_null(body);
	fx_start(&f, NULL);
	/* exactly the cap is accepted ... */
	send_req(&f, "POST", "/cap", body, cap, 0, &ok);
	assert_true(th_run_until(&f.loop, &ok.done, 1, 10000));
	assert_int_equal(ok.status, 200);
	assert_int_equal(f.s.calls, 1);
	assert_int_equal(f.s.body_len, cap);
	/*
	 * ... one byte more is refused from the headers, before the body
	 * is read: a client that waits for 100-continue gets a clean 413
	 */
	send_req_h(&f, "POST", "/cap", body, cap + 1, 0, expect, &big);
	assert_true(th_run_until(&f.loop, &big.done, 1, 10000));
	assert_int_equal(big.rc, 0);
	assert_int_equal(big.status, 413);
	assert_string_equal(big.body, "request body too large");
	assert_int_equal(f.s.calls, 1);
	/*
	 * one that sends the body anyway may see the 413 or, as the server
	 * stops reading and closes, a reset; never the handler
	 */
	send_req(&f, "POST", "/cap", body, cap + 1, 0, &rude);
	assert_true(th_run_until(&f.loop, &rude.done, 1, 10000));
	assert_true(rude.status == 413 || rude.rc == RN_EIO);
	assert_int_equal(f.s.calls, 1);
	fx_stop(&f);
	free(body);
}

static void
late_respond(uv_timer_t *t)
{
	srv_state *s = t->data;
	int i;

	for (i = 0; i < s->nheld; i++)
		assert_int_equal(net_httpd_respond(s->held[i], 202, "text/plain",
						   "later", 5),
				 0);
	s->nheld = 0;
}

static void
test_deferred_response(void **state)
{
	fixture f;
	cli_res c = { 0 };
	uv_timer_t t;
	uint64_t start;

	fx_start(&f, NULL);
	f.s.defer = 1;
	start = uv_hrtime();
	send_req(&f, "GET", "/slow", NULL, 0, 0, &c);
	assert_true(th_run_until(&f.loop, &f.s.calls, 1, 5000));
	assert_int_equal(c.done, 0);
	uv_timer_init(&f.loop, &t);
	t.data = &f.s;
	uv_timer_start(&t, late_respond, 50, 0);
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_true(th_ms_since(start) >= 45);
	assert_int_equal(c.rc, 0);
	assert_int_equal(c.status, 202);
	assert_string_equal(c.body, "later");
	assert_string_equal(c.ctype, "text/plain");
	uv_close((uv_handle_t *)&t, NULL);
	fx_stop(&f);
}

/* Answer each held request with its own path, so mix-ups show. */
static void
answer_held_with_path(srv_state *s)
{
	int i;

	for (i = 0; i < s->nheld; i++) {
		const char *p = net_httpd_req_path(s->held[i]);

		assert_int_equal(net_httpd_respond(s->held[i], 200,
						   "text/plain", p, strlen(p)),
				 0);
	}
	s->nheld = 0;
}

static void
test_concurrent(void **state)
{
	fixture f;
	cli_res c[20];
	char path[32];
	int i, done;

	memset(c, 0, sizeof(c));
	fx_start(&f, NULL);
	f.s.defer = 1;
	for (i = 0; i < 20; i++) {
		snprintf(path, sizeof(path), "/n/%d", i);
		send_req(&f, "GET", path, NULL, 0, 0, &c[i]);
	}
	/* all 20 are held at once: they really were concurrent */
	assert_true(th_run_until(&f.loop, &f.s.calls, 20, 10000));
	assert_int_equal(f.s.nheld, 20);
	answer_held_with_path(&f.s);
	for (i = 0; i < 20; i++) {
		assert_true(th_run_until(&f.loop, &c[i].done, 1, 5000));
		snprintf(path, sizeof(path), "/n/%d", i);
		assert_int_equal(c[i].status, 200);
		assert_string_equal(c[i].body, path);
	}
	for (done = 0, i = 0; i < 20; i++)
		done += c[i].done;
	assert_int_equal(done, 20);
	fx_stop(&f);
}

static void
test_connection_limit(void **state)
{
	net_httpd_opts o = { .connection_limit = 2 };
	fixture f;
	cli_res a = { 0 }, b = { 0 }, third = { 0 };

	fx_start(&f, &o);
	f.s.defer = 1;
	send_req(&f, "GET", "/a", NULL, 0, 0, &a);
	send_req(&f, "GET", "/b", NULL, 0, 0, &b);
	assert_true(th_run_until(&f.loop, &f.s.calls, 2, 5000));
	send_req(&f, "GET", "/c", NULL, 0, 500, &third);
	assert_true(th_run_until(&f.loop, &third.done, 1, 5000));
	/* the third was not served while the two were held */
	assert_int_equal(f.s.calls, 2);
	assert_true(third.status != 200);
	assert_int_equal(a.done + b.done, 0);
	answer_held_with_path(&f.s);
	assert_true(th_run_until(&f.loop, &a.done, 1, 5000));
	assert_true(th_run_until(&f.loop, &b.done, 1, 5000));
	assert_int_equal(a.status, 200);
	assert_string_equal(a.body, "/a");
	assert_int_equal(b.status, 200);
	assert_string_equal(b.body, "/b");
	fx_stop(&f);
}

static void
sleep_ms(uv_loop_t *loop, uint64_t ms)
{
	int never = 0;

	th_run_until(loop, &never, 1, ms);
}

static void
test_client_gone(void **state)
{
	fixture f;
	cli_res c = { 0 }, next = { 0 };

	fx_start(&f, NULL);
	f.s.defer = 1;
	send_req(&f, "GET", "/gone", NULL, 0, 200, &c);
	assert_true(th_run_until(&f.loop, &f.s.calls, 1, 5000));
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(c.rc, RN_ETIMEDOUT);
	/* let the server see the hang-up */
	sleep_ms(&f.loop, 100);
	assert_int_equal(f.s.nheld, 1);
	assert_int_equal(net_httpd_respond(f.s.held[0], 200, "text/plain",
					   "late", 4),
			 RN_ECANCELED);
	f.s.nheld = 0;
	/* the server still serves */
	f.s.defer = 0;
	send_req(&f, "GET", "/after", NULL, 0, 0, &next);
	assert_true(th_run_until(&f.loop, &next.done, 1, 5000));
	assert_int_equal(next.status, 200);
	assert_string_equal(f.s.path, "/after");
	fx_stop(&f);
}

static void
test_stop_with_suspended(void **state)
{
	fixture f;
	cli_res c = { 0 };

	fx_start(&f, NULL);
	f.s.defer = 1;
	send_req(&f, "GET", "/held", NULL, 0, 0, &c);
	assert_true(th_run_until(&f.loop, &f.s.calls, 1, 5000));
	net_httpd_stop(f.h);
	f.h = NULL;
	f.s.nheld = 0; /* invalid after stop */
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(c.status, 503);
	fx_stop(&f); /* asserts uv_loop_close() == 0 */
}

static void
test_stop_inside_handler(void **state)
{
	fixture f;
	cli_res c = { 0 };

	fx_start(&f, NULL);
	f.s.stop_in_handler = 1;
	send_req(&f, "GET", "/stop", NULL, 0, 0, &c);
	assert_true(th_run_until(&f.loop, &c.done, 1, 5000));
	assert_int_equal(f.s.calls, 1);
	assert_int_equal(c.status, 503);
	f.h = NULL;
	fx_stop(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pct_decode),
		cmocka_unit_test(test_start_errors),
		cmocka_unit_test(test_get_query_header),
		cmocka_unit_test(test_bad_status_is_500),
		cmocka_unit_test(test_ipv6),
		cmocka_unit_test(test_post_binary_body),
		cmocka_unit_test(test_body_cap),
		cmocka_unit_test(test_deferred_response),
		cmocka_unit_test(test_concurrent),
		cmocka_unit_test(test_connection_limit),
		cmocka_unit_test(test_client_gone),
		cmocka_unit_test(test_stop_with_suspended),
		cmocka_unit_test(test_stop_inside_handler),
	};

	log_setup(RN_LOG_ERROR, RN_LOGFMT_LOGFMT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
