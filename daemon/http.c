/*
 * The SCEP proxy and health route. See http.h.
 */
#define _GNU_SOURCE
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include "scep/scep.h"

#define PROXY_PREFIX "/mdm/scep/proxy/"
#define API_CERTS "/api/v1/certificates"
#define UPSTREAM_MAX (2 * 1024 * 1024)

typedef struct proxy_call proxy_call;

struct http_srv {
	net_httpd *httpd;
	http_env *env;
	proxy_call *calls; /* upstream calls in flight */
};

struct proxy_call {
	http_srv *srv;
	net_httpd_req *req; /* NULL once the server stopped */
	int pki;	    /* a PKIOperation: consume the token, read CertRep */
	char token_hash[65];
	int64_t job_id;
	char ca[65];
	proxy_call *next;
};

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
static void
job_note(http_env *env, int64_t job, const char *event, const char *detail)
{
	char jid[24];

	if (job == 0)
		return;
	store_job_event(env->s, job, event, detail, rn_now());
	snprintf(jid, sizeof(jid), "%lld", (long long)job);
	log_kv(RN_LOG_INFO, "scep proxy", "job", jid, "event", event,
	       "detail", detail, NULL);
}

/* Refuse with 400 and a short reason, recorded on the job. */
static void
refuse(http_env *env, net_httpd_req *req, int64_t job, const char *why)
{
	job_note(env, job, "scep_refused", why);
	text(req, 400, why);
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
		text(c->req, timeout ? 504 : 502,
		     timeout ? "upstream CA timed out"
			     : "upstream CA unreachable");
		free(c);
		return;
	}
	if (c->pki && r->status == 200) {
		scep_certrep rep;
		store_token_consume(env->s, c->token_hash, rn_now());
		if (scep_certrep_parse(r->body, r->body_len, &rep) == RN_OK) {
			if (rep.status == SCEP_FAILURE) {
				snprintf(detail, sizeof(detail),
					 "CA refused: %s%s%s",
					 scep_failinfo_name(rep.fail_info),
					 rep.fail_info_text[0] ? ": " : "",
					 rep.fail_info_text);
				job_note(env, c->job_id, "scep_certrep",
					 detail);
				if (c->job_id)
					sched_job_refused(env->sc, c->job_id,
							  "ca_refused",
							  detail);
			} else {
				job_note(env, c->job_id, "scep_certrep",
					 scep_status_name(rep.status));
			}
		} else {
			job_note(env, c->job_id, "scep_certrep",
				 "unreadable CertRep from the CA");
		}
	} else if (c->pki) {
		snprintf(detail, sizeof(detail), "CA answered http %ld",
			 r->status);
		job_note(env, c->job_id, "scep_upstream_error", detail);
	}
	net_httpd_respond(c->req, (unsigned)r->status,
			  r->content_type ? r->content_type
					  : "application/octet-stream",
			  r->body, r->body_len);
	free(c);
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
	store_token tok;
	store_job job;
	store_cert cur;
	const cfg_ca *ca;
	const char *op, *method = net_httpd_req_method(req);
	char hash[65];
	int64_t now = rn_now(), jid;
	int pki, has, rc;
	rn_buf url = RN_BUF_INIT;
	proxy_call *c;
	net_http_req up;
	const char *pki_hdrs[] = {"Content-Type: application/x-pki-message",
				  NULL};
	const void *body = NULL;
	size_t body_len = 0;

	if (scep_proxy_id_parse(segment, &id) != RN_OK) {
		text(req, 400, "invalid proxy identifier");
		return;
	}
	op = net_httpd_req_query(req, "operation");
	if (op == NULL) {
		text(req, 400, "missing operation");
		return;
	}
	pki = strcmp(op, "PKIOperation") == 0;
	if (!pki && strcmp(op, "GetCACaps") && strcmp(op, "GetCACert")) {
		text(req, 501, "operation not supported");
		return;
	}
	ca = cfg_ca_find(env->conf->cfg, id.ca);
	if (ca == NULL) {
		text(req, 400, "unknown certificate authority");
		return;
	}
	rn_sha256_hex(id.token, strlen(id.token), hash);
	explicit_bzero(id.token, sizeof(id.token));
	if (store_token_get(env->s, hash, &tok) != RN_OK) {
		text(req, 400, "unknown token");
		return;
	}
	jid = tok.job_id;
	if (strcmp(tok.host_uuid, id.host) || strcmp(tok.profile_uuid,
						     id.profile) ||
	    strcmp(tok.ca_name, id.ca)) {
		refuse(env, req, jid, "token does not belong to this host, "
				      "profile and CA");
		return;
	}
	if (tok.consumed_at) {
		refuse(env, req, jid, "token already used");
		return;
	}
	if (tok.expires_at <= now) {
		/* The device gets a fresh profile rather than a silent
		 * failure: its open job is pushed again, or a resend job is
		 * queued when none is open. */
		int64_t nj = 0, cert_id = 0;
		refuse(env, req, jid, "token expired; a new profile will be "
				      "sent");
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
	has = store_host_profile_has(env->s, id.host, id.profile);
	if (has != 1) {
		refuse(env, req, jid, "profile is not assigned to this host");
		return;
	}
	if (store_job_open(env->s, id.host, id.profile, id.ca, &job) ==
	    RN_OK) {
		if (jid == 0)
			jid = job.id;
		store_job_release(&job);
	} else if (store_cert_current(env->s, id.host, id.profile, id.ca,
				      &cur) == RN_OK) {
		store_cert_release(&cur);
	} else {
		refuse(env, req, jid, "no open job or certificate for this "
				      "host, profile and CA");
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
		const char *msg = net_httpd_req_query(req, "message");
		if (pki && (msg == NULL || *msg == '\0')) {
			rn_buf_release(&url);
			refuse(env, req, jid, "PKIOperation without message");
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
	up.url = url.data;
	up.timeout_ms = ca->timeout * 1000;
	up.max_response = UPSTREAM_MAX;
	c = calloc(1, sizeof(*c));
	if (c == NULL) {
		rn_buf_release(&url);
		text(req, 500, "out of memory");
		return;
	}
	c->srv = srv;
	c->req = req;
	c->pki = pki;
	c->job_id = jid;
	snprintf(c->token_hash, sizeof(c->token_hash), "%s", hash);
	snprintf(c->ca, sizeof(c->ca), "%s", id.ca);
	rc = net_http_request(env->http, &up, on_upstream, c);
	rn_buf_release(&url);
	if (rc) {
		free(c);
		text(req, 502, "upstream CA unreachable");
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
	if (rc != RN_OK) {
		int client = (rc == RN_EINVAL || rc == RN_ENOTFOUND) &&
			     !(err && strncmp(err, "cannot store", 12) == 0);

		log_kv(client ? RN_LOG_INFO : RN_LOG_ERROR,
		       "api: certificate import failed", "host", v[0],
		       "profile", v[1], "ca", v[2], "error",
		       err ? err : rn_strerror(rc), NULL);
		api_error(req, client ? 400 : 500,
			  err ? err : rn_strerror(rc));
		free(err);
		store_cert_release(&imp.cert);
		json_decref(root);
		return;
	}
	free(err);
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

static void
on_request(void *arg, net_httpd_req *req)
{
	http_srv *srv = arg;
	const char *path = net_httpd_req_path(req);
	const char *method = net_httpd_req_method(req);

	if (strcmp(path, "/healthz") == 0) {
		text(req, 200, "ok\n");
		return;
	}
	if (strncmp(path, PROXY_PREFIX, sizeof(PROXY_PREFIX) - 1) == 0) {
		if (strcmp(method, "GET") && strcmp(method, "POST")) {
			text(req, 405, "method not allowed");
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
	memset(&o, 0, sizeof(o));
	rc = net_httpd_start(loop, env->conf->cfg->http.listen, &o, on_request,
			     h, &h->httpd, errmsg);
	if (rc) {
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

	if (h == NULL)
		return;
	/* Answers that arrive later have nobody to go to. */
	for (c = h->calls; c; c = c->next) {
		c->req = NULL;
		c->srv = NULL;
	}
	net_httpd_stop(h->httpd);
	free(h);
}
