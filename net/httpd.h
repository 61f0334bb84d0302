/*
 * net_httpd: an HTTP/1.1 server on the libuv loop (libmicrohttpd in
 * external epoll mode: no thread of its own; its epoll fd is watched by a
 * uv_poll_t and its timeout by a uv_timer_t).
 *
 * Invariants:
 *  - the handler is called once per request, from the loop, with the
 *    whole body read (at most max_body bytes); a larger body (declared or
 *    actual) is answered 413 "request body too large" and never reaches
 *    the handler;
 *  - every request the handler received must be answered exactly once
 *    with net_httpd_respond, inside the handler or from any later loop
 *    callback. An unanswered request holds its connection (suspended)
 *    and counts against connection_limit;
 *  - a request stays allocated until it has been answered AND its
 *    connection is done with it, so a late net_httpd_respond after the
 *    client went away is safe: it returns RN_ECANCELED. After
 *    net_httpd_respond returns (whatever it returns) req must not be used
 *    again;
 *  - net_httpd_stop answers every unanswered request 503 and frees it:
 *    after net_httpd_stop no net_httpd_req pointer may be used.
 */
#ifndef RN_NET_HTTPD_H
#define RN_NET_HTTPD_H

#include <stddef.h>

#include <uv.h>

#include "common/common.h"

typedef struct net_httpd net_httpd;
typedef struct net_httpd_req net_httpd_req;

typedef struct net_httpd_opts {
	size_t max_body;		/* request body cap; 0 = 2 MiB */
	unsigned connection_limit;	/* 0 = 256 */
	unsigned connection_timeout_s;	/* idle connection; 0 = 30 */
} net_httpd_opts;

/* Called once per complete request; see the invariants above. */
typedef void (*net_httpd_handler)(void *arg, net_httpd_req *req);

/*
 * Listen on listen ("127.0.0.1:8180" or "[::1]:8180"; port 0 picks a free
 * port, see net_httpd_port) and serve on loop. o may be NULL (defaults).
 * On error *out is NULL and, when errmsg is not NULL, *errmsg is a
 * malloc'd message such as "cannot listen on '127.0.0.1:80': ...".
 */
int net_httpd_start(uv_loop_t *loop, const char *listen,
		    const net_httpd_opts *o, net_httpd_handler h, void *arg,
		    net_httpd **out, char **errmsg);

/* The bound port, or -1. */
int net_httpd_port(net_httpd *h);

/*
 * Stop listening, answer unanswered requests 503, close every connection
 * and the handles; h is freed once its handles are closed (the loop then
 * has nothing left of it). Safe from inside the handler. NULL is a no-op.
 */
void net_httpd_stop(net_httpd *h);

/* ---- the request (valid until net_httpd_respond) ----------------------- */

const char *net_httpd_req_method(const net_httpd_req *req);
/*
 * The URL path exactly as sent, still percent-encoded ("/a%2Cb"): the
 * server does not unescape it, so an encoded '/' cannot be confused with
 * a separator. Use net_httpd_pct_decode to decode a segment.
 */
const char *net_httpd_req_path(const net_httpd_req *req);
/*
 * The query argument name, decoded ('+' is a space, %HH a byte), or NULL
 * when absent or not validly encoded; "" for "?name" without '='. Names
 * are matched after decoding; the first occurrence wins.
 */
const char *net_httpd_req_query(const net_httpd_req *req, const char *name);
/* A request header (name case-insensitive), or NULL. */
const char *net_httpd_req_header(const net_httpd_req *req, const char *name);
/* The body (NUL-terminated for convenience, "" when none); *len its size. */
const void *net_httpd_req_body(const net_httpd_req *req, size_t *len);
/* The client's IP address as text ("127.0.0.1", "::1"). */
const char *net_httpd_req_peer(const net_httpd_req *req);

/*
 * Add a header to the coming response. RN_EINVAL for a name or value
 * with CR, LF or (in the name) ':' or space; RN_ENOMEM.
 */
int net_httpd_req_set_header(net_httpd_req *req, const char *name,
			     const char *value);

/*
 * Answer req with status (100-599), content_type (or NULL for none) and
 * body (copied). Callable inside the handler or later from any loop
 * callback. Returns 0, RN_ECANCELED when the client has gone away or the
 * server is stopping, RN_EINVAL for a bad status (the client then gets
 * 500), RN_ENOMEM (the connection is closed). In every case req is
 * consumed: do not touch it again.
 */
int net_httpd_respond(net_httpd_req *req, unsigned status,
		      const char *content_type, const void *body, size_t len);

/*
 * Percent-decode in into out (NUL-terminated). Returns the decoded
 * length, RN_EINVAL for a bad escape or %00, RN_ETOOBIG when out (outlen
 * bytes with the NUL) is too small. '+' is left alone (paths).
 */
int net_httpd_pct_decode(const char *in, char *out, size_t outlen);

#endif
