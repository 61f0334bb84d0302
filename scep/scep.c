/*
 * scep: the proxy identifier and the CertRep signed attributes.
 * See scep.h for the API and its invariants.
 */
#include <limits.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/cms.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "scep/scep.h"

/* ---- proxy identifier ------------------------------------------------- */

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int
is_alnum(int c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	       (c >= '0' && c <= '9');
}

/* Is s[0..n) within [min,max] bytes, every byte alnum or in `extra`? */
static int
field_ok(const char *s, size_t n, size_t min, size_t max, const char *extra)
{
	size_t i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!is_alnum((unsigned char)s[i]) &&
		    strchr(extra, s[i]) == NULL)
			return 0;
	return 1;
}

/*
 * Decode once into a bounded buffer, then split. Checking the alphabets on
 * the decoded bytes is what rejects double encoding: a second layer leaves
 * a '%' behind, which no field allows.
 */
int
scep_proxy_id_parse(const char *raw, scep_proxy_id *out)
{
	char dec[SCEP_ID_RAW_MAX + 1];
	const char *f[4];
	size_t flen[4], n = 0, nf = 0, i;
	scep_proxy_id id;

	if (raw == NULL || out == NULL)
		return RN_EINVAL;
	while (*raw) {
		int c = (unsigned char)*raw;

		if (c == '%') {
			int hi = hexval((unsigned char)raw[1]), lo;

			if (hi < 0)
				return RN_EINVAL;
			lo = hexval((unsigned char)raw[2]);
			if (lo < 0)
				return RN_EINVAL;
			c = hi * 16 + lo;
			if (c == 0)
				return RN_EINVAL;
			raw += 3;
		} else {
			raw++;
		}
		if (n == SCEP_ID_RAW_MAX)
			return RN_EINVAL;
		dec[n++] = (char)c;
	}
	dec[n] = '\0';

	f[0] = dec;
	for (i = 0; i <= n; i++) {
		if (i == n || dec[i] == ',') {
			if (nf == 4)
				return RN_EINVAL;
			flen[nf] = (size_t)(dec + i - f[nf]);
			nf++;
			if (i < n && nf < 4)
				f[nf] = dec + i + 1;
			else if (i < n)
				return RN_EINVAL; /* a fifth field */
		}
	}
	if (nf != 4)
		return RN_EINVAL;
	if (!field_ok(f[0], flen[0], 1, 128, "._-") ||
	    !field_ok(f[1], flen[1], 1, 128, "._-") ||
	    !field_ok(f[2], flen[2], 1, 64, "_") ||
	    !field_ok(f[3], flen[3], 16, 128, "_-"))
		return RN_EINVAL;

	memset(&id, 0, sizeof(id));
	memcpy(id.host, f[0], flen[0]);
	memcpy(id.profile, f[1], flen[1]);
	memcpy(id.ca, f[2], flen[2]);
	memcpy(id.token, f[3], flen[3]);
	*out = id;
	return 0;
}

/* ---- CertRep ---------------------------------------------------------- */


/*
 * Copy a peer-supplied string into dst[size]: control bytes become '?',
 * and truncation backs up to the start of a UTF-8 sequence so the result
 * never ends in half a character.
 */
static void
copy_text(char *dst, size_t size, const unsigned char *src, size_t n)
{
	size_t i;

	if (n > size - 1) {
		n = size - 1;
		while (n > 0 && (src[n] & 0xC0) == 0x80)
			n--;
	}
	for (i = 0; i < n; i++)
		dst[i] = (src[i] < 0x20 || src[i] == 0x7f) ? '?' : (char)src[i];
	dst[n] = '\0';
}

/*
 * The signed attributes a CertRep is read for: each the content octets of
 * the first value of the first attribute of its type when that value is a
 * string (PrintableString, UTF8String, IA5String or OCTET STRING). p is
 * NULL when there is no such attribute; len is -1 when its first value
 * is missing or not a string (read as absent, but it still hides later
 * attributes of the type, as OpenSSL's lookup by type does).
 */
typedef struct der_str {
	const unsigned char *p;
	long len;
} der_str;

typedef struct certrep_attrs {
	der_str message_type, status, fail_info, fail_info_text, txid;
} certrep_attrs;

/*
 * The OIDs, as DER content octets: signedData 1.2.840.113549.1.7.2;
 * messageType, pkiStatus, failInfo and transactionID
 * 2.16.840.1.113733.1.9.{2,3,4,7}; failInfoText 1.3.6.1.5.5.7.24.1.
 * test_scep builds its CertReps from the dotted forms.
 */
static const unsigned char oid_signed_data[] = {
	0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x02};
#define OID_VERISIGN_ATTR 0x60, 0x86, 0x48, 0x01, 0x86, 0xf8, 0x45, 0x01, 0x09
static const unsigned char oid_message_type[] = {OID_VERISIGN_ATTR, 0x02};
static const unsigned char oid_pki_status[] = {OID_VERISIGN_ATTR, 0x03};
static const unsigned char oid_fail_info[] = {OID_VERISIGN_ATTR, 0x04};
static const unsigned char oid_txid[] = {OID_VERISIGN_ATTR, 0x07};
static const unsigned char oid_fail_info_text[] = {
	0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x18, 0x01};

/* Which of a's fields an attribute type (OID content octets) fills. */
static der_str *
attr_slot(certrep_attrs *a, const unsigned char *oid, long len)
{
#define IS(o) (len == (long)sizeof(o) && memcmp(oid, o, sizeof(o)) == 0)
	if (IS(oid_pki_status))
		return &a->status;
	if (IS(oid_message_type))
		return &a->message_type;
	if (IS(oid_fail_info))
		return &a->fail_info;
	if (IS(oid_fail_info_text))
		return &a->fail_info_text;
	if (IS(oid_txid))
		return &a->txid;
	return NULL;
#undef IS
}

static int
string_tag(int tag)
{
	return tag == V_ASN1_PRINTABLESTRING || tag == V_ASN1_UTF8STRING ||
	       tag == V_ASN1_IA5STRING || tag == V_ASN1_OCTET_STRING;
}

/* One DER element: class, tag, constructed, content [p, p + len). */
typedef struct tlv {
	int cls, tag, cons;
	const unsigned char *p;
	long len;
} tlv;

/*
 * Read the element at *pp, which must end by `end`; *pp moves past it.
 * ASN1_GET_OBJECT checks the length against what is left. Only definite
 * lengths (DER): anything else is -1 and goes to the full decoder.
 */
static int
tlv_next(const unsigned char **pp, const unsigned char *end, tlv *t)
{
	const unsigned char *p = *pp;
	int ret;

	if (p >= end)
		return -1;
	ret = ASN1_get_object(&p, &t->len, &t->tag, &t->cls, end - p);
	if ((ret & 0x80) || (ret & 0x01))
		return -1;
	t->cons = (ret & V_ASN1_CONSTRUCTED) != 0;
	t->p = p;
	*pp = p + t->len;
	return 0;
}

/* Read one element, which must be of class cls, tag tag, constructed. */
static int
tlv_expect(const unsigned char **pp, const unsigned char *end, int cls,
	   int tag, tlv *t)
{
	if (tlv_next(pp, end, t) != 0 || t->cls != cls || t->tag != tag ||
	    !t->cons)
		return -1;
	return 0;
}

/*
 * The DER path: walk ContentInfo -> SignedData -> the first SignerInfo's
 * signedAttrs without decoding anything else. The certificates a CertRep
 * carries are skipped whole: OpenSSL 3 decoding them (hashing each and
 * caching its extensions) was about 0.4 ms of a proxied enrollment's
 * 0.4 ms of parsing.
 */
static int
certrep_attrs_der(const unsigned char *der, size_t len, certrep_attrs *a)
{
	const unsigned char *p = der, *end = der + len, *q, *qe;
	tlv ci, t, sd, sis, si, attrs, at, oid, vals, v;
	der_str *slot;

	if (len > LONG_MAX ||
	    tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &ci) != 0)
		return -1;
	/* ContentInfo: contentType signedData, [0] EXPLICIT SignedData */
	p = ci.p;
	end = ci.p + ci.len;
	if (tlv_next(&p, end, &t) != 0 || t.cls != V_ASN1_UNIVERSAL ||
	    t.tag != V_ASN1_OBJECT || t.len != (long)sizeof(oid_signed_data) ||
	    memcmp(t.p, oid_signed_data, sizeof(oid_signed_data)) != 0)
		return -1;
	if (tlv_expect(&p, end, V_ASN1_CONTEXT_SPECIFIC, 0, &t) != 0)
		return -1;
	p = t.p;
	end = t.p + t.len;
	if (tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &sd) != 0)
		return -1;
	/* SignedData: version, digestAlgorithms, encapContentInfo,
	 * [0] certificates, [1] crls, signerInfos */
	p = sd.p;
	end = sd.p + sd.len;
	if (tlv_next(&p, end, &t) != 0 || t.cls != V_ASN1_UNIVERSAL ||
	    t.tag != V_ASN1_INTEGER ||
	    tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SET, &t) != 0 ||
	    tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &t) != 0)
		return -1;
	do {
		if (tlv_next(&p, end, &sis) != 0)
			return -1;
	} while (sis.cls == V_ASN1_CONTEXT_SPECIFIC);
	if (sis.cls != V_ASN1_UNIVERSAL || sis.tag != V_ASN1_SET || !sis.cons)
		return -1;
	p = sis.p;
	if (tlv_expect(&p, sis.p + sis.len, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE,
		       &si) != 0)
		return -1;
	/* SignerInfo: version, sid, digestAlgorithm, [0] signedAttrs, ... */
	p = si.p;
	end = si.p + si.len;
	if (tlv_next(&p, end, &t) != 0 || t.cls != V_ASN1_UNIVERSAL ||
	    t.tag != V_ASN1_INTEGER || tlv_next(&p, end, &t) != 0 ||
	    tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE, &t) != 0 ||
	    tlv_expect(&p, end, V_ASN1_CONTEXT_SPECIFIC, 0, &attrs) != 0)
		return -1;
	memset(a, 0, sizeof(*a));
	q = attrs.p;
	qe = attrs.p + attrs.len;
	while (q < qe) {
		/* Attribute: attrType, attrValues SET OF */
		if (tlv_expect(&q, qe, V_ASN1_UNIVERSAL, V_ASN1_SEQUENCE,
			       &at) != 0)
			return -1;
		p = at.p;
		end = at.p + at.len;
		if (tlv_next(&p, end, &oid) != 0 ||
		    oid.cls != V_ASN1_UNIVERSAL || oid.tag != V_ASN1_OBJECT ||
		    tlv_expect(&p, end, V_ASN1_UNIVERSAL, V_ASN1_SET,
			       &vals) != 0)
			return -1;
		slot = attr_slot(a, oid.p, oid.len);
		if (slot == NULL || slot->p != NULL)
			continue; /* another type, or not the first */
		p = vals.p;
		if (vals.len > 0 && tlv_next(&p, vals.p + vals.len, &v) != 0)
			return -1;
		if (vals.len > 0 && v.cls == V_ASN1_UNIVERSAL && !v.cons &&
		    string_tag(v.tag)) {
			slot->p = v.p;
			slot->len = v.len;
		} else {
			slot->p = (const unsigned char *)""; /* not a string */
			slot->len = -1;
		}
	}
	return 0;
}

/*
 * The general path, for what is not plain DER (BER's indefinite lengths):
 * OpenSSL's CMS decoder. The strings point into cms.
 */
static void
cms_attr(CMS_SignerInfo *si, const unsigned char *oid, size_t oid_len,
	 der_str *out)
{
	int i, n = CMS_signed_get_attr_count(si);

	for (i = 0; i < n; i++) {
		X509_ATTRIBUTE *attr = CMS_signed_get_attr(si, i);
		const ASN1_OBJECT *o = X509_ATTRIBUTE_get0_object(attr);
		ASN1_TYPE *t;

		if (o == NULL || OBJ_length(o) != oid_len ||
		    memcmp(OBJ_get0_data(o), oid, oid_len) != 0)
			continue;
		t = X509_ATTRIBUTE_count(attr) > 0
			    ? X509_ATTRIBUTE_get0_type(attr, 0)
			    : NULL;
		if (t && string_tag(t->type)) {
			out->p = ASN1_STRING_get0_data(t->value.asn1_string);
			out->len = ASN1_STRING_length(t->value.asn1_string);
		} else {
			out->p = (const unsigned char *)"";
			out->len = -1;
		}
		return;
	}
}

static CMS_ContentInfo *
certrep_attrs_cms(const unsigned char *der, size_t len, certrep_attrs *a)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms;
	STACK_OF(CMS_SignerInfo) *sis;
	CMS_SignerInfo *si;

	if (len > LONG_MAX)
		return NULL;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL)
		return NULL;
	sis = OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed
		      ? CMS_get0_SignerInfos(cms)
		      : NULL;
	si = sis && sk_CMS_SignerInfo_num(sis) > 0
		     ? sk_CMS_SignerInfo_value(sis, 0)
		     : NULL;
	if (si == NULL) {
		CMS_ContentInfo_free(cms);
		return NULL;
	}
	memset(a, 0, sizeof(*a));
	cms_attr(si, oid_message_type, sizeof(oid_message_type),
		 &a->message_type);
	cms_attr(si, oid_pki_status, sizeof(oid_pki_status), &a->status);
	cms_attr(si, oid_fail_info, sizeof(oid_fail_info), &a->fail_info);
	cms_attr(si, oid_fail_info_text, sizeof(oid_fail_info_text),
		 &a->fail_info_text);
	cms_attr(si, oid_txid, sizeof(oid_txid), &a->txid);
	return cms;
}

/* A small decimal number ("0".."99999"), or -1. */
static int
string_number(const der_str *s)
{
	long i;
	int v = 0;

	if (s->p == NULL || s->len < 1 || s->len > 5)
		return -1;
	for (i = 0; i < s->len; i++) {
		if (s->p[i] < '0' || s->p[i] > '9')
			return -1;
		v = v * 10 + (s->p[i] - '0');
	}
	return v;
}

static void
string_text(char *dst, size_t size, const der_str *s)
{
	if (s->p != NULL && s->len > 0)
		copy_text(dst, size, s->p, (size_t)s->len);
	else
		dst[0] = '\0';
}

/*
 * Parse only the outer SignedData: the signed attributes are in clear
 * text there, the pkcsPKIEnvelope inside is for the device alone.
 * Nothing here verifies the CA's signature: the result only says on the
 * job what the CA answered; the device verifies the answer it gets.
 */
int
scep_certrep_parse(const void *der, size_t len, scep_certrep *out)
{
	certrep_attrs a;
	CMS_ContentInfo *cms = NULL;
	scep_certrep r;
	int v, rc = RN_EINVAL;

	if (der == NULL || out == NULL || len == 0)
		return RN_EINVAL;
	if (certrep_attrs_der(der, len, &a) != 0 &&
	    (cms = certrep_attrs_cms(der, len, &a)) == NULL)
		return RN_EINVAL;
	if (a.status.p == NULL || a.status.len < 0)
		goto out; /* no pkiStatus string */

	memset(&r, 0, sizeof(r));
	v = string_number(&a.status);
	r.status = (v == SCEP_SUCCESS || v == SCEP_FAILURE ||
		    v == SCEP_PENDING) ? v : SCEP_UNKNOWN;
	r.message_type = string_number(&a.message_type);
	if (a.fail_info.p == NULL || a.fail_info.len < 0) {
		r.fail_info = SCEP_FAIL_NONE;
	} else {
		v = string_number(&a.fail_info);
		r.fail_info = (v >= SCEP_FAIL_BAD_ALG &&
			       v <= SCEP_FAIL_BAD_CERT_ID) ? v
							   : SCEP_FAIL_UNKNOWN;
	}
	string_text(r.fail_info_text, sizeof(r.fail_info_text),
		    &a.fail_info_text);
	string_text(r.transaction_id, sizeof(r.transaction_id), &a.txid);
	*out = r;
	rc = RN_OK;
out:
	CMS_ContentInfo_free(cms);
	return rc;
}

const char *
scep_failinfo_name(int fail_info)
{
	switch (fail_info) {
	case SCEP_FAIL_NONE:
		return "none";
	case SCEP_FAIL_BAD_ALG:
		return "badAlg";
	case SCEP_FAIL_BAD_MESSAGE_CHECK:
		return "badMessageCheck";
	case SCEP_FAIL_BAD_REQUEST:
		return "badRequest";
	case SCEP_FAIL_BAD_TIME:
		return "badTime";
	case SCEP_FAIL_BAD_CERT_ID:
		return "badCertId";
	default:
		return "unknown";
	}
}

const char *
scep_status_name(int status)
{
	switch (status) {
	case SCEP_SUCCESS:
		return "SUCCESS";
	case SCEP_FAILURE:
		return "FAILURE";
	case SCEP_PENDING:
		return "PENDING";
	default:
		return "UNKNOWN";
	}
}
