/*
 * mdm: the exec and webhook push drivers.
 *
 * Every push allocates its own context (callback, argument, timeout) and
 * hands everything else to net_proc / net_http, which copy what they keep.
 * So a push in flight needs nothing from its mdm: mdm_free may run while
 * pushes are pending and their callbacks still run safely.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "mdm/mdm.h"

#define MDM_DETAIL_MAX 200		  /* chars of output kept in a detail */
#define MDM_RESPONSE_CAP (64 * 1024)	  /* webhook response body cap */
#define MDM_DEFAULT_TIMEOUT 30		  /* seconds, when cfg says 0 */

struct mdm {
	uv_loop_t *loop;
	net_http *http; /* shared, not owned */
	const cfg_mdm *c;
};

/* One push in flight; owns everything its callback needs. */
typedef struct mdm_ctx {
	mdm_cb cb;
	void *arg;
	int64_t timeout; /* seconds, for "timed out after ..." */
} mdm_ctx;

const char *
mdm_driver_name(int driver)
{
	switch (driver) {
	case CFG_MDM_EXEC:
		return "exec";
	case CFG_MDM_WEBHOOK:
		return "webhook";
	case CFG_MDM_NANOMDM:
		return "nanomdm";
	case CFG_MDM_MICROMDM:
		return "micromdm";
	}
	return "unknown";
}

static int
has_crlf(const char *s)
{
	return s != NULL && strpbrk(s, "\r\n") != NULL;
}

int
mdm_new(uv_loop_t *loop, net_http *http, const cfg_mdm *c, mdm **out)
{
	mdm *m;

	if (out == NULL)
		return RN_EINVAL;
	*out = NULL;
	if (loop == NULL || c == NULL)
		return RN_EINVAL;
	switch (c->driver) {
	case CFG_MDM_EXEC:
		if (c->command == NULL || c->command[0] == NULL)
			return RN_EINVAL;
		break;
	case CFG_MDM_WEBHOOK:
		/* Secrets end up in header lines: no line breaks. */
		if (http == NULL || c->url == NULL || has_crlf(c->api_key))
			return RN_EINVAL;
		break;
	default:
		/*
		 * nanomdm and micromdm (their command APIs) are not
		 * implemented yet; a later issue adds them.
		 */
		return RN_EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (m == NULL)
		return RN_ENOMEM;
	m->loop = loop;
	m->http = http;
	m->c = c;
	*out = m;
	return RN_OK;
}

void
mdm_free(mdm *m)
{
	free(m);
}

static int64_t
mdm_timeout(const mdm *m)
{
	return m->c->timeout > 0 ? m->c->timeout : MDM_DEFAULT_TIMEOUT;
}

static mdm_ctx *
ctx_new(const mdm *m, mdm_cb cb, void *arg)
{
	mdm_ctx *x = calloc(1, sizeof(*x));

	if (x == NULL)
		return NULL;
	x->cb = cb;
	x->arg = arg;
	x->timeout = mdm_timeout(m);
	return x;
}

/* Report and free the context: the last thing a push does. */
static void
ctx_finish(mdm_ctx *x, int ok, const char *detail)
{
	mdm_result r;

	r.ok = ok;
	r.detail = detail;
	x->cb(x->arg, &r);
	free(x);
}

static char *
timed_out_detail(int64_t secs)
{
	char d[32];

	rn_duration_format(secs, d, sizeof(d));
	return rn_asprintf("timed out after %s", d);
}

/*
 * The first line of s (at most len bytes), without surrounding blanks,
 * cut to MDM_DETAIL_MAX bytes on a UTF-8 boundary, other control
 * characters made spaces: safe to put in a one-line detail.
 */
static char *
first_line(const char *s, size_t len)
{
	size_t b = 0, e, i;
	char *out;

	while (b < len && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r' ||
			   s[b] == '\n'))
		b++;
	for (e = b; e < len && s[e] != '\n' && s[e] != '\r'; e++)
		;
	while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t'))
		e--;
	if (e - b > MDM_DETAIL_MAX) {
		e = b + MDM_DETAIL_MAX;
		while (e > b && ((unsigned char)s[e] & 0xc0) == 0x80)
			e--;
	}
	out = rn_strndup(s + b, e - b);
	if (out == NULL)
		return NULL;
	for (i = 0; out[i]; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = ' ';
	return out;
}

/* ---- exec ------------------------------------------------------------- */

/* Turn the child's fate into ok and a one-line detail. */
static void
exec_done(void *arg, const net_proc_result *res)
{
	mdm_ctx *x = arg;
	char *detail = NULL, *line = NULL;
	int ok = 0;

	if (res->rc == RN_ETIMEDOUT) {
		detail = timed_out_detail(x->timeout);
	} else if (res->rc == RN_ECANCELED) {
		detail = rn_strdup("cancelled");
	} else if (res->rc != 0) {
		detail = rn_asprintf("failed: %s", rn_strerror(res->rc));
	} else if (res->term_signal != 0) {
		detail = rn_asprintf("killed by signal %d", res->term_signal);
	} else if (res->exit_status == 0) {
		ok = 1;
		detail = rn_strdup("exit 0");
	} else {
		line = first_line(res->output ? res->output : "",
				  res->output ? res->output_len : 0);
		if (line != NULL && line[0] != '\0')
			detail = rn_asprintf("exit %lld: %s",
					     (long long)res->exit_status, line);
		else
			detail = rn_asprintf("exit %lld",
					     (long long)res->exit_status);
	}
	ctx_finish(x, ok, detail ? detail : (ok ? "exit 0" : "failed"));
	free(line);
	free(detail);
}

#define EXEC_NENV 8

static int
exec_push(mdm *m, const mdm_push *p, mdm_cb cb, void *arg)
{
	static const char *names[EXEC_NENV] = {
		"HOST_UUID",  "PROFILE_UUID", "CA_NAME",  "RENEWAL_ID",
		"JOB_ID",     "COMMAND_UUID", "JOB_KIND", "ENROLLMENT_ID",
	};
	const char *vals[EXEC_NENV];
	char jobid[32];
	char *env[EXEC_NENV + 1] = {NULL};
	net_proc_opts o;
	mdm_ctx *x = NULL;
	int rc = RN_OK, i;

	snprintf(jobid, sizeof(jobid), "%lld", (long long)p->job_id);
	vals[0] = p->host_uuid;
	vals[1] = p->profile_uuid;
	vals[2] = p->ca_name;
	vals[3] = p->renewal_id;
	vals[4] = jobid;
	vals[5] = p->command_uuid;
	vals[6] = p->kind;
	vals[7] = p->enrollment_id ? p->enrollment_id : p->host_uuid;
	for (i = 0; i < EXEC_NENV; i++) {
		env[i] = rn_asprintf("%s=%s", names[i],
				     vals[i] ? vals[i] : "");
		if (env[i] == NULL) {
			rc = RN_ENOMEM;
			goto out;
		}
	}
	x = ctx_new(m, cb, arg);
	if (x == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	memset(&o, 0, sizeof(o));
	o.argv = m->c->command;
	o.env_extra = env;
	o.stdin_data = p->profile;
	o.stdin_len = p->profile ? p->profile_len : 0;
	o.timeout_ms = x->timeout * 1000;
	rc = net_proc_run(m->loop, &o, exec_done, x);
	if (rc == RN_OK)
		x = NULL; /* exec_done owns it now */
out:
	free(x);
	for (i = 0; i < EXEC_NENV; i++)
		free(env[i]);
	return rc;
}

/* ---- webhook ---------------------------------------------------------- */

static void
webhook_done(void *arg, const net_http_resp *r)
{
	mdm_ctx *x = arg;
	char *detail = NULL, *line = NULL;
	int ok = 0;

	if (r->rc == RN_ETIMEDOUT) {
		detail = timed_out_detail(x->timeout);
	} else if (r->rc == RN_ECANCELED) {
		detail = rn_strdup("cancelled");
	} else if (r->rc == RN_ETOOBIG) {
		detail = rn_asprintf("http %ld: response larger than %d KiB",
				     r->status, MDM_RESPONSE_CAP / 1024);
	} else if (r->rc != 0) {
		line = first_line(r->error ? r->error : "",
				  r->error ? strlen(r->error) : 0);
		detail = rn_asprintf("connect error: %s",
				     line ? line : "unknown");
	} else if (r->status >= 200 && r->status < 300) {
		ok = 1;
		detail = rn_asprintf("http %ld", r->status);
	} else {
		line = first_line(r->body ? r->body : "",
				  r->body ? r->body_len : 0);
		if (line != NULL && line[0] != '\0')
			detail = rn_asprintf("http %ld: %s", r->status, line);
		else
			detail = rn_asprintf("http %ld", r->status);
	}
	ctx_finish(x, ok, detail ? detail : (ok ? "http 2xx" : "failed"));
	free(line);
	free(detail);
}

/* A JSON string, or null for a missing value; NULL on bad UTF-8. */
static json_t *
jstr(const char *s)
{
	return s ? json_string(s) : json_null();
}

/*
 * The webhook body, compact JSON. The signature covers exactly these
 * bytes, so the body is serialised once and sent as is.
 */
static int
webhook_body(const mdm_push *p, char **out)
{
	json_t *o = NULL;
	char *b64 = NULL;
	int rc = RN_OK;
	const char *enr = p->enrollment_id ? p->enrollment_id : p->host_uuid;

	*out = NULL;
	b64 = rn_base64(p->profile ? p->profile : "",
			p->profile ? p->profile_len : 0);
	o = json_object();
	if (b64 == NULL || o == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	if (json_object_set_new(o, "event", json_string("profile.push")) ||
	    json_object_set_new(o, "job_id", json_integer(p->job_id)) ||
	    json_object_set_new(o, "kind", jstr(p->kind)) ||
	    json_object_set_new(o, "host_uuid", jstr(p->host_uuid)) ||
	    json_object_set_new(o, "enrollment_id", jstr(enr)) ||
	    json_object_set_new(o, "profile_uuid", jstr(p->profile_uuid)) ||
	    json_object_set_new(o, "ca_name", jstr(p->ca_name)) ||
	    json_object_set_new(o, "renewal_id", jstr(p->renewal_id)) ||
	    json_object_set_new(o, "command_uuid", jstr(p->command_uuid)) ||
	    json_object_set_new(o, "profile", json_string(b64))) {
		/* json_string gave NULL: not UTF-8 (or no memory) */
		rc = RN_EINVAL;
		goto out;
	}
	*out = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (*out == NULL)
		rc = RN_ENOMEM;
out:
	json_decref(o);
	free(b64);
	return rc;
}

static int
webhook_push(mdm *m, const mdm_push *p, mdm_cb cb, void *arg)
{
	const cfg_mdm *c = m->c;
	const char *hdrs[7];
	char *auth = NULL, *sig = NULL, *job = NULL, *body = NULL;
	char mac[65];
	net_http_req req;
	mdm_ctx *x = NULL;
	size_t n = 0;
	int rc;

	rc = webhook_body(p, &body);
	if (rc)
		goto out;
	hdrs[n++] = "Content-Type: application/json";
	hdrs[n++] = "User-Agent: renewd/" RN_VERSION;
	if (c->api_key != NULL && c->api_key[0] != '\0') {
		auth = rn_asprintf("Authorization: Bearer %s", c->api_key);
		if (auth == NULL) {
			rc = RN_ENOMEM;
			goto out;
		}
		hdrs[n++] = auth;
	}
	if (c->hmac_key != NULL && c->hmac_key[0] != '\0') {
		rc = rn_hmac_sha256_hex(c->hmac_key, strlen(c->hmac_key), body,
					strlen(body), mac);
		if (rc)
			goto out;
		sig = rn_asprintf("X-Renewd-Signature: sha256=%s", mac);
		if (sig == NULL) {
			rc = RN_ENOMEM;
			goto out;
		}
		hdrs[n++] = sig;
	}
	job = rn_asprintf("X-Renewd-Job: %lld", (long long)p->job_id);
	x = ctx_new(m, cb, arg);
	if (job == NULL || x == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	hdrs[n++] = job;
	hdrs[n] = NULL;

	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = c->url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_ms = x->timeout * 1000;
	req.max_response = MDM_RESPONSE_CAP;
	rc = net_http_request(m->http, &req, webhook_done, x);
	if (rc == RN_OK)
		x = NULL; /* webhook_done owns it now */
out:
	free(x);
	free(job);
	free(sig);
	free(auth);
	free(body);
	return rc;
}

int
mdm_push_start(mdm *m, const mdm_push *p, mdm_cb cb, void *arg)
{
	if (m == NULL || p == NULL || cb == NULL)
		return RN_EINVAL;
	switch (m->c->driver) {
	case CFG_MDM_EXEC:
		return exec_push(m, p, cb, arg);
	case CFG_MDM_WEBHOOK:
		return webhook_push(m, p, cb, arg);
	}
	return RN_EINVAL;
}
