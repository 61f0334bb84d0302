/*
 * profiles: loading and checking .mobileconfig templates with libplist,
 * and the variable scanner that the checker and the renderer share.
 * See profiles.h.
 */
#define _GNU_SOURCE
#include "profiles.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <plist/plist.h>

#define SCEP_TYPE "com.apple.security.scep"
#define VAR_RENEWAL_ID "SCEP_RENEWAL_ID"
#define VAR_CHALLENGE "CUSTOM_SCEP_CHALLENGE_"
#define VAR_PROXY_URL "CUSTOM_SCEP_PROXY_URL_"

/* Deeper plist structures are left to the text scan (no recursion blowup). */
#define WALK_MAX_DEPTH 64

/* ---- variable scanner ------------------------------------------------- */

enum { VAR_NONE, VAR_FOUND, VAR_UNTERMINATED };

typedef struct var_match {
	size_t end;	     /* offset just past the variable */
	const char *written; /* prefix and name, as written */
	size_t written_len;
	const char *name;    /* name without its prefix */
	size_t name_len;
} var_match;

static int
is_name_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9') || c == '_';
}

/*
 * Classify the `$` at s[i]: VAR_NONE when no variable prefix follows (the
 * `$` is plain text), VAR_FOUND with m filled in, or VAR_UNTERMINATED for
 * a `${PREFIX...` without its closing brace. The name is greedy, so
 * "$FLEET_VAR_HOST_UUID_x" names "HOST_UUID_x". A prefix with an empty
 * name is reported as found with name_len 0, so that callers treat it as
 * unknown rather than leave a half variable in a rendered profile.
 */
static int
var_scan(const char *s, size_t len, size_t i, var_match *m)
{
	size_t p = i + 1, q, plen;
	int brace = 0;

	if (p < len && s[p] == '{') {
		brace = 1;
		p++;
	}
	if (len - p >= 10 && memcmp(s + p, "FLEET_VAR_", 10) == 0)
		plen = 10;
	else if (len - p >= 11 && memcmp(s + p, "RENEWD_VAR_", 11) == 0)
		plen = 11;
	else
		return VAR_NONE;
	q = p + plen;
	while (q < len && is_name_char((unsigned char)s[q]))
		q++;
	m->written = s + p;
	m->written_len = q - p;
	m->name = s + p + plen;
	m->name_len = q - p - plen;
	if (brace) {
		if (q >= len || s[q] != '}') {
			m->end = q;
			return VAR_UNTERMINATED;
		}
		q++;
	}
	m->end = q;
	return VAR_FOUND;
}

/* ---- known variables -------------------------------------------------- */

static int
ca_configured(const char *ca, size_t len, const char *const *ca_names,
	      size_t nca)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < nca; i++) {
		if (ca_names[i] != NULL && strlen(ca_names[i]) == len &&
		    memcmp(ca_names[i], ca, len) == 0)
			return 1;
	}
	return 0;
}

static int
name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && memcmp(name, want, len) == 0;
}

static int
has_prefix(const char *name, size_t len, const char *prefix)
{
	size_t pl = strlen(prefix);

	return len >= pl && memcmp(name, prefix, pl) == 0;
}

/* prof_var_known on a name that is not NUL-terminated. */
static int
var_known(const char *name, size_t len, const char *const *ca_names,
	  size_t nca)
{
	size_t pl;

	if (name_is(name, len, VAR_RENEWAL_ID) ||
	    name_is(name, len, "HOST_UUID") ||
	    name_is(name, len, "HOST_SERIAL_NUMBER"))
		return 1;
	if (has_prefix(name, len, VAR_CHALLENGE))
		pl = strlen(VAR_CHALLENGE);
	else if (has_prefix(name, len, VAR_PROXY_URL))
		pl = strlen(VAR_PROXY_URL);
	else
		return 0;
	return ca_configured(name + pl, len - pl, ca_names, nca);
}

int
prof_var_known(const char *name, const char *const *ca_names, size_t nca)
{
	if (name == NULL)
		return 0;
	return var_known(name, strlen(name), ca_names, nca);
}

/* ---- XML escaping ----------------------------------------------------- */

static const char *
xml_entity(char c)
{
	switch (c) {
	case '&': return "&amp;";
	case '<': return "&lt;";
	case '>': return "&gt;";
	case '"': return "&quot;";
	case '\'': return "&apos;";
	}
	return NULL;
}

/*
 * Append n bytes of s escaped, copying the runs between special
 * characters in one go. On failure out is left as it was.
 */
static int
xml_escape_n(rn_buf *out, const char *s, size_t n)
{
	size_t start = out->len, run = 0, i;
	const char *ent;
	int rc = RN_OK;

	for (i = 0; i < n; i++) {
		ent = xml_entity(s[i]);
		if (ent == NULL)
			continue;
		rc = rn_buf_add(out, s + run, i - run);
		if (rc)
			goto out;
		rc = rn_buf_adds(out, ent);
		if (rc)
			goto out;
		run = i + 1;
	}
	rc = rn_buf_add(out, s + run, n - run);
out:
	if (rc) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rc;
}

int
prof_xml_escape(rn_buf *out, const char *s)
{
	if (out == NULL || s == NULL)
		return RN_EINVAL;
	return xml_escape_n(out, s, strlen(s));
}

/*
 * The lookup callback appends the raw value straight to the output, so a
 * render costs no scratch buffer; only a value that holds a character to
 * escape is moved aside (on the stack when small) and appended escaped.
 */
static int
escape_tail(rn_buf *out, size_t vstart)
{
	char small[512], *copy = small;
	size_t n = out->len - vstart, i;
	int rc;

	for (i = 0; i < n; i++) {
		if (xml_entity(out->data[vstart + i]) != NULL)
			break;
	}
	if (i == n)
		return RN_OK;
	if (n > sizeof(small)) {
		copy = malloc(n);
		if (copy == NULL)
			return RN_ENOMEM;
	}
	memcpy(copy, out->data + vstart, n);
	out->len = vstart;
	out->data[vstart] = '\0';
	rc = xml_escape_n(out, copy, n);
	if (copy != small)
		free(copy);
	return rc;
}

/* ---- rendering -------------------------------------------------------- */

static void
set_errmsg(char **errmsg, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void
set_errmsg(char **errmsg, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	if (errmsg == NULL || *errmsg != NULL)
		return;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	*errmsg = s;
}

/*
 * Look one variable up and append its escaped value. The name is handed
 * to the callback NUL-terminated from a stack copy; only a name too long
 * to be any real variable needs the heap.
 */
static int
render_var(const var_match *m, prof_var_fn fn, void *ctx, rn_buf *out,
	   char **errmsg)
{
	char small[128], *name = small;
	size_t vstart = out->len;
	int rc;

	if (m->name_len == 0) {
		rc = RN_ENOTFOUND;
		goto out;
	}
	if (m->name_len >= sizeof(small)) {
		name = malloc(m->name_len + 1);
		if (name == NULL) {
			rc = RN_ENOMEM;
			goto out;
		}
	}
	memcpy(name, m->name, m->name_len);
	name[m->name_len] = '\0';
	rc = fn(ctx, name, out);
	if (rc > 0)
		rc = RN_EINVAL;
	if (rc == RN_OK)
		rc = escape_tail(out, vstart);
out:
	if (rc == RN_ENOTFOUND)
		set_errmsg(errmsg, "unknown variable '%.*s'",
			   (int)m->written_len, m->written);
	else if (rc)
		set_errmsg(errmsg, "cannot render variable '%.*s': %s",
			   (int)m->written_len, m->written, rn_strerror(rc));
	if (name != small)
		free(name);
	return rc;
}

/*
 * One pass over the text: memchr finds each `$`, the text between
 * variables is copied in runs, and a `$` that starts no variable stays in
 * its run. On failure out is cut back to what it held before.
 */
int
prof_render(const char *text, size_t len, prof_var_fn fn, void *ctx,
	    rn_buf *out, char **errmsg)
{
	size_t start, copied = 0, i = 0;
	const char *d;
	var_match m;
	int rc = RN_OK;

	if (errmsg != NULL)
		*errmsg = NULL;
	if (out == NULL || fn == NULL || (text == NULL && len > 0))
		return RN_EINVAL;
	if (text == NULL)
		text = "";
	start = out->len;
	while (i < len && (d = memchr(text + i, '$', len - i)) != NULL) {
		i = (size_t)(d - text);
		switch (var_scan(text, len, i, &m)) {
		case VAR_NONE:
			i++;
			continue;
		case VAR_UNTERMINATED:
			set_errmsg(errmsg, "unterminated variable '${%.*s'",
				   (int)m.written_len, m.written);
			rc = RN_EINVAL;
			goto out;
		}
		rc = rn_buf_add(out, text + copied, i - copied);
		if (rc)
			goto out;
		rc = render_var(&m, fn, ctx, out, errmsg);
		if (rc)
			goto out;
		i = copied = m.end;
	}
	rc = rn_buf_add(out, text + copied, len - copied);
out:
	if (rc) {
		out->len = start;
		if (out->data != NULL)
			out->data[start] = '\0';
	}
	return rc;
}

/* ---- checking templates ----------------------------------------------- */

typedef struct checker {
	const char *path;
	const char *const *ca_names;
	size_t nca;
	rn_errlist *errs;
	char **seen; /* variable problems already reported, see var_problem */
	size_t nseen;
	size_t aseen;
	int nomem;
} checker;

static void
report(checker *c, const char *payload, const char *field, const char *fmt,
       ...) __attribute__((format(printf, 4, 5)));

/*
 * Append "PATH: payload 'P': field 'F': message", leaving out the payload
 * or field part when there is none to name.
 */
static void
report(checker *c, const char *payload, const char *field, const char *fmt,
       ...)
{
	va_list ap;
	char *msg = NULL;

	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL) {
		c->nomem = 1;
		return;
	}
	if (payload != NULL && field != NULL)
		rn_errlist_addf(c->errs, "%s: payload '%s': field '%s': %s",
				c->path, payload, field, msg);
	else if (payload != NULL)
		rn_errlist_addf(c->errs, "%s: payload '%s': %s", c->path,
				payload, msg);
	else if (field != NULL)
		rn_errlist_addf(c->errs, "%s: field '%s': %s", c->path, field,
				msg);
	else
		rn_errlist_addf(c->errs, "%s: %s", c->path, msg);
	free(msg);
}

/*
 * Remember a variable problem ("unknown variable 'X'") and say whether it
 * is new. Each is reported once, at the first place found: a variable the
 * SCEP check already explained, or one seen in a payload value, is not
 * reported again from the raw text.
 */
static int
seen_add(checker *c, const char *msg)
{
	size_t i;
	char **ns;

	for (i = 0; i < c->nseen; i++) {
		if (strcmp(c->seen[i], msg) == 0)
			return 0;
	}
	if (c->nseen == c->aseen) {
		size_t na = c->aseen ? c->aseen * 2 : 8;
		ns = realloc(c->seen, na * sizeof(*ns));
		if (ns == NULL) {
			c->nomem = 1;
			return 1;
		}
		c->seen = ns;
		c->aseen = na;
	}
	c->seen[c->nseen] = strdup(msg);
	if (c->seen[c->nseen] == NULL) {
		c->nomem = 1;
		return 1;
	}
	c->nseen++;
	return 1;
}

/*
 * The problem with the variable at s[i], as a malloc'd message, or NULL
 * when it is fine (or is no variable); *end is set past it.
 */
static char *
var_problem(checker *c, const char *s, size_t len, size_t i, size_t *end)
{
	var_match m;
	int kind = var_scan(s, len, i, &m);
	char *msg;

	*end = i + 1;
	if (kind == VAR_NONE)
		return NULL;
	*end = m.end;
	if (kind == VAR_UNTERMINATED)
		msg = rn_asprintf("unterminated variable '${%.*s'",
				  (int)m.written_len, m.written);
	else if (var_known(m.name, m.name_len, c->ca_names, c->nca))
		return NULL;
	else
		msg = rn_asprintf("unknown variable '%.*s'",
				  (int)m.written_len, m.written);
	if (msg == NULL)
		c->nomem = 1;
	return msg;
}

/* Check every variable in one plist string value. */
static void
scan_value(checker *c, const char *s, size_t len, const char *payload,
	   const char *field)
{
	size_t i = 0, end;
	const char *d;
	char *msg;

	while (i < len && (d = memchr(s + i, '$', len - i)) != NULL) {
		i = (size_t)(d - s);
		msg = var_problem(c, s, len, i, &end);
		if (msg != NULL && seen_add(c, msg))
			report(c, payload, field, "%s", msg);
		free(msg);
		i = end;
	}
}

/*
 * Check the variables in the string values under node, naming the
 * payload and the nearest dictionary key. At the top level (payload ==
 * the profile) the PayloadContent array is skipped: its payloads are
 * walked one by one under their own names.
 */
static void
walk_vars(checker *c, plist_t node, const char *payload, const char *field,
	  int depth, int skip_content)
{
	plist_dict_iter it = NULL;
	plist_t val;
	char *key;
	uint64_t slen;
	const char *s;
	uint32_t i, n;

	if (depth > WALK_MAX_DEPTH)
		return;
	switch (plist_get_node_type(node)) {
	case PLIST_STRING:
		s = plist_get_string_ptr(node, &slen);
		if (s != NULL)
			scan_value(c, s, (size_t)slen, payload, field);
		break;
	case PLIST_ARRAY:
		n = plist_array_get_size(node);
		for (i = 0; i < n; i++)
			walk_vars(c, plist_array_get_item(node, i), payload,
				  field, depth + 1, 0);
		break;
	case PLIST_DICT:
		plist_dict_new_iter(node, &it);
		if (it == NULL) {
			c->nomem = 1;
			break;
		}
		for (;;) {
			key = NULL;
			val = NULL;
			plist_dict_next_item(node, it, &key, &val);
			if (val == NULL) {
				free(key);
				break;
			}
			if (!(skip_content && key != NULL &&
			      strcmp(key, "PayloadContent") == 0 &&
			      plist_get_node_type(val) == PLIST_ARRAY))
				walk_vars(c, val, payload, key, depth + 1, 0);
			free(key);
		}
		free(it);
		break;
	default:
		break;
	}
}

/*
 * Check every variable in the raw text, which is what the renderer sees:
 * this catches variables outside string values (comments, keys) that the
 * walk cannot name a payload for, so they are reported as PATH:LINE.
 */
static void
scan_text(checker *c, const char *text, size_t len)
{
	size_t i = 0, end, line = 1, counted = 0;
	const char *d, *nl;
	char *msg;

	while (i < len && (d = memchr(text + i, '$', len - i)) != NULL) {
		i = (size_t)(d - text);
		msg = var_problem(c, text, len, i, &end);
		if (msg != NULL && seen_add(c, msg)) {
			while (counted < i &&
			       (nl = memchr(text + counted, '\n', i - counted))) {
				line++;
				counted = (size_t)(nl - text) + 1;
			}
			counted = i;
			rn_errlist_addf(c->errs, "%s:%zu: %s", c->path, line,
					msg);
		}
		free(msg);
		i = end;
	}
}

/* String value of key in dict, or NULL when missing or not a string. */
static const char *
dict_string(plist_t dict, const char *key, size_t *len)
{
	plist_t v = plist_dict_get_item(dict, key);
	uint64_t n = 0;
	const char *s;

	if (v == NULL || plist_get_node_type(v) != PLIST_STRING)
		return NULL;
	s = plist_get_string_ptr(v, &n);
	if (len != NULL)
		*len = (size_t)n;
	return s;
}

static const char *
dict_nonempty(plist_t dict, const char *key)
{
	const char *s = dict_string(dict, key, NULL);

	return s != NULL && *s != '\0' ? s : NULL;
}

/*
 * Check that the SCEP field (Challenge or URL) is exactly the variable
 * `want`<CA> of a configured CA and return where the CA name starts in
 * the value, or NULL. Nothing but the variable is allowed: Fleet's rule,
 * and the proxy relies on the URL being entirely its own.
 */
static const char *
scep_var(checker *c, plist_t content, const char *payload,
	 const char *field, const char *want, size_t *calen)
{
	size_t len = 0, wl = strlen(want);
	const char *s = dict_string(content, field, &len);
	var_match m;
	char *msg;

	if (s == NULL || len == 0 || s[0] != '$' ||
	    var_scan(s, len, 0, &m) != VAR_FOUND || m.end != len ||
	    m.name_len <= wl || memcmp(m.name, want, wl) != 0) {
		report(c, payload, field,
		       "must be exactly '$FLEET_VAR_%s<CA>' or "
		       "'${FLEET_VAR_%s<CA>}' naming a configured "
		       "certificate authority",
		       want, want);
		return NULL;
	}
	*calen = m.name_len - wl;
	if (!ca_configured(m.name + wl, *calen, c->ca_names, c->nca)) {
		report(c, payload, field,
		       "certificate authority '%.*s' is not configured",
		       (int)*calen, m.name + wl);
		/* the same fact, said once */
		msg = rn_asprintf("unknown variable '%.*s'",
				  (int)m.written_len, m.written);
		if (msg != NULL)
			seen_add(c, msg);
		free(msg);
		return NULL;
	}
	return m.name + wl;
}

/* Does the string hold the renewal ID variable (either prefix or form)? */
static int
has_renewal_id(const char *s, size_t len)
{
	size_t i = 0;
	const char *d;
	var_match m;

	while (i < len && (d = memchr(s + i, '$', len - i)) != NULL) {
		i = (size_t)(d - s);
		if (var_scan(s, len, i, &m) == VAR_FOUND &&
		    name_is(m.name, m.name_len, VAR_RENEWAL_ID))
			return 1;
		i++;
	}
	return 0;
}

/*
 * Subject is an array of RDNs, each an array of [type, value] pairs. The
 * renewal ID must be in CN values or in OU values: that is what makes
 * each renewal's DN new, and what the verifier matches on.
 */
static void
check_subject(checker *c, plist_t content, const char *payload)
{
	plist_t subj = plist_dict_get_item(content, "Subject");
	plist_t rdn, pair, ty, va;
	uint32_t i, j, nr, np;
	const char *t, *v;
	uint64_t vlen;
	int in_cn = 0, in_ou = 0;

	if (subj == NULL) {
		report(c, payload, "Subject",
		       "missing; it must hold '$FLEET_VAR_" VAR_RENEWAL_ID
		       "' in a CN or OU value");
		return;
	}
	if (plist_get_node_type(subj) != PLIST_ARRAY) {
		report(c, payload, "Subject", "must be an array of RDNs");
		return;
	}
	nr = plist_array_get_size(subj);
	for (i = 0; i < nr; i++) {
		rdn = plist_array_get_item(subj, i);
		np = plist_get_node_type(rdn) == PLIST_ARRAY ?
			     plist_array_get_size(rdn) : 0;
		if (np == 0)
			goto bad;
		for (j = 0; j < np; j++) {
			pair = plist_array_get_item(rdn, j);
			if (plist_get_node_type(pair) != PLIST_ARRAY ||
			    plist_array_get_size(pair) != 2)
				goto bad;
			ty = plist_array_get_item(pair, 0);
			va = plist_array_get_item(pair, 1);
			if (plist_get_node_type(ty) != PLIST_STRING ||
			    plist_get_node_type(va) != PLIST_STRING)
				goto bad;
			t = plist_get_string_ptr(ty, NULL);
			v = plist_get_string_ptr(va, &vlen);
			if (!has_renewal_id(v, (size_t)vlen))
				continue;
			if (strcmp(t, "CN") == 0 || strcmp(t, "2.5.4.3") == 0)
				in_cn = 1;
			else if (strcmp(t, "OU") == 0 ||
				 strcmp(t, "2.5.4.11") == 0)
				in_ou = 1;
		}
	}
	if (in_cn && in_ou)
		report(c, payload, "Subject",
		       "'$FLEET_VAR_" VAR_RENEWAL_ID "' is in both CN and OU; "
		       "use only one of them");
	else if (!in_cn && !in_ou)
		report(c, payload, "Subject",
		       "'$FLEET_VAR_" VAR_RENEWAL_ID "' must be in a CN or OU "
		       "value");
	return;
bad:
	report(c, payload, "Subject",
	       "RDN %u must be an array of [type, value] string pairs",
	       (unsigned)i + 1);
}

/*
 * The SCEP payload: Challenge and URL name one configured CA, which is
 * returned malloc'd (NULL when they do not), and the Subject carries the
 * renewal ID.
 */
static char *
check_scep(checker *c, plist_t scep, const char *payload)
{
	plist_t content = plist_dict_get_item(scep, "PayloadContent");
	const char *ch, *url;
	size_t chlen = 0, urllen = 0;
	char *ca = NULL;

	if (content == NULL || plist_get_node_type(content) != PLIST_DICT) {
		report(c, payload, "PayloadContent", "must be a dictionary");
		return NULL;
	}
	ch = scep_var(c, content, payload, "Challenge", VAR_CHALLENGE, &chlen);
	url = scep_var(c, content, payload, "URL", VAR_PROXY_URL, &urllen);
	if (ch != NULL && url != NULL) {
		if (chlen != urllen || memcmp(ch, url, chlen) != 0)
			report(c, payload, "URL",
			       "names certificate authority '%.*s' but "
			       "'Challenge' names '%.*s'",
			       (int)urllen, url, (int)chlen, ch);
		else if ((ca = rn_strndup(ch, chlen)) == NULL)
			c->nomem = 1;
	}
	check_subject(c, content, payload);
	return ca;
}

/*
 * A payload is named by its PayloadIdentifier, or by its place in the
 * profile when it has none.
 */
static const char *
payload_label(plist_t item, uint32_t i, char *buf, size_t len)
{
	const char *id = NULL;

	if (plist_get_node_type(item) == PLIST_DICT)
		id = dict_nonempty(item, "PayloadIdentifier");
	if (id != NULL)
		return id;
	snprintf(buf, len, "PayloadContent[%u]", (unsigned)i);
	return buf;
}

/*
 * Check the payload list: exactly one SCEP payload, which is checked in
 * full, then the variables of every payload. Returns the CA named by the
 * SCEP payload (malloc'd) or NULL.
 */
static char *
check_payloads(checker *c, plist_t content, const char *top)
{
	uint32_t i, n = plist_array_get_size(content), nscep = 0;
	plist_t item, scep = NULL;
	char buf[40], first[40];
	const char *label, *type, *scep_label = NULL;
	char *ca = NULL;

	for (i = 0; i < n; i++) {
		item = plist_array_get_item(content, i);
		label = payload_label(item, i, buf, sizeof(buf));
		if (plist_get_node_type(item) != PLIST_DICT) {
			report(c, label, NULL, "must be a dictionary");
			continue;
		}
		type = dict_string(item, "PayloadType", NULL);
		if (type == NULL || strcmp(type, SCEP_TYPE) != 0)
			continue;
		if (nscep++ == 0) {
			scep = item;
			if (label == buf) {
				snprintf(first, sizeof(first), "%s", buf);
				label = first;
			}
			scep_label = label;
		} else {
			report(c, label, "PayloadType",
			       "more than one payload of type '" SCEP_TYPE
			       "' (the first is '%s')",
			       scep_label);
		}
	}
	if (nscep == 0)
		report(c, top, "PayloadContent",
		       "no payload of type '" SCEP_TYPE "'");
	else
		ca = check_scep(c, scep, scep_label);
	for (i = 0; i < n; i++) {
		item = plist_array_get_item(content, i);
		label = payload_label(item, i, buf, sizeof(buf));
		walk_vars(c, item, label, NULL, 0, 0);
	}
	return ca;
}

void
prof_template_free(prof_template *t)
{
	if (t == NULL)
		return;
	free(t->path);
	free(t->uuid);
	free(t->identifier);
	free(t->display_name);
	free(t->ca_name);
	free(t->text);
	free(t);
}

/*
 * Read the file, turning a binary plist into XML text (the renderer works
 * on text). Problems are reported; returns 0 or RN_EINVAL/RN_ENOMEM.
 */
static int
read_template(checker *c, char **text, size_t *len, plist_t *root)
{
	char *data = NULL, *xml = NULL;
	uint32_t xlen = 0;
	size_t dlen = 0;
	int rc;

	*root = NULL;
	rc = rn_file_read(c->path, PROF_MAX_SIZE, &data, &dlen);
	if (rc == RN_ETOOBIG) {
		report(c, NULL, NULL, "larger than %d bytes", PROF_MAX_SIZE);
		return RN_EINVAL;
	}
	if (rc == RN_ENOMEM)
		return rc;
	if (rc) {
		char *e = rn_strdup(strerror(errno));
		if (e != NULL && e[0] != '\0')
			e[0] = (char)tolower((unsigned char)e[0]);
		report(c, NULL, NULL, "cannot read: %s", e ? e : "error");
		free(e);
		return RN_EINVAL;
	}
	if (dlen > 0)
		plist_from_memory(data, (uint32_t)dlen, root);
	if (*root == NULL) {
		report(c, NULL, NULL, "not a property list");
		free(data);
		return RN_EINVAL;
	}
	if (plist_is_binary(data, (uint32_t)dlen)) {
		free(data);
		plist_to_xml(*root, &xml, &xlen);
		/* all xlen bytes: a string may hold a NUL (refused below) */
		data = xml ? malloc((size_t)xlen + 1) : NULL;
		if (data != NULL) {
			memcpy(data, xml, xlen);
			data[xlen] = '\0';
		}
		dlen = xlen;
		plist_to_xml_free(xml);
		if (data == NULL) {
			plist_free(*root);
			*root = NULL;
			return RN_ENOMEM;
		}
	}
	/* The renderer's output is XML text, which cannot carry a NUL. */
	if (memchr(data, '\0', dlen) != NULL) {
		report(c, NULL, NULL, "holds a NUL byte, which an XML profile "
				      "cannot carry");
		plist_free(*root);
		*root = NULL;
		free(data);
		return RN_EINVAL;
	}
	*text = data;
	*len = dlen;
	return RN_OK;
}

/*
 * Every check runs and reports, so an admin sees all problems of a
 * template at once; the template is built only when none was found.
 */
int
prof_template_load(const char *path, const char *uuid,
		   const char *const *ca_names, size_t nca,
		   prof_template **out, rn_errlist *errs)
{
	checker c;
	rn_errlist local;
	plist_t root = NULL, content;
	prof_template *t = NULL;
	const char *puuid, *ident, *display;
	char *text = NULL, *ca = NULL;
	size_t len = 0, nerr0, i;
	int rc;

	*out = NULL;
	if (errs == NULL) {
		rn_errlist_init(&local);
		errs = &local;
	}
	nerr0 = errs->n;
	memset(&c, 0, sizeof(c));
	c.path = path;
	c.ca_names = ca_names;
	c.nca = ca_names != NULL ? nca : 0;
	c.errs = errs;

	rc = read_template(&c, &text, &len, &root);
	if (rc)
		goto out;
	if (plist_get_node_type(root) != PLIST_DICT) {
		report(&c, NULL, NULL, "top level must be a dictionary");
		rc = RN_EINVAL;
		goto out;
	}
	ident = dict_nonempty(root, "PayloadIdentifier");
	if (ident == NULL)
		report(&c, NULL, "PayloadIdentifier",
		       "must be a non-empty string");
	puuid = dict_nonempty(root, "PayloadUUID");
	if (puuid == NULL)
		report(&c, ident, "PayloadUUID", "must be a non-empty string");
	display = dict_string(root, "PayloadDisplayName", NULL);
	content = plist_dict_get_item(root, "PayloadContent");
	if (content == NULL || plist_get_node_type(content) != PLIST_ARRAY)
		report(&c, ident, "PayloadContent",
		       "must be an array of payloads");
	else
		ca = check_payloads(&c, content, ident);
	walk_vars(&c, root, ident, NULL, 0, 1);
	scan_text(&c, text, len);

	if (c.nomem) {
		rc = RN_ENOMEM;
		goto out;
	}
	if (errs->n != nerr0) {
		rc = RN_EINVAL;
		goto out;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	t->path = rn_strdup(path);
	t->uuid = rn_strdup(uuid != NULL ? uuid : puuid);
	t->identifier = rn_strdup(ident);
	t->display_name = rn_strdup(display);
	if (t->path == NULL || t->uuid == NULL || t->identifier == NULL ||
	    (display != NULL && t->display_name == NULL)) {
		rc = RN_ENOMEM;
		goto out;
	}
	t->ca_name = ca;
	ca = NULL;
	t->text = text;
	t->len = len;
	text = NULL;
	rn_sha256_hex(t->text, t->len, t->sha256);
	*out = t;
	t = NULL;
out:
	prof_template_free(t);
	free(ca);
	free(text);
	plist_free(root);
	for (i = 0; i < c.nseen; i++)
		free(c.seen[i]);
	free(c.seen);
	if (errs == &local)
		rn_errlist_release(&local);
	return rc;
}
