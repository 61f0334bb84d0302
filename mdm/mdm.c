/*
 * mdm: the exec, webhook, nanomdm and micromdm push drivers.
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
#include <plist/plist.h>

#include "mdm/mdm.h"

#define MDM_DETAIL_MAX 200		  /* chars of output kept in a detail */
#define MDM_RESPONSE_CAP (64 * 1024)	  /* HTTP response body cap */
#define MDM_UUID_MAX 128		  /* longest command UUID taken back */
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
	int64_t timeout;  /* seconds, for "timed out after ..." */
	int driver;	  /* CFG_MDM_*, picks how a response is read */
	char *enrollment; /* nanomdm: the id its answer is keyed by */
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
	case CFG_MDM_NANOMDM:
	case CFG_MDM_MICROMDM:
		/*
		 * Their command APIs always want the key (config enforces
		 * it too); it travels base64-encoded in basic auth.
		 */
		if (http == NULL || c->url == NULL || c->url[0] == '\0' ||
		    c->api_key == NULL || c->api_key[0] == '\0')
			return RN_EINVAL;
		break;
	default:
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
	x->driver = m->c->driver;
	return x;
}

static void
ctx_free(mdm_ctx *x)
{
	if (x == NULL)
		return;
	free(x->enrollment);
	free(x);
}

/* Report and free the context: the last thing a push does. */
static void
ctx_finish(mdm_ctx *x, int ok, const char *detail, const char *command_uuid,
	   int unreachable)
{
	mdm_result r;

	r.ok = ok;
	r.unreachable = !ok && unreachable;
	r.detail = detail;
	r.command_uuid = command_uuid;
	x->cb(x->arg, &r);
	ctx_free(x);
}

/* Free a string that held a secret, wiping it first. */
static void
secret_free(char *s)
{
	volatile char *v = s;

	if (s == NULL)
		return;
	while (*v)
		*v++ = '\0';
	free(s);
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
	ctx_finish(x, ok, detail ? detail : (ok ? "exit 0" : "failed"), NULL,
		   0);
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
	ctx_free(x);
	for (i = 0; i < EXEC_NENV; i++)
		free(env[i]);
	return rc;
}

/* ---- HTTP drivers: reading the answer --------------------------------- */

/*
 * The detail for a request that got no usable answer: timeout, cancel,
 * oversized body, connection or transport failure. Returns 0 when r is a
 * complete answer that the driver must judge; 1 otherwise, with *detail
 * set (NULL when out of memory). The same words for every HTTP driver.
 */
static int
http_failed(const mdm_ctx *x, const net_http_resp *r, char **detail)
{
	char *line = NULL;

	*detail = NULL;
	if (r->rc == 0)
		return 0;
	if (r->rc == RN_ETIMEDOUT) {
		*detail = timed_out_detail(x->timeout);
	} else if (r->rc == RN_ECANCELED) {
		*detail = rn_strdup("cancelled");
	} else if (r->rc == RN_ETOOBIG) {
		*detail = rn_asprintf("http %ld: response larger than %d KiB",
				      r->status, MDM_RESPONSE_CAP / 1024);
	} else {
		line = first_line(r->error ? r->error : "",
				  r->error ? strlen(r->error) : 0);
		*detail = rn_asprintf("connect error: %s",
				      line && line[0] ? line : "unknown");
	}
	free(line);
	return 1;
}

/* "<prefix>http N: <first body line>", or "<prefix>http N" for no body. */
static char *
http_status_detail(const char *prefix, const net_http_resp *r)
{
	char *line, *d;

	line = first_line(r->body ? r->body : "", r->body ? r->body_len : 0);
	if (line != NULL && line[0] != '\0')
		d = rn_asprintf("%shttp %ld: %s", prefix, r->status, line);
	else
		d = rn_asprintf("%shttp %ld", prefix, r->status);
	free(line);
	return d;
}

/* Any 2xx is an accepted webhook. */
static int
webhook_judge(const net_http_resp *r, char **detail)
{
	if (r->status >= 200 && r->status < 300) {
		*detail = rn_asprintf("http %ld", r->status);
		return 1;
	}
	*detail = http_status_detail("", r);
	return 0;
}

/*
 * An error member of a NanoMDM answer as one safe line, or NULL when
 * there is none. Older NanoMDM writes strings, newer ones may write
 * objects: anything but null, false and "" counts, serialised compactly.
 */
static char *
json_err_text(json_t *v)
{
	char *dump, *line;

	if (v == NULL || json_is_null(v) || json_is_false(v))
		return NULL;
	if (json_is_string(v))
		return json_string_length(v) == 0
			       ? NULL
			       : first_line(json_string_value(v),
					    json_string_length(v));
	dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (dump == NULL)
		return rn_strdup("error");
	line = first_line(dump, strlen(dump));
	free(dump);
	return line;
}

/*
 * NanoMDM answers 200 (all ok), 207 (some failed) or 500 (all failed)
 * with a JSON result, per enrollment under "status". A command error
 * means the command was not queued: a failure. A push error alone means
 * the command is queued but APNs was not told; the device still gets it
 * at its next check-in, so the push counts as done (even under 500, which
 * NanoMDM sends when its only push failed).
 */
static int
nanomdm_judge(const mdm_ctx *x, const net_http_resp *r, char **detail)
{
	json_t *j = NULL, *mine;
	char *cerr = NULL, *perr = NULL;
	int ok = 0;

	if (r->body != NULL && r->body_len > 0)
		j = json_loadb(r->body, r->body_len, 0, NULL);
	if (json_is_object(j)) {
		mine = json_object_get(json_object_get(j, "status"),
				       x->enrollment);
		cerr = json_err_text(json_object_get(j, "command_error"));
		if (cerr == NULL)
			cerr = json_err_text(
				json_object_get(mine, "command_error"));
		perr = json_err_text(json_object_get(mine, "push_error"));
		if (perr == NULL)
			perr = json_err_text(json_object_get(j, "push_error"));
	}
	if (cerr != NULL) {
		*detail = rn_asprintf("nanomdm: command error: %s", cerr);
	} else if (perr != NULL &&
		   ((r->status >= 200 && r->status < 300) ||
		    r->status == 500)) {
		ok = 1;
		*detail = rn_asprintf("queued, push failed: %s", perr);
	} else if (r->status >= 200 && r->status < 300) {
		ok = 1;
		*detail = rn_asprintf("http %ld, queued", r->status);
	} else {
		*detail = http_status_detail("nanomdm: ", r);
	}
	free(cerr);
	free(perr);
	json_decref(j);
	return ok;
}

/* A command UUID worth passing on: short, printable, no blanks. */
static int
uuid_ok(const char *s)
{
	size_t i;

	for (i = 0; s[i]; i++)
		if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
			return 0;
	return i > 0 && i <= MDM_UUID_MAX;
}

/*
 * MicroMDM answers 201 with {"payload":{"command_uuid":...}}; it assigns
 * the UUID, which the caller needs to match the device's answer.
 */
static int
micromdm_judge(const net_http_resp *r, char **detail, char **uuid)
{
	json_t *j = NULL;
	const char *u;

	if (r->status != 201) {
		*detail = http_status_detail("micromdm: ", r);
		return 0;
	}
	if (r->body != NULL && r->body_len > 0)
		j = json_loadb(r->body, r->body_len, 0, NULL);
	u = json_string_value(json_object_get(json_object_get(j, "payload"),
					      "command_uuid"));
	if (u != NULL && uuid_ok(u))
		*uuid = rn_strdup(u);
	json_decref(j);
	*detail = rn_asprintf("http %ld", r->status);
	return 1;
}

/* The one completion callback of every HTTP driver. */
static void
http_done(void *arg, const net_http_resp *r)
{
	mdm_ctx *x = arg;
	char *detail = NULL, *uuid = NULL;
	int ok = 0, down = 1;

	if (!http_failed(x, r, &detail)) {
		down = r->status >= 500;
		switch (x->driver) {
		case CFG_MDM_NANOMDM:
			ok = nanomdm_judge(x, r, &detail);
			break;
		case CFG_MDM_MICROMDM:
			ok = micromdm_judge(r, &detail, &uuid);
			break;
		default:
			ok = webhook_judge(r, &detail);
			break;
		}
	}
	ctx_finish(x, ok, detail ? detail : (ok ? "http 2xx" : "failed"),
		   uuid, down && r->rc != RN_ECANCELED);
	free(uuid);
	free(detail);
}

/*
 * Send req on the shared client with the driver-wide timeout and cap;
 * on success http_done owns x.
 */
static int
http_start(mdm *m, net_http_req *req, mdm_ctx *x)
{
	req->timeout_ms = x->timeout * 1000;
	req->max_response = MDM_RESPONSE_CAP;
	req->ca_file = m->c->ca_file;
	return net_http_request(m->http, req, http_done, x);
}

/* "{url without trailing slashes}{path}", then pct-encoded id if any. */
static char *
api_url(const char *base, const char *path, const char *id)
{
	rn_buf b;
	size_t n = strlen(base);

	while (n > 0 && base[n - 1] == '/')
		n--;
	rn_buf_init(&b, 0);
	if (rn_buf_add(&b, base, n) || rn_buf_adds(&b, path) ||
	    (id != NULL && rn_buf_add_pct(&b, id))) {
		rn_buf_release(&b);
		return NULL;
	}
	return rn_buf_detach(&b, NULL);
}

/* ---- webhook ---------------------------------------------------------- */

/*
 * The JSON bodies renewd sends (webhook push, MicroMDM command) are
 * written straight into one buffer: building them through jansson's
 * objects and json_dumps took about 40,000 instructions a push, a tenth
 * of the loop's per renewal. The output is what json_dumps(JSON_COMPACT |
 * JSON_PRESERVE_ORDER) gives: the same escapes, UTF-8 passed through, and
 * a string that is not UTF-8 refused (RN_EINVAL), as json_string does.
 */
typedef struct jw {
	rn_buf b;
	int rc;
	int members;
} jw;

/* Length of the valid UTF-8 sequence at s (RFC 3629: no overlong forms,
 * no surrogates, nothing past U+10FFFF), 0 when it is not one. */
static size_t
utf8_seq(const unsigned char *s)
{
	size_t n, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		cp = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0; /* also stops at the NUL */
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

static void
jw_raw(jw *w, const char *s, size_t n)
{
	if (w->rc == RN_OK)
		w->rc = rn_buf_add(&w->b, s, n);
}

/* "s" escaped, or null for NULL */
static void
jw_string(jw *w, const char *s)
{
	static const char hexd[] = "0123456789ABCDEF"; /* as jansson */
	const unsigned char *p = (const unsigned char *)s, *run;
	char esc[6];
	size_t n;

	if (s == NULL) {
		jw_raw(w, "null", 4);
		return;
	}
	jw_raw(w, "\"", 1);
	for (run = p; *p && w->rc == RN_OK;) {
		if (*p >= 0x20 && *p != '"' && *p != '\\') {
			if ((n = utf8_seq(p)) == 0)
				w->rc = RN_EINVAL;
			p += n;
			continue;
		}
		jw_raw(w, (const char *)run, (size_t)(p - run));
		esc[0] = '\\';
		n = 2;
		switch (*p) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\b': esc[1] = 'b'; break;
		case '\f': esc[1] = 'f'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc + 1, "u00", 3);
			esc[4] = hexd[*p >> 4];
			esc[5] = hexd[*p & 15];
			n = 6;
		}
		jw_raw(w, esc, n);
		run = ++p;
	}
	jw_raw(w, (const char *)run, (size_t)(p - run));
	jw_raw(w, "\"", 1);
}

/* the next member's "key": (keys are plain ASCII names) */
static void
jw_key(jw *w, const char *key)
{
	jw_raw(w, w->members++ ? ",\"" : "{\"", 2);
	jw_raw(w, key, strlen(key));
	jw_raw(w, "\":", 2);
}

static void
jw_str(jw *w, const char *key, const char *s)
{
	jw_key(w, key);
	jw_string(w, s);
}

static void
jw_int(jw *w, const char *key, int64_t v)
{
	char num[24];

	jw_key(w, key);
	jw_raw(w, num, (size_t)snprintf(num, sizeof(num), "%lld",
					(long long)v));
}

/* base64 of data, encoded in place: base64 needs no JSON escaping */
static void
jw_base64(jw *w, const char *key, const void *data, size_t len)
{
	size_t bl = 4 * ((len + 2) / 3);

	jw_key(w, key);
	jw_raw(w, "\"", 1);
	if (w->rc == RN_OK && (w->rc = rn_buf_reserve(&w->b, bl)) == RN_OK)
		w->b.len += rn_base64_to(w->b.data + w->b.len, data, len);
	jw_raw(w, "\"", 1);
}

/* Close the object: *out is the body (caller frees) or NULL on error. */
static int
jw_end(jw *w, char **out)
{
	jw_raw(w, w->members ? "}" : "{}", w->members ? 1 : 2);
	*out = w->rc == RN_OK ? rn_buf_detach(&w->b, NULL) : NULL;
	rn_buf_release(&w->b);
	return w->rc;
}

/*
 * The webhook body, compact JSON. The signature covers exactly these
 * bytes, so the body is serialised once and sent as is.
 */
int
mdm_webhook_body(const mdm_push *p, char **out)
{
	jw w = {RN_BUF_INIT, RN_OK, 0};
	size_t plen = p->profile ? p->profile_len : 0;

	/* the members below and the profile's base64: one allocation */
	w.rc = rn_buf_reserve(&w.b, 512 + 4 * ((plen + 2) / 3));
	jw_str(&w, "event", "profile.push");
	jw_int(&w, "job_id", p->job_id);
	jw_str(&w, "kind", p->kind);
	jw_str(&w, "host_uuid", p->host_uuid);
	jw_str(&w, "enrollment_id",
	       p->enrollment_id ? p->enrollment_id : p->host_uuid);
	jw_str(&w, "profile_uuid", p->profile_uuid);
	jw_str(&w, "ca_name", p->ca_name);
	jw_str(&w, "renewal_id", p->renewal_id);
	jw_str(&w, "command_uuid", p->command_uuid);
	jw_base64(&w, "profile", p->profile ? p->profile : "", plen);
	return jw_end(&w, out);
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

	rc = mdm_webhook_body(p, &body);
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
	rc = http_start(m, &req, x);
	if (rc == RN_OK)
		x = NULL; /* http_done owns it now */
out:
	ctx_free(x);
	free(job);
	free(sig);
	secret_free(auth);
	free(body);
	return rc;
}

/* ---- nanomdm and micromdm ---------------------------------------------- */

/* The enrollment the command is for: the push's, else the host's. */
static const char *
push_enrollment(const mdm_push *p)
{
	return p->enrollment_id ? p->enrollment_id : p->host_uuid;
}

/* "<user>:<api key>" for basic auth; wipe with secret_free. */
static char *
basic_userpwd(const mdm *m, const char *user)
{
	return rn_asprintf("%s:%s", user, m->c->api_key);
}

/*
 * An MDM command as an XML plist:
 * {CommandUUID, Command: {RequestType, Payload: <data>}}, the Payload
 * only when `payload` is not NULL (InstallProfile). The profile goes in
 * as data, so its bytes arrive unchanged whatever they are. *out is freed
 * with plist_to_xml_free.
 */
static int
nanomdm_body(const char *command_uuid, const char *request_type,
	     const char *payload, size_t payload_len, char **out,
	     uint32_t *len)
{
	plist_t root = NULL, cmd = NULL, v;
	int rc = RN_ENOMEM;

	*out = NULL;
	*len = 0;
	root = plist_new_dict();
	cmd = plist_new_dict();
	if (root == NULL || cmd == NULL)
		goto out;
	if ((v = plist_new_string(command_uuid)) == NULL)
		goto out;
	plist_dict_set_item(root, "CommandUUID", v);
	if ((v = plist_new_string(request_type)) == NULL)
		goto out;
	plist_dict_set_item(cmd, "RequestType", v);
	if (payload != NULL) {
		v = plist_new_data(payload, payload_len);
		if (v == NULL)
			goto out;
		plist_dict_set_item(cmd, "Payload", v);
	}
	plist_dict_set_item(root, "Command", cmd);
	cmd = NULL; /* root owns it now */
	plist_to_xml(root, out, len);
	if (*out != NULL && *len > 0)
		rc = RN_OK;
out:
	if (rc != RN_OK && *out != NULL) {
		plist_to_xml_free(*out);
		*out = NULL;
	}
	plist_free(cmd);
	plist_free(root);
	return rc;
}

/* PUT the command to /v1/enqueue/{enr}; payload as in nanomdm_body. */
static int
nanomdm_send(mdm *m, const char *enr, const char *command_uuid,
	     const char *request_type, const char *payload,
	     size_t payload_len, mdm_cb cb, void *arg)
{
	const char *hdrs[] = {"Content-Type: application/xml",
			      "User-Agent: renewd/" RN_VERSION, NULL};
	char *url = NULL, *userpwd = NULL, *body = NULL;
	uint32_t body_len = 0;
	net_http_req req;
	mdm_ctx *x = NULL;
	int rc;

	if (enr == NULL || enr[0] == '\0' || command_uuid == NULL ||
	    request_type == NULL)
		return RN_EINVAL;
	rc = nanomdm_body(command_uuid, request_type, payload, payload_len,
			  &body, &body_len);
	if (rc)
		goto out;
	url = api_url(m->c->url, "/v1/enqueue/", enr);
	userpwd = basic_userpwd(m, "nanomdm");
	x = ctx_new(m, cb, arg);
	if (url == NULL || userpwd == NULL || x == NULL ||
	    (x->enrollment = rn_strdup(enr)) == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.method = "PUT";
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = body_len;
	req.userpwd = userpwd;
	rc = http_start(m, &req, x);
	if (rc == RN_OK)
		x = NULL; /* http_done owns it now */
out:
	ctx_free(x);
	secret_free(userpwd);
	free(url);
	if (body != NULL)
		plist_to_xml_free(body);
	return rc;
}

static int
nanomdm_push(mdm *m, const mdm_push *p, mdm_cb cb, void *arg)
{
	return nanomdm_send(m, push_enrollment(p), p->command_uuid,
			    "InstallProfile", p->profile ? p->profile : "",
			    p->profile ? p->profile_len : 0, cb, arg);
}

/*
 * {"udid", "request_type"[, "payload": base64]}, the payload only when
 * `payload` is not NULL (InstallProfile).
 */
static int
micromdm_body(const char *enr, const char *request_type, const char *payload,
	      size_t payload_len, char **out)
{
	jw w = {RN_BUF_INIT, RN_OK, 0};

	jw_str(&w, "udid", enr);
	jw_str(&w, "request_type", request_type);
	if (payload != NULL)
		jw_base64(&w, "payload", payload, payload_len);
	return jw_end(&w, out);
}

/* POST the command to /v1/commands; payload as in micromdm_body. */
static int
micromdm_send(mdm *m, const char *enr, const char *request_type,
	      const char *payload, size_t payload_len, mdm_cb cb, void *arg)
{
	const char *hdrs[] = {"Content-Type: application/json",
			      "User-Agent: renewd/" RN_VERSION, NULL};
	char *url = NULL, *userpwd = NULL, *body = NULL;
	net_http_req req;
	mdm_ctx *x = NULL;
	int rc;

	if (enr == NULL || enr[0] == '\0' || request_type == NULL)
		return RN_EINVAL;
	rc = micromdm_body(enr, request_type, payload, payload_len, &body);
	if (rc)
		goto out;
	url = api_url(m->c->url, "/v1/commands", NULL);
	userpwd = basic_userpwd(m, "micromdm");
	x = ctx_new(m, cb, arg);
	if (url == NULL || userpwd == NULL || x == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = url;
	req.headers = hdrs;
	req.body = body;
	req.body_len = strlen(body);
	req.userpwd = userpwd;
	rc = http_start(m, &req, x);
	if (rc == RN_OK)
		x = NULL; /* http_done owns it now */
out:
	ctx_free(x);
	secret_free(userpwd);
	free(url);
	free(body);
	return rc;
}

static int
micromdm_push(mdm *m, const mdm_push *p, mdm_cb cb, void *arg)
{
	return micromdm_send(m, push_enrollment(p), "InstallProfile",
			     p->profile ? p->profile : "",
			     p->profile ? p->profile_len : 0, cb, arg);
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
	case CFG_MDM_NANOMDM:
		return nanomdm_push(m, p, cb, arg);
	case CFG_MDM_MICROMDM:
		return micromdm_push(m, p, cb, arg);
	}
	return RN_EINVAL;
}

int
mdm_command_start(mdm *m, const mdm_command *c, mdm_cb cb, void *arg)
{
	const char *enr;

	if (m == NULL || c == NULL || cb == NULL || c->request_type == NULL)
		return RN_EINVAL;
	enr = c->enrollment_id ? c->enrollment_id : c->host_uuid;
	switch (m->c->driver) {
	case CFG_MDM_NANOMDM:
		return nanomdm_send(m, enr, c->command_uuid, c->request_type,
				    NULL, 0, cb, arg);
	case CFG_MDM_MICROMDM:
		return micromdm_send(m, enr, c->request_type, NULL, 0, cb,
				     arg);
	}
	/* exec and webhook have no command channel */
	return RN_EINVAL;
}
