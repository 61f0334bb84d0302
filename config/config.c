/*
 * config: renewd.yaml loaded with libyaml's document API and walked into
 * the typed structs of config.h. Every problem is collected with the
 * position of the node it is about, then all of them are handed back
 * sorted by position. See config.h.
 */
#define _GNU_SOURCE
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml.h>

#define CFG_FILE_CAP	(4 * 1024 * 1024)
#define MINUTE		60
#define HOUR		3600
#define DAY		86400

/* One collected error: 1-based position, arrival order, full message. */
struct lderr {
	size_t line, col, seq;
	char *msg;
};

/* The state of one load: the document being walked and what went wrong. */
typedef struct ld {
	const char *path;
	yaml_document_t *doc;
	struct lderr *errv;
	size_t nerr, aerr;
	int oom;
} ld;

/*
 * A key of a mapping as the walker sees it: the key and value nodes (both
 * NULL when the key is absent) and the name used in messages.
 */
typedef struct fld {
	yaml_node_t *k, *v;
	char name[96];
} fld;

static const cfg_policy default_policy = {
	.name = (char *)"default",
	.match_ca = (char *)"*",
	.match_profile = (char *)"*",
	.renew_before = 30 * DAY,
	.renew_at_percent = 0,
	.short_lived_fraction = 0.5,
	.smear = 0,
	.max_attempts = 8,
	.backoff_initial = 5 * MINUTE,
	.backoff_max = 12 * HOUR,
	.verify_timeout = 72 * HOUR,
	.rate_limit = 0,
	.rate_period = 0,
	.deadlines = { 7 * DAY, 1 * DAY },
	.ndeadlines = 2,
};

static const char *const event_names[] = {
	"renewal.verified", "renewal.failed", "certificate.deadline",
	"certificate.expired", "ca.unhealthy", "ca.recovered",
	"mdm.unreachable", "mdm.recovered", "host.retired",
};

/* ---- errors ----------------------------------------------------------- */

/*
 * Errors are kept aside rather than appended at once so they can be sorted
 * by position: cross-field checks run after a section is read, and a user
 * fixing a file works from top to bottom.
 */
static void
ld_errv(ld *l, const yaml_mark_t *m, const char *fmt, va_list ap)
{
	struct lderr *e;
	char *msg = NULL;

	if (vasprintf(&msg, fmt, ap) < 0) {
		l->oom = 1;
		return;
	}
	if (l->nerr == l->aerr) {
		size_t na = l->aerr ? l->aerr * 2 : 16;
		struct lderr *nv = realloc(l->errv, na * sizeof(*nv));

		if (nv == NULL) {
			free(msg);
			l->oom = 1;
			return;
		}
		l->errv = nv;
		l->aerr = na;
	}
	e = &l->errv[l->nerr];
	e->line = m->line + 1;
	e->col = m->column + 1;
	e->seq = l->nerr;
	e->msg = msg;
	l->nerr++;
}

static void ld_errm(ld *l, const yaml_mark_t *m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void ld_err(ld *l, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
ld_errm(ld *l, const yaml_mark_t *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ld_errv(l, m, fmt, ap);
	va_end(ap);
}

static void
ld_err(ld *l, const yaml_node_t *n, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	ld_errv(l, &n->start_mark, fmt, ap);
	va_end(ap);
}

static int
lderr_cmp(const void *a, const void *b)
{
	const struct lderr *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Hand the collected errors to the caller's list in file order. */
static void
ld_flush(ld *l, rn_errlist *errs)
{
	size_t i;

	if (l->nerr > 1)
		qsort(l->errv, l->nerr, sizeof(*l->errv), lderr_cmp);
	for (i = 0; i < l->nerr; i++) {
		rn_errlist_addf(errs, "%s:%zu:%zu: %s", l->path,
				l->errv[i].line, l->errv[i].col,
				l->errv[i].msg);
		free(l->errv[i].msg);
	}
	free(l->errv);
	l->errv = NULL;
	l->nerr = l->aerr = 0;
}

static char *
xstrdup(ld *l, const char *s)
{
	char *d = strdup(s);

	if (d == NULL)
		l->oom = 1;
	return d;
}

static void *
xcalloc(ld *l, size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);

	if (p == NULL)
		l->oom = 1;
	return p;
}

/* strerror(3) starts with a capital; messages here are lowercase. */
static const char *
errno_text(int err, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(err));
	if (buf[0] != '\0')
		buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* ---- nodes ------------------------------------------------------------ */

static yaml_node_t *
node_at(ld *l, yaml_node_item_t i)
{
	return yaml_document_get_node(l->doc, i);
}

static const char *
sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

/*
 * The YAML 1.1 null forms. "key:" with nothing after it is the usual case:
 * for a section it means "all defaults", for a setting it is a mistake.
 */
static int
is_null(const yaml_node_t *n)
{
	const char *s;

	if (n->type != YAML_SCALAR_NODE ||
	    n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return 0;
	s = sval(n);
	return strcmp(s, "") == 0 || strcmp(s, "~") == 0 ||
	       strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
	       strcmp(s, "NULL") == 0;
}

static const char *
kind(const yaml_node_t *n)
{
	switch (n->type) {
	case YAML_MAPPING_NODE: return "a mapping";
	case YAML_SEQUENCE_NODE: return "a list";
	default: return is_null(n) ? "empty" : "a string";
	}
}

static size_t
seq_len(const yaml_node_t *n)
{
	return (size_t)(n->data.sequence.items.top -
			n->data.sequence.items.start);
}

static yaml_node_t *
seq_item(ld *l, const yaml_node_t *n, size_t i)
{
	return node_at(l, n->data.sequence.items.start[i]);
}

/* Where to point at a setting: its value, or its key when it has none. */
static const yaml_node_t *
fld_at(const fld *f)
{
	if (f->k != NULL && is_null(f->v))
		return f->k;
	return f->v;
}

/* Of two keys present in one mapping, the one written second. */
static const fld *
fld_later(const fld *a, const fld *b)
{
	return a->k->start_mark.index > b->k->start_mark.index ? a : b;
}

/*
 * Match the pairs of mapping n against keys[]: each known key's nodes land
 * in f[i], unknown and repeated keys are reported and skipped so the rest
 * of the section is still checked. n may be NULL or a null scalar (an
 * empty section). `where` names the mapping in messages (NULL at the top
 * level) and `prefix` is put before each key's name ("backoff.").
 */
static void
map_fields(ld *l, const yaml_node_t *n, const char *where,
	   const char *prefix, const char *const keys[], size_t nkeys, fld *f)
{
	yaml_node_pair_t *p;
	size_t i;

	for (i = 0; i < nkeys; i++) {
		f[i].k = f[i].v = NULL;
		snprintf(f[i].name, sizeof(f[i].name), "%s%s", prefix, keys[i]);
	}
	if (n == NULL || n->type != YAML_MAPPING_NODE)
		return;
	for (p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top;
	     p++) {
		yaml_node_t *k = node_at(l, p->key), *v = node_at(l, p->value);
		const char *ks;

		if (k == NULL || v == NULL)
			continue;
		if (k->type != YAML_SCALAR_NODE) {
			if (where)
				ld_err(l, k, "keys in '%s' must be strings, "
				       "not %s", where, kind(k));
			else
				ld_err(l, k, "top-level keys must be strings, "
				       "not %s", kind(k));
			continue;
		}
		ks = sval(k);
		for (i = 0; i < nkeys && strcmp(ks, keys[i]) != 0; i++)
			;
		if (i == nkeys) {
			if (where)
				ld_err(l, k, "unknown key '%s' in '%s'", ks,
				       where);
			else
				ld_err(l, k, "unknown top-level key '%s'", ks);
			continue;
		}
		if (f[i].k != NULL) {
			if (where)
				ld_err(l, k, "duplicate key '%s' in '%s'", ks,
				       where);
			else
				ld_err(l, k, "duplicate top-level key '%s'",
				       ks);
			continue;
		}
		f[i].k = k;
		f[i].v = v;
	}
}

/* A mapping, or nothing (an empty section); 0 after reporting otherwise. */
static int
want_map(ld *l, const fld *f)
{
	if (f->v->type == YAML_MAPPING_NODE || is_null(f->v))
		return 1;
	ld_err(l, f->v, "'%s' must be a mapping, not %s", f->name, kind(f->v));
	return 0;
}

/*
 * An item of a list section must be a mapping; unlike a section, a bare
 * "-" is not "all defaults" but a half-written entry, reported once.
 */
static int
want_item_map(ld *l, const fld *item)
{
	if (item->v->type == YAML_MAPPING_NODE)
		return 1;
	ld_err(l, item->v, "'%s' must be a mapping, not %s", item->name,
	       kind(item->v));
	return 0;
}

/* A list (a null value is an empty one); 0 after reporting otherwise. */
static int
want_seq(ld *l, const fld *f, size_t *n)
{
	*n = 0;
	if (is_null(f->v))
		return 1;
	if (f->v->type == YAML_SEQUENCE_NODE) {
		*n = seq_len(f->v);
		return 1;
	}
	ld_err(l, f->v, "'%s' must be a list, not %s", f->name, kind(f->v));
	return 0;
}

/*
 * The text of a setting that must be a non-empty scalar, or NULL after
 * saying that f must be `what`. Every scalar setting goes through here so
 * a list or mapping in the wrong place is always reported by key name.
 */
static const char *
want_scalar(ld *l, const fld *f, const char *what)
{
	if (f->v->type == YAML_SCALAR_NODE && !is_null(f->v) &&
	    sval(f->v)[0] != '\0')
		return sval(f->v);
	if (f->v->type == YAML_SCALAR_NODE)
		ld_err(l, fld_at(f), "'%s' must be %s", f->name, what);
	else
		ld_err(l, f->v, "'%s' must be %s, not %s", f->name, what,
		       kind(f->v));
	return NULL;
}

/* ---- typed values ----------------------------------------------------- */

static int
get_str(ld *l, const fld *f, char **out)
{
	const char *s = want_scalar(l, f, "a non-empty string");

	if (s == NULL)
		return -1;
	free(*out);
	*out = xstrdup(l, s);
	return *out ? 0 : -1;
}

static int
get_dur(ld *l, const fld *f, const char *example, int64_t min, int64_t *out)
{
	char what[64], mb[32];
	const char *s;
	int64_t v;

	snprintf(what, sizeof(what), "a duration like %s", example);
	if ((s = want_scalar(l, f, what)) == NULL)
		return -1;
	if (rn_duration_parse(s, &v) != RN_OK) {
		ld_err(l, f->v, "'%s' must be %s", f->name, what);
		return -1;
	}
	if (v < min) {
		rn_duration_format(min, mb, sizeof(mb));
		ld_err(l, f->v, "'%s' must be at least %s", f->name, mb);
		return -1;
	}
	*out = v;
	return 0;
}

/* A decimal integer in [min, max]; no sign other than '-', no spaces. */
static int
get_int(ld *l, const fld *f, long min, long max, int *out)
{
	char what[64], *end;
	const char *s, *p;
	long long v;

	if (max == INT_MAX)
		snprintf(what, sizeof(what), "an integer of at least %ld", min);
	else
		snprintf(what, sizeof(what), "an integer from %ld to %ld", min,
			 max);
	if ((s = want_scalar(l, f, what)) == NULL)
		return -1;
	p = s[0] == '-' ? s + 1 : s;
	if (*p < '0' || *p > '9')
		goto bad;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		goto bad;
	*out = (int)v;
	return 0;
bad:
	ld_err(l, f->v, "'%s' must be %s", f->name, what);
	return -1;
}

/*
 * A plain decimal strictly between lo and hi. strtod alone would also take
 * "inf", "nan" and hex floats, none of which belong in this file.
 */
static int
get_frac(ld *l, const fld *f, double lo, double hi, const char *example,
	 double *out)
{
	char what[96];
	const char *s, *p;
	int digits = 0, dots = 0;
	double v;

	snprintf(what, sizeof(what),
		 "a number between %g and %g (exclusive), like %s", lo, hi,
		 example);
	if ((s = want_scalar(l, f, what)) == NULL)
		return -1;
	for (p = s; *p; p++) {
		if (*p >= '0' && *p <= '9')
			digits++;
		else if (*p == '.')
			dots++;
		else
			break;
	}
	if (*p != '\0' || digits == 0 || dots > 1)
		goto bad;
	v = strtod(s, NULL);
	if (!isfinite(v) || v <= lo || v >= hi)
		goto bad;
	*out = v;
	return 0;
bad:
	ld_err(l, f->v, "'%s' must be %s", f->name, what);
	return -1;
}

static int
get_bool(ld *l, const fld *f, int *out)
{
	const char *s = want_scalar(l, f, "true or false");

	if (s == NULL)
		return -1;
	if (strcmp(s, "true") == 0)
		*out = 1;
	else if (strcmp(s, "false") == 0)
		*out = 0;
	else {
		ld_err(l, f->v, "'%s' must be true or false", f->name);
		return -1;
	}
	return 0;
}

/* One of names[] by index; `what` lists them for the message. */
static int
get_enum(ld *l, const fld *f, const char *const names[], size_t n,
	 const char *what, int *out)
{
	const char *s = want_scalar(l, f, what);
	size_t i;

	if (s == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		if (strcmp(s, names[i]) == 0) {
			*out = (int)i;
			return 0;
		}
	}
	ld_err(l, f->v, "'%s' must be %s", f->name, what);
	return -1;
}

static void
strv_free(char **v, size_t n)
{
	size_t i;

	if (v == NULL)
		return;
	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/*
 * A non-empty list of non-empty strings, returned NULL-terminated so a
 * command can go straight to execvp. Every bad item is reported.
 */
static int
get_strv(ld *l, const fld *f, char ***out, size_t *nout)
{
	const char *what = "a non-empty list of strings";
	char **v;
	size_t i, n;
	int bad = 0;

	if (f->v->type != YAML_SEQUENCE_NODE || seq_len(f->v) == 0) {
		if (f->v->type == YAML_MAPPING_NODE ||
		    (f->v->type == YAML_SCALAR_NODE && !is_null(f->v)))
			ld_err(l, f->v, "'%s' must be %s, not %s", f->name,
			       what, kind(f->v));
		else
			ld_err(l, fld_at(f), "'%s' must be %s", f->name, what);
		return -1;
	}
	n = seq_len(f->v);
	if ((v = xcalloc(l, n + 1, sizeof(*v))) == NULL)
		return -1;
	for (i = 0; i < n; i++) {
		fld it = { NULL, seq_item(l, f->v, i), "" };
		const char *s;

		snprintf(it.name, sizeof(it.name), "%.64s[%zu]", f->name, i);
		if ((s = want_scalar(l, &it, "a non-empty string")) == NULL)
			bad = 1;
		else if ((v[i] = xstrdup(l, s)) == NULL)
			bad = 1;
	}
	if (bad) {
		strv_free(v, n);
		return -1;
	}
	strv_free(*out, *nout);
	*out = v;
	*nout = n;
	return 0;
}

/*
 * Resolve a secret from exactly one of `env` (may be NULL where only a
 * file is offered) and `file`. Messages name the variable or the file and
 * never what is in it. Returns 1 when a secret was read, 0 when neither key
 * is present, -1 after reporting an error.
 */
static int
get_secret(ld *l, const fld *env, const fld *file, char **out)
{
	char eb[128], *val = NULL;
	const char *s;
	int rc;

	if (env != NULL && env->v != NULL && file->v != NULL) {
		ld_err(l, fld_later(env, file)->k,
		       "only one of '%s' and '%s' may be set", env->name,
		       file->name);
		return -1;
	}
	if (env != NULL && env->v != NULL) {
		s = want_scalar(l, env, "the name of an environment variable");
		if (s == NULL)
			return -1;
		val = getenv(s);
		if (val == NULL || *val == '\0') {
			ld_err(l, env->v, "environment variable '%s' named by "
			       "'%s' is not set", s, env->name);
			return -1;
		}
		*out = xstrdup(l, val);
		return *out ? 1 : -1;
	}
	if (file->v == NULL)
		return 0;
	if ((s = want_scalar(l, file, "a file path")) == NULL)
		return -1;
	errno = 0;
	rc = rn_secret_read_file(s, &val);
	if (rc == RN_EIO) {
		ld_err(l, file->v, "cannot read '%s' named by '%s': %s", s,
		       file->name, errno_text(errno, eb, sizeof(eb)));
		return -1;
	}
	if (rc == RN_ETOOBIG) {
		ld_err(l, file->v, "'%s' named by '%s' is larger than 64 KiB",
		       s, file->name);
		return -1;
	}
	if (rc != RN_OK) {
		ld_err(l, file->v, "cannot read '%s' named by '%s': %s", s,
		       file->name, rn_strerror(rc));
		return -1;
	}
	if (*val == '\0') {
		free(val);
		ld_err(l, file->v, "'%s' named by '%s' is empty", s,
		       file->name);
		return -1;
	}
	*out = val;
	return 1;
}

/* ---- formats ---------------------------------------------------------- */

/* s starts with scheme a or b and has something that is not a path after. */
static int
url_ok(const char *s, const char *a, const char *b)
{
	const char *rest, *p;

	if (strncmp(s, a, strlen(a)) == 0)
		rest = s + strlen(a);
	else if (b != NULL && strncmp(s, b, strlen(b)) == 0)
		rest = s + strlen(b);
	else
		return 0;
	if (*rest == '\0' || *rest == '/' || *rest == '?' || *rest == '#')
		return 0;
	for (p = s; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p))
			return 0;
	return 1;
}

static int
get_url(ld *l, const fld *f, const char *a, const char *b, char **out)
{
	char what[64];

	snprintf(what, sizeof(what), "an %s or %s url", a, b);
	if (get_str(l, f, out))
		return -1;
	if (!url_ok(*out, a, b)) {
		ld_err(l, f->v, "'%s' must be %s", f->name, what);
		return -1;
	}
	return 0;
}

/*
 * A file of PEM certificates to trust for TLS instead of the system's
 * store: it must be readable and hold at least one certificate, so a
 * wrong path is found when the configuration is loaded, not by the
 * first push.
 */
static int
get_ca_file(ld *l, const fld *f, char **out)
{
	char eb[128], *data = NULL;
	size_t len = 0;
	BIO *b;
	X509 *x = NULL;
	int rc;

	if (get_str(l, f, out))
		return -1;
	errno = 0;
	rc = rn_file_read(*out, 4 << 20, &data, &len);
	if (rc != RN_OK) {
		ld_err(l, f->v, "cannot read '%s' named by '%s': %s", *out,
		       f->name, rc == RN_EIO ? errno_text(errno, eb, sizeof(eb))
					     : rn_strerror(rc));
		return -1;
	}
	if ((b = BIO_new_mem_buf(data, (int)len)) != NULL) {
		x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
	}
	free(data);
	if (x == NULL) {
		ld_err(l, f->v, "'%s' named by '%s' holds no PEM certificate",
		       *out, f->name);
		return -1;
	}
	X509_free(x);
	return 0;
}

/*
 * HOST:PORT with a port from 1 to 65535. An IPv6 host is bracketed
 * ([::1]:8180) so the last colon is always the port separator.
 */
static int
listen_ok(const char *s)
{
	const char *host, *hend, *port, *p;
	long v = 0;

	if (s[0] == '[') {
		host = s + 1;
		if ((hend = strchr(host, ']')) == NULL || hend[1] != ':')
			return 0;
		port = hend + 2;
	} else {
		host = s;
		if ((hend = strrchr(s, ':')) == NULL)
			return 0;
		if (memchr(s, ':', (size_t)(hend - s)) != NULL)
			return 0;
		port = hend + 1;
	}
	if (hend == host)
		return 0;
	for (p = host; p < hend; p++)
		if (isspace((unsigned char)*p) || *p == '/' || *p == '[' ||
		    *p == ']' || (s[0] != '[' && *p == ':'))
			return 0;
	if (*port == '\0' || strlen(port) > 5)
		return 0;
	for (p = port; *p; p++) {
		if (*p < '0' || *p > '9')
			return 0;
		v = v * 10 + (*p - '0');
	}
	return v >= 1 && v <= 65535;
}

static int
ca_name_ok(const char *s)
{
	const char *p;

	for (p = s; *p; p++)
		if (!isalnum((unsigned char)*p) && *p != '_')
			return 0;
	return p != s;
}

/* "600/m" -> 600 per 60 seconds; only s, m and h are units of a rate. */
static int
rate_parse(const char *s, int *n, int64_t *period)
{
	const char *p = s;
	long long v = 0;

	if (*p < '0' || *p > '9')
		return -1;
	while (*p >= '0' && *p <= '9') {
		v = v * 10 + (*p - '0');
		if (v > INT_MAX)
			return -1;
		p++;
	}
	if (*p++ != '/' || v < 1 || p[0] == '\0' || p[1] != '\0')
		return -1;
	switch (*p) {
	case 's': *period = 1; break;
	case 'm': *period = MINUTE; break;
	case 'h': *period = HOUR; break;
	default: return -1;
	}
	*n = (int)v;
	return 0;
}

/*
 * Report a repeated name among the items of a list section: nodes[0..i-1]
 * are the names seen so far (NULL where an item had none).
 */
static void
check_dup(ld *l, yaml_node_t **nodes, size_t i, const char *what)
{
	size_t j;

	if (nodes[i] == NULL)
		return;
	for (j = 0; j < i; j++) {
		if (nodes[j] != NULL &&
		    strcmp(sval(nodes[j]), sval(nodes[i])) == 0) {
			ld_err(l, nodes[i], "duplicate %s '%s', first defined "
			       "at line %zu", what, sval(nodes[i]),
			       nodes[j]->start_mark.line + 1);
			return;
		}
	}
}

/* The name node of an item, kept only when it is a usable string. */
static yaml_node_t *
name_node(const fld *f)
{
	if (f->v == NULL || f->v->type != YAML_SCALAR_NODE || is_null(f->v) ||
	    sval(f->v)[0] == '\0')
		return NULL;
	return f->v;
}

static void
required(ld *l, const yaml_node_t *at, const char *where, const char *key)
{
	ld_err(l, at, "'%s.%s' is required", where, key);
}

/* ---- sections --------------------------------------------------------- */

enum {
	D_DATABASE, D_CONTROL_SOCKET, D_SCAN_INTERVAL, D_MAX_IN_FLIGHT,
	D_LOG_LEVEL, D_LOG_FORMAT, D_N
};
static const char *const daemon_keys[D_N] = {
	"database", "control_socket", "scan_interval", "max_in_flight",
	"log_level", "log_format",
};

static void
load_daemon(ld *l, const fld *sec, cfg_daemon *d)
{
	static const char *const levels[] = {
		"debug", "info", "warn", "error",
	};
	static const char *const formats[] = { "logfmt", "json" };
	fld f[D_N];

	d->scan_interval = 5 * MINUTE;
	d->max_in_flight = 64;
	d->log_level = RN_LOG_INFO;
	d->log_format = RN_LOGFMT_LOGFMT;
	if (sec->v != NULL && want_map(l, sec)) {
		map_fields(l, sec->v, "daemon", "", daemon_keys, D_N, f);
		if (f[D_DATABASE].v)
			get_str(l, &f[D_DATABASE], &d->database);
		if (f[D_CONTROL_SOCKET].v)
			get_str(l, &f[D_CONTROL_SOCKET], &d->control_socket);
		if (f[D_SCAN_INTERVAL].v)
			get_dur(l, &f[D_SCAN_INTERVAL], "5m", 1,
				&d->scan_interval);
		if (f[D_MAX_IN_FLIGHT].v)
			get_int(l, &f[D_MAX_IN_FLIGHT], 1, 100000,
				&d->max_in_flight);
		/* RN_LOG_* follow the order of log_level_parse's names. */
		if (f[D_LOG_LEVEL].v)
			get_enum(l, &f[D_LOG_LEVEL], levels, 4,
				 "one of debug, info, warn, error",
				 &d->log_level);
		if (f[D_LOG_FORMAT].v)
			get_enum(l, &f[D_LOG_FORMAT], formats, 2,
				 "one of logfmt, json", &d->log_format);
	}
	if (d->database == NULL)
		d->database = xstrdup(l, "var/renewd.db");
	if (d->control_socket == NULL)
		d->control_socket = xstrdup(l, "var/renewd.sock");
}

enum { H_LISTEN, H_PUBLIC_URL, H_API_TOKEN_FILE, H_WEBHOOK_HMAC_KEY_FILE, H_N };
static const char *const http_keys[H_N] = {
	"listen", "public_url", "api_token_file", "webhook_hmac_key_file",
};

static void
load_http(ld *l, const fld *sec, cfg_http *h)
{
	fld f[H_N];
	size_t n;

	map_fields(l, NULL, NULL, "", http_keys, H_N, f);
	if (sec->v != NULL && want_map(l, sec))
		map_fields(l, sec->v, "http", "", http_keys, H_N, f);
	if (f[H_LISTEN].v && get_str(l, &f[H_LISTEN], &h->listen) == 0 &&
	    !listen_ok(h->listen))
		ld_err(l, f[H_LISTEN].v, "'listen' must be HOST:PORT with a "
		       "port from 1 to 65535, like 127.0.0.1:8180 or "
		       "[::1]:8180");
	if (h->listen == NULL)
		h->listen = xstrdup(l, "127.0.0.1:8180");
	if (f[H_PUBLIC_URL].v &&
	    get_url(l, &f[H_PUBLIC_URL], "http://", "https://",
		    &h->public_url) == 0) {
		/* The proxy path is appended with its own '/'. */
		n = strlen(h->public_url);
		while (n > 0 && h->public_url[n - 1] == '/')
			h->public_url[--n] = '\0';
	}
	if (h->public_url == NULL && h->listen != NULL &&
	    (h->public_url = rn_asprintf("http://%s", h->listen)) == NULL)
		l->oom = 1;
	get_secret(l, NULL, &f[H_API_TOKEN_FILE], &h->api_token);
	get_secret(l, NULL, &f[H_WEBHOOK_HMAC_KEY_FILE], &h->webhook_hmac_key);
}

enum {
	CA_NAME, CA_URL, CA_CHALLENGE_ENV, CA_CHALLENGE_FILE, CA_TOKEN_TTL,
	CA_TIMEOUT, CA_CACHE_TTL, CA_CA_FILE, CA_N
};
static const char *const ca_keys[CA_N] = {
	"name", "url", "challenge_env", "challenge_file", "token_ttl",
	"timeout", "cache_ttl", "ca_file",
};

static void
load_ca(ld *l, const fld *item, cfg_ca *ca, yaml_node_t **name)
{
	const char *where = item->name;
	fld f[CA_N];

	ca->token_ttl = 7 * DAY;
	ca->timeout = 30;
	ca->cache_ttl = 60;
	ca->line = (int)item->v->start_mark.line + 1;
	ca->col = (int)item->v->start_mark.column + 1;
	if (!want_item_map(l, item))
		return;
	map_fields(l, item->v, where, "", ca_keys, CA_N, f);
	if (f[CA_NAME].v == NULL)
		required(l, item->v, where, "name");
	else if (get_str(l, &f[CA_NAME], &ca->name) == 0) {
		if (ca_name_ok(ca->name))
			*name = name_node(&f[CA_NAME]);
		else
			ld_err(l, f[CA_NAME].v, "'name' must contain only "
			       "letters, digits and underscores, like "
			       "Test_SCEP");
	}
	if (f[CA_URL].v == NULL)
		required(l, item->v, where, "url");
	else
		get_url(l, &f[CA_URL], "http://", "https://", &ca->url);
	if (f[CA_CHALLENGE_ENV].v == NULL && f[CA_CHALLENGE_FILE].v == NULL)
		ld_err(l, item->v, "'%s' needs 'challenge_env' or "
		       "'challenge_file'", where);
	else
		get_secret(l, &f[CA_CHALLENGE_ENV], &f[CA_CHALLENGE_FILE],
			   &ca->challenge);
	if (f[CA_TOKEN_TTL].v)
		get_dur(l, &f[CA_TOKEN_TTL], "7d", 1, &ca->token_ttl);
	if (f[CA_TIMEOUT].v)
		get_dur(l, &f[CA_TIMEOUT], "30s", 1, &ca->timeout);
	if (f[CA_CACHE_TTL].v)
		get_dur(l, &f[CA_CACHE_TTL], "60s", 0, &ca->cache_ttl);
	if (f[CA_CA_FILE].v)
		get_ca_file(l, &f[CA_CA_FILE], &ca->ca_file);
}

static void
load_cas(ld *l, const fld *sec, cfg *c)
{
	yaml_node_t **names;
	size_t i, n;

	if (sec->v == NULL || !want_seq(l, sec, &n) || n == 0)
		return;
	c->cas = xcalloc(l, n, sizeof(*c->cas));
	names = xcalloc(l, n, sizeof(*names));
	if (c->cas == NULL || names == NULL) {
		free(names);
		return;
	}
	c->ncas = n;
	for (i = 0; i < n; i++) {
		fld item = { NULL, seq_item(l, sec->v, i), "" };

		snprintf(item.name, sizeof(item.name),
			 "certificate_authorities[%zu]", i);
		load_ca(l, &item, &c->cas[i], &names[i]);
		check_dup(l, names, i, "certificate authority");
	}
	free(names);
}

enum { PR_FILE, PR_UUID, PR_N };
static const char *const profile_keys[PR_N] = { "file", "uuid" };

static void
load_profiles(ld *l, const fld *sec, cfg *c)
{
	yaml_node_t **uuids;
	size_t i, n;

	if (sec->v == NULL || !want_seq(l, sec, &n) || n == 0)
		return;
	c->profiles = xcalloc(l, n, sizeof(*c->profiles));
	uuids = xcalloc(l, n, sizeof(*uuids));
	if (c->profiles == NULL || uuids == NULL) {
		free(uuids);
		return;
	}
	c->nprofiles = n;
	for (i = 0; i < n; i++) {
		fld item = { NULL, seq_item(l, sec->v, i), "" }, f[PR_N];
		cfg_profile *p = &c->profiles[i];

		snprintf(item.name, sizeof(item.name), "profiles[%zu]", i);
		if (!want_item_map(l, &item))
			continue;
		map_fields(l, item.v, item.name, "", profile_keys, PR_N, f);
		if (f[PR_FILE].v == NULL)
			required(l, item.v, item.name, "file");
		else if (get_str(l, &f[PR_FILE], &p->file) == 0) {
			/* The template is read by profiles/, which
			 * reports its problems at this position. */
			p->line = (int)f[PR_FILE].v->start_mark.line + 1;
			p->col = (int)f[PR_FILE].v->start_mark.column + 1;
		}
		if (f[PR_UUID].v && get_str(l, &f[PR_UUID], &p->uuid) == 0) {
			uuids[i] = name_node(&f[PR_UUID]);
			check_dup(l, uuids, i, "profile uuid");
		}
	}
	free(uuids);
}

static void
load_assignments(ld *l, const fld *sec, cfg *c)
{
	static const char *const keys[] = { "profile" };
	size_t i, n;

	if (sec->v == NULL || !want_seq(l, sec, &n) || n == 0)
		return;
	if ((c->assignments = xcalloc(l, n, sizeof(*c->assignments))) == NULL)
		return;
	c->nassignments = n;
	for (i = 0; i < n; i++) {
		fld item = { NULL, seq_item(l, sec->v, i), "" }, f[1];

		snprintf(item.name, sizeof(item.name), "assignments[%zu]", i);
		if (!want_item_map(l, &item))
			continue;
		map_fields(l, item.v, item.name, "", keys, 1, f);
		if (f[0].v == NULL)
			required(l, item.v, item.name, "profile");
		else
			get_str(l, &f[0], &c->assignments[i].profile);
	}
}

static int
cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x > y ? -1 : x < y;
}

/* 1 to 8 durations, stored largest first so alerts fire in order. */
static void
get_deadlines(ld *l, const fld *f, cfg_policy *p)
{
	const char *what = "a list of 1 to 8 durations like [7d, 1d]";
	int64_t d[8];
	size_t i, n;
	int bad = 0;

	if (f->v->type != YAML_SEQUENCE_NODE) {
		if (is_null(f->v))
			ld_err(l, fld_at(f), "'%s' must be %s", f->name, what);
		else
			ld_err(l, f->v, "'%s' must be %s, not %s", f->name,
			       what, kind(f->v));
		return;
	}
	n = seq_len(f->v);
	if (n < 1 || n > 8) {
		ld_err(l, f->v, "'%s' must be %s", f->name, what);
		return;
	}
	for (i = 0; i < n; i++) {
		fld it = { NULL, seq_item(l, f->v, i), "" };

		snprintf(it.name, sizeof(it.name), "%.64s[%zu]", f->name, i);
		if (get_dur(l, &it, "7d", 1, &d[i]))
			bad = 1;
	}
	if (bad)
		return;
	qsort(d, n, sizeof(d[0]), cmp_desc);
	memcpy(p->deadlines, d, n * sizeof(d[0]));
	p->ndeadlines = (int)n;
}

enum {
	P_NAME, P_MATCH, P_RENEW_BEFORE, P_RENEW_AT_PERCENT,
	P_SHORT_LIVED_FRACTION, P_SMEAR, P_MAX_ATTEMPTS, P_BACKOFF,
	P_VERIFY_TIMEOUT, P_RATE_LIMIT, P_DEADLINES, P_N
};
static const char *const policy_keys[P_N] = {
	"name", "match", "renew_before", "renew_at_percent",
	"short_lived_fraction", "smear", "max_attempts", "backoff",
	"verify_timeout", "rate_limit", "deadlines",
};
static const char *const match_keys[] = { "ca", "profile" };
static const char *const backoff_keys[] = { "initial", "max" };

static void
load_policy(ld *l, const fld *item, cfg_policy *p, yaml_node_t **name)
{
	const char *where = item->name;
	char sub[128];
	fld f[P_N], m[2], b[2];

	*p = default_policy;
	p->name = p->match_ca = p->match_profile = NULL;
	p->renew_before = 0;
	if (!want_item_map(l, item))
		return;
	map_fields(l, item->v, where, "", policy_keys, P_N, f);
	if (f[P_NAME].v == NULL)
		required(l, item->v, where, "name");
	else if (get_str(l, &f[P_NAME], &p->name) == 0)
		*name = name_node(&f[P_NAME]);

	if (f[P_MATCH].v && want_map(l, &f[P_MATCH])) {
		snprintf(sub, sizeof(sub), "%s.match", where);
		map_fields(l, f[P_MATCH].v, sub, "match.", match_keys, 2, m);
		if (m[0].v)
			get_str(l, &m[0], &p->match_ca);
		if (m[1].v)
			get_str(l, &m[1], &p->match_profile);
	}

	if (f[P_RENEW_BEFORE].v && f[P_RENEW_AT_PERCENT].v)
		ld_err(l, fld_later(&f[P_RENEW_BEFORE],
				    &f[P_RENEW_AT_PERCENT])->k,
		       "only one of 'renew_before' and 'renew_at_percent' "
		       "may be set");
	else if (f[P_RENEW_BEFORE].v)
		get_dur(l, &f[P_RENEW_BEFORE], "30d", 1, &p->renew_before);
	else if (f[P_RENEW_AT_PERCENT].v)
		get_frac(l, &f[P_RENEW_AT_PERCENT], 0, 100, "66",
			 &p->renew_at_percent);
	else
		ld_err(l, item->v, "'%s' needs 'renew_before' or "
		       "'renew_at_percent'", where);

	if (f[P_SHORT_LIVED_FRACTION].v)
		get_frac(l, &f[P_SHORT_LIVED_FRACTION], 0, 1, "0.5",
			 &p->short_lived_fraction);
	if (f[P_SMEAR].v)
		get_dur(l, &f[P_SMEAR], "24h", 0, &p->smear);
	if (f[P_MAX_ATTEMPTS].v)
		get_int(l, &f[P_MAX_ATTEMPTS], 1, INT_MAX, &p->max_attempts);
	if (f[P_BACKOFF].v && want_map(l, &f[P_BACKOFF])) {
		int ok = 1;

		snprintf(sub, sizeof(sub), "%s.backoff", where);
		map_fields(l, f[P_BACKOFF].v, sub, "backoff.", backoff_keys, 2,
			   b);
		if (b[0].v && get_dur(l, &b[0], "5m", 1, &p->backoff_initial))
			ok = 0;
		if (b[1].v && get_dur(l, &b[1], "12h", 1, &p->backoff_max))
			ok = 0;
		if (ok && p->backoff_max < p->backoff_initial)
			ld_err(l, b[1].v ? b[1].v : b[0].v,
			       "'backoff.max' must not be less than "
			       "'backoff.initial'");
	}
	if (f[P_VERIFY_TIMEOUT].v)
		get_dur(l, &f[P_VERIFY_TIMEOUT], "72h", 1, &p->verify_timeout);
	if (f[P_RATE_LIMIT].v) {
		const char *what = "a rate like 600/m (N/s, N/m or N/h, "
				   "N at least 1)";
		const char *s = want_scalar(l, &f[P_RATE_LIMIT], what);

		if (s && rate_parse(s, &p->rate_limit, &p->rate_period))
			ld_err(l, f[P_RATE_LIMIT].v, "'rate_limit' must be %s",
			       what);
	}
	if (f[P_DEADLINES].v)
		get_deadlines(l, &f[P_DEADLINES], p);
}

static void
load_policies(ld *l, const fld *sec, cfg *c)
{
	yaml_node_t **names;
	size_t i, n;

	if (sec->v == NULL || !want_seq(l, sec, &n) || n == 0)
		return;
	c->policies = xcalloc(l, n, sizeof(*c->policies));
	names = xcalloc(l, n, sizeof(*names));
	if (c->policies == NULL || names == NULL) {
		free(names);
		return;
	}
	c->npolicies = n;
	for (i = 0; i < n; i++) {
		fld item = { NULL, seq_item(l, sec->v, i), "" };
		cfg_policy *p = &c->policies[i];

		snprintf(item.name, sizeof(item.name), "policies[%zu]", i);
		load_policy(l, &item, p, &names[i]);
		check_dup(l, names, i, "policy");
		if (p->match_ca == NULL)
			p->match_ca = xstrdup(l, "*");
		if (p->match_profile == NULL)
			p->match_profile = xstrdup(l, "*");
	}
	free(names);
}

enum {
	M_DRIVER, M_COMMAND, M_URL, M_API_KEY_ENV, M_API_KEY_FILE,
	M_HMAC_KEY_ENV, M_HMAC_KEY_FILE, M_TIMEOUT, M_CA_FILE, M_N
};
static const char *const mdm_keys[M_N] = {
	"driver", "command", "url", "api_key_env", "api_key_file",
	"hmac_key_env", "hmac_key_file", "timeout", "ca_file",
};
static const char *const mdm_drivers[] = {
	[CFG_MDM_EXEC] = "exec", [CFG_MDM_WEBHOOK] = "webhook",
	[CFG_MDM_NANOMDM] = "nanomdm", [CFG_MDM_MICROMDM] = "micromdm",
};

/*
 * The push driver and what it needs. An "mdm:" with nothing under it is
 * the exec driver without a command, which is reported as such.
 */
static void
load_mdm(ld *l, const fld *sec, cfg_mdm *m)
{
	const yaml_node_t *at;
	const char *dname;
	fld f[M_N];
	int driver_ok = 1, keyed;

	m->driver = CFG_MDM_EXEC;
	m->timeout = 30;
	if (!want_map(l, sec))
		return;
	map_fields(l, sec->v, "mdm", "", mdm_keys, M_N, f);
	at = sec->v->type == YAML_MAPPING_NODE ? sec->v : sec->k;
	if (f[M_DRIVER].v &&
	    get_enum(l, &f[M_DRIVER], mdm_drivers, 4,
		     "one of exec, webhook, nanomdm, micromdm", &m->driver))
		driver_ok = 0;
	dname = mdm_drivers[m->driver];
	if (f[M_COMMAND].v)
		get_strv(l, &f[M_COMMAND], &m->command, &m->ncommand);
	else if (driver_ok && m->driver == CFG_MDM_EXEC)
		ld_err(l, at, "'mdm.command' is required for driver '%s'",
		       dname);
	if (f[M_URL].v)
		get_url(l, &f[M_URL], "http://", "https://", &m->url);
	else if (driver_ok && m->driver != CFG_MDM_EXEC)
		ld_err(l, at, "'mdm.url' is required for driver '%s'", dname);
	keyed = get_secret(l, &f[M_API_KEY_ENV], &f[M_API_KEY_FILE],
			   &m->api_key);
	if (keyed == 0 && driver_ok && (m->driver == CFG_MDM_NANOMDM ||
					m->driver == CFG_MDM_MICROMDM))
		ld_err(l, at, "'mdm.api_key_env' or 'mdm.api_key_file' is "
		       "required for driver '%s'", dname);
	get_secret(l, &f[M_HMAC_KEY_ENV], &f[M_HMAC_KEY_FILE], &m->hmac_key);
	if (f[M_TIMEOUT].v)
		get_dur(l, &f[M_TIMEOUT], "30s", 1, &m->timeout);
	if (f[M_CA_FILE].v)
		get_ca_file(l, &f[M_CA_FILE], &m->ca_file);
}

enum {
	N_NAME, N_DRIVER, N_URL, N_FORMAT, N_EVENTS, N_COMMAND, N_TOKEN_ENV,
	N_TOKEN_FILE, N_HMAC_KEY_ENV, N_HMAC_KEY_FILE, N_STARTTLS,
	N_USERNAME_ENV, N_USERNAME_FILE, N_PASSWORD_ENV, N_PASSWORD_FILE,
	N_FROM, N_TO, N_TIMEOUT, N_CA_FILE, N_N
};
static const char *const notifier_keys[N_N] = {
	"name", "driver", "url", "format", "events", "command", "token_env",
	"token_file", "hmac_key_env", "hmac_key_file", "starttls",
	"username_env", "username_file", "password_env", "password_file",
	"from", "to", "timeout", "ca_file",
};
static const char *const notif_drivers[] = {
	[CFG_NOTIF_WEBHOOK] = "webhook", [CFG_NOTIF_EXEC] = "exec",
	[CFG_NOTIF_SMTP] = "smtp", [CFG_NOTIF_SYSLOG] = "syslog",
};

/* Every item of events names a known event or is "*"; all bad ones reported. */
static void
get_events(ld *l, const fld *f, cfg_notifier *n)
{
	size_t i, j;

	if (get_strv(l, f, &n->events, &n->nevents))
		return;
	for (i = 0; i < n->nevents; i++) {
		if (strcmp(n->events[i], "*") == 0)
			continue;
		for (j = 0; j < sizeof(event_names) / sizeof(event_names[0]);
		     j++)
			if (strcmp(n->events[i], event_names[j]) == 0)
				break;
		if (j == sizeof(event_names) / sizeof(event_names[0]))
			ld_err(l, seq_item(l, f->v, i), "unknown event '%s' "
			       "in 'events', expected one of "
			       "renewal.verified, renewal.failed, "
			       "certificate.deadline, certificate.expired, "
			       "ca.unhealthy, ca.recovered, mdm.unreachable, "
			       "mdm.recovered, host.retired or *",
			       n->events[i]);
	}
}

/*
 * A key that the notifier's driver does not use is an error, like an
 * unknown key: `url` on an exec notifier would silently do nothing.
 */
static void
notifier_keys_apply(ld *l, const char *where, const fld *f,
		    const cfg_notifier *n)
{
	/* the drivers each key applies to, as bits of 1 << CFG_NOTIF_* */
	static const struct {
		int key;
		unsigned drivers;
	} only[] = {
		{ N_URL, 1u << CFG_NOTIF_WEBHOOK | 1u << CFG_NOTIF_SMTP },
		{ N_FORMAT, 1u << CFG_NOTIF_WEBHOOK },
		{ N_COMMAND, 1u << CFG_NOTIF_EXEC },
		{ N_TOKEN_ENV, 1u << CFG_NOTIF_WEBHOOK },
		{ N_TOKEN_FILE, 1u << CFG_NOTIF_WEBHOOK },
		{ N_HMAC_KEY_ENV, 1u << CFG_NOTIF_WEBHOOK },
		{ N_HMAC_KEY_FILE, 1u << CFG_NOTIF_WEBHOOK },
		{ N_STARTTLS, 1u << CFG_NOTIF_SMTP },
		{ N_USERNAME_ENV, 1u << CFG_NOTIF_SMTP },
		{ N_USERNAME_FILE, 1u << CFG_NOTIF_SMTP },
		{ N_PASSWORD_ENV, 1u << CFG_NOTIF_SMTP },
		{ N_PASSWORD_FILE, 1u << CFG_NOTIF_SMTP },
		{ N_FROM, 1u << CFG_NOTIF_SMTP },
		{ N_TO, 1u << CFG_NOTIF_SMTP },
		{ N_TIMEOUT, ~(1u << CFG_NOTIF_SYSLOG) },
		{ N_CA_FILE, 1u << CFG_NOTIF_WEBHOOK | 1u << CFG_NOTIF_SMTP },
	};
	size_t i;

	for (i = 0; i < sizeof(only) / sizeof(only[0]); i++)
		if (f[only[i].key].k &&
		    !(only[i].drivers & (1u << n->driver)))
			ld_err(l, f[only[i].key].k, "'%s.%s' does not apply "
			       "to driver '%s'", where, f[only[i].key].name,
			       notif_drivers[n->driver]);
	if (n->starttls && n->url && strncmp(n->url, "smtps://", 8) == 0)
		ld_err(l, f[N_STARTTLS].k, "'%s.starttls' is for smtp:// "
		       "URLs; smtps:// is TLS from the first byte", where);
}

static void
load_notifier(ld *l, const fld *item, cfg_notifier *n, yaml_node_t **name)
{
	static const char *const formats[] = { "json", "slack" };
	const char *where = item->name, *dname;
	fld f[N_N];
	int fmt = 0, driver_ok = 0, user, pass;

	n->timeout = 30;
	if (!want_item_map(l, item))
		return;
	map_fields(l, item->v, where, "", notifier_keys, N_N, f);
	if (f[N_NAME].v == NULL)
		required(l, item->v, where, "name");
	else if (get_str(l, &f[N_NAME], &n->name) == 0)
		*name = name_node(&f[N_NAME]);
	if (f[N_DRIVER].v == NULL)
		required(l, item->v, where, "driver");
	else if (get_enum(l, &f[N_DRIVER], notif_drivers, 4,
			  "one of webhook, exec, smtp, syslog",
			  &n->driver) == 0)
		driver_ok = 1;
	dname = notif_drivers[n->driver];
	if (f[N_EVENTS].v == NULL)
		required(l, item->v, where, "events");
	else
		get_events(l, &f[N_EVENTS], n);
	if (f[N_FORMAT].v)
		get_enum(l, &f[N_FORMAT], formats, 2, "one of json, slack",
			 &fmt);
	n->format = xstrdup(l, formats[fmt]);

	if (f[N_URL].v) {
		if (driver_ok && n->driver == CFG_NOTIF_SMTP)
			get_url(l, &f[N_URL], "smtp://", "smtps://", &n->url);
		else if (driver_ok && n->driver == CFG_NOTIF_WEBHOOK)
			get_url(l, &f[N_URL], "http://", "https://", &n->url);
		else
			get_str(l, &f[N_URL], &n->url);
	} else if (driver_ok && (n->driver == CFG_NOTIF_WEBHOOK ||
				 n->driver == CFG_NOTIF_SMTP))
		ld_err(l, item->v, "'%s.url' is required for driver '%s'",
		       where, dname);
	if (f[N_COMMAND].v)
		get_strv(l, &f[N_COMMAND], &n->command, &n->ncommand);
	else if (driver_ok && n->driver == CFG_NOTIF_EXEC)
		ld_err(l, item->v, "'%s.command' is required for driver '%s'",
		       where, dname);
	if (f[N_FROM].v)
		get_str(l, &f[N_FROM], &n->from);
	else if (driver_ok && n->driver == CFG_NOTIF_SMTP)
		ld_err(l, item->v, "'%s.from' is required for driver '%s'",
		       where, dname);
	if (f[N_TO].v)
		get_strv(l, &f[N_TO], &n->to, &n->nto);
	else if (driver_ok && n->driver == CFG_NOTIF_SMTP)
		ld_err(l, item->v, "'%s.to' is required for driver '%s'",
		       where, dname);
	if (f[N_STARTTLS].v)
		get_bool(l, &f[N_STARTTLS], &n->starttls);
	if (f[N_TIMEOUT].v)
		get_dur(l, &f[N_TIMEOUT], "30s", 1, &n->timeout);
	/* not read for a driver it does not apply to: that error says it */
	if (f[N_CA_FILE].v && (!driver_ok || n->driver == CFG_NOTIF_WEBHOOK ||
			       n->driver == CFG_NOTIF_SMTP))
		get_ca_file(l, &f[N_CA_FILE], &n->ca_file);

	get_secret(l, &f[N_TOKEN_ENV], &f[N_TOKEN_FILE], &n->token);
	get_secret(l, &f[N_HMAC_KEY_ENV], &f[N_HMAC_KEY_FILE], &n->hmac_key);
	user = get_secret(l, &f[N_USERNAME_ENV], &f[N_USERNAME_FILE],
			  &n->username);
	pass = get_secret(l, &f[N_PASSWORD_ENV], &f[N_PASSWORD_FILE],
			  &n->password);
	/*
	 * A password is only ever sent with a username. A username alone
	 * is allowed (the schema's own example has one), the password is
	 * then empty.
	 */
	if (user == 0 && pass == 1)
		ld_err(l, item->v, "'%s' sets a password but no "
		       "'username_env' or 'username_file'", where);
	if (driver_ok)
		notifier_keys_apply(l, where, f, n);
}

static void
load_notifiers(ld *l, const fld *sec, cfg *c)
{
	yaml_node_t **names;
	size_t i, n;

	if (sec->v == NULL || !want_seq(l, sec, &n) || n == 0)
		return;
	c->notifiers = xcalloc(l, n, sizeof(*c->notifiers));
	names = xcalloc(l, n, sizeof(*names));
	if (c->notifiers == NULL || names == NULL) {
		free(names);
		return;
	}
	c->nnotifiers = n;
	for (i = 0; i < n; i++) {
		fld item = { NULL, seq_item(l, sec->v, i), "" };

		snprintf(item.name, sizeof(item.name), "notifiers[%zu]", i);
		load_notifier(l, &item, &c->notifiers[i], &names[i]);
		check_dup(l, names, i, "notifier");
	}
	free(names);
}

enum {
	T_DAEMON, T_HTTP, T_CAS, T_PROFILES, T_ASSIGNMENTS, T_POLICIES, T_MDM,
	T_NOTIFIERS, T_N
};
static const char *const top_keys[T_N] = {
	"daemon", "http", "certificate_authorities", "profiles",
	"assignments", "policies", "mdm", "notifiers",
};

/* Every section is read even after errors, so one run reports them all. */
static void
load_root(ld *l, cfg *c)
{
	static const yaml_mark_t start;
	yaml_node_t *root = yaml_document_get_root_node(l->doc);
	fld f[T_N];

	if (root != NULL && root->type != YAML_MAPPING_NODE && !is_null(root)) {
		ld_err(l, root, "the configuration must be a mapping of "
		       "sections such as 'daemon' and 'mdm', not %s",
		       kind(root));
		return;
	}
	map_fields(l, root, NULL, "", top_keys, T_N, f);
	load_daemon(l, &f[T_DAEMON], &c->daemon);
	load_http(l, &f[T_HTTP], &c->http);
	load_cas(l, &f[T_CAS], c);
	load_profiles(l, &f[T_PROFILES], c);
	load_assignments(l, &f[T_ASSIGNMENTS], c);
	load_policies(l, &f[T_POLICIES], c);
	if (f[T_MDM].v != NULL)
		load_mdm(l, &f[T_MDM], &c->mdm);
	else
		ld_errm(l, root ? &root->start_mark : &start,
			"'mdm' section is required");
	load_notifiers(l, &f[T_NOTIFIERS], c);
}

/*
 * libyaml's parse error as one message at its position. Reader errors
 * (bad UTF-8, control characters) carry only a byte offset, which is
 * turned into a line and column here.
 */
static void
syntax_error(ld *l, const yaml_parser_t *p, const char *text, size_t len)
{
	const char *problem = p->problem ? p->problem : "malformed yaml";
	yaml_mark_t m = p->problem_mark;
	size_t i;

	if (p->error == YAML_MEMORY_ERROR) {
		l->oom = 1;
		return;
	}
	if (p->error == YAML_READER_ERROR) {
		memset(&m, 0, sizeof(m));
		for (i = 0; i < p->problem_offset && i < len; i++) {
			if (text[i] == '\n') {
				m.line++;
				m.column = 0;
			} else
				m.column++;
		}
		ld_errm(l, &m, "cannot read yaml: %s", problem);
		return;
	}
	if (p->context != NULL)
		ld_errm(l, &m, "yaml syntax error: %s (%s at %zu:%zu)", problem,
			p->context, p->context_mark.line + 1,
			p->context_mark.column + 1);
	else
		ld_errm(l, &m, "yaml syntax error: %s", problem);
}

int
cfg_load(const char *path, cfg **out, rn_errlist *errs)
{
	yaml_parser_t parser;
	yaml_document_t doc, extra;
	ld l;
	cfg *c = NULL;
	char *text = NULL, eb[128];
	size_t len = 0;
	int rc, have_parser = 0, have_doc = 0;

	*out = NULL;
	memset(&l, 0, sizeof(l));
	l.path = path;
	errno = 0;
	rc = rn_file_read(path, CFG_FILE_CAP, &text, &len);
	if (rc == RN_EIO) {
		rn_errlist_addf(errs, "cannot open configuration '%s': %s",
				path, errno_text(errno, eb, sizeof(eb)));
		return RN_ECONFIG;
	} else if (rc == RN_ETOOBIG) {
		rn_errlist_addf(errs, "configuration '%s' is larger than "
				"4 MiB", path);
		return RN_ECONFIG;
	} else if (rc) {
		rn_errlist_addf(errs, "cannot read configuration '%s': %s",
				path, rn_strerror(rc));
		return rc;
	}
	if (!yaml_parser_initialize(&parser)) {
		l.oom = 1;
		goto out;
	}
	have_parser = 1;
	yaml_parser_set_input_string(&parser, (const unsigned char *)text,
				     len);
	if (!yaml_parser_load(&parser, &doc)) {
		syntax_error(&l, &parser, text, len);
		goto out;
	}
	have_doc = 1;
	l.doc = &doc;
	if ((c = xcalloc(&l, 1, sizeof(*c))) == NULL)
		goto out;
	c->path = xstrdup(&l, path);
	load_root(&l, c);
	/* A second "---" document would be silently ignored otherwise. */
	if (!yaml_parser_load(&parser, &extra))
		syntax_error(&l, &parser, text, len);
	else {
		yaml_node_t *r = yaml_document_get_root_node(&extra);

		if (r != NULL)
			ld_err(&l, r, "a configuration file holds one yaml "
			       "document; remove everything after the "
			       "second '---'");
		yaml_document_delete(&extra);
	}
out:
	if (l.oom)
		rn_errlist_addf(errs, "%s: out of memory", path);
	rc = l.oom ? RN_ENOMEM : l.nerr ? RN_ECONFIG : RN_OK;
	ld_flush(&l, errs);
	if (rc) {
		cfg_free(c);
		c = NULL;
	}
	*out = c;
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&parser);
	free(text);
	return rc;
}

/* ---- freeing and queries ---------------------------------------------- */

/* Secrets are wiped before free so they do not linger in freed heap. */
static void
secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

void
cfg_free(cfg *c)
{
	size_t i;

	if (c == NULL)
		return;
	free(c->path);
	free(c->daemon.database);
	free(c->daemon.control_socket);
	free(c->http.listen);
	free(c->http.public_url);
	secret_free(c->http.api_token);
	secret_free(c->http.webhook_hmac_key);
	for (i = 0; i < c->ncas; i++) {
		free(c->cas[i].name);
		free(c->cas[i].url);
		free(c->cas[i].ca_file);
		secret_free(c->cas[i].challenge);
	}
	free(c->cas);
	for (i = 0; i < c->nprofiles; i++) {
		free(c->profiles[i].file);
		free(c->profiles[i].uuid);
	}
	free(c->profiles);
	for (i = 0; i < c->nassignments; i++)
		free(c->assignments[i].profile);
	free(c->assignments);
	for (i = 0; i < c->npolicies; i++) {
		free(c->policies[i].name);
		free(c->policies[i].match_ca);
		free(c->policies[i].match_profile);
	}
	free(c->policies);
	strv_free(c->mdm.command, c->mdm.ncommand);
	free(c->mdm.url);
	free(c->mdm.ca_file);
	secret_free(c->mdm.api_key);
	secret_free(c->mdm.hmac_key);
	for (i = 0; i < c->nnotifiers; i++) {
		cfg_notifier *n = &c->notifiers[i];

		free(n->name);
		free(n->url);
		free(n->format);
		free(n->ca_file);
		strv_free(n->command, n->ncommand);
		secret_free(n->token);
		secret_free(n->hmac_key);
		secret_free(n->username);
		secret_free(n->password);
		free(n->from);
		strv_free(n->to, n->nto);
		strv_free(n->events, n->nevents);
	}
	free(c->notifiers);
	free(c);
}

const cfg_ca *
cfg_ca_find(const cfg *c, const char *name)
{
	size_t i;

	if (c == NULL || name == NULL)
		return NULL;
	for (i = 0; i < c->ncas; i++)
		if (strcmp(c->cas[i].name, name) == 0)
			return &c->cas[i];
	return NULL;
}

/*
 * Policies are tried in file order so an operator writes the specific
 * ones first and a catch-all last; a profile may be matched by its uuid
 * or by its PayloadIdentifier, whichever the operator finds easier.
 */
const cfg_policy *
cfg_policy_match(const cfg *c, const char *ca, const char *profile_uuid,
		 const char *profile_identifier)
{
	const cfg_policy *p;
	size_t i;

	if (c == NULL)
		return &default_policy;
	for (i = 0; i < c->npolicies; i++) {
		p = &c->policies[i];
		if (!rn_glob_match(p->match_ca, ca))
			continue;
		if (rn_glob_match(p->match_profile, profile_uuid) ||
		    rn_glob_match(p->match_profile, profile_identifier))
			return p;
	}
	return &default_policy;
}

const cfg_policy *
cfg_policy_default(void)
{
	return &default_policy;
}
