/*
 * net_httpd: an HTTP server on libmicrohttpd, driven by the libuv loop.
 * See httpd.h.
 *
 * MHD runs in external epoll mode: it owns one epoll fd holding the
 * listening socket, its connections and its inter-thread channel (used by
 * MHD_resume_connection). We watch that fd with one uv_poll_t and MHD's
 * next deadline with one uv_timer_t, and after every MHD_run re-arm the
 * timer from MHD_get_timeout. MHD never blocks: MHD_run does what is ready
 * and returns.
 *
 * A request (net_httpd_req) is created on MHD's first access callback for
 * it and stored in MHD's per-request pointer. It is handed to the handler
 * on the final access callback, once the body is read. If the handler has
 * not answered by the time it returns, the connection is suspended; a
 * later net_httpd_respond stores the response and resumes it, and MHD
 * calls the access callback again, where the response is queued.
 *
 * Lifetimes: a request is freed when both (a) MHD is done with it (the
 * completed callback) and (b) it was answered or never handed out. A
 * suspended connection is invisible to MHD, so we watch its socket for
 * a peer hang-up ourselves (a uv_poll_t with UV_DISCONNECT, allocated on
 * its own so it can outlive the request until its close callback); on a
 * hang-up the request is marked gone and resumed, MHD drops it, and the
 * late net_httpd_respond returns RN_ECANCELED and frees it. The server
 * struct is freed in the close callback of its last handle.
 */
#define _GNU_SOURCE
#include "net/httpd.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <microhttpd.h>

#define HTTPD_DEFAULT_MAX_BODY ((size_t)2 * 1024 * 1024)
#define HTTPD_DEFAULT_CONN_LIMIT 256
#define HTTPD_DEFAULT_CONN_TIMEOUT 30
#define HTTPD_STOP_FLUSH_RUNS 4

typedef struct httpd_kv httpd_kv;
typedef struct httpd_watch httpd_watch;

struct httpd_kv {
	char *name;
	char *value;
	httpd_kv *next;
};

struct httpd_watch {
	uv_poll_t poll;
	net_httpd_req *req; /* NULL once closing */
};

struct net_httpd_req {
	net_httpd *h;
	struct MHD_Connection *conn; /* NULL once MHD is done with it */
	char *method;
	char *path;
	char peer[64];
	httpd_kv *query;   /* decoded GET arguments, in order */
	httpd_kv *headers; /* request headers, in order */
	httpd_kv *resp_headers;
	rn_buf body;
	struct MHD_Response *resp; /* answer waiting to be queued */
	unsigned status;
	int handed;	/* the handler has it */
	int responded;	/* net_httpd_respond ran (or the server answered) */
	int completed;	/* MHD is done with it */
	int suspended;
	int gone;	/* the client went away before the answer */
	int too_big;
	httpd_watch *watch;
	net_httpd_req *prev, *next;
};

struct net_httpd {
	uv_loop_t *loop;
	struct MHD_Daemon *d;
	uv_poll_t poll;
	uv_timer_t timer;
	unsigned handles; /* uv handles not yet closed */
	net_httpd_handler cb;
	void *arg;
	size_t max_body;
	int port;
	net_httpd_req *reqs;
	int in_run;
	int stopping;
	char lasterr[256];
};

static void httpd_shutdown(net_httpd *h);

/* ---- small helpers ---------------------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
net_httpd_pct_decode(const char *in, char *out, size_t outlen)
{
	size_t n = 0;
	int hi, lo, c;

	if (in == NULL || out == NULL || outlen == 0)
		return RN_EINVAL;
	while (*in) {
		c = (unsigned char)*in;
		if (c == '%') {
			hi = hexval((unsigned char)in[1]);
			lo = hi < 0 ? -1 : hexval((unsigned char)in[2]);
			if (lo < 0)
				return RN_EINVAL;
			c = hi * 16 + lo;
			if (c == 0)
				return RN_EINVAL;
			in += 3;
		} else {
			in++;
		}
		if (n + 1 >= outlen)
			return RN_ETOOBIG;
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (n > (size_t)INT32_MAX)
		return RN_ETOOBIG;
	return (int)n;
}

/* Query strings use '+' for a space; then %HH. NULL when malformed. */
static char *
query_decode(const char *s)
{
	size_t len = strlen(s) + 1;
	char *tmp, *out, *p;

	tmp = rn_strdup(s);
	out = malloc(len);
	if (tmp == NULL || out == NULL)
		goto fail;
	for (p = tmp; *p; p++)
		if (*p == '+')
			*p = ' ';
	if (net_httpd_pct_decode(tmp, out, len) < 0)
		goto fail;
	free(tmp);
	return out;
fail:
	free(tmp);
	free(out);
	return NULL;
}

static void
kv_free_all(httpd_kv *kv)
{
	httpd_kv *next;

	for (; kv; kv = next) {
		next = kv->next;
		free(kv->name);
		free(kv->value);
		free(kv);
	}
}

/* Append at the tail so that lookups see the first occurrence first. */
static int
kv_append(httpd_kv **head, char *name, char *value)
{
	httpd_kv *kv, **pp;

	kv = calloc(1, sizeof(*kv));
	if (kv == NULL) {
		free(name);
		free(value);
		return RN_ENOMEM;
	}
	kv->name = name;
	kv->value = value;
	for (pp = head; *pp; pp = &(*pp)->next)
		;
	*pp = kv;
	return RN_OK;
}

static const char *
kv_find(const httpd_kv *kv, const char *name, int nocase)
{
	for (; kv; kv = kv->next)
		if (nocase ? strcasecmp(kv->name, name) == 0
			   : strcmp(kv->name, name) == 0)
			return kv->value;
	return NULL;
}

/* A header token or value must not be able to start a new header line. */
static int
header_ok(const char *s, int is_name)
{
	if (s == NULL || (is_name && *s == '\0'))
		return 0;
	for (; *s; s++) {
		if (*s == '\r' || *s == '\n')
			return 0;
		if (is_name && (*s == ':' || *s == ' ' || *s == '\t'))
			return 0;
	}
	return 1;
}

/* ---- loop <-> MHD ----------------------------------------------------- */

static void httpd_timer_fired(uv_timer_t *t);

/* Run MHD over whatever is ready, then sleep until its next deadline. */
static void
httpd_run(net_httpd *h)
{
	MHD_UNSIGNED_LONG_LONG tmo;

	h->in_run++;
	MHD_run(h->d);
	h->in_run--;
	if (h->stopping) {
		if (h->in_run == 0)
			httpd_shutdown(h);
		return;
	}
	if (MHD_get_timeout(h->d, &tmo) == MHD_YES)
		uv_timer_start(&h->timer, httpd_timer_fired, (uint64_t)tmo, 0);
	else
		uv_timer_stop(&h->timer);
}

static void
httpd_poll_cb(uv_poll_t *p, int status, int events)
{
	httpd_run(p->data);
}

static void
httpd_timer_fired(uv_timer_t *t)
{
	httpd_run(t->data);
}

/* Ask for an MHD_run from the loop soon (never from inside a caller). */
static void
httpd_kick(net_httpd *h)
{
	if (!h->stopping && !uv_is_closing((uv_handle_t *)&h->timer))
		uv_timer_start(&h->timer, httpd_timer_fired, 0, 0);
}

static void
httpd_handle_closed(uv_handle_t *hd)
{
	net_httpd *h = hd->data;

	if (--h->handles == 0)
		free(h);
}

/* ---- watching suspended connections ----------------------------------- */

static void
watch_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static void
watch_stop(net_httpd_req *r)
{
	httpd_watch *w = r->watch;

	if (w == NULL)
		return;
	r->watch = NULL;
	w->req = NULL;
	uv_close((uv_handle_t *)&w->poll, watch_closed);
}

static void req_resume(net_httpd_req *r);

/* The peer hung up (or the socket broke) while we held its request. */
static void
watch_cb(uv_poll_t *p, int status, int events)
{
	httpd_watch *w = p->data;
	net_httpd_req *r = w->req;

	if (r == NULL || (status == 0 && !(events & UV_DISCONNECT)))
		return;
	r->gone = 1;
	req_resume(r);
}

/*
 * MHD does not notice a client leaving while its connection is
 * suspended, so we do. Best effort: without a watch the request is only
 * found dead when the answer cannot be sent.
 */
static void
watch_start(net_httpd_req *r)
{
	const union MHD_ConnectionInfo *ci;
	httpd_watch *w;

	ci = MHD_get_connection_info(r->conn,
				     MHD_CONNECTION_INFO_CONNECTION_FD);
	if (ci == NULL)
		return;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return;
	if (uv_poll_init_socket(r->h->loop, &w->poll, ci->connect_fd) != 0) {
		free(w);
		return;
	}
	w->req = r;
	w->poll.data = w;
	r->watch = w;
	if (uv_poll_start(&w->poll, UV_DISCONNECT, watch_cb) != 0)
		watch_stop(r);
}

/* ---- requests --------------------------------------------------------- */

static void
req_free(net_httpd_req *r)
{
	net_httpd *h = r->h;

	watch_stop(r);
	if (r->prev)
		r->prev->next = r->next;
	else
		h->reqs = r->next;
	if (r->next)
		r->next->prev = r->prev;
	if (r->resp)
		MHD_destroy_response(r->resp);
	kv_free_all(r->query);
	kv_free_all(r->headers);
	kv_free_all(r->resp_headers);
	rn_buf_release(&r->body);
	free(r->method);
	free(r->path);
	free(r);
}

static void
req_resume(net_httpd_req *r)
{
	watch_stop(r);
	if (!r->suspended)
		return;
	r->suspended = 0;
	MHD_resume_connection(r->conn);
	httpd_kick(r->h);
}

static enum MHD_Result
collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
	      const char *value)
{
	net_httpd_req *r = cls;
	char *k, *v;

	k = query_decode(key);
	v = query_decode(value ? value : "");
	if (k == NULL || v == NULL) {
		/* malformed: treated as absent */
		free(k);
		free(v);
		return MHD_YES;
	}
	kv_append(&r->query, k, v);
	return MHD_YES;
}

static enum MHD_Result
collect_header(void *cls, enum MHD_ValueKind kind, const char *key,
	       const char *value)
{
	net_httpd_req *r = cls;

	kv_append(&r->headers, rn_strdup(key), rn_strdup(value ? value : ""));
	return MHD_YES;
}

static net_httpd_req *
req_new(net_httpd *h, struct MHD_Connection *conn, const char *url,
	const char *method)
{
	const union MHD_ConnectionInfo *ci;
	const struct sockaddr *sa;
	net_httpd_req *r;

	r = calloc(1, sizeof(*r));
	if (r == NULL)
		return NULL;
	r->h = h;
	r->conn = conn;
	rn_buf_init(&r->body, h->max_body);
	r->method = rn_strdup(method);
	r->path = rn_strdup(url);
	if (r->method == NULL || r->path == NULL)
		goto fail;
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	sa = ci ? ci->client_addr : NULL;
	if (sa && sa->sa_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)sa, r->peer,
			    sizeof(r->peer));
	else if (sa && sa->sa_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)sa, r->peer,
			    sizeof(r->peer));
	MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query,
				  r);
	MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_header, r);
	r->next = h->reqs;
	if (h->reqs)
		h->reqs->prev = r;
	h->reqs = r;
	return r;
fail:
	free(r->method);
	free(r->path);
	free(r);
	return NULL;
}

/* A fixed text answer from the server itself (413, 503). */
static struct MHD_Response *
text_response(const char *text, int close)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(strlen(text), (void *)text,
					       MHD_RESPMEM_PERSISTENT);
	if (resp == NULL)
		return NULL;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				"text/plain");
	if (close)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION,
					"close");
	return resp;
}

static enum MHD_Result
queue_too_big(net_httpd_req *r)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	r->too_big = 1;
	resp = text_response("request body too large", 1);
	if (resp == NULL)
		return MHD_NO;
	ret = MHD_queue_response(r->conn, MHD_HTTP_CONTENT_TOO_LARGE, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Is the declared Content-Length over the cap (or not a number)? */
static int
declared_too_big(struct MHD_Connection *conn, size_t cap)
{
	const char *cl;
	unsigned long long n = 0;

	cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
					 MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl == NULL)
		return 0;
	for (; *cl >= '0' && *cl <= '9'; cl++) {
		if (n > (unsigned long long)cap)
			return 1;
		n = n * 10 + (unsigned long long)(*cl - '0');
	}
	return n > (unsigned long long)cap;
}

/*
 * MHD's access callback: first call (headers) creates the request,
 * middle calls carry the body, the final call (no data) hands it to the
 * handler; after a resume it is called again to queue the answer.
 */
static enum MHD_Result
httpd_access(void *cls, struct MHD_Connection *conn, const char *url,
	     const char *method, const char *version, const char *upload,
	     size_t *upload_size, void **con_cls)
{
	net_httpd *h = cls;
	net_httpd_req *r = *con_cls;
	enum MHD_Result ret;

	if (r == NULL) {
		r = req_new(h, conn, url, method);
		if (r == NULL)
			return MHD_NO;
		*con_cls = r;
		if (declared_too_big(conn, h->max_body))
			return queue_too_big(r);
		return MHD_YES;
	}
	if (r->too_big) {
		*upload_size = 0; /* discard whatever MHD still hands us */
		return MHD_YES;
	}
	if (*upload_size) {
		if (rn_buf_add(&r->body, upload, *upload_size) != RN_OK) {
			*upload_size = 0;
			return queue_too_big(r);
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (r->gone)
		return MHD_NO;
	if (!r->handed) {
		r->handed = 1;
		if (h->stopping) {
			r->responded = 1;
			r->status = MHD_HTTP_SERVICE_UNAVAILABLE;
			r->resp = text_response("server stopping", 1);
		} else {
			h->cb(h->arg, r);
		}
	}
	if (r->resp) {
		ret = MHD_queue_response(conn, r->status, r->resp);
		MHD_destroy_response(r->resp);
		r->resp = NULL;
		return ret;
	}
	if (r->responded)
		return MHD_NO; /* the answer could not be built */
	MHD_suspend_connection(conn);
	r->suspended = 1;
	watch_start(r);
	return MHD_YES;
}

static void
httpd_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
		enum MHD_RequestTerminationCode toe)
{
	net_httpd_req *r = *con_cls;

	if (r == NULL)
		return;
	*con_cls = NULL;
	watch_stop(r);
	r->completed = 1;
	r->conn = NULL;
	r->suspended = 0;
	if (r->responded || !r->handed)
		req_free(r);
	else
		r->gone = 1; /* freed by the caller's net_httpd_respond */
}

/* Keep the path and the GET arguments as sent; see httpd.h. */
static size_t
httpd_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	return strlen(s);
}

static void
httpd_log(void *cls, const char *fmt, va_list ap)
{
	net_httpd *h = cls;
	size_t n;

	vsnprintf(h->lasterr, sizeof(h->lasterr), fmt, ap);
	n = strlen(h->lasterr);
	while (n > 0 && (h->lasterr[n - 1] == '\n' || h->lasterr[n - 1] == '.'))
		h->lasterr[--n] = '\0';
	log_warnx("httpd: %s", h->lasterr);
}

/* ---- API -------------------------------------------------------------- */

/* "127.0.0.1:8180" or "[::1]:8180" into ss. */
static int
parse_listen(const char *s, struct sockaddr_storage *ss, int *v6,
	     uint16_t *portp)
{
	char host[64];
	const char *colon, *p;
	size_t hl;
	long port = 0;

	if (s == NULL)
		return RN_EINVAL;
	if (*s == '[') {
		p = strchr(s, ']');
		if (p == NULL || p[1] != ':')
			return RN_EINVAL;
		hl = (size_t)(p - s - 1);
		if (hl == 0 || hl >= sizeof(host))
			return RN_EINVAL;
		memcpy(host, s + 1, hl);
		colon = p + 1;
		*v6 = 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return RN_EINVAL;
		hl = (size_t)(colon - s);
		if (hl == 0 || hl >= sizeof(host))
			return RN_EINVAL;
		memcpy(host, s, hl);
		*v6 = 0;
	}
	host[hl] = '\0';
	if (colon[1] == '\0')
		return RN_EINVAL;
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9')
			return RN_EINVAL;
		port = port * 10 + (*p - '0');
		if (port > 65535)
			return RN_EINVAL;
	}
	memset(ss, 0, sizeof(*ss));
	if (*v6 ? uv_ip6_addr(host, (int)port, (struct sockaddr_in6 *)ss)
		: uv_ip4_addr(host, (int)port, (struct sockaddr_in *)ss))
		return RN_EINVAL;
	*portp = (uint16_t)port;
	return RN_OK;
}

int
net_httpd_start(uv_loop_t *loop, const char *listen, const net_httpd_opts *o,
		net_httpd_handler handler, void *arg, net_httpd **out,
		char **errmsg)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *di;
	net_httpd *h = NULL;
	unsigned flags, limit, tmo;
	uint16_t port = 0;
	int v6 = 0, rc;

	if (errmsg)
		*errmsg = NULL;
	if (out)
		*out = NULL;
	if (loop == NULL || handler == NULL || out == NULL)
		return RN_EINVAL;
	rc = parse_listen(listen, &ss, &v6, &port);
	if (rc) {
		if (errmsg)
			*errmsg = rn_asprintf("cannot listen on '%s': expected "
					      "address:port",
					      listen ? listen : "");
		return rc;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return RN_ENOMEM;
	h->loop = loop;
	h->cb = handler;
	h->arg = arg;
	h->max_body = o && o->max_body ? o->max_body : HTTPD_DEFAULT_MAX_BODY;
	limit = o && o->connection_limit ? o->connection_limit
					 : HTTPD_DEFAULT_CONN_LIMIT;
	tmo = o && o->connection_timeout_s ? o->connection_timeout_s
					   : HTTPD_DEFAULT_CONN_TIMEOUT;
	flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
	if (v6)
		flags |= MHD_USE_IPv6;
	/* the logger first, so that option errors reach it too */
	h->d = MHD_start_daemon(
		flags, port, NULL, NULL, httpd_access, h,
		MHD_OPTION_EXTERNAL_LOGGER, httpd_log, h,
		MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
		MHD_OPTION_CONNECTION_LIMIT, limit,
		MHD_OPTION_CONNECTION_TIMEOUT, tmo,
		MHD_OPTION_NOTIFY_COMPLETED, httpd_completed, h,
		MHD_OPTION_UNESCAPE_CALLBACK, httpd_unescape, h,
		MHD_OPTION_END);
	if (h->d == NULL) {
		if (errmsg)
			*errmsg = rn_asprintf("cannot listen on '%s': %s",
					      listen,
					      h->lasterr[0] ? h->lasterr
							    : "cannot start");
		rc = RN_EIO;
		goto out;
	}
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
	h->port = di ? di->port : -1;
	di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (di == NULL || uv_poll_init(loop, &h->poll, di->epoll_fd) != 0) {
		if (errmsg)
			*errmsg = rn_asprintf("cannot listen on '%s': cannot "
					      "watch the server's epoll fd",
					      listen);
		MHD_stop_daemon(h->d);
		rc = RN_EIO;
		goto out;
	}
	h->poll.data = h;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->handles = 2;
	uv_poll_start(&h->poll, UV_READABLE, httpd_poll_cb);
	httpd_kick(h);
	*out = h;
	h = NULL;
	rc = RN_OK;
out:
	free(h);
	return rc;
}

int
net_httpd_port(net_httpd *h)
{
	return h ? h->port : -1;
}

/*
 * Stop listening, answer held requests 503 and give MHD a few
 * non-blocking runs to send that, then close everything. MHD must not
 * see a suspended connection in MHD_stop_daemon. Requests still waiting
 * for their caller (client gone) are freed here.
 */
static void
httpd_shutdown(net_httpd *h)
{
	net_httpd_req *r;
	MHD_socket lfd;
	int i;

	uv_close((uv_handle_t *)&h->poll, httpd_handle_closed);
	uv_close((uv_handle_t *)&h->timer, httpd_handle_closed);
	lfd = MHD_quiesce_daemon(h->d);
	for (r = h->reqs; r; r = r->next) {
		if (!r->suspended)
			continue;
		r->responded = 1;
		r->status = MHD_HTTP_SERVICE_UNAVAILABLE;
		r->resp = text_response("server stopping", 1);
		req_resume(r);
	}
	h->in_run++;
	for (i = 0; i < HTTPD_STOP_FLUSH_RUNS; i++)
		MHD_run(h->d);
	MHD_stop_daemon(h->d);
	h->in_run--;
	h->d = NULL;
	if (lfd != MHD_INVALID_SOCKET)
		close(lfd);
	while (h->reqs)
		req_free(h->reqs);
}

void
net_httpd_stop(net_httpd *h)
{
	if (h == NULL || h->stopping)
		return;
	h->stopping = 1;
	if (h->in_run == 0)
		httpd_shutdown(h);
}

const char *
net_httpd_req_method(const net_httpd_req *req)
{
	return req->method;
}

const char *
net_httpd_req_path(const net_httpd_req *req)
{
	return req->path;
}

const char *
net_httpd_req_query(const net_httpd_req *req, const char *name)
{
	return name ? kv_find(req->query, name, 0) : NULL;
}

const char *
net_httpd_req_header(const net_httpd_req *req, const char *name)
{
	return name ? kv_find(req->headers, name, 1) : NULL;
}

const void *
net_httpd_req_body(const net_httpd_req *req, size_t *len)
{
	if (len)
		*len = req->body.len;
	return req->body.data ? req->body.data : "";
}

const char *
net_httpd_req_peer(const net_httpd_req *req)
{
	return req->peer;
}

int
net_httpd_req_set_header(net_httpd_req *req, const char *name,
			 const char *value)
{
	char *n, *v;

	if (req == NULL || !header_ok(name, 1) || !header_ok(value, 0))
		return RN_EINVAL;
	n = rn_strdup(name);
	v = rn_strdup(value);
	if (n == NULL || v == NULL) {
		free(n);
		free(v);
		return RN_ENOMEM;
	}
	return kv_append(&req->resp_headers, n, v);
}

/* Build the MHD response; NULL when out of memory. */
static struct MHD_Response *
build_response(net_httpd_req *req, const char *ctype, const void *body,
	       size_t len)
{
	struct MHD_Response *resp;
	httpd_kv *kv;

	resp = MHD_create_response_from_buffer(len, (void *)(body ? body : ""),
					       MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return NULL;
	if (ctype && header_ok(ctype, 0))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
					ctype);
	for (kv = req->resp_headers; kv; kv = kv->next)
		MHD_add_response_header(resp, kv->name, kv->value);
	return resp;
}

int
net_httpd_respond(net_httpd_req *req, unsigned status,
		  const char *content_type, const void *body, size_t len)
{
	int rc = RN_OK;

	if (req == NULL || req->responded || (body == NULL && len))
		return RN_EINVAL;
	req->responded = 1;
	if (req->gone || req->completed) {
		rc = RN_ECANCELED;
		goto out;
	}
	if (status < 100 || status > 599) {
		rc = RN_EINVAL;
		status = MHD_HTTP_INTERNAL_SERVER_ERROR;
		content_type = "text/plain";
		body = "internal error";
		len = strlen(body);
	}
	req->status = status;
	req->resp = build_response(req, content_type, body, len);
	if (req->resp == NULL)
		rc = RN_ENOMEM;
out:
	if (req->completed)
		req_free(req);
	else
		req_resume(req);
	return rc;
}
