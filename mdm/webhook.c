/*
 * mdm/webhook: NanoMDM / MicroMDM webhook events. See webhook.h.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <plist/plist.h>

#include "common/common.h"
#include "mdm/webhook.h"

/* Parse state: where we are in the body, for messages. */
typedef struct ctx {
	char **err;
	const char *obj; /* "checkin_event" or "acknowledge_event" */
} ctx;

/* Record the first error message; returns rc so callers can `return fail()`. */
static int
fail(ctx *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
fail(ctx *c, int rc, const char *fmt, ...)
{
	va_list ap;
	char *msg = NULL;

	if (c->err != NULL && *c->err == NULL) {
		va_start(ap, fmt);
		if (vasprintf(&msg, fmt, ap) < 0)
			msg = NULL;
		va_end(ap);
		*c->err = msg;
	}
	return rc;
}

/* ---- JSON fields -------------------------------------------------------- */

/*
 * A string member: absent, null and "" give NULL unless required; longer
 * than max is an error. jansson rejects \u0000 by default, so strlen is safe.
 */
static int
js_str(ctx *c, json_t *obj, const char *key, int required, size_t max,
       char **out)
{
	json_t *v = json_object_get(obj, key);
	const char *pfx = c->obj ? c->obj : "", *dot = c->obj ? "." : "";
	size_t n;

	*out = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return fail(c, RN_EINVAL, "%s%s%s: missing", pfx, dot, key);
		return 0;
	}
	if (!json_is_string(v))
		return fail(c, RN_EINVAL, "%s%s%s: must be a string", pfx, dot, key);
	n = json_string_length(v);
	if (n == 0) {
		if (required)
			return fail(c, RN_EINVAL, "%s%s%s: empty", pfx, dot, key);
		return 0;
	}
	if (n > max)
		return fail(c, RN_EINVAL, "%s%s%s: longer than %zu bytes", pfx,
			    dot, key, max);
	*out = rn_strndup(json_string_value(v), n);
	return *out ? 0 : RN_ENOMEM;
}

static int
has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 1;
	return 0;
}

static int
udid_ok(const char *s)
{
	size_t n = 0;

	for (; *s; s++, n++)
		if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') ||
		      (*s >= '0' && *s <= '9') || *s == '-'))
			return 0;
	return n >= 1 && n <= 64;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant). */
static int64_t
days_from_civil(int64_t y, int64_t m, int64_t d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int
digits(const char *s, int n, int *out)
{
	int i, v = 0;

	for (i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return 1;
}

/*
 * RFC 3339 "2026-11-23T15:28:06.123456789+01:00" -> Unix seconds (the
 * fraction is dropped); 0 for anything else. Go's time.Time marshals so.
 */
static int64_t
rfc3339_parse(const char *s)
{
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0;
	int64_t t;

	if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' ||
	    !digits(s + 5, 2, &mo) || s[7] != '-' || !digits(s + 8, 2, &d) ||
	    (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
	    !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) ||
	    s[16] != ':' || !digits(s + 17, 2, &sec))
		return 0;
	s += 19;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9')
			return 0;
		while (*s >= '0' && *s <= '9')
			s++;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s == '-' ? -1 : 1;
		if (!digits(s + 1, 2, &oh) || s[3] != ':' || !digits(s + 4, 2, &om) ||
		    oh > 23 || om > 59)
			return 0;
		s += 6;
	} else {
		return 0;
	}
	if (*s != '\0' || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
	    (mo == 2 && d == 29 && !(y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))) ||
	    h > 23 || mi > 59 || sec > 60)
		return 0;
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	t -= (int64_t)sign * (oh * 3600 + om * 60);
	return t > 0 ? t : 0;
}

/* ---- plist fields ------------------------------------------------------- */

/* An optional plist string; wrong type is an error, "" gives NULL. */
static int
pl_str(ctx *c, plist_t dict, const char *path, const char *key, int required,
       size_t max, char **out)
{
	plist_t v = plist_dict_get_item(dict, key);
	const char *s;
	uint64_t n = 0;

	*out = NULL;
	if (v == NULL) {
		if (required)
			return fail(c, RN_EINVAL, "%s.%s: missing", path, key);
		return 0;
	}
	if (plist_get_node_type(v) != PLIST_STRING)
		return fail(c, RN_EINVAL, "%s.%s: must be a string", path, key);
	s = plist_get_string_ptr(v, &n);
	if (s == NULL || s[0] == '\0') {
		if (required)
			return fail(c, RN_EINVAL, "%s.%s: empty", path, key);
		return 0;
	}
	n = strlen(s); /* binary plists may carry a NUL inside */
	if (n > max)
		return fail(c, RN_EINVAL, "%s.%s: longer than %zu bytes", path,
			    key, max);
	*out = rn_strndup(s, (size_t)n);
	return *out ? 0 : RN_ENOMEM;
}

/* Append s with control characters turned into spaces. */
static int
add_clean(rn_buf *b, const char *s)
{
	int rc = 0;

	for (; *s && rc == 0; s++) {
		char ch = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
		rc = rn_buf_add(b, &ch, 1);
	}
	return rc;
}

/*
 * ErrorChain -> "domain code: description; ...". Every entry is
 * type-checked even after the text is full, so a bad chain is always an
 * error; the text itself stops growing at the cap.
 */
static int
error_chain(ctx *c, plist_t chain, const char *path, char **out)
{
	rn_buf b = RN_BUF_INIT;
	uint32_t i, n;
	int rc = 0;

	if (plist_get_node_type(chain) != PLIST_ARRAY)
		return fail(c, RN_EINVAL, "%s.ErrorChain: must be an array", path);
	n = plist_array_get_size(chain);
	for (i = 0; i < n && rc == 0; i++) {
		plist_t e = plist_array_get_item(chain, i), code, dom, desc;
		const char *ds = NULL, *dd = NULL;
		uint64_t cv = 0, len;
		char num[32];

		if (plist_get_node_type(e) != PLIST_DICT) {
			rc = fail(c, RN_EINVAL, "%s.ErrorChain[%u]: must be a dictionary",
				  path, i);
			break;
		}
		dom = plist_dict_get_item(e, "ErrorDomain");
		code = plist_dict_get_item(e, "ErrorCode");
		desc = plist_dict_get_item(e, "LocalizedDescription");
		if (desc == NULL)
			desc = plist_dict_get_item(e, "USEnglishDescription");
		if (dom && plist_get_node_type(dom) != PLIST_STRING) {
			rc = fail(c, RN_EINVAL, "%s.ErrorChain[%u].ErrorDomain: must be a string",
				  path, i);
			break;
		}
		if (code && plist_get_node_type(code) != PLIST_UINT) {
			rc = fail(c, RN_EINVAL, "%s.ErrorChain[%u].ErrorCode: must be an integer",
				  path, i);
			break;
		}
		if (desc && plist_get_node_type(desc) != PLIST_STRING) {
			rc = fail(c, RN_EINVAL, "%s.ErrorChain[%u]: description must be a string",
				  path, i);
			break;
		}
		if (b.len >= MDM_WH_MAX_ERROR_TEXT)
			continue;
		if (dom)
			ds = plist_get_string_ptr(dom, &len);
		if (desc)
			dd = plist_get_string_ptr(desc, &len);
		if (code) {
			plist_get_uint_val(code, &cv);
			/* libplist 2.2 keeps negative codes as two's complement */
			snprintf(num, sizeof(num), "%lld", (long long)(int64_t)cv);
		}
		if (b.len)
			rc = rn_buf_adds(&b, "; ");
		if (rc == 0 && ds)
			rc = add_clean(&b, ds);
		if (rc == 0 && code)
			rc = rn_buf_addf(&b, "%s%s", ds && *ds ? " " : "", num);
		if (rc == 0 && dd)
			rc = rn_buf_addf(&b, "%s", (ds && *ds) || code ? ": " : "");
		if (rc == 0 && dd)
			rc = add_clean(&b, dd);
	}
	if (rc == 0 && b.len > 0) {
		if (b.len > MDM_WH_MAX_ERROR_TEXT - 1) {
			size_t cut = MDM_WH_MAX_ERROR_TEXT - 4;
			/* do not split a UTF-8 sequence */
			while (cut > 0 && ((unsigned char)b.data[cut] & 0xc0) == 0x80)
				cut--;
			memcpy(b.data + cut, "...", 4);
			b.len = cut + 3;
		}
		*out = rn_buf_detach(&b, NULL);
		if (*out == NULL)
			rc = RN_ENOMEM;
	}
	rn_buf_release(&b);
	return rc;
}

static int
cert_list(ctx *c, plist_t list, const char *path, mdm_wh_event *ev)
{
	uint32_t i, n;
	int rc;

	if (plist_get_node_type(list) != PLIST_ARRAY)
		return fail(c, RN_EINVAL, "%s.CertificateList: must be an array", path);
	n = plist_array_get_size(list);
	if (n > MDM_WH_MAX_CERTS)
		return fail(c, RN_ETOOBIG, "%s.CertificateList: more than %d entries",
			    path, MDM_WH_MAX_CERTS);
	ev->has_cert_list = 1;
	if (n == 0)
		return 0;
	ev->certs = calloc(n, sizeof(*ev->certs));
	if (ev->certs == NULL)
		return RN_ENOMEM;
	for (i = 0; i < n; i++) {
		plist_t e = plist_array_get_item(list, i), data, idn;
		mdm_wh_cert *ct = &ev->certs[i];
		const char *p;
		uint64_t len = 0;
		uint8_t b = 0;
		char where[64];

		if (plist_get_node_type(e) != PLIST_DICT)
			return fail(c, RN_EINVAL, "%s.CertificateList[%u]: must be a dictionary",
				    path, i);
		data = plist_dict_get_item(e, "Data");
		if (data == NULL)
			return fail(c, RN_EINVAL, "%s.CertificateList[%u].Data: missing",
				    path, i);
		if (plist_get_node_type(data) != PLIST_DATA)
			return fail(c, RN_EINVAL, "%s.CertificateList[%u].Data: must be data",
				    path, i);
		p = plist_get_data_ptr(data, &len);
		if (p == NULL || len == 0)
			return fail(c, RN_EINVAL, "%s.CertificateList[%u].Data: empty",
				    path, i);
		if (len > MDM_WH_MAX_CERT_LEN)
			return fail(c, RN_ETOOBIG,
				    "%s.CertificateList[%u].Data: larger than %u bytes",
				    path, i, MDM_WH_MAX_CERT_LEN);
		ct->der = malloc((size_t)len);
		if (ct->der == NULL)
			return RN_ENOMEM;
		memcpy(ct->der, p, (size_t)len);
		ct->len = (size_t)len;
		ev->ncerts = i + 1;
		snprintf(where, sizeof(where), "%s.CertificateList[%u]", path, i);
		rc = pl_str(c, e, where, "CommonName", 0, 1024, &ct->common_name);
		if (rc)
			return rc;
		idn = plist_dict_get_item(e, "IsIdentity");
		if (idn) {
			if (plist_get_node_type(idn) != PLIST_BOOLEAN)
				return fail(c, RN_EINVAL, "%s.IsIdentity: must be a boolean",
					    where);
			plist_get_bool_val(idn, &b);
			ct->is_identity = b != 0;
		}
	}
	return 0;
}

static const struct {
	const char *text;
	mdm_wh_status st;
} statuses[] = {
	{ "Acknowledged", MDM_WH_STATUS_ACKNOWLEDGED },
	{ "Error", MDM_WH_STATUS_ERROR },
	{ "CommandFormatError", MDM_WH_STATUS_COMMAND_FORMAT_ERROR },
	{ "NotNow", MDM_WH_STATUS_NOT_NOW },
	{ "Idle", MDM_WH_STATUS_IDLE },
};

/* The command-result fields of raw_payload (and the JSON fallbacks). */
static int
ack_fields(ctx *c, plist_t dict, mdm_wh_event *ev)
{
	char path[64];
	plist_t v;
	size_t i;
	int rc;

	snprintf(path, sizeof(path), "%s.raw_payload", c->obj);
	if (ev->status_text == NULL) {
		rc = pl_str(c, dict, path, "Status", 1, MDM_WH_MAX_ID, &ev->status_text);
		if (rc)
			return rc;
	}
	ev->status = MDM_WH_STATUS_OTHER;
	for (i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
		if (strcmp(ev->status_text, statuses[i].text) == 0)
			ev->status = statuses[i].st;
	if (ev->command_uuid == NULL) {
		rc = pl_str(c, dict, path, "CommandUUID", 0, MDM_WH_MAX_ID,
			    &ev->command_uuid);
		if (rc)
			return rc;
	}
	rc = pl_str(c, dict, path, "RequestType", 0, MDM_WH_MAX_ID,
		    &ev->request_type);
	if (rc)
		return rc;
	if ((v = plist_dict_get_item(dict, "ErrorChain")) != NULL) {
		rc = error_chain(c, v, path, &ev->error_text);
		if (rc)
			return rc;
	}
	if ((v = plist_dict_get_item(dict, "CertificateList")) != NULL) {
		rc = cert_list(c, v, path, ev);
		if (rc)
			return rc;
	}
	return 0;
}

/* Decode raw_payload and read what the event kind needs from it. */
static int
raw_payload(ctx *c, json_t *obj, mdm_wh_event *ev)
{
	json_t *v = json_object_get(obj, "raw_payload");
	unsigned char *bytes = NULL;
	size_t n = 0;
	plist_t dict = NULL;
	char path[64];
	int rc;

	snprintf(path, sizeof(path), "%s.raw_payload", c->obj);
	if (v == NULL || json_is_null(v))
		return fail(c, RN_EINVAL, "%s: missing", path);
	if (!json_is_string(v))
		return fail(c, RN_EINVAL, "%s: must be a string", path);
	rc = rn_base64_decode(json_string_value(v), json_string_length(v),
			      &bytes, &n);
	if (rc == RN_EINVAL)
		return fail(c, rc, "%s: not valid base64", path);
	if (rc)
		return rc;
	if (n == 0) {
		rc = fail(c, RN_EINVAL, "%s: empty", path);
		goto out;
	}
	plist_from_memory((const char *)bytes, (uint32_t)n, &dict);
	if (dict == NULL) {
		rc = fail(c, RN_EINVAL, "%s: not a property list", path);
		goto out;
	}
	if (plist_get_node_type(dict) != PLIST_DICT) {
		rc = fail(c, RN_EINVAL, "%s: not a dictionary", path);
		goto out;
	}
	if (ev->kind == MDM_WH_KIND_CHECKIN) {
		rc = pl_str(c, dict, path, "MessageType", 1, MDM_WH_MAX_ID,
			    &ev->message_type);
		if (rc == 0)
			rc = pl_str(c, dict, path, "SerialNumber", 0, 128,
				    &ev->serial_number);
	} else {
		rc = ack_fields(c, dict, ev);
	}
out:
	if (dict)
		plist_free(dict);
	free(bytes);
	return rc;
}

static const struct {
	const char *text;
	mdm_wh_topic topic;
} topics[] = {
	{ "mdm.Authenticate", MDM_WH_AUTHENTICATE },
	{ "mdm.TokenUpdate", MDM_WH_TOKEN_UPDATE },
	{ "mdm.CheckOut", MDM_WH_CHECKOUT },
	{ "mdm.Connect", MDM_WH_CONNECT },
};

static int
parse(json_t *root, mdm_wh_event *ev, ctx *c)
{
	json_t *ci, *ack, *obj, *v;
	char *created = NULL;
	size_t i;
	int rc;

	if (!json_is_object(root))
		return fail(c, RN_EINVAL, "body: must be a JSON object");
	rc = js_str(c, root, "topic", 1, MDM_WH_MAX_ID, &ev->topic_text);
	if (rc)
		return rc;
	ev->topic = MDM_WH_OTHER;
	for (i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
		if (strcmp(ev->topic_text, topics[i].text) == 0)
			ev->topic = topics[i].topic;
	/* NanoMDM sends "event_id": "" (mdm_wh_parse derives one) */
	rc = js_str(c, root, "event_id", 0, MDM_WH_MAX_ID, &ev->event_id);
	if (rc)
		return rc;
	if (ev->event_id && has_ctl(ev->event_id))
		return fail(c, RN_EINVAL, "event_id: contains control characters");
	/* created_at is informational: a bad one is 0, not an error */
	v = json_object_get(root, "created_at");
	if (json_is_string(v)) {
		created = rn_strndup(json_string_value(v), json_string_length(v));
		if (created == NULL)
			return RN_ENOMEM;
		ev->created_at = rfc3339_parse(created);
		free(created);
	}

	ci = json_object_get(root, "checkin_event");
	ack = json_object_get(root, "acknowledge_event");
	if (json_is_null(ci))
		ci = NULL;
	if (json_is_null(ack))
		ack = NULL;
	if (ci && ack)
		return fail(c, RN_EINVAL,
			    "body: both checkin_event and acknowledge_event");
	if (!ci && !ack)
		return fail(c, RN_EINVAL,
			    "body: neither checkin_event nor acknowledge_event");
	ev->kind = ci ? MDM_WH_KIND_CHECKIN : MDM_WH_KIND_ACK;
	c->obj = ci ? "checkin_event" : "acknowledge_event";
	obj = ci ? ci : ack;
	if (ev->topic == MDM_WH_CONNECT && ev->kind != MDM_WH_KIND_ACK)
		return fail(c, RN_EINVAL, "topic: '%s' needs acknowledge_event",
			    ev->topic_text);
	if (ev->topic != MDM_WH_CONNECT && ev->topic != MDM_WH_OTHER &&
	    ev->kind != MDM_WH_KIND_CHECKIN)
		return fail(c, RN_EINVAL, "topic: '%s' needs checkin_event",
			    ev->topic_text);
	if (!json_is_object(obj))
		return fail(c, RN_EINVAL, "%s: must be an object", c->obj);

	rc = js_str(c, obj, "udid", 1, 64, &ev->udid);
	if (rc)
		return rc;
	if (!udid_ok(ev->udid))
		return fail(c, RN_EINVAL,
			    "%s.udid: must be 1-64 letters, digits or '-'", c->obj);
	rc = js_str(c, obj, "enrollment_id", 0, 256, &ev->enrollment_id);
	if (rc)
		return rc;
	if (ev->enrollment_id && has_ctl(ev->enrollment_id))
		return fail(c, RN_EINVAL,
			    "%s.enrollment_id: contains control characters", c->obj);
	if (ev->kind == MDM_WH_KIND_ACK) {
		rc = js_str(c, obj, "status", 0, MDM_WH_MAX_ID, &ev->status_text);
		if (rc == 0)
			rc = js_str(c, obj, "command_uuid", 0, MDM_WH_MAX_ID,
				    &ev->command_uuid);
		if (rc)
			return rc;
	}
	return raw_payload(c, obj, ev);
}

int
mdm_wh_parse(const void *body, size_t len, mdm_wh_event *ev, char **err)
{
	ctx c = { err, NULL };
	json_error_t jerr;
	json_t *root = NULL;
	int rc;

	memset(ev, 0, sizeof(*ev));
	if (err)
		*err = NULL;
	if (len > MDM_WH_MAX_BODY)
		return fail(&c, RN_ETOOBIG, "body: larger than %u bytes",
			    MDM_WH_MAX_BODY);
	if (body == NULL && len > 0)
		return fail(&c, RN_EINVAL, "body: missing");
	root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	if (root == NULL) {
		/* jerr.text may quote the input, so only say where */
		rc = fail(&c, RN_EINVAL, "body: not valid JSON at line %d column %d",
			  jerr.line, jerr.column);
		goto out;
	}
	rc = parse(root, ev, &c);
	if (rc == 0 && ev->event_id == NULL) {
		/*
		 * No event ID (NanoMDM leaves it empty): the body's hash is
		 * one. A redelivery repeats the body byte for byte; two real
		 * events differ at least in created_at and their payloads.
		 */
		char hex[65];
		rn_sha256_hex(body, len, hex);
		ev->event_id = rn_asprintf("sha256:%s", hex);
		if (ev->event_id == NULL)
			rc = RN_ENOMEM;
	}
out:
	json_decref(root);
	if (rc) {
		mdm_wh_event_release(ev);
		if (rc == RN_ENOMEM && err && *err) {
			free(*err);
			*err = NULL;
		}
	}
	return rc;
}

void
mdm_wh_event_release(mdm_wh_event *ev)
{
	size_t i;

	if (ev == NULL)
		return;
	free(ev->topic_text);
	free(ev->event_id);
	free(ev->udid);
	free(ev->enrollment_id);
	free(ev->message_type);
	free(ev->serial_number);
	free(ev->status_text);
	free(ev->command_uuid);
	free(ev->request_type);
	free(ev->error_text);
	for (i = 0; i < ev->ncerts; i++) {
		free(ev->certs[i].der);
		free(ev->certs[i].common_name);
	}
	free(ev->certs);
	memset(ev, 0, sizeof(*ev));
}

int
mdm_wh_verify(const void *key, size_t keylen, const void *body, size_t len,
	      const char *signature_b64)
{
	unsigned char mac[EVP_MAX_MD_SIZE], *sig = NULL;
	unsigned int maclen = 0;
	size_t siglen = 0;
	int rc;

	if (key == NULL || keylen == 0 || keylen > INT_MAX)
		return RN_EINVAL;
	if (signature_b64 == NULL)
		return RN_EPROTO;
	if (HMAC(EVP_sha256(), key, (int)keylen,
		 body ? body : (const void *)"", len, mac, &maclen) == NULL)
		return RN_ECRYPTO;
	rc = rn_base64_decode(signature_b64, strlen(signature_b64), &sig, &siglen);
	if (rc == RN_EINVAL)
		return RN_EPROTO;
	if (rc)
		return rc;
	rc = siglen == maclen && CRYPTO_memcmp(sig, mac, maclen) == 0 ? 0 : RN_EPROTO;
	free(sig);
	OPENSSL_cleanse(mac, sizeof(mac));
	return rc;
}
