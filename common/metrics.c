/*
 * The metrics registry: one static table of families (name, type, help)
 * and, per family, a small array of label sets with their values. Label
 * sets are kept as their rendered text ("ca=\"x\",status=\"200\""), which
 * is both the lookup key and what /metrics prints; a linear search is
 * fine for families capped at METRICS_MAX_SERIES and far fewer in practice.
 */
#define _GNU_SOURCE
#include "metrics.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { M_COUNTER, M_GAUGE, M_HISTOGRAM };

typedef struct family_def {
	const char *name;
	int type;
	/* 0, or how the family is rendered when it is not a plain one */
	int how;
	const char *help;
} family_def;

enum {
	M_ZERO = 1,  /* no labels: render 0 before the first event */
	M_STORE = 2, /* a store aggregate: rendered by daemon/http.c only */
};

/*
 * Every family renewd exposes (the agreed names, spec "metrics.md"). The
 * store aggregates are rendered by daemon/http.c from one read per scrape;
 * they are here so that their HELP and TYPE come from the same place.
 */
static const family_def families[] = {
	{"renewd_certificates", M_GAUGE, M_STORE,
	 "Managed certificates by state; renewing is a current certificate "
	 "with an open renewal job."},
	{"renewd_certificates_expiring", M_GAUGE, M_STORE,
	 "Current certificates whose not_valid_after is before now plus "
	 "`within` (cumulative, expired ones included)."},
	{"renewd_certificates_expired", M_GAUGE, M_STORE,
	 "Current certificates already past their not_valid_after."},
	{"renewd_certificate_earliest_expiry_timestamp_seconds", M_GAUGE,
	 M_STORE,
	 "Earliest not_valid_after of a current certificate, in Unix "
	 "seconds."},
	{"renewd_jobs", M_GAUGE, M_STORE, "Renewal jobs by state."},
	{"renewd_notifications_pending", M_GAUGE, M_STORE,
	 "Notification outbox rows not yet delivered."},
	{"renewd_job_outcomes_total", M_COUNTER, 0,
	 "Renewal job outcomes recorded by this process since it started "
	 "(renewctl's own changes are not counted)."},
	{"renewd_scans_total", M_COUNTER, M_ZERO, "Due scans completed."},
	{"renewd_scan_duration_seconds", M_GAUGE, 0,
	 "Duration of the last due scan."},
	{"renewd_last_scan_timestamp_seconds", M_GAUGE, 0,
	 "Start of the last due scan, in Unix seconds."},
	{"renewd_push_duration_seconds", M_HISTOGRAM, M_ZERO,
	 "Duration of MDM pushes, from the start of the push to the driver's "
	 "result."},
	{"renewd_scep_proxy_requests_total", M_COUNTER, 0,
	 "SCEP proxy requests by operation and the HTTP status answered, "
	 "refusals included."},
	{"renewd_notifications_total", M_COUNTER, 0,
	 "Notification deliveries by notifier and result."},
	{"renewd_ca_up", M_GAUGE, 0,
	 "1 when the last check of the CA (GetCACaps and GetCACert) passed, "
	 "else 0."},
	{"renewd_mdm_up", M_GAUGE, 0,
	 "0 after 3 pushes or commands in a row failed with a transport "
	 "error, 1 otherwise."},
	{"renewd_build_info", M_GAUGE, 0,
	 "Build information of the running renewd; always 1."},
	{"renewd_start_time_seconds", M_GAUGE, 0,
	 "Start time of the process, in Unix seconds."},
};
#define NFAMILIES (sizeof(families) / sizeof(families[0]))

/* The histogram buckets (upper bounds, seconds), +Inf implied. */
static const double buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
				 0.5,	1,    2.5,   5,	   10,	30};
#define NBUCKETS (sizeof(buckets) / sizeof(buckets[0]))

typedef struct series {
	char *labels; /* rendered, "" for none */
	double v;
} series;

typedef struct family {
	series *s;
	size_t n, alloc;
	int warned; /* a misuse or the cap was logged */
	/* histograms (no labels) */
	int observed;
	uint64_t counts[NBUCKETS]; /* per bucket, not cumulative */
	uint64_t count;
	double sum;
} family;

static family state[NFAMILIES];
static int warned_unknown;

/* The family called name, or NULL (logged once). */
static int
family_find(const char *name)
{
	size_t i;

	for (i = 0; name && i < NFAMILIES; i++)
		if (strcmp(families[i].name, name) == 0)
			return (int)i;
	if (!warned_unknown) {
		warned_unknown = 1;
		log_warnx("metrics: unknown metric '%s' ignored",
			  name ? name : "(null)");
	}
	return -1;
}

/* Log a misuse of family i once, then stay quiet about it. */
static void
family_warn(int i, const char *what)
{
	if (state[i].warned)
		return;
	state[i].warned = 1;
	log_warnx("metrics: '%s': %s", families[i].name, what);
}

static int
label_name_ok(const char *k)
{
	const char *p;

	if (k == NULL || !(*k == '_' || (*k >= 'a' && *k <= 'z') ||
			   (*k >= 'A' && *k <= 'Z')))
		return 0;
	if (strncmp(k, "__", 2) == 0) /* reserved by Prometheus */
		return 0;
	for (p = k + 1; *p; p++)
		if (!(*p == '_' || (*p >= 'a' && *p <= 'z') ||
		      (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
			return 0;
	return 1;
}

/* A label value as the text format wants it inside double quotes. */
static int
add_escaped(rn_buf *b, const char *v)
{
	const char *p;
	int rc = RN_OK;

	for (p = v; *p && rc == RN_OK; p++) {
		if (*p == '\\')
			rc = rn_buf_adds(b, "\\\\");
		else if (*p == '"')
			rc = rn_buf_adds(b, "\\\"");
		else if (*p == '\n')
			rc = rn_buf_adds(b, "\\n");
		else
			rc = rn_buf_add(b, p, 1);
	}
	return rc;
}

/*
 * Render the NULL-terminated key, value list into b (k1="v1",k2="v2").
 * RN_EINVAL for a bad label name or too many pairs.
 */
static int
labels_render(rn_buf *b, va_list ap)
{
	const char *k, *v;
	int n = 0, rc = RN_OK;

	while ((k = va_arg(ap, const char *)) != NULL) {
		v = va_arg(ap, const char *);
		if (!label_name_ok(k) || ++n > METRICS_MAX_LABELS)
			return RN_EINVAL;
		if (n > 1)
			rc = rn_buf_add(b, ",", 1);
		if (rc == RN_OK)
			rc = rn_buf_addf(b, "%s=\"", k);
		if (rc == RN_OK)
			rc = add_escaped(b, v ? v : "");
		if (rc == RN_OK)
			rc = rn_buf_add(b, "\"", 1);
		if (rc)
			return rc;
	}
	return RN_OK;
}

/* The series of family i with these labels, created when new; NULL when
 * the family is full or memory ran out. Takes over nothing. */
static series *
series_get(int i, const char *labels)
{
	family *f = &state[i];
	series *s;
	size_t k;

	for (k = 0; k < f->n; k++)
		if (strcmp(f->s[k].labels, labels) == 0)
			return &f->s[k];
	if (f->n >= METRICS_MAX_SERIES) {
		family_warn(i, "too many label sets, new ones dropped");
		return NULL;
	}
	if (f->n == f->alloc) {
		size_t na = f->alloc ? f->alloc * 2 : 4;
		series *ns = realloc(f->s, na * sizeof(*ns));
		if (ns == NULL)
			return NULL;
		f->s = ns;
		f->alloc = na;
	}
	s = &f->s[f->n];
	s->labels = strdup(labels);
	if (s->labels == NULL)
		return NULL;
	s->v = 0;
	f->n++;
	return s;
}

/* Shared by counter_add and gauge_set: find or make the series. */
static series *
series_va(const char *name, int type, va_list ap)
{
	rn_buf lb = RN_BUF_INIT;
	series *s = NULL;
	int i = family_find(name), rc;

	if (i < 0)
		return NULL;
	if (families[i].type != type) {
		family_warn(i, type == M_COUNTER ? "not a counter"
						 : "not a gauge");
		return NULL;
	}
	if (families[i].how == M_STORE) {
		/* set here it would be rendered twice, breaking the scrape */
		family_warn(i, "a store aggregate, not set through the "
			       "registry");
		return NULL;
	}
	rn_buf_init(&lb, 4096);
	rc = labels_render(&lb, ap);
	if (rc == RN_EINVAL || rc == RN_ETOOBIG)
		family_warn(i, "bad label name, too many labels or values "
			       "too long");
	else if (rc == RN_OK)
		s = series_get(i, lb.data ? lb.data : "");
	rn_buf_release(&lb);
	return s;
}

void
metrics_counter_add(const char *name, double v, ...)
{
	va_list ap;
	series *s;

	if (!(v >= 0)) { /* also NaN: a counter only goes up */
		int i = family_find(name);
		if (i >= 0)
			family_warn(i, "negative or NaN increment");
		return;
	}
	va_start(ap, v);
	s = series_va(name, M_COUNTER, ap);
	va_end(ap);
	if (s)
		s->v += v;
}

void
metrics_gauge_set(const char *name, double v, ...)
{
	va_list ap;
	series *s;

	va_start(ap, v);
	s = series_va(name, M_GAUGE, ap);
	va_end(ap);
	if (s)
		s->v = v;
}

void
metrics_observe(const char *name, double v)
{
	int i = family_find(name);
	family *f;
	size_t k;

	if (i < 0)
		return;
	if (families[i].type != M_HISTOGRAM) {
		family_warn(i, "not a histogram");
		return;
	}
	if (isnan(v))
		return;
	f = &state[i];
	for (k = 0; k < NBUCKETS; k++)
		if (v <= buckets[k]) {
			f->counts[k]++;
			break;
		}
	f->count++; /* past the last bound: only +Inf has it */
	f->sum += v;
	f->observed = 1;
}

/*
 * A sample value as Prometheus parses it: the shortest of %.15g / %.17g
 * that reads back exactly, and NaN, +Inf, -Inf spelled its way.
 */
static void
fmt_value(char *buf, size_t len, double v)
{
	if (isnan(v)) {
		snprintf(buf, len, "NaN");
		return;
	}
	if (isinf(v)) {
		snprintf(buf, len, v > 0 ? "+Inf" : "-Inf");
		return;
	}
	snprintf(buf, len, "%.15g", v);
	if (strtod(buf, NULL) != v)
		snprintf(buf, len, "%.17g", v);
}

int
metrics_help_render(rn_buf *out, const char *name)
{
	static const char *const tnames[] = {"counter", "gauge", "histogram"};
	size_t i;

	for (i = 0; i < NFAMILIES; i++)
		if (strcmp(families[i].name, name) == 0)
			return rn_buf_addf(out, "# HELP %s %s\n# TYPE %s %s\n",
					   name, families[i].help, name,
					   tnames[families[i].type]);
	return RN_ENOTFOUND;
}

static int
render_histogram(rn_buf *out, const char *name, const family *f)
{
	char le[32], val[32];
	uint64_t cum = 0;
	size_t k;
	int rc = RN_OK;

	for (k = 0; k < NBUCKETS && rc == RN_OK; k++) {
		cum += f->counts[k];
		fmt_value(le, sizeof(le), buckets[k]);
		rc = rn_buf_addf(out, "%s_bucket{le=\"%s\"} %llu\n", name, le,
				 (unsigned long long)cum);
	}
	fmt_value(val, sizeof(val), f->sum);
	if (rc == RN_OK)
		rc = rn_buf_addf(out,
				 "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %s\n"
				 "%s_count %llu\n",
				 name, (unsigned long long)f->count, name, val,
				 name, (unsigned long long)f->count);
	return rc;
}

int
metrics_render(rn_buf *out)
{
	char val[32];
	size_t i, k;
	int rc = RN_OK;

	for (i = 0; i < NFAMILIES && rc == RN_OK; i++) {
		const family_def *d = &families[i];
		const family *f = &state[i];

		if (d->type == M_HISTOGRAM) {
			if (!f->observed && d->how != M_ZERO)
				continue;
			rc = metrics_help_render(out, d->name);
			if (rc == RN_OK)
				rc = render_histogram(out, d->name, f);
			continue;
		}
		if (f->n == 0 && d->how != M_ZERO)
			continue;
		rc = metrics_help_render(out, d->name);
		if (rc == RN_OK && f->n == 0)
			rc = rn_buf_addf(out, "%s 0\n", d->name);
		for (k = 0; k < f->n && rc == RN_OK; k++) {
			fmt_value(val, sizeof(val), f->s[k].v);
			if (f->s[k].labels[0])
				rc = rn_buf_addf(out, "%s{%s} %s\n", d->name,
						 f->s[k].labels, val);
			else
				rc = rn_buf_addf(out, "%s %s\n", d->name, val);
		}
	}
	return rc;
}

void
metrics_family_clear(const char *name)
{
	int i = family_find(name);
	family *f;
	size_t k;

	if (i < 0)
		return;
	f = &state[i];
	for (k = 0; k < f->n; k++)
		free(f->s[k].labels);
	free(f->s);
	memset(f, 0, sizeof(*f));
}

void
metrics_reset(void)
{
	size_t i;

	for (i = 0; i < NFAMILIES; i++)
		metrics_family_clear(families[i].name);
	warned_unknown = 0;
}
