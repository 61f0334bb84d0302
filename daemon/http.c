/*
 * The SCEP proxy, the certificate API, /metrics and /healthz. See http.h.
 */
#define _GNU_SOURCE
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "daemon/cahealth.h"
#include "notifiers/notify.h"
#include "common/metrics.h"
#include "scep/scep.h"

#define PROXY_PREFIX "/mdm/scep/proxy/"
#define API_CERTS "/api/v1/certificates"
#define UPSTREAM_MAX (2 * 1024 * 1024)
#define METRICS_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define METRICS_MAX (8 * 1024 * 1024) /* 17 families of <= 1000 series */
#define STATS_CACHE_MS 5000
#define GET_BODY_MAX (256 * 1024) /* larger answers pass, uncached */
#define GET_MSG_MAX 255		    /* longer message arguments: uncached */
#define GET_ENTRIES_MAX 256	    /* then new keys pass, uncached */

typedef struct proxy_call proxy_call;
typedef struct stats_cache stats_cache;
typedef struct get_entry get_entry;

struct http_srv {
	uv_loop_t *loop;
	net_httpd *httpd;
	http_env *env;
	proxy_call *calls; /* upstream calls in flight */
	stats_cache *stats;
	get_entry *gets; /* the GET cache */
	size_t ngets;
	get_entry *dropped; /* off the cache, their fetch still in flight */
};

struct proxy_call {
	http_srv *srv;
	net_httpd_req *req; /* NULL once the server stopped */
	int pki;	    /* a PKIOperation: consume the token, read CertRep */
	const char *op;	    /* the operation label of the metrics */
	char token_key[RN_TOKEN_KEY_LEN + 1];
	int64_t job_id;
	char ca[65];
	proxy_call *next;
};

/* An authorised request waiting for its entry's upstream fetch. */
typedef struct get_waiter {
	net_httpd_req *req;
	int64_t job_id; /* the token's job, for scep_upstream_error */
	struct get_waiter *next;
} get_waiter;

/*
 * One cached CA answer: GetCACaps or GetCACert of one CA, for one value
 * of the client's message argument ("" when it sent none). Only a 200
 * is kept, with its body and content type as the CA sent them, for
 * the CA's cache_ttl. At most one fetch per entry is upstream at a time; the
 * requests that arrive meanwhile wait for it (single flight). An entry
 * dropped while its fetch runs (reload, upstream error, server stop)
 * is off the list and freed when the fetch ends; its answer still goes
 * to its waiters but is not kept.
 */
struct get_entry {
	http_srv *srv;	 /* NULL once the server stopped */
	char ca[65];
	const char *op;	 /* proxy_op's static label */
	char *message;
	int listed;	 /* on srv->gets */
	int fetching;	 /* an upstream fetch is in flight */
	int have;	 /* body and ctype hold a fresh 200 */
	uint64_t at_ms;	 /* uv_now when it was stored */
	char *body;
	size_t body_len;
	char *ctype;
	get_waiter *waiters;
	get_entry *next;
};

typedef struct stats_waiter {
	net_httpd_req *req;
	struct stats_waiter *next;
} stats_waiter;

/*
 * The store aggregates of /metrics. They are full index scans on a large
 * fleet, so they run in the libuv thread pool on a read-only connection
 * of their own, and every scrape within STATS_CACHE_MS of a result shares
 * it. The worker owns ro, now, rc, err and st while busy; the loop reads
 * them only when it is not. After http_stop the cache is detached and
 * freed by the after-work callback of the computation in flight.
 */
struct stats_cache {
	uv_work_t work;
	uv_loop_t *loop;
	char *db_path;
	store *ro;	/* opened by the worker at first use */
	int busy, detached, have;
	uint64_t at_ms; /* uv_now of the last result */
	int64_t now;	/* the windows count from here */
	int rc;
	char err[512];
	store_stats st;
	stats_waiter *waiters; /* scrapes waiting for the computation */
};

/* renewd_certificates_expiring's windows; +Inf is every current one. */
static void get_cache_drop(http_srv *srv, const char *ca);

static const int64_t stats_within[STORE_STATS_WINDOWS] = {
	86400, 7 * 86400, 14 * 86400, 30 * 86400, 90 * 86400, 365 * 86400};
static const char *const stats_within_names[STORE_STATS_WINDOWS] = {
	"1d", "7d", "14d", "30d", "90d", "365d"};

static void
call_unlink(proxy_call *c)
{
	proxy_call **pp;

	if (c->srv == NULL)
		return;
	for (pp = &c->srv->calls; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
}

static void
text(net_httpd_req *req, unsigned status, const char *msg)
{
	net_httpd_respond(req, status, "text/plain; charset=utf-8", msg,
			  strlen(msg));
}

/* Record a proxy outcome on the job the token was minted for. */
static int
job_note_store(http_env *env, int64_t job, const char *event,
	       const char *detail)
{
	return job ? store_job_event(env->s, job, event, detail, rn_now())
		   : RN_OK;
}

/* Its log line, once the store has kept it (rc RN_OK) or not. */
static void
job_note_log(int64_t job, const char *event, const char *detail, int rc)
{
	char jid[24];

	if (job == 0)
		return;
	snprintf(jid, sizeof(jid), "%lld", (long long)job);
	if (rc == RN_OK)
		log_kv(RN_LOG_INFO, "scep proxy", "job", jid, "event", event,
		       "detail", detail, NULL);
	else
		log_kv(RN_LOG_ERROR, "scep proxy: cannot record the outcome",
		       "job", jid, "event", event, "detail", detail, "err",
		       rn_strerror(rc), NULL);
}

static void
job_note(http_env *env, int64_t job, const char *event, const char *detail)
{
	job_note_log(job, event, detail,
		     job_note_store(env, job, event, detail));
}

/* The operation label: a fixed set, never the client's text. */
static const char *
proxy_op(const char *op)
{
	static const char *const known[] = {"GetCACaps", "GetCACert",
					    "PKIOperation"};
	size_t i;

	for (i = 0; op && i < 3; i++)
		if (strcmp(op, known[i]) == 0)
			return known[i];
	return "other";
}

static void
proxy_count(const char *op, long status)
{
	char st[24];

	snprintf(st, sizeof(st), "%ld", status);
	metrics_counter_add("renewd_scep_proxy_requests_total", 1,
			    "operation", op, "status", st, NULL);
}

/* Every answer of the proxy goes through here or proxy_count. */
static void
proxy_text(net_httpd_req *req, const char *op, unsigned status,
	   const char *msg)
{
	proxy_count(op, status);
	text(req, status, msg);
}

/* Refuse with 400 and a short reason, recorded on the job. */
static void
refuse(http_env *env, net_httpd_req *req, const char *op, int64_t job,
       const char *why)
{
	job_note(env, job, "scep_refused", why);
	proxy_text(req, op, 400, why);
}

/*
 * A PKIOperation the CA answered with 200: the token is spent and the
 * job notes what the CertRep says, in one transaction, before the device
 * hears the answer (a token is good for one enrollment). Reading the
 * CertRep's signed attributes takes about a microsecond (scep.c). Returns
 * 1 when the CA refused the enrollment; *detail then says why.
 */
static int
certrep_record(http_env *env, const proxy_call *c, const void *der,
	       size_t len, char *detail, size_t dlen)
{
	scep_certrep rep;
	int own = 0, tx, refused = 0, rc, crc = RN_OK;

	if (scep_certrep_parse(der, len, &rep) != RN_OK) {
		snprintf(detail, dlen, "unreadable CertRep from the CA");
	} else if (rep.status == SCEP_FAILURE) {
		snprintf(detail, dlen, "CA refused: %s%s%s",
			 scep_failinfo_name(rep.fail_info),
			 rep.fail_info_text[0] ? ": " : "", rep.fail_info_text);
		refused = 1;
	} else {
		snprintf(detail, dlen, "%s", scep_status_name(rep.status));
	}
	/* one commit for both (each on its own if BEGIN fails); the token
	 * is spent even if the note cannot be stored, and the note is
	 * logged as what the commit made of it */
	tx = store_tx_begin(env->s, &own) == RN_OK;
	store_token_consume(env->s, c->token_key, rn_now());
	rc = job_note_store(env, c->job_id, "scep_certrep", detail);
	if (tx)
		crc = store_tx_end(env->s, own, RN_OK);
	job_note_log(c->job_id, "scep_certrep", detail, rc ? rc : crc);
	return refused;
}

/* A PKIOperation with this token is upstream now. */
static int
token_in_flight(const http_srv *srv, const char *key)
{
	const proxy_call *c;

	for (c = srv->calls; c; c = c->next)
		if (c->pki && strcmp(c->token_key, key) == 0)
			return 1;
	return 0;
}

/*
 * The upstream answered (or failed): pass it back, and for a
 * PKIOperation consume the token and record what the CA said.
 */
static void
on_upstream(void *arg, const net_http_resp *r)
{
	proxy_call *c = arg;
	http_env *env = c->srv ? c->srv->env : NULL;
	char detail[512];
	int refused = 0;

	call_unlink(c);
	if (c->req == NULL || env == NULL) {
		free(c);
		return;
	}
	if (r->rc != RN_OK) {
		int timeout = r->rc == RN_ETIMEDOUT;
		snprintf(detail, sizeof(detail), "CA '%s' %s: %s", c->ca,
			 timeout ? "timed out" : "unreachable",
			 r->error ? r->error : rn_strerror(r->rc));
		job_note(env, c->job_id, "scep_upstream_error", detail);
		/* a CA that was healthy is checked now: ca.unhealthy */
		ca_health_suspect(env->cah, c->ca);
		get_cache_drop(c->srv, c->ca);
		proxy_text(c->req, c->op, timeout ? 504 : 502,
			   timeout ? "upstream CA timed out"
				   : "upstream CA unreachable");
		free(c);
		return;
	}
	/* any HTTP answer: a CA believed down may be back */
	ca_health_answered(env->cah, c->ca);
	if (r->status >= 500)
		get_cache_drop(c->srv, c->ca);
	if (c->pki && r->status == 200) {
		refused = certrep_record(env, c, r->body, r->body_len, detail,
					 sizeof(detail));
	} else if (c->pki) {
		snprintf(detail, sizeof(detail), "CA answered http %ld",
			 r->status);
		job_note(env, c->job_id, "scep_upstream_error", detail);
	}
	/* net_httpd answers 500 for a status it cannot send */
	proxy_count(c->op, r->status >= 100 && r->status <= 599 ? r->status
								 : 500);
	net_httpd_respond(c->req, (unsigned)r->status,
			  r->content_type ? r->content_type
					  : "application/octet-stream",
			  r->body, r->body_len);
	/* a refusal ends the attempt: a new one, with backoff */
	if (refused && c->job_id)
		sched_job_refused(env->sc, c->job_id, "ca_refused", detail);
	free(c);
}

/* ---- the GetCACaps/GetCACert cache ------------------------------------ */

static void
get_entry_forget(get_entry *e)
{
	free(e->body);
	free(e->ctype);
	e->body = NULL;
	e->ctype = NULL;
	e->body_len = 0;
	e->have = 0;
}

static void
get_entry_free(get_entry *e)
{
	get_waiter *w, *nx;

	for (w = e->waiters; w; w = nx) {
		nx = w->next;
		free(w);
	}
	get_entry_forget(e);
	free(e->message);
	free(e);
}

/*
 * Take the entries of one CA (ca NULL: all) off the cache. One whose
 * fetch is in flight lives on until the fetch ends (get_fetched).
 */
static void
get_cache_drop(http_srv *srv, const char *ca)
{
	get_entry **pp = &srv->gets, *e;

	while ((e = *pp) != NULL) {
		if (ca && strcmp(e->ca, ca)) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		srv->ngets--;
		e->listed = 0;
		if (e->fetching) {
			e->next = srv->dropped;
			srv->dropped = e;
		} else {
			get_entry_free(e);
		}
	}
}

/* A dropped entry's fetch ended: off srv->dropped, and freed. */
static void
get_dropped_free(http_srv *srv, get_entry *e)
{
	get_entry **pp;

	for (pp = &srv->dropped; *pp; pp = &(*pp)->next)
		if (*pp == e) {
			*pp = e->next;
			break;
		}
	get_entry_free(e);
}

void
http_cache_drop(http_srv *h, const char *ca)
{
	if (h)
		get_cache_drop(h, ca);
}

/* The entry for (ca, op, message), made when missing; NULL when the
 * answer is not to be cached (message too long, cache full, no memory). */
static get_entry *
get_cache_entry(http_srv *srv, const char *ca, const char *op,
		const char *message)
{
	get_entry *e;

	if (strlen(message) > GET_MSG_MAX)
		return NULL;
	for (e = srv->gets; e; e = e->next)
		if (e->op == op && strcmp(e->ca, ca) == 0 &&
		    strcmp(e->message, message) == 0)
			return e;
	if (srv->ngets >= GET_ENTRIES_MAX)
		return NULL;
	e = calloc(1, sizeof(*e));
	if (e == NULL || (e->message = rn_strdup(message)) == NULL) {
		free(e);
		return NULL;
	}
	e->srv = srv;
	snprintf(e->ca, sizeof(e->ca), "%s", ca);
	e->op = op;
	e->listed = 1;
	e->next = srv->gets;
	srv->gets = e;
	srv->ngets++;
	return e;
}

/*
 * The fetch of a cached GET ended: a 200 within the caps is kept (when
 * the entry is still on the cache), anything else is passed on and the
 * CA's entries are dropped, and every waiting request gets the answer
 * the CA gave, byte for byte, or the 502/504 a direct call would get.
 */
static void
get_fetched(void *arg, const net_http_resp *r)
{
	get_entry *e = arg;
	http_srv *srv = e->srv;
	get_waiter *list = e->waiters, *w, *nx;
	const char *ctype;
	char detail[512];
	int timeout, listed;

	e->fetching = 0;
	e->waiters = NULL;
	if (srv == NULL) {
		/* net_httpd_stop answered the waiters */
		for (w = list; w; w = nx) {
			nx = w->next;
			free(w);
		}
		get_entry_free(e);
		return;
	}
	if (r->rc != RN_OK) {
		timeout = r->rc == RN_ETIMEDOUT;
		snprintf(detail, sizeof(detail), "CA '%s' %s: %s", e->ca,
			 timeout ? "timed out" : "unreachable",
			 r->error ? r->error : rn_strerror(r->rc));
		for (w = list; w; w = nx) {
			nx = w->next;
			job_note(srv->env, w->job_id, "scep_upstream_error",
				 detail);
			proxy_text(w->req, e->op, timeout ? 504 : 502,
				   timeout ? "upstream CA timed out"
					   : "upstream CA unreachable");
			free(w);
		}
		ca_health_suspect(srv->env->cah, e->ca);
		listed = e->listed;
		get_cache_drop(srv, e->ca); /* frees e when listed */
		if (!listed)
			get_dropped_free(srv, e);
		return;
	}
	ca_health_answered(srv->env->cah, e->ca);
	ctype = r->content_type ? r->content_type : "application/octet-stream";
	if (r->status == 200 && e->listed && r->body_len <= GET_BODY_MAX) {
		get_entry_forget(e);
		e->body = malloc(r->body_len ? r->body_len : 1);
		e->ctype = rn_strdup(ctype);
		if (e->body && e->ctype) {
			if (r->body_len)
				memcpy(e->body, r->body, r->body_len);
			e->body_len = r->body_len;
			e->have = 1;
			e->at_ms = uv_now(srv->loop);
		} else {
			get_entry_forget(e);
		}
	}
	for (w = list; w; w = nx) {
		nx = w->next;
		proxy_count(e->op, r->status >= 100 && r->status <= 599
				       ? r->status
				       : 500);
		net_httpd_respond(w->req, (unsigned)r->status, ctype, r->body,
				  r->body_len);
		free(w);
	}
	if (r->status != 200 && e->listed)
		get_cache_drop(srv, e->ca);
	else if (!e->listed)
		get_dropped_free(srv, e);
}

/*
 * Answer an authorised GetCACaps/GetCACert from the cache, or join (or
 * start) the entry's fetch. Returns 0 when req is taken care of, -1
 * when it must go upstream on its own (not cacheable).
 */
static int
get_cached(http_srv *srv, net_httpd_req *req, const cfg_ca *ca,
	   const char *op, const char *message, const char *url,
	   int64_t job_id)
{
	get_entry *e;
	get_waiter *w;
	net_http_req up;
	int rc;

	if (ca->cache_ttl <= 0)
		return -1;
	e = get_cache_entry(srv, ca->name, op, message);
	if (e == NULL)
		return -1;
	if (e->have && uv_now(srv->loop) - e->at_ms <
			   (uint64_t)ca->cache_ttl * 1000) {
		proxy_count(op, 200);
		net_httpd_respond(req, 200, e->ctype, e->body, e->body_len);
		return 0;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -1;
	w->req = req;
	w->job_id = job_id;
	w->next = e->waiters;
	e->waiters = w;
	if (e->fetching)
		return 0;
	get_entry_forget(e);
	memset(&up, 0, sizeof(up));
	up.method = "GET";
	up.url = url;
	up.timeout_ms = ca->timeout * 1000;
	up.max_response = UPSTREAM_MAX;
	up.ca_file = ca->ca_file;
	rc = net_http_request(srv->env->http, &up, get_fetched, e);
	if (rc) {
		e->waiters = NULL;
		free(w);
		return -1;
	}
	e->fetching = 1;
	log_kv(RN_LOG_DEBUG, "scep proxy: fetching for the cache", "ca",
	       ca->name, "operation", op, NULL);
	return 0;
}

/*
 * Everything that must hold before a request may go upstream: a valid
 * identifier, a configured CA, a stored token for exactly this host,
 * profile and CA that is neither used nor expired, and a host that is
 * assigned the profile and has an open job or a current certificate.
 */
static void
proxy(http_srv *srv, net_httpd_req *req, const char *segment)
{
	http_env *env = srv->env;
	scep_proxy_id id;
	store_proxy_auth auth;
	store_token tok;
	store_job job;
	store_cert cur;
	const cfg_ca *ca;
	const char *op, *method = net_httpd_req_method(req);
	char key[RN_TOKEN_KEY_LEN + 1];
	int64_t now = rn_now(), jid;
	int pki, rc;
	rn_buf url = RN_BUF_INIT;
	proxy_call *c;
	net_http_req up;
	const char *pki_hdrs[] = {"Content-Type: application/x-pki-message",
				  NULL};
	const void *body = NULL;
	size_t body_len = 0;
	const char *opl, *msg = NULL;

	op = net_httpd_req_query(req, "operation");
	opl = proxy_op(op);
	if (scep_proxy_id_parse(segment, &id) != RN_OK) {
		proxy_text(req, opl, 400, "invalid proxy identifier");
		return;
	}
	if (op == NULL) {
		proxy_text(req, opl, 400, "missing operation");
		return;
	}
	pki = strcmp(op, "PKIOperation") == 0;
	if (!pki && strcmp(op, "GetCACaps") && strcmp(op, "GetCACert")) {
		proxy_text(req, opl, 501, "operation not supported");
		return;
	}
	ca = cfg_ca_find(env->conf->cfg, id.ca);
	if (ca == NULL) {
		proxy_text(req, opl, 400, "unknown certificate authority");
		return;
	}
	rn_token_key(id.token, key);
	explicit_bzero(id.token, sizeof(id.token));
	if (store_proxy_auth_get(env->s, key, &auth) != RN_OK) {
		proxy_text(req, opl, 400, "unknown token");
		return;
	}
	tok = auth.tok;
	jid = tok.job_id;
	if (strcmp(tok.host_uuid, id.host) || strcmp(tok.profile_uuid,
						     id.profile) ||
	    strcmp(tok.ca_name, id.ca)) {
		refuse(env, req, opl, jid, "token does not belong to this "
					   "host, profile and CA");
		return;
	}
	if (tok.consumed_at) {
		refuse(env, req, opl, jid, "token already used");
		return;
	}
	/* spent when the CA answers: until then no second enrollment */
	if (pki && token_in_flight(srv, key)) {
		refuse(env, req, opl, jid, "token in use by another "
					   "enrollment");
		return;
	}
	if (tok.expires_at <= now) {
		/* The device gets a fresh profile rather than a silent
		 * failure: its open job is pushed again, or a resend job is
		 * queued when none is open. */
		int64_t nj = 0, cert_id = 0;
		refuse(env, req, opl, jid, "token expired; a new profile "
					   "will be sent");
		if (store_job_open(env->s, id.host, id.profile, id.ca, &job) ==
		    RN_OK) {
			sched_job_repush(env->sc, job.id, "token_expired",
					 "SCEP token expired before "
					 "enrollment");
			store_job_release(&job);
			return;
		}
		if (store_cert_current(env->s, id.host, id.profile, id.ca,
				       &cur) == RN_OK) {
			cert_id = cur.id;
			store_cert_release(&cur);
		}
		rc = store_job_enqueue(env->s, id.host, id.profile, id.ca,
				       "resend", cert_id,
				       "SCEP token expired before enrollment",
				       now, &nj);
		if (rc == RN_OK)
			sched_kick(env->sc);
		return;
	}
	/* auth's lookups are for the token's triple, which is id's */
	if (!auth.assigned) {
		refuse(env, req, opl, jid,
		       "profile is not assigned to this host");
		return;
	}
	if (auth.open_job) {
		if (jid == 0)
			jid = auth.open_job;
	} else if (!auth.has_cert) {
		refuse(env, req, opl, jid, "no open job or certificate for "
					   "this host, profile and CA");
		return;
	}

	rn_buf_adds(&url, ca->url);
	rn_buf_adds(&url, strchr(ca->url, '?') ? "&" : "?");
	rn_buf_adds(&url, "operation=");
	rn_buf_adds(&url, op);
	memset(&up, 0, sizeof(up));
	up.method = "GET";
	if (pki && strcmp(method, "POST") == 0) {
		body = net_httpd_req_body(req, &body_len);
		up.method = "POST";
		up.headers = pki_hdrs;
		up.body = body;
		up.body_len = body_len;
	} else {
		msg = net_httpd_req_query(req, "message");
		if (pki && (msg == NULL || *msg == '\0')) {
			rn_buf_release(&url);
			refuse(env, req, opl, jid,
			       "PKIOperation without message");
			return;
		}
		if (msg) {
			/*
			 * Decoded by the server, re-encoded for upstream. A
			 * client that left base64's '+' unescaped had it
			 * decoded to ' ', which base64 never contains.
			 */
			const char *p;
			rn_buf_adds(&url, "&message=");
			for (p = msg; *p; p++) {
				char one[2] = {*p == ' ' ? '+' : *p, '\0'};
				rn_buf_add_pct(&url, one);
			}
		}
	}
	/*
	 * Authorised. GetCACaps and GetCACert answers depend on the CA
	 * only: served from the cache when it has them (see get_entry).
	 */
	if (!pki && get_cached(srv, req, ca, opl, msg ? msg : "", url.data,
			       jid) == 0) {
		rn_buf_release(&url);
		return;
	}
	up.url = url.data;
	up.timeout_ms = ca->timeout * 1000;
	up.max_response = UPSTREAM_MAX;
	up.ca_file = ca->ca_file;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rn_buf_release(&url);
		proxy_text(req, opl, 500, "out of memory");
		return;
	}
	c->srv = srv;
	c->req = req;
	c->pki = pki;
	c->op = opl;
	c->job_id = jid;
	snprintf(c->token_key, sizeof(c->token_key), "%s", key);
	snprintf(c->ca, sizeof(c->ca), "%s", id.ca);
	rc = net_http_request(env->http, &up, on_upstream, c);
	rn_buf_release(&url);
	if (rc) {
		free(c);
		proxy_text(req, opl, 502, "upstream CA unreachable");
		return;
	}
	c->next = srv->calls;
	srv->calls = c;
}

/* ---- POST /api/v1/certificates -------------------------------------- */

/* Answer with a JSON document (consumed) or, when building it failed,
 * a bare 500. */
static void
api_json(net_httpd_req *req, unsigned status, json_t *o)
{
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (body == NULL) {
		net_httpd_respond(req, 500, "application/json",
				  "{\"error\":\"out of memory\"}",
				  strlen("{\"error\":\"out of memory\"}"));
		return;
	}
	net_httpd_respond(req, status, "application/json", body,
			  strlen(body));
	free(body);
}

static void
api_error(net_httpd_req *req, unsigned status, const char *msg)
{
	api_json(req, status, json_pack("{s:s}", "error", msg));
}

/* Constant-time check of "Bearer <token>" against the configured token. */
static int
api_authorized(const net_httpd_req *req, const char *token)
{
	const char *h = net_httpd_req_header(req, "Authorization");
	size_t tlen = strlen(token), hlen;

	if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0)
		return 0;
	h += 7;
	while (*h == ' ')
		h++;
	hlen = strlen(h);
	while (hlen > 0 && (h[hlen - 1] == ' ' || h[hlen - 1] == '\t'))
		hlen--;
	if (hlen != tlen || tlen == 0)
		return 0;
	return CRYPTO_memcmp(h, token, tlen) == 0;
}

static const char *
api_field(json_t *root, const char *name)
{
	json_t *v = json_object_get(root, name);

	if (!json_is_string(v) || json_string_length(v) == 0)
		return NULL;
	/* No embedded NUL: the value is used as a C string. */
	if (strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

/*
 * 503 while the database is full: the report is not lost, the MDM sends
 * it again after Retry-After (the scheduler's next write probe).
 */
void
http_retry_after_full(http_env *env, net_httpd_req *req)
{
	char ra[24];
	int64_t secs = sched_store_full(env->sc);

	snprintf(ra, sizeof(ra), "%lld", (long long)(secs > 0 ? secs : 1));
	net_httpd_req_set_header(req, "Retry-After", ra);
}

static void
api_full(http_env *env, net_httpd_req *req)
{
	http_retry_after_full(env, req);
	api_error(req, 503, "database is full, try again later");
}

static void
api_certificates(http_env *env, net_httpd_req *req)
{
	static const char *const names[] = {"host_uuid", "profile_uuid",
					    "ca_name", "pem"};
	const char *token = env->conf->cfg->http.api_token;
	const char *v[4];
	const void *body;
	size_t len, i;
	json_t *root, *o;
	json_error_t jerr;
	renewal_import imp;
	char *err = NULL, id[24], msg[224];
	int rc;

	if (token == NULL || token[0] == '\0') {
		api_error(req, 404, "API disabled");
		return;
	}
	if (strcmp(net_httpd_req_method(req), "POST")) {
		net_httpd_req_set_header(req, "Allow", "POST");
		api_error(req, 405, "method not allowed");
		return;
	}
	if (!api_authorized(req, token)) {
		log_kv(RN_LOG_WARN, "api: unauthorized request", "peer",
		       net_httpd_req_peer(req), "path", API_CERTS, NULL);
		net_httpd_req_set_header(req, "WWW-Authenticate", "Bearer");
		api_error(req, 401, "unauthorized");
		return;
	}
	if (sched_store_full(env->sc)) {
		api_full(env, req);
		return;
	}
	body = net_httpd_req_body(req, &len);
	root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		snprintf(msg, sizeof(msg), "invalid JSON: %s", jerr.text);
		api_error(req, 400, msg);
		return;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		api_error(req, 400, "body must be a JSON object");
		return;
	}
	for (i = 0; i < 4; i++) {
		v[i] = api_field(root, names[i]);
		if (v[i] == NULL) {
			snprintf(msg, sizeof(msg),
				 "'%s' must be a non-empty string", names[i]);
			json_decref(root);
			api_error(req, 400, msg);
			return;
		}
	}
	memset(&imp, 0, sizeof(imp));
	rc = renewal_cert_import(env->s, env->conf, v[0], NULL, v[1], v[2],
				 v[3], strlen(v[3]), rn_now(), &imp, &err);
	if (rc == RN_EFULL) {
		sched_store_error(env->sc, rc, "importing a certificate");
		api_full(env, req);
		free(err);
		store_cert_release(&imp.cert);
		json_decref(root);
		return;
	}
	if (rc != RN_OK) {
		int client = (rc == RN_EINVAL || rc == RN_ENOTFOUND) &&
			     !(err && strncmp(err, "cannot store", 12) == 0);

		log_kv(client ? RN_LOG_INFO : RN_LOG_ERROR,
		       "api: certificate import failed", "host", v[0],
		       "profile", v[1], "ca", v[2], "err",
		       err ? err : rn_strerror(rc), NULL);
		api_error(req, client ? 400 : 500,
			  err ? err : rn_strerror(rc));
		free(err);
		store_cert_release(&imp.cert);
		json_decref(root);
		return;
	}
	free(err);
	notif_engine_kick(env->notif);
	snprintf(id, sizeof(id), "%lld", (long long)imp.cert.id);
	log_kv(RN_LOG_INFO, "api: certificate imported", "host", v[0],
	       "profile", v[1], "ca", v[2], "cert", id, "duplicate",
	       imp.dup ? "true" : "false", NULL);
	o = json_object();
	if (o) {
		json_object_set_new(o, "id", json_integer(imp.cert.id));
		json_object_set_new(o, "serial",
				    imp.cert.serial
					? json_string(imp.cert.serial)
					: json_null());
		json_object_set_new(o, "renewal_id",
				    imp.cert.renewal_id
					? json_string(imp.cert.renewal_id)
					: json_null());
		json_object_set_new(o, "verified_job",
				    imp.verified_job
					? json_integer(imp.verified_job)
					: json_null());
		json_object_set_new(o, "duplicate", json_boolean(imp.dup));
	}
	if (imp.verified_job && env->sc)
		sched_kick(env->sc);
	store_cert_release(&imp.cert);
	json_decref(root);
	api_json(req, 200, o);
}

/* ---- GET /metrics and /healthz ---------------------------------------- */

/* The store part of /metrics; HELP and TYPE come from common/metrics.c. */
static int
stats_render(rn_buf *b, const store_stats *st)
{
	static const char *const cert_states[] = {"active", "renewing",
						  "superseded", "expired"};
	static const char *const job_states[] = {
	    JOB_QUEUED, JOB_RUNNING, JOB_PUSHED, JOB_ACKNOWLEDGED,
	    JOB_VERIFIED, JOB_FAILED, JOB_CANCELLED};
	int i, rc;

	rc = metrics_help_render(b, "renewd_certificates");
	for (i = 0; i < 4 && rc == RN_OK; i++)
		rc = rn_buf_addf(b, "renewd_certificates{state=\"%s\"} %lld\n",
				 cert_states[i], (long long)st->certs[i]);
	if (rc == RN_OK)
		rc = metrics_help_render(b, "renewd_certificates_expiring");
	for (i = 0; i < STORE_STATS_WINDOWS && rc == RN_OK; i++)
		rc = rn_buf_addf(b, "renewd_certificates_expiring{within="
				 "\"%s\"} %lld\n", stats_within_names[i],
				 (long long)st->expiring[i]);
	if (rc == RN_OK)
		rc = rn_buf_addf(b, "renewd_certificates_expiring{within="
				 "\"+Inf\"} %lld\n", (long long)st->current);
	if (rc == RN_OK)
		rc = metrics_help_render(b, "renewd_certificates_expired");
	if (rc == RN_OK)
		rc = rn_buf_addf(b, "renewd_certificates_expired %lld\n",
				 (long long)st->expired);
	if (rc == RN_OK && st->has_earliest) {
		rc = metrics_help_render(
		    b, "renewd_certificate_earliest_expiry_timestamp_seconds");
		if (rc == RN_OK)
			rc = rn_buf_addf(b, "renewd_certificate_earliest_"
					 "expiry_timestamp_seconds %lld\n",
					 (long long)st->earliest_expiry);
	}
	if (rc == RN_OK)
		rc = metrics_help_render(b, "renewd_jobs");
	for (i = 0; i < 7 && rc == RN_OK; i++)
		rc = rn_buf_addf(b, "renewd_jobs{state=\"%s\"} %lld\n",
				 job_states[i], (long long)st->jobs[i]);
	if (rc == RN_OK)
		rc = metrics_help_render(b, "renewd_notifications_pending");
	if (rc == RN_OK)
		rc = rn_buf_addf(b, "renewd_notifications_pending %lld\n",
				 (long long)st->notifications_pending);
	return rc;
}

/* Answer one scrape from the cached aggregates and the registry. */
static void
metrics_answer(stats_cache *c, net_httpd_req *req)
{
	rn_buf b;
	int rc;

	if (c->rc) {
		text(req, 503, c->err);
		return;
	}
	rn_buf_init(&b, METRICS_MAX);
	rc = metrics_render(&b);
	if (rc == RN_OK)
		rc = stats_render(&b, &c->st);
	if (rc) {
		log_kv(RN_LOG_ERROR, "metrics: cannot render", "err",
		       rn_strerror(rc), NULL);
		text(req, 500, "cannot render metrics");
	} else {
		net_httpd_respond(req, 200, METRICS_TYPE, b.data ? b.data : "",
				  b.len);
	}
	rn_buf_release(&b);
}

static void
stats_cache_free(stats_cache *c)
{
	stats_waiter *w, *nx;

	for (w = c->waiters; w; w = nx) {
		nx = w->next;
		free(w);
	}
	store_close(c->ro);
	free(c->db_path);
	free(c);
}

/* In the thread pool: nothing here may touch the loop or the registry. */
static void
stats_work(uv_work_t *w)
{
	stats_cache *c = w->data;
	char *msg = NULL;

	c->err[0] = '\0';
	if (c->ro == NULL) {
		c->rc = store_open(c->db_path, 1, &c->ro, &msg);
		if (c->rc) {
			snprintf(c->err, sizeof(c->err), "store unavailable: "
				 "%s\n", msg ? msg : rn_strerror(c->rc));
			free(msg);
			return;
		}
	}
	c->rc = store_stats_get(c->ro, c->now, stats_within, &c->st);
	if (c->rc) {
		snprintf(c->err, sizeof(c->err), "store unavailable: %s: %s\n",
			 rn_strerror(c->rc), store_errmsg(c->ro));
		/* reopen next time: the file may have been replaced */
		store_close(c->ro);
		c->ro = NULL;
	}
}

static void
stats_done(uv_work_t *w, int status)
{
	stats_cache *c = w->data;
	stats_waiter *list, *nx;

	c->busy = 0;
	if (c->detached) {
		stats_cache_free(c);
		return;
	}
	if (status != 0) {
		c->rc = RN_ECANCELED;
		snprintf(c->err, sizeof(c->err), "store unavailable: %s\n",
			 uv_strerror(status));
	}
	if (c->rc)
		log_kv(RN_LOG_WARN, "metrics: store aggregates unavailable",
		       "err", c->err, NULL);
	c->have = 1;
	c->at_ms = uv_now(c->loop);
	list = c->waiters;
	c->waiters = NULL;
	for (; list; list = nx) {
		nx = list->next;
		metrics_answer(c, list->req);
		free(list);
	}
}

/*
 * GET /metrics: the registry and the store aggregates. A fresh cached
 * result answers at once; otherwise the scrape waits for the computation
 * in flight, starting one when none is.
 */
static void
metrics_route(http_srv *srv, net_httpd_req *req)
{
	stats_cache *c = srv->stats;
	stats_waiter *w;
	int rc;

	if (strcmp(net_httpd_req_method(req), "GET")) {
		net_httpd_req_set_header(req, "Allow", "GET");
		text(req, 405, "method not allowed");
		return;
	}
	if (!c->busy && c->have &&
	    uv_now(c->loop) - c->at_ms < STATS_CACHE_MS) {
		metrics_answer(c, req);
		return;
	}
	w = calloc(1, sizeof(*w));
	if (w == NULL) {
		text(req, 500, "out of memory");
		return;
	}
	w->req = req;
	w->next = c->waiters;
	c->waiters = w;
	if (c->busy)
		return;
	c->now = rn_now();
	c->work.data = c;
	rc = uv_queue_work(c->loop, &c->work, stats_work, stats_done);
	if (rc) {
		c->waiters = w->next;
		free(w);
		log_kv(RN_LOG_ERROR, "metrics: cannot queue the store read",
		       "err", uv_strerror(rc), NULL);
		text(req, 500, "cannot compute metrics");
		return;
	}
	c->busy = 1;
}

/*
 * 200 "ok" while the loop runs (this answer) and the store reads and
 * takes writes; a full database is unhealthy (renewd takes no new work).
 */
static void
healthz(http_srv *srv, net_httpd_req *req)
{
	char msg[512];
	int rc = store_ping(srv->env->s);

	if (rc == RN_OK && srv->env->sc && sched_store_full(srv->env->sc)) {
		text(req, 503, "database full: no new work until it can be "
			       "written again\n");
		return;
	}
	if (rc == RN_OK) {
		text(req, 200, "ok\n");
		return;
	}
	snprintf(msg, sizeof(msg), "store unavailable: %s: %s\n",
		 rn_strerror(rc), store_errmsg(srv->env->s));
	log_kv(RN_LOG_WARN, "healthz: store unavailable", "err",
	       store_errmsg(srv->env->s), NULL);
	text(req, 503, msg);
}

static void
on_request(void *arg, net_httpd_req *req)
{
	http_srv *srv = arg;
	const char *path = net_httpd_req_path(req);
	const char *method = net_httpd_req_method(req);

	if (strcmp(path, "/healthz") == 0) {
		healthz(srv, req);
		return;
	}
	if (strcmp(path, "/metrics") == 0) {
		metrics_route(srv, req);
		return;
	}
	if (strncmp(path, PROXY_PREFIX, sizeof(PROXY_PREFIX) - 1) == 0) {
		if (strcmp(method, "GET") && strcmp(method, "POST")) {
			proxy_text(req, proxy_op(net_httpd_req_query(
					    req, "operation")),
				   405, "method not allowed");
			return;
		}
		proxy(srv, req, path + sizeof(PROXY_PREFIX) - 1);
		return;
	}
	if (strcmp(path, API_CERTS) == 0) {
		api_certificates(srv->env, req);
		return;
	}
	if (strcmp(path, "/webhook/mdm") == 0) {
		if (strcmp(method, "POST")) {
			text(req, 405, "method not allowed");
			return;
		}
		http_mdm_webhook(srv->env, req);
		return;
	}
	text(req, 404, "not found");
}

int
http_start(uv_loop_t *loop, http_env *env, http_srv **out, char **errmsg)
{
	http_srv *h = calloc(1, sizeof(*h));
	net_httpd_opts o;
	int rc;

	*out = NULL;
	if (h == NULL)
		return RN_ENOMEM;
	h->env = env;
	h->loop = loop;
	/* the database in use: a reload does not switch it */
	h->stats = calloc(1, sizeof(*h->stats));
	if (h->stats == NULL ||
	    (h->stats->db_path = rn_strdup(env->conf->cfg->daemon.database)) ==
		NULL) {
		free(h->stats);
		free(h);
		return RN_ENOMEM;
	}
	h->stats->loop = loop;
	memset(&o, 0, sizeof(o));
	rc = net_httpd_start(loop, env->conf->cfg->http.listen, &o, on_request,
			     h, &h->httpd, errmsg);
	if (rc) {
		stats_cache_free(h->stats);
		free(h);
		return rc;
	}
	*out = h;
	return RN_OK;
}

void
http_stop(http_srv *h)
{
	proxy_call *c;
	get_entry *e;
	stats_cache *st;
	stats_waiter *w, *nx;

	if (h == NULL)
		return;
	/* Answers that arrive later have nobody to go to. */
	for (c = h->calls; c; c = c->next) {
		c->req = NULL;
		c->srv = NULL;
	}
	/* Likewise the cache's fetches; their waiters get 503 below. */
	get_cache_drop(h, NULL);
	for (e = h->dropped; e; e = e->next)
		e->srv = NULL;
	/* Waiting scrapes are answered 503 by net_httpd_stop; a store read
	 * in flight frees the cache when it ends. */
	st = h->stats;
	for (w = st->waiters; w; w = nx) {
		nx = w->next;
		free(w);
	}
	st->waiters = NULL;
	if (st->busy)
		st->detached = 1;
	else
		stats_cache_free(st);
	net_httpd_stop(h->httpd);
	free(h);
}
