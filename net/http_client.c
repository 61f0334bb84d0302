/*
 * net_http: an HTTP client on libcurl's multi-socket interface, driven by
 * the libuv loop. See net.h.
 *
 * curl says which sockets to watch (http_sock_cb) and when it wants to be
 * called back (http_timer_cb); we watch each socket with one uv_poll_t and
 * keep one uv_timer_t, and hand every event back to curl with
 * curl_multi_socket_action. Finished transfers are collected with
 * curl_multi_info_read after each action, so response callbacks only ever
 * run from a poll or timer callback, never from net_http_request.
 *
 * Lifetimes: a uv_poll_t is allocated the first time curl asks us to watch
 * its socket and freed in its close callback after curl says
 * CURL_POLL_REMOVE (curl says so before it closes the socket). The
 * net_http struct is freed in the close callback of its last handle once
 * net_http_free has run. net_http_free may be called from inside a
 * response callback: it is then deferred until the callback returns.
 *
 * A threaded net_http (net_http_new_threaded) has no multi handle of its
 * own: its calls go to http_thread.c, which runs an inline one on a
 * worker thread.
 */
#define _GNU_SOURCE
#include "net/net.h"
#include "net/http_mt.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_MAX_RESPONSE ((size_t)1024 * 1024)
#define HTTP_MAX_HOST_CONNECTIONS 32L
/*
 * Idle connections kept for reuse, over all hosts. libcurl's default is
 * four per transfer then in progress: when the transfers in flight drop
 * for a moment it closes connections it opens again right after (11,933
 * new connections for 100,000 pushes to one webhook host).
 */
#define HTTP_MAX_CONNECTS (2 * HTTP_MAX_HOST_CONNECTIONS)
#define HTTP_METHOD_MAX 16

typedef struct http_sock http_sock;
typedef struct http_xfer http_xfer;

#define HTTP_SPARE_EASY 64 /* easy handles kept for reuse */

struct net_http {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	http_xfer *xfers;   /* in flight */
	size_t active;
	http_sock *socks;   /* polls not yet closing */
	unsigned handles;   /* uv handles not yet closed: timer + polls */
	int in_dispatch;    /* inside http_check_done */
	int freeing;	    /* net_http_free was called */
	net_http_mt *mt;    /* threaded: every call goes there (no multi) */
	CURL *spare[HTTP_SPARE_EASY]; /* finished easy handles, reset */
	size_t nspare;
};

struct http_sock {
	uv_poll_t poll;
	net_http *h;
	curl_socket_t fd;
	http_sock *prev, *next;
};

struct http_xfer {
	net_http *h;
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	size_t body_len, body_off; /* SMTP upload */
	rn_buf resp;
	int too_big;
	int nomem;
	int body_kept;	/* POST the caller's body, not a copy */
	net_http_cb cb;
	void *arg;
	char errbuf[CURL_ERROR_SIZE];
	http_xfer *prev, *next;
};

static int curl_ready;

static void http_check_done(net_http *h);
static void http_shutdown(net_http *h);

/* ---- handles ---------------------------------------------------------- */

/* The struct can only go once every handle that points to it is closed. */
static void
http_handle_closed(net_http *h)
{
	if (--h->handles == 0 && h->freeing)
		free(h);
}

static void
http_timer_closed(uv_handle_t *hd)
{
	http_handle_closed(hd->data);
}

static void
http_sock_closed(uv_handle_t *hd)
{
	http_sock *s = hd->data;
	net_http *h = s->h;

	free(s);
	http_handle_closed(h);
}

/* Stop watching a socket; the memory goes in the close callback. */
static void
http_sock_close(http_sock *s)
{
	net_http *h = s->h;

	if (s->prev)
		s->prev->next = s->next;
	else
		h->socks = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->prev = s->next = NULL;
	uv_close((uv_handle_t *)&s->poll, http_sock_closed);
}

/* ---- curl -> loop ----------------------------------------------------- */

/* A watched socket is ready (or broken): let curl do its part. */
static void
http_poll_cb(uv_poll_t *p, int status, int events)
{
	http_sock *s = p->data;
	net_http *h = s->h;
	int flags = 0, running;

	if (status < 0) {
		flags = CURL_CSELECT_ERR;
	} else {
		if (events & UV_READABLE)
			flags |= CURL_CSELECT_IN;
		if (events & UV_WRITABLE)
			flags |= CURL_CSELECT_OUT;
	}
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	http_check_done(h);
}

/* curl's own timeout (connect, request deadline, or "act now") expired. */
static void
http_timer_fired(uv_timer_t *t)
{
	net_http *h = t->data;
	int running;

	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	http_check_done(h);
}

/*
 * CURLMOPT_SOCKETFUNCTION: curl wants a socket watched for some events,
 * or no longer watched. The first time we see a socket we attach an
 * http_sock to it with curl_multi_assign; curl hands it back as socketp.
 * On CURL_POLL_REMOVE curl drops its own entry for the socket, so there
 * is nothing to unassign.
 */
static int
http_sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp,
	     void *socketp)
{
	net_http *h = userp;
	http_sock *s = socketp;
	int events = 0, rc;

	if (what == CURL_POLL_REMOVE) {
		if (s != NULL && !uv_is_closing((uv_handle_t *)&s->poll))
			http_sock_close(s);
		return 0;
	}
	if (s == NULL) {
		s = calloc(1, sizeof(*s));
		if (s == NULL) {
			log_warnx("cannot watch http socket: out of memory");
			return -1;
		}
		rc = uv_poll_init_socket(h->loop, &s->poll, fd);
		if (rc) {
			log_warnx("cannot watch http socket %d: %s", (int)fd,
				  uv_strerror(rc));
			free(s);
			return -1;
		}
		s->h = h;
		s->fd = fd;
		s->poll.data = s;
		s->next = h->socks;
		if (h->socks)
			h->socks->prev = s;
		h->socks = s;
		h->handles++;
		curl_multi_assign(h->multi, fd, s);
	}
	if (what & CURL_POLL_IN)
		events |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		events |= UV_WRITABLE;
	rc = uv_poll_start(&s->poll, events, http_poll_cb);
	if (rc) {
		log_warnx("cannot watch http socket %d: %s", (int)fd,
			  uv_strerror(rc));
		return -1;
	}
	return 0;
}

/*
 * CURLMOPT_TIMERFUNCTION: curl wants socket_action(CURL_SOCKET_TIMEOUT)
 * after timeout_ms, or never (-1). A 0 timeout is not acted on here:
 * calling curl back from inside its own callback is not allowed, and the
 * zero timer is what defers a new transfer's start to the loop.
 */
static int
http_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
	net_http *h = userp;

	if (uv_is_closing((uv_handle_t *)&h->timer))
		return 0;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, http_timer_fired,
			       (uint64_t)timeout_ms, 0);
	return 0;
}

/*
 * CURLOPT_WRITEFUNCTION: keep the body up to its cap. Returning less
 * than we were given makes curl abort the transfer with
 * CURLE_WRITE_ERROR; the flags say why.
 */
static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	http_xfer *x = userdata;
	size_t n = size * nmemb;
	int rc;

	rc = rn_buf_add(&x->resp, ptr, n);
	if (rc == RN_ETOOBIG) {
		x->too_big = 1;
		return 0;
	}
	if (rc) {
		x->nomem = 1;
		return 0;
	}
	return n;
}

/* ---- transfers -------------------------------------------------------- */

static void
http_xfer_free(http_xfer *x)
{
	net_http *h;

	if (x == NULL)
		return;
	h = x->h;
	/* kept for the next transfer: curl_easy_init and _cleanup were a
	 * tenth of the push thread's instructions per request. A reset
	 * handle keeps no option, credential or header of this request. */
	if (x->easy && !h->freeing && h->nspare < HTTP_SPARE_EASY) {
		curl_easy_reset(x->easy);
		h->spare[h->nspare++] = x->easy;
	} else if (x->easy) {
		curl_easy_cleanup(x->easy);
	}
	curl_slist_free_all(x->headers);
	free(x->body);
	rn_buf_release(&x->resp);
	free(x);
}

/* Take a transfer out of the multi handle and out of our list. */
static void
http_xfer_detach(http_xfer *x)
{
	net_http *h = x->h;

	curl_multi_remove_handle(h->multi, x->easy);
	if (x->prev)
		x->prev->next = x->next;
	else
		h->xfers = x->next;
	if (x->next)
		x->next->prev = x->prev;
	x->prev = x->next = NULL;
	h->active--;
}

/*
 * Turn curl's verdict into a response, detach the transfer and call the
 * caller back. HTTP statuses are not errors here: only the transport
 * (timeout, connection, cap) gives a non-zero rc.
 */
static void
http_xfer_finish(http_xfer *x, CURLcode res, int rc)
{
	net_http_resp r;
	char *ct = NULL, *ctcopy = NULL, *msg = NULL;
	long status = 0;
	double total = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
	curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME, &total);
	ctcopy = rn_strdup(ct);

	memset(&r, 0, sizeof(r));
	r.status = status;
	r.total_seconds = total;
	r.content_type = ctcopy;
	r.body = x->resp.data ? x->resp.data : "";
	r.body_len = x->resp.len;
	if (rc == RN_ECANCELED) {
		r.error = "request cancelled";
	} else if (res == CURLE_OK) {
		rc = RN_OK;
	} else if (x->too_big || res == CURLE_FILESIZE_EXCEEDED) {
		rc = RN_ETOOBIG;
		msg = rn_asprintf("response body larger than %zu bytes",
				  x->resp.cap);
		r.error = msg ? msg : "response body too large";
	} else if (res == CURLE_OPERATION_TIMEDOUT) {
		rc = RN_ETIMEDOUT;
	} else if (x->nomem) {
		rc = RN_EIO;
		r.error = "out of memory";
	} else {
		rc = RN_EIO;
	}
	if (rc && r.error == NULL)
		r.error = x->errbuf[0] ? x->errbuf : curl_easy_strerror(res);
	r.rc = rc;

	http_xfer_detach(x);
	x->cb(x->arg, &r);
	free(msg);
	free(ctcopy);
	http_xfer_free(x);
}

/*
 * Collect finished transfers. A callback may start new requests; it may
 * also call net_http_free, which only marks h and is completed here once
 * the callback has returned.
 */
static void
http_check_done(net_http *h)
{
	CURLMsg *m;
	CURLcode res;
	char *priv;
	int left;

	h->in_dispatch++;
	while (!h->freeing &&
	       (m = curl_multi_info_read(h->multi, &left)) != NULL) {
		if (m->msg != CURLMSG_DONE)
			continue;
		/* m dies with remove_handle: read it first */
		res = m->data.result;
		priv = NULL;
		curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
		if (priv != NULL)
			http_xfer_finish((http_xfer *)priv, res, RN_OK);
	}
	if (--h->in_dispatch == 0 && h->freeing)
		http_shutdown(h);
}

/* ---- API -------------------------------------------------------------- */

int
net_http_new(uv_loop_t *loop, net_http **out)
{
	net_http *h;

	if (loop == NULL || out == NULL)
		return RN_EINVAL;
	*out = NULL;
	if (!curl_ready) {
		/* curl_global_init is not thread-safe: the loop thread only */
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			log_warnx("cannot initialise libcurl");
			return RN_EIO;
		}
		curl_ready = 1;
	}
	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return RN_ENOMEM;
	h->multi = curl_multi_init();
	if (h->multi == NULL) {
		free(h);
		return RN_ENOMEM;
	}
	h->loop = loop;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	h->handles = 1;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, http_sock_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  HTTP_MAX_HOST_CONNECTIONS);
	curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, HTTP_MAX_CONNECTS);
	*out = h;
	return RN_OK;
}

/* A method is an upper-case token; anything else could smuggle bytes. */
static int
http_method_ok(const char *m)
{
	size_t i;

	for (i = 0; m[i]; i++)
		if (m[i] < 'A' || m[i] > 'Z' || i >= HTTP_METHOD_MAX)
			return 0;
	return i > 0;
}

/* Does the caller already set this header (name without the colon)? */
static int
http_has_header(const char *const *headers, const char *name)
{
	size_t n = strlen(name);

	for (; headers && *headers; headers++)
		if (strncasecmp(*headers, name, n) == 0 &&
		    (*headers)[n] == ':')
			return 1;
	return 0;
}

/*
 * Set up one easy handle. The body is copied and handed to curl as
 * POSTFIELDS, which curl does not copy. "Expect:" turns off curl's
 * 100-continue wait for larger bodies, which costs a second against
 * servers that do not answer it.
 */
static int
http_xfer_setup(http_xfer *x, const net_http_req *req)
{
	const char *method = req->method ? req->method : "GET";
	const char *const *hp;
	struct curl_slist *l;
	size_t cap = req->max_response ? req->max_response
				       : HTTP_DEFAULT_MAX_RESPONSE;
	int64_t tmo = req->timeout_ms > 0 ? req->timeout_ms
					  : HTTP_DEFAULT_TIMEOUT_MS;
	CURL *e = x->easy;

	rn_buf_init(&x->resp, cap);
	if (req->body_len && !x->body_kept) {
		x->body = malloc(req->body_len);
		if (x->body == NULL)
			return RN_ENOMEM;
		memcpy(x->body, req->body, req->body_len);
	}
	for (hp = req->headers; hp && *hp; hp++) {
		l = curl_slist_append(x->headers, *hp);
		if (l == NULL)
			return RN_ENOMEM;
		x->headers = l;
	}
	if (!http_has_header(req->headers, "Expect")) {
		l = curl_slist_append(x->headers, "Expect:");
		if (l == NULL)
			return RN_ENOMEM;
		x->headers = l;
	}

	if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") !=
		    CURLE_OK)
		return RN_EINVAL;
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)tmo);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)cap);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
	if (req->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
	if (req->userpwd) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERPWD, req->userpwd);
	}

	if (strcmp(method, "GET") == 0 && req->body_len == 0) {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else {
		curl_easy_setopt(e, CURLOPT_POSTFIELDS,
				 x->body_kept && req->body_len ? req->body
				 : x->body ? x->body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
				 (curl_off_t)req->body_len);
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
	}
	return RN_OK;
}

/* Feed an SMTP message to curl. */
static size_t
smtp_read_cb(char *buf, size_t size, size_t nmemb, void *userdata)
{
	http_xfer *x = userdata;
	size_t n = size * nmemb, left = x->body_len - x->body_off;

	if (n > left)
		n = left;
	memcpy(buf, x->body + x->body_off, n);
	x->body_off += n;
	return n;
}

static int
smtp_xfer_setup(http_xfer *x, const net_smtp_req *req)
{
	const char *const *rp;
	struct curl_slist *l;
	CURL *e = x->easy;
	int64_t tmo = req->timeout_ms > 0 ? req->timeout_ms
					  : HTTP_DEFAULT_TIMEOUT_MS;

	rn_buf_init(&x->resp, 64 * 1024);
	x->body = malloc(req->message_len ? req->message_len : 1);
	if (x->body == NULL)
		return RN_ENOMEM;
	memcpy(x->body, req->message, req->message_len);
	x->body_len = req->message_len;
	for (rp = req->rcpt; *rp; rp++) {
		l = curl_slist_append(x->headers, *rp);
		if (l == NULL)
			return RN_ENOMEM;
		x->headers = l;
	}
	if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
	    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps") !=
		    CURLE_OK)
		return RN_EINVAL;
	curl_easy_setopt(e, CURLOPT_PRIVATE, x);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)tmo);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, http_write_cb);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_MAIL_FROM, req->from);
	if (req->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file);
	curl_easy_setopt(e, CURLOPT_MAIL_RCPT, x->headers);
	curl_easy_setopt(e, CURLOPT_READFUNCTION, smtp_read_cb);
	curl_easy_setopt(e, CURLOPT_READDATA, x);
	curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
	curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
			 (curl_off_t)req->message_len);
	if (req->starttls)
		curl_easy_setopt(e, CURLOPT_USE_SSL, (long)CURLUSESSL_ALL);
	if (req->username) {
		curl_easy_setopt(e, CURLOPT_USERNAME, req->username);
		curl_easy_setopt(e, CURLOPT_PASSWORD,
				 req->password ? req->password : "");
	}
	return RN_OK;
}

/* Start a transfer set up by `setup`; shared by HTTP and SMTP. */
static int
xfer_start(net_http *h, int (*setup)(http_xfer *, const void *),
	   const void *req, net_http_cb cb, void *arg)
{
	http_xfer *x = NULL;
	int rc;

	if (h->freeing)
		return RN_ECANCELED;
	x = calloc(1, sizeof(*x));
	if (x == NULL)
		return RN_ENOMEM;
	x->h = h;
	x->cb = cb;
	x->arg = arg;
	x->easy = h->nspare ? h->spare[--h->nspare] : curl_easy_init();
	if (x->easy == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	rc = setup(x, req);
	if (rc)
		goto out;
	/* this arms the zero timer that starts the transfer from the loop */
	if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
		rc = RN_EIO;
		goto out;
	}
	x->next = h->xfers;
	if (h->xfers)
		h->xfers->prev = x;
	h->xfers = x;
	h->active++;
	x = NULL;
out:
	http_xfer_free(x);
	return rc;
}

static int
http_setup_any(http_xfer *x, const void *req)
{
	return http_xfer_setup(x, req);
}

static int
http_setup_body_kept(http_xfer *x, const void *req)
{
	x->body_kept = 1;
	return http_xfer_setup(x, req);
}

static int
smtp_setup_any(http_xfer *x, const void *req)
{
	return smtp_xfer_setup(x, req);
}

static int
request_ok(const net_http *h, const net_http_req *req, net_http_cb cb)
{
	return h != NULL && req != NULL && req->url != NULL && cb != NULL &&
	       (req->body != NULL || req->body_len == 0) &&
	       http_method_ok(req->method ? req->method : "GET");
}

int
net_http_request(net_http *h, const net_http_req *req, net_http_cb cb,
		 void *arg)
{
	if (!request_ok(h, req, cb))
		return RN_EINVAL;
	if (h->mt)
		return http_mt_request(h->mt, req, cb, arg);
	return xfer_start(h, http_setup_any, req, cb, arg);
}

int
http_request_body_kept(net_http *h, const net_http_req *req, net_http_cb cb,
		       void *arg)
{
	if (!request_ok(h, req, cb) || h->mt)
		return RN_EINVAL;
	return xfer_start(h, http_setup_body_kept, req, cb, arg);
}

int
net_smtp_send(net_http *h, const net_smtp_req *req, net_http_cb cb,
	      void *arg)
{
	if (h == NULL || req == NULL || req->url == NULL || req->from ==
	    NULL || req->rcpt == NULL || req->rcpt[0] == NULL || cb == NULL ||
	    (req->message == NULL && req->message_len) || h->mt)
		return RN_EINVAL;
	return xfer_start(h, smtp_setup_any, req, cb, arg);
}

size_t
net_http_active(const net_http *h)
{
	if (h && h->mt)
		return http_mt_active(h->mt);
	return h ? h->active : 0;
}

int
net_http_new_threaded(uv_loop_t *loop, net_http **out)
{
	net_http *h;
	int rc;

	if (loop == NULL || out == NULL)
		return RN_EINVAL;
	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return RN_ENOMEM;
	h->loop = loop;
	rc = http_mt_new(loop, &h->mt);
	if (rc) {
		free(h);
		return rc;
	}
	*out = h;
	return RN_OK;
}

/*
 * Cancel what is in flight, let curl close its connections (it tells us
 * to stop watching their sockets as it goes), then close the polls curl
 * did not mention and the timer. h goes in the last close callback.
 */
static void
http_shutdown(net_http *h)
{
	while (h->xfers != NULL)
		http_xfer_finish(h->xfers, CURLE_ABORTED_BY_CALLBACK,
				 RN_ECANCELED);
	curl_multi_cleanup(h->multi);
	h->multi = NULL;
	while (h->nspare > 0)
		curl_easy_cleanup(h->spare[--h->nspare]);
	while (h->socks != NULL)
		http_sock_close(h->socks);
	uv_close((uv_handle_t *)&h->timer, http_timer_closed);
}

void
net_http_free(net_http *h)
{
	if (h == NULL || h->freeing)
		return;
	if (h->mt) {
		http_mt_free(h->mt);
		free(h);
		return;
	}
	h->freeing = 1;
	if (h->in_dispatch == 0)
		http_shutdown(h);
}
