/*
 * Outbox delivery and the notifier drivers (see notify.h).
 *
 * The engine is one wake timer: each round fans new outbox events out to
 * the notifiers that want them, starts the deliveries that are due (each
 * leased in the store first), and re-arms at the earliest next attempt,
 * at most NOTIF_POLL_MS away so rows written by renewctl are seen too.
 * The deadline sweep runs in batches on the same timer.
 */
#define _GNU_SOURCE
#include "notifiers/notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/common.h"
#include "common/metrics.h"
#include "notifiers/alert.h"
#include "scheduler/policy.h"

#define NOTIF_POLL_MS 2000
#define NOTIF_BATCH 64
#define NOTIF_SWEEP_BATCH 500
#define NOTIF_BACKOFF_MIN 10
#define NOTIF_BACKOFF_MAX 600
#define NOTIF_KEEP (7 * 86400)
#define NOTIF_PRUNE_EVERY 3600

/* ---- payload helpers ---------------------------------------------------- */

static const char *
jstr(json_t *o, const char *k)
{
	const char *v = json_string_value(json_object_get(o, k));

	return v ? v : "";
}

/* The payload with "id" and "renewd" added, or NULL if it is not JSON. */
static json_t *
payload_load(const char *payload, int64_t id)
{
	static char host[256];
	json_t *o = json_loads(payload, 0, NULL);

	if (!json_is_object(o)) {
		json_decref(o);
		return NULL;
	}
	if (host[0] == '\0' && gethostname(host, sizeof(host) - 1) != 0)
		snprintf(host, sizeof(host), "localhost");
	if (id > 0)
		json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "renewd",
			    json_pack("{s:s,s:s}", "hostname", host,
				      "version", RN_VERSION));
	return o;
}

/* One line for a human: "[renewd] ERROR renewal.failed: summary". */
static char *
one_liner(json_t *o)
{
	const char *st = jstr(o, "status"), *sev = jstr(o, "severity");
	char upper[16];
	size_t i;

	for (i = 0; sev[i] && i < sizeof(upper) - 1; i++)
		upper[i] = (char)(sev[i] >= 'a' && sev[i] <= 'z' ? sev[i] - 32
								 : sev[i]);
	upper[i] = '\0';
	return rn_asprintf("[renewd] %s %s: %s",
			   strcmp(st, "resolved") == 0 ? "RESOLVED" : upper,
			   jstr(o, "event"), jstr(o, "summary"));
}

/* Replace control characters (CR, LF, ...) so text cannot add headers. */
static void
flatten(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = ' ';
}

/* ---- drivers ------------------------------------------------------------ */

typedef struct send_ctx {
	notif_send_cb cb;
	void *arg;
	int64_t timeout;
	uv_timer_t timer; /* syslog: report from the loop */
	int ok;
	char *detail;
} send_ctx;

static void
send_free(send_ctx *x)
{
	free(x->detail);
	free(x);
}

static void
on_http_sent(void *arg, const net_http_resp *r)
{
	send_ctx *x = arg;
	char *d;

	if (r->rc)
		d = rn_asprintf("%s", r->error ? r->error
					       : rn_strerror(r->rc));
	else
		d = rn_asprintf("http %ld", r->status);
	x->cb(x->arg, r->rc == 0 && r->status >= 200 && r->status < 300,
	      d ? d : "?");
	free(d);
	send_free(x);
}

static int
send_webhook(net_http *http, const cfg_notifier *n, json_t *o, send_ctx *x)
{
	const char *hdr[6];
	char *body = NULL, *text = NULL, *auth = NULL, *sig = NULL;
	char *evh = NULL, mac[65];
	net_http_req req;
	size_t nh = 0;
	int rc = RN_ENOMEM;

	if (strcmp(n->format, "slack") == 0) {
		json_t *s;
		text = one_liner(o);
		s = text ? json_pack("{s:s}", "text", text) : NULL;
		body = s ? json_dumps(s, JSON_COMPACT) : NULL;
		json_decref(s);
	} else {
		body = json_dumps(o, JSON_COMPACT);
	}
	evh = rn_asprintf("X-Renewd-Event: %s", jstr(o, "event"));
	if (body == NULL || evh == NULL)
		goto out;
	flatten(evh);
	hdr[nh++] = "Content-Type: application/json";
	hdr[nh++] = "User-Agent: renewd/" RN_VERSION;
	hdr[nh++] = evh;
	if (n->token) {
		auth = rn_asprintf("Authorization: Bearer %s", n->token);
		if (auth == NULL)
			goto out;
		hdr[nh++] = auth;
	}
	if (n->hmac_key) {
		if (rn_hmac_sha256_hex(n->hmac_key, strlen(n->hmac_key), body,
				       strlen(body), mac))
			goto out;
		sig = rn_asprintf("X-Renewd-Signature: sha256=%s", mac);
		if (sig == NULL)
			goto out;
		hdr[nh++] = sig;
	}
	hdr[nh] = NULL;
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.url = n->url;
	req.headers = hdr;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_ms = n->timeout * 1000;
	req.max_response = 64 * 1024;
	req.ca_file = n->ca_file;
	rc = net_http_request(http, &req, on_http_sent, x);
out:
	if (auth) {
		/* the token must not linger in freed memory */
		memset(auth, 0, strlen(auth));
		free(auth);
	}
	free(sig);
	free(evh);
	free(text);
	free(body);
	return rc;
}

static void
on_exec_done(void *arg, const net_proc_result *r)
{
	send_ctx *x = arg;
	char *d, line[160];
	size_t i;

	for (i = 0; r->output && r->output[i] && r->output[i] != '\n' &&
		    i < sizeof(line) - 1; i++)
		line[i] = r->output[i];
	line[i] = '\0';
	if (r->rc == RN_ETIMEDOUT)
		d = rn_asprintf("timed out after %llds",
				(long long)x->timeout);
	else if (r->rc)
		d = rn_asprintf("%s", rn_strerror(r->rc));
	else if (r->term_signal)
		d = rn_asprintf("killed by signal %d", r->term_signal);
	else if (line[0])
		d = rn_asprintf("exit %lld: %s", (long long)r->exit_status,
				line);
	else
		d = rn_asprintf("exit %lld", (long long)r->exit_status);
	x->cb(x->arg, r->rc == 0 && !r->term_signal && r->exit_status == 0,
	      d ? d : "?");
	free(d);
	send_free(x);
}

static int
send_exec(uv_loop_t *loop, const cfg_notifier *n, json_t *o, int64_t id,
	  send_ctx *x)
{
	static const char *const keys[] = {
		"event", "status", "severity", "summary", "host",
		"profile", "ca",
	};
	static const char *const names[] = {
		"RENEWD_EVENT", "RENEWD_STATUS", "RENEWD_SEVERITY",
		"RENEWD_SUMMARY", "RENEWD_HOST", "RENEWD_PROFILE",
		"RENEWD_CA",
	};
	char *env[12], *body = json_dumps(o, JSON_COMPACT);
	net_proc_opts po;
	size_t i, ne = 0;
	int rc = RN_ENOMEM;

	memset(env, 0, sizeof(env));
	if (body == NULL)
		goto out;
	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		env[ne] = rn_asprintf("%s=%s", names[i], jstr(o, keys[i]));
		if (env[ne++] == NULL)
			goto out;
	}
	env[ne] = rn_asprintf("RENEWD_JOB=%lld",
			      (long long)json_integer_value(
				      json_object_get(o, "job")));
	if (env[ne++] == NULL)
		goto out;
	env[ne] = rn_asprintf("RENEWD_NOTIFICATION_ID=%lld", (long long)id);
	if (env[ne++] == NULL)
		goto out;
	memset(&po, 0, sizeof(po));
	po.argv = n->command;
	po.env_extra = env;
	po.stdin_data = body;
	po.stdin_len = strlen(body);
	po.timeout_ms = n->timeout * 1000;
	po.output_cap = 4096;
	rc = net_proc_run(loop, &po, on_exec_done, x);
out:
	for (i = 0; i < ne; i++)
		free(env[i]);
	free(body);
	return rc;
}

static void
on_smtp_sent(void *arg, const net_http_resp *r)
{
	send_ctx *x = arg;
	char *d;

	if (r->rc)
		d = rn_asprintf("smtp: %s", r->error ? r->error
						     : rn_strerror(r->rc));
	else
		d = rn_asprintf("smtp %ld", r->status);
	x->cb(x->arg, r->rc == 0, d ? d : "?");
	free(d);
	send_free(x);
}

/* Add "Name: value\r\n" with the value flattened to one line. */
static int
add_header(rn_buf *m, const char *name, const char *value)
{
	char *v = rn_strdup(value);
	int rc;

	if (v == NULL)
		return RN_ENOMEM;
	flatten(v);
	rc = rn_buf_addf(m, "%s: %s\r\n", name, v);
	free(v);
	return rc;
}

/* The body: the summary, then each field on its own line, CRLF ends. */
static int
add_body(rn_buf *m, json_t *o)
{
	static const char *const keys[] = {
		"event", "status", "severity", "host", "profile", "ca", "job",
		"renewal_id", "not_valid_after", "error", "attempts", "at",
		"id",
	};
	json_t *v;
	char *s;
	size_t i;
	int rc;

	s = rn_strdup(jstr(o, "summary"));
	if (s == NULL)
		return RN_ENOMEM;
	flatten(s);
	rc = rn_buf_addf(m, "%s\r\n\r\n", s);
	free(s);
	for (i = 0; rc == RN_OK && i < sizeof(keys) / sizeof(keys[0]); i++) {
		v = json_object_get(o, keys[i]);
		if (json_is_string(v)) {
			s = rn_strdup(json_string_value(v));
			if (s == NULL)
				return RN_ENOMEM;
			flatten(s);
			rc = rn_buf_addf(m, "%-16s %s\r\n", keys[i], s);
			free(s);
		} else if (json_is_integer(v)) {
			rc = rn_buf_addf(m, "%-16s %lld\r\n", keys[i],
					 (long long)json_integer_value(v));
		}
	}
	if (rc == RN_OK)
		rc = rn_buf_adds(m, "\r\n-- \r\nrenewd " RN_VERSION "\r\n");
	return rc;
}

static int
send_smtp(net_http *http, const cfg_notifier *n, json_t *o, int64_t id,
	  send_ctx *x)
{
	rn_buf m = RN_BUF_INIT, to = RN_BUF_INIT;
	const char **rcpt = NULL;
	char *subject = one_liner(o), date[64], host[200], rnd[17];
	unsigned char rb[8];
	net_smtp_req req;
	struct tm tm;
	time_t now = (time_t)rn_now();
	size_t i;
	int rc = RN_ENOMEM;

	rcpt = calloc(n->nto + 1, sizeof(*rcpt));
	if (subject == NULL || rcpt == NULL)
		goto out;
	for (i = 0; i < n->nto; i++) {
		rcpt[i] = n->to[i];
		if (rn_buf_addf(&to, "%s%s", i ? ", " : "", n->to[i]))
			goto out;
	}
	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	if (gethostname(host, sizeof(host) - 1) != 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	rn_random_bytes(rb, sizeof(rb));
	for (i = 0; i < sizeof(rb); i++)
		snprintf(rnd + 2 * i, 3, "%02x", rb[i]);
	rc = add_header(&m, "From", n->from);
	if (rc == RN_OK)
		rc = add_header(&m, "To", to.data);
	if (rc == RN_OK)
		rc = add_header(&m, "Subject", subject);
	if (rc == RN_OK)
		rc = add_header(&m, "Date", date);
	if (rc == RN_OK)
		rc = rn_buf_addf(&m, "Message-ID: <renewd.%lld.%s@%s>\r\n",
				 (long long)id, rnd, host);
	if (rc == RN_OK)
		rc = rn_buf_adds(&m, "MIME-Version: 1.0\r\n"
				     "Content-Type: text/plain; "
				     "charset=utf-8\r\n"
				     "Content-Transfer-Encoding: 8bit\r\n"
				     "Auto-Submitted: auto-generated\r\n");
	if (rc == RN_OK)
		rc = add_header(&m, "X-Renewd-Event", jstr(o, "event"));
	if (rc == RN_OK)
		rc = rn_buf_adds(&m, "\r\n");
	if (rc == RN_OK)
		rc = add_body(&m, o);
	if (rc)
		goto out;
	memset(&req, 0, sizeof(req));
	req.url = n->url;
	req.from = n->from;
	req.rcpt = rcpt;
	req.username = n->username;
	req.password = n->password;
	req.starttls = n->starttls;
	req.message = m.data;
	req.message_len = m.len;
	req.timeout_ms = n->timeout * 1000;
	req.ca_file = n->ca_file;
	rc = net_smtp_send(http, &req, on_smtp_sent, x);
out:
	rn_buf_release(&to);
	rn_buf_release(&m);
	free(rcpt);
	free(subject);
	return rc;
}

static void
on_syslog_closed(uv_handle_t *h)
{
	send_free(h->data);
}

static void
on_syslog_tick(uv_timer_t *t)
{
	send_ctx *x = t->data;

	x->cb(x->arg, x->ok, x->detail ? x->detail : "syslog");
	uv_close((uv_handle_t *)t, on_syslog_closed);
}

static int
send_syslog(uv_loop_t *loop, json_t *o, send_ctx *x)
{
	static int opened;
	const char *sev = jstr(o, "severity");
	char *line = one_liner(o);
	int prio = LOG_INFO;

	if (line == NULL)
		return RN_ENOMEM;
	flatten(line);
	if (strcmp(jstr(o, "status"), "resolved") == 0)
		prio = LOG_NOTICE;
	else if (strcmp(sev, "critical") == 0)
		prio = LOG_CRIT;
	else if (strcmp(sev, "error") == 0)
		prio = LOG_ERR;
	else if (strcmp(sev, "warning") == 0)
		prio = LOG_WARNING;
	if (!opened) {
		openlog("renewd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		opened = 1;
	}
	syslog(LOG_DAEMON | prio, "%s", line);
	free(line);
	x->ok = 1;
	x->detail = rn_strdup("syslog");
	uv_timer_init(loop, &x->timer);
	x->timer.data = x;
	uv_timer_start(&x->timer, on_syslog_tick, 0, 0);
	return RN_OK;
}

int
notif_send(uv_loop_t *loop, net_http *http, const cfg_notifier *n,
	   int64_t id, const char *payload, notif_send_cb cb, void *arg)
{
	send_ctx *x;
	json_t *o;
	int rc;

	if (n == NULL || payload == NULL || cb == NULL)
		return RN_EINVAL;
	o = payload_load(payload, id);
	if (o == NULL)
		return RN_EINVAL;
	x = calloc(1, sizeof(*x));
	if (x == NULL) {
		json_decref(o);
		return RN_ENOMEM;
	}
	x->cb = cb;
	x->arg = arg;
	x->timeout = n->timeout;
	switch (n->driver) {
	case CFG_NOTIF_WEBHOOK:
		rc = send_webhook(http, n, o, x);
		break;
	case CFG_NOTIF_EXEC:
		rc = send_exec(loop, n, o, id, x);
		break;
	case CFG_NOTIF_SMTP:
		rc = send_smtp(http, n, o, id, x);
		break;
	case CFG_NOTIF_SYSLOG:
		rc = send_syslog(loop, o, x);
		break;
	default:
		rc = RN_EINVAL;
		break;
	}
	json_decref(o);
	if (rc)
		send_free(x);
	return rc;
}

/* ---- the engine --------------------------------------------------------- */

typedef struct delivery delivery;

struct notif_engine {
	uv_loop_t *loop;
	store *s;
	net_http *http;
	const cfg *c;
	uv_timer_t timer;
	int stopping;
	int closed;	      /* timer closed */
	size_t in_flight;
	int64_t last_prune;
	/* deadline sweep: cursor over (not_valid_after, id), active when
	 * sweeping; again = a sweep was asked for during one */
	int sweeping, sweep_again;
	int64_t sweep_nva, sweep_id, sweep_until, sweep_now;
	delivery *flying[NOTIF_MAX_IN_FLIGHT];
	/* notif_engine_drain: called once idle, or at drain_until (loop ms) */
	void (*drain_cb)(void *arg);
	void *drain_arg;
	uint64_t drain_until;
};

struct delivery {
	notif_engine *e;
	int64_t id;
	int attempts;
	int64_t created_at;
	char notifier[64];
	char event[48];
};

static void engine_arm(notif_engine *e, uint64_t ms);

static void
engine_maybe_free(notif_engine *e)
{
	if (e->stopping && e->closed && e->in_flight == 0)
		free(e);
}

static const cfg_notifier *
notifier_find(const cfg *c, const char *name)
{
	size_t i;

	for (i = 0; c && i < c->nnotifiers; i++)
		if (strcmp(c->notifiers[i].name, name) == 0)
			return &c->notifiers[i];
	return NULL;
}

/* Deliveries in flight for one notifier (the per-notifier cap). */
static size_t
notifier_busy(notif_engine *e, const char *name)
{
	size_t i, n = 0;

	for (i = 0; i < NOTIF_MAX_IN_FLIGHT; i++)
		if (e->flying[i] && strcmp(e->flying[i]->notifier, name) == 0)
			n++;
	return n;
}

/* Track d in (on) or out of the in-flight table and count. */
static void
flying_set(delivery *d, int on)
{
	notif_engine *e = d->e;
	size_t i;

	for (i = 0; i < NOTIF_MAX_IN_FLIGHT; i++)
		if (on ? e->flying[i] == NULL : e->flying[i] == d) {
			e->flying[i] = on ? d : NULL;
			break;
		}
	if (on)
		e->in_flight++;
	else
		e->in_flight--;
}

/* The scheduler's equal-jitter doubling, from 10 s to 10 min. */
static int64_t
backoff(int attempts)
{
	uint64_t r = 0;

	rn_random_bytes(&r, sizeof(r));
	return sched_backoff_span(NOTIF_BACKOFF_MIN, NOTIF_BACKOFF_MAX,
				  attempts + 1, r);
}

static void
on_delivered(void *arg, int ok, const char *detail)
{
	delivery *d = arg;
	notif_engine *e = d->e;
	int64_t now = rn_now();
	char id[24];
	int rc;

	flying_set(d, 0);
	snprintf(id, sizeof(id), "%lld", (long long)d->id);
	if (ok) {
		rc = store_notification_delivered(e->s, d->id, now);
		metrics_counter_add("renewd_notifications_total", 1, "notifier",
				    d->notifier, "result", "delivered", NULL);
		log_kv(RN_LOG_INFO, "notification delivered", "notifier",
		       d->notifier, "event", d->event, "notification", id,
		       "detail", detail, NULL);
	} else if (now - d->created_at >= NOTIF_GIVE_UP_AFTER) {
		rc = store_notification_give_up(e->s, d->id, "failed", detail,
						1);
		metrics_counter_add("renewd_notifications_total", 1, "notifier",
				    d->notifier, "result", "failed", NULL);
		log_kv(RN_LOG_ERROR, "notification given up", "notifier",
		       d->notifier, "event", d->event, "notification", id,
		       "err", detail, NULL);
	} else {
		char when[RN_TIME_LEN];
		int64_t at = now + backoff(d->attempts);

		rc = store_notification_retry(e->s, d->id, at, detail);
		metrics_counter_add("renewd_notifications_total", 1, "notifier",
				    d->notifier, "result", "retry", NULL);
		rn_time_format(at, when, sizeof(when));
		log_kv(RN_LOG_WARN, "notification failed, will retry",
		       "notifier", d->notifier, "event", d->event,
		       "notification", id, "retry_at", when, "err", detail,
		       NULL);
	}
	if (rc)
		log_kv(RN_LOG_ERROR, "cannot record notification", "err",
		       rn_strerror(rc), "notification", id, NULL);
	free(d);
	if (e->stopping)
		engine_maybe_free(e);
	else
		engine_arm(e, 0);
}

/* ---- fan-out ---- */

typedef struct fan_ctx {
	int64_t ids[NOTIF_BATCH];
	char events[NOTIF_BATCH][48];
	size_t n;
} fan_ctx;

static int
collect_unfanned(void *arg, const store_notification *n)
{
	fan_ctx *f = arg;

	f->ids[f->n] = n->id;
	snprintf(f->events[f->n], sizeof(f->events[0]), "%s", n->event);
	f->n++;
	return 0;
}

/* Turn new outbox events into one delivery row per notifier; returns the
 * number of events handled (a full batch means: come back soon). */
static size_t
fan_out(notif_engine *e, int64_t now)
{
	fan_ctx f;
	size_t i, j;
	int own, rc;

	memset(&f, 0, sizeof(f));
	rc = store_notifications_unfanned(e->s, NOTIF_BATCH, collect_unfanned,
					  &f);
	if (rc || f.n == 0)
		return 0;
	rc = store_tx_begin(e->s, &own);
	for (i = 0; rc == RN_OK && i < f.n; i++) {
		for (j = 0; rc == RN_OK && j < e->c->nnotifiers; j++) {
			const cfg_notifier *n = &e->c->notifiers[j];
			if (notif_event_wanted(n->events, n->nevents,
					       f.events[i]))
				rc = store_notification_fan(e->s, f.ids[i],
							    n->name, now);
		}
		if (rc == RN_OK)
			rc = store_notification_delete(e->s, f.ids[i]);
	}
	rc = store_tx_end(e->s, own, rc);
	if (rc) {
		log_kv(RN_LOG_ERROR, "cannot fan out notifications", "err",
		       rn_strerror(rc), NULL);
		return 0;
	}
	return f.n;
}

/* ---- due deliveries ---- */

typedef struct due_row {
	int64_t id, created_at;
	int attempts;
	char notifier[64], event[48];
	char *payload;
} due_row;

typedef struct due_ctx {
	due_row rows[NOTIF_BATCH];
	size_t n;
} due_ctx;

static int
collect_due(void *arg, const store_notification *n)
{
	due_ctx *d = arg;
	due_row *r = &d->rows[d->n];

	r->id = n->id;
	r->created_at = n->created_at;
	r->attempts = n->attempts;
	snprintf(r->notifier, sizeof(r->notifier), "%s", n->notifier);
	snprintf(r->event, sizeof(r->event), "%s", n->event);
	r->payload = rn_strdup(n->payload);
	d->n++;
	return 0;
}

/*
 * Start what is due, within the in-flight caps. Each row is leased first
 * (next attempt pushed past its timeout), so a crash mid-delivery sends it
 * again after the lease, and a poll meanwhile does not start it twice.
 */
static size_t
start_due(notif_engine *e, int64_t now)
{
	due_ctx dc;
	size_t i, started = 0;
	int rc;

	if (e->in_flight >= NOTIF_MAX_IN_FLIGHT)
		return 0;
	memset(&dc, 0, sizeof(dc));
	rc = store_notifications_due(e->s, now, NOTIF_BATCH, collect_due,
				     &dc);
	for (i = 0; rc == RN_OK && i < dc.n; i++) {
		due_row *r = &dc.rows[i];
		const cfg_notifier *n = notifier_find(e->c, r->notifier);
		delivery *d;

		if (n == NULL) {
			/* removed from the configuration by a reload */
			store_notification_give_up(e->s, r->id, "dropped",
						   "notifier not configured",
						   0);
			metrics_counter_add("renewd_notifications_total", 1,
					    "notifier", r->notifier, "result",
					    "dropped", NULL);
			continue;
		}
		if (e->in_flight >= NOTIF_MAX_IN_FLIGHT ||
		    notifier_busy(e, n->name) >= NOTIF_MAX_PER_NOTIFIER)
			continue;
		d = calloc(1, sizeof(*d));
		if (d == NULL)
			break;
		d->e = e;
		d->id = r->id;
		d->attempts = r->attempts;
		d->created_at = r->created_at;
		snprintf(d->notifier, sizeof(d->notifier), "%s", n->name);
		snprintf(d->event, sizeof(d->event), "%s", r->event);
		rc = store_notification_lease(e->s, r->id,
					      now + n->timeout + 60);
		if (rc == RN_OK)
			rc = notif_send(e->loop, e->http, n, r->id, r->payload,
					on_delivered, d);
		if (rc) {
			/* cannot even start (bad payload, spawn failed) */
			char *msg = rn_asprintf("cannot start: %s",
						rn_strerror(rc));
			flying_set(d, 1);
			rc = RN_OK;
			on_delivered(d, 0, msg ? msg : "cannot start");
			free(msg);
			continue;
		}
		flying_set(d, 1);
		started++;
	}
	for (i = 0; i < dc.n; i++)
		free(dc.rows[i].payload);
	return started;
}

/* ---- deadline sweep ---- */

static const cfg_policy *
policy_named(const cfg *c, const char *name)
{
	size_t i;

	for (i = 0; name && i < c->npolicies; i++)
		if (strcmp(c->policies[i].name, name) == 0)
			return &c->policies[i];
	return cfg_policy_default();
}

static int64_t
max_deadline(const cfg *c)
{
	const cfg_policy *d = cfg_policy_default();
	int64_t m = d->ndeadlines ? d->deadlines[0] : 0;
	size_t i;

	for (i = 0; i < c->npolicies; i++)
		if (c->policies[i].ndeadlines &&
		    c->policies[i].deadlines[0] > m)
			m = c->policies[i].deadlines[0];
	return m;
}

typedef struct sweep_ctx {
	notif_engine *e;
	int n;
	int rc;
} sweep_ctx;

static int
sweep_one(void *arg, const store_cert *c)
{
	sweep_ctx *x = arg;
	notif_engine *e = x->e;
	const cfg_policy *p = policy_named(e->c, c->policy);

	e->sweep_nva = c->not_valid_after;
	e->sweep_id = c->id;
	x->n++;
	x->rc = notif_cert_check(e->s, c, p->deadlines, p->ndeadlines,
				 e->sweep_now);
	return x->rc;
}

/* One batch of the sweep, in one transaction; 1 when more remain. */
static int
sweep_batch(notif_engine *e)
{
	sweep_ctx x;
	int own, rc;

	memset(&x, 0, sizeof(x));
	x.e = e;
	rc = store_tx_begin(e->s, &own);
	if (rc == RN_OK)
		rc = store_certs_expiring(e->s, e->sweep_until, e->sweep_nva,
					  e->sweep_id, NOTIF_SWEEP_BATCH,
					  sweep_one, &x);
	rc = store_tx_end(e->s, own, rc);
	if (rc) {
		log_kv(RN_LOG_ERROR, "deadline sweep failed", "err",
		       rn_strerror(rc), NULL);
		return 0;
	}
	return x.n == NOTIF_SWEEP_BATCH;
}

static void
sweep_begin(notif_engine *e)
{
	e->sweeping = 1;
	e->sweep_again = 0;
	e->sweep_now = rn_now();
	e->sweep_until = e->sweep_now + max_deadline(e->c);
	e->sweep_nva = INT64_MIN;
	e->sweep_id = 0;
}

/* ---- the round ---- */

/*
 * Is a drain over? Yes once nothing is in flight or due (the next retry
 * is later) and the sweep is done, or at its time limit; then its
 * callback runs, once.
 */
static int
drained(notif_engine *e, int64_t next, int64_t now)
{
	void (*cb)(void *) = e->drain_cb;
	int idle = !e->sweeping && e->in_flight == 0 &&
		   (next <= 0 || next > now);

	if (!idle && uv_now(e->loop) < e->drain_until)
		return 0;
	if (!idle) {
		char n[24];
		snprintf(n, sizeof(n), "%zu", e->in_flight);
		log_kv(RN_LOG_WARN, "notifications not delivered in time, "
				    "kept for the next run", "in_flight", n,
		       NULL);
	}
	e->drain_cb = NULL;
	cb(e->drain_arg);
	return 1;
}

static void
on_engine_timer(uv_timer_t *t)
{
	notif_engine *e = t->data;
	int64_t now = rn_now(), next;
	uint64_t ms = NOTIF_POLL_MS;
	int more = 0;

	if (e->stopping)
		return;
	if (e->sweeping) {
		more = sweep_batch(e);
		if (!more) {
			e->sweeping = 0;
			if (e->sweep_again)
				sweep_begin(e);
			more = e->sweeping;
		}
	}
	if (fan_out(e, now) == NOTIF_BATCH)
		more = 1;
	start_due(e, now);
	if (now - e->last_prune >= NOTIF_PRUNE_EVERY) {
		int n = 0;
		e->last_prune = now;
		if (store_notifications_prune(e->s, now - NOTIF_KEEP, &n) ==
			    RN_OK && n > 0)
			log_kv(RN_LOG_DEBUG, "old notifications pruned", NULL);
	}
	if (more) {
		ms = 0;
	} else {
		next = store_notifications_next_at(e->s);
		if (next > 0 && next <= now) {
			/* due but capped: completions re-arm the timer */
			ms = e->in_flight ? NOTIF_POLL_MS : 1000;
		} else if (next > 0 && (uint64_t)(next - now) * 1000 < ms) {
			ms = (uint64_t)(next - now) * 1000;
		}
		if (e->drain_cb && drained(e, next, now))
			return;
	}
	if (e->drain_cb) {
		uint64_t at = uv_now(e->loop);
		uint64_t left = e->drain_until > at ? e->drain_until - at : 0;
		if (left < ms)
			ms = left;
	}
	engine_arm(e, ms);
}

static void
engine_arm(notif_engine *e, uint64_t ms)
{
	if (e->stopping)
		return;
	/* never push an earlier wake later */
	if (uv_is_active((uv_handle_t *)&e->timer) &&
	    uv_timer_get_due_in(&e->timer) <= ms)
		return;
	uv_timer_start(&e->timer, on_engine_timer, ms, 0);
}

int
notif_engine_new(uv_loop_t *loop, store *s, net_http *http, const cfg *c,
		 notif_engine **out)
{
	notif_engine *e = calloc(1, sizeof(*e));

	if (e == NULL)
		return RN_ENOMEM;
	e->loop = loop;
	e->s = s;
	e->http = http;
	e->c = c;
	uv_timer_init(loop, &e->timer);
	e->timer.data = e;
	notif_alerts_configure(c);
	*out = e;
	engine_arm(e, 0);
	return RN_OK;
}

void
notif_engine_set_conf(notif_engine *e, const cfg *c)
{
	e->c = c;
	notif_alerts_configure(c);
	notif_engine_kick(e);
}

void
notif_engine_kick(notif_engine *e)
{
	if (e)
		engine_arm(e, 0);
}

void
notif_engine_sweep(notif_engine *e)
{
	if (e == NULL || e->stopping)
		return;
	if (e->sweeping)
		e->sweep_again = 1;
	else
		sweep_begin(e);
	engine_arm(e, 0);
}

void
notif_engine_drain(notif_engine *e, uint64_t max_ms, void (*cb)(void *arg),
		   void *arg)
{
	e->drain_cb = cb;
	e->drain_arg = arg;
	e->drain_until = uv_now(e->loop) + max_ms;
	engine_arm(e, 0);
}

static void
on_engine_closed(uv_handle_t *h)
{
	notif_engine *e = h->data;

	e->closed = 1;
	engine_maybe_free(e);
}

void
notif_engine_stop(notif_engine *e)
{
	if (e == NULL || e->stopping)
		return;
	e->stopping = 1;
	uv_close((uv_handle_t *)&e->timer, on_engine_closed);
}
