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

#define OID_MESSAGE_TYPE "2.16.840.1.113733.1.9.2"
#define OID_PKI_STATUS "2.16.840.1.113733.1.9.3"
#define OID_FAIL_INFO "2.16.840.1.113733.1.9.4"
#define OID_TRANSACTION_ID "2.16.840.1.113733.1.9.7"
#define OID_FAIL_INFO_TEXT "1.3.6.1.5.5.7.24.1"

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
 * The first value of the signed attribute `oid` as a string, or NULL when
 * the attribute is absent or its value is not a string type.
 */
static const ASN1_STRING *
signed_attr_string(CMS_SignerInfo *si, const char *oid)
{
	ASN1_OBJECT *obj;
	X509_ATTRIBUTE *attr;
	ASN1_TYPE *t;
	int idx;

	obj = OBJ_txt2obj(oid, 1);
	if (obj == NULL)
		return NULL;
	idx = CMS_signed_get_attr_by_OBJ(si, obj, -1);
	ASN1_OBJECT_free(obj);
	if (idx < 0)
		return NULL;
	attr = CMS_signed_get_attr(si, idx);
	if (attr == NULL || X509_ATTRIBUTE_count(attr) < 1)
		return NULL;
	t = X509_ATTRIBUTE_get0_type(attr, 0);
	if (t == NULL)
		return NULL;
	switch (t->type) {
	case V_ASN1_PRINTABLESTRING:
	case V_ASN1_UTF8STRING:
	case V_ASN1_IA5STRING:
	case V_ASN1_OCTET_STRING:
		return t->value.asn1_string;
	default:
		return NULL;
	}
}

/* A small decimal number ("0".."99999"), or -1. */
static int
string_number(const ASN1_STRING *s)
{
	const unsigned char *p;
	int len, i, v = 0;

	if (s == NULL)
		return -1;
	p = ASN1_STRING_get0_data(s);
	len = ASN1_STRING_length(s);
	if (len < 1 || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (p[i] - '0');
	}
	return v;
}

/*
 * Parse only the outer SignedData: the signed attributes are in clear
 * text there, the pkcsPKIEnvelope inside is for the device alone.
 */
int
scep_certrep_parse(const void *der, size_t len, scep_certrep *out)
{
	const unsigned char *p = der;
	CMS_ContentInfo *cms = NULL;
	STACK_OF(CMS_SignerInfo) *sis;
	CMS_SignerInfo *si;
	const ASN1_STRING *s;
	scep_certrep r;
	int rc = RN_EINVAL, v;

	if (der == NULL || out == NULL || len == 0 || len > LONG_MAX)
		return RN_EINVAL;
	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL)
		goto out;
	if (OBJ_obj2nid(CMS_get0_type(cms)) != NID_pkcs7_signed)
		goto out;
	sis = CMS_get0_SignerInfos(cms);
	if (sis == NULL || sk_CMS_SignerInfo_num(sis) < 1)
		goto out;
	si = sk_CMS_SignerInfo_value(sis, 0);
	if (si == NULL)
		goto out;

	memset(&r, 0, sizeof(r));
	s = signed_attr_string(si, OID_PKI_STATUS);
	if (s == NULL)
		goto out;
	v = string_number(s);
	r.status = (v == SCEP_SUCCESS || v == SCEP_FAILURE ||
		    v == SCEP_PENDING) ? v : SCEP_UNKNOWN;

	r.message_type = string_number(signed_attr_string(si, OID_MESSAGE_TYPE));

	s = signed_attr_string(si, OID_FAIL_INFO);
	if (s == NULL) {
		r.fail_info = SCEP_FAIL_NONE;
	} else {
		v = string_number(s);
		r.fail_info = (v >= SCEP_FAIL_BAD_ALG &&
			       v <= SCEP_FAIL_BAD_CERT_ID) ? v
							   : SCEP_FAIL_UNKNOWN;
	}

	s = signed_attr_string(si, OID_FAIL_INFO_TEXT);
	if (s)
		copy_text(r.fail_info_text, sizeof(r.fail_info_text),
			  ASN1_STRING_get0_data(s),
			  (size_t)ASN1_STRING_length(s));
	s = signed_attr_string(si, OID_TRANSACTION_ID);
	if (s)
		copy_text(r.transaction_id, sizeof(r.transaction_id),
			  ASN1_STRING_get0_data(s),
			  (size_t)ASN1_STRING_length(s));
	*out = r;
	rc = 0;
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
