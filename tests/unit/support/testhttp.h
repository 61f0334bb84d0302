/*
 * testhttp: shared plumbing for the unit tests that drive a libuv loop.
 *
 *  - Loop helpers: run a loop until a counter reaches a value (bounded by a
 *    guard timer, so a broken implementation fails instead of hanging),
 *    drain pending closes and assert that uv_loop_close() succeeds, and
 *    measure elapsed milliseconds.
 *  - A tiny HTTP/1.1 server on 127.0.0.1 (ephemeral port) on the same loop.
 *    It records the last request and answers every request with the
 *    canned response in its th_srv fields (or never answers, respond = 0).
 *
 * Failures are reported with cmocka asserts, so these functions may only
 * be called from inside a cmocka test.
 */
#ifndef RN_TESTS_TESTHTTP_H
#define RN_TESTS_TESTHTTP_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

/* ---- loop helpers ----------------------------------------------------- */

/*
 * Run the loop until *count reaches want or ms pass, whichever is first.
 * Returns nonzero when *count >= want.
 */
int th_run_until(uv_loop_t *loop, const int *count, int want, uint64_t ms);

/* Let pending closes finish (bounded, 3 s), then assert uv_loop_close() == 0. */
void th_drain_and_close(uv_loop_t *loop);

/* Milliseconds since start, a uv_hrtime() value. */
uint64_t th_ms_since(uint64_t start);

/* ---- a tiny HTTP/1.1 server ------------------------------------------- */

struct th_conn; /* one accepted connection; private to testhttp.c */

typedef struct th_srv {
	uv_tcp_t listener;
	int port;     /* the bound port, set by th_srv_start */
	int accepts;  /* connections accepted so far */
	int requests; /* complete requests read so far */
	/* the answer, set freely between th_srv_start and the request */
	int respond; /* 0: read requests, never answer */
	int status;
	const char *ctype;        /* Content-Type, or NULL for none */
	const char *extra_header; /* one "Name: value" line, or NULL */
	const char *body;
	size_t body_len;
	int no_length; /* no Content-Length: close after the body */
	/* the last request */
	char method[16];
	char target[256];
	char *headers;  /* request line and headers, up to the blank line */
	char *req_body; /* NUL-terminated */
	size_t req_body_len;
	struct th_conn *conns;
} th_srv;

/*
 * Bind 127.0.0.1 on an ephemeral port and listen on loop. s is reset;
 * the default answer is 200 text/plain "ok".
 */
void th_srv_start(uv_loop_t *loop, th_srv *s);

/*
 * Close the listener and every open connection and free the recorded
 * request. The handles close on the next loop iterations (th_drain_and_close).
 */
void th_srv_stop(th_srv *s);

/* "http://127.0.0.1:<port><path>"; the caller frees it. */
char *th_url_for(const th_srv *s, const char *path);

/*
 * A port on 127.0.0.1 that was just bound and is now closed, for
 * connection-refused tests. Runs the loop once (NOWAIT) to close it.
 */
int th_closed_port(uv_loop_t *loop);

#endif
