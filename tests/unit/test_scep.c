/*
 * scep: the proxy identifier, the CertRep signed attributes (CMS built here
 * with OpenSSL from a key generated at setup), the GetCACert parser, and
 * the CA check against a tiny HTTP server on the same loop, which ends with
 * uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/pkcs7.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep/scep.h"
#include "tests/unit/support/testhttp.h"

/* ---- proxy identifier ------------------------------------------------- */

#define TOKEN "abcdefghijklmnop_-Q9"

static void
test_proxy_id_good(void **state)
{
	scep_proxy_id id;
	char host128[129], seg[1024];

	assert_int_equal(scep_proxy_id_parse("mac-1.example%2Cwifi.prof_1%2C"
					     "Test_SCEP%2C" TOKEN, &id), 0);
	assert_string_equal(id.host, "mac-1.example");
	assert_string_equal(id.profile, "wifi.prof_1");
	assert_string_equal(id.ca, "Test_SCEP");
	assert_string_equal(id.token, TOKEN);

	/* lowercase escapes, raw commas and escaped letters all decode */
	memset(&id, 0, sizeof(id));
	assert_int_equal(scep_proxy_id_parse("h%2cp,%43A%2c" TOKEN, &id), 0);
	assert_string_equal(id.host, "h");
	assert_string_equal(id.profile, "p");
	assert_string_equal(id.ca, "CA");
	assert_string_equal(id.token, TOKEN);

	/* the longest host and the shortest token are accepted */
	memset(host128, 'h', 128);
	host128[128] = '\0';
	snprintf(seg, sizeof(seg), "%s,p,c,abcdefghijklmnop", host128);
	assert_int_equal(scep_proxy_id_parse(seg, &id), 0);
	assert_string_equal(id.host, host128);
	assert_string_equal(id.token, "abcdefghijklmnop");
}

static void
test_proxy_id_bad(void **state)
{
	static const char *bad[] = {
		"h%252Cp%252Cc%252C" TOKEN,	/* double-encoded */
		"h%2Cp%2C" TOKEN,		/* 3 fields */
		"h%2Cp%2Cc%2C" TOKEN "%2Cx",	/* 5 fields */
		"h%2Cp%2Cc%2C" TOKEN "%2C",	/* trailing empty 5th */
		"h%2C%2Cc%2C" TOKEN,		/* empty profile */
		"%2Cp%2Cc%2C" TOKEN,		/* empty host */
		"h%2Cp%2Cc%2C",			/* empty token */
		"h%20x%2Cp%2Cc%2C" TOKEN,	/* space in host */
		"h%2Fx%2Cp%2Cc%2C" TOKEN,	/* slash in host */
		"h%2Cp%2Cc.a%2C" TOKEN,		/* dot in ca */
		"h%2Cp%2Cc-a%2C" TOKEN,		/* dash in ca */
		"h%2Cp%2Cc%2Cabcdefghijklmn+p",	/* not base64url */
		"h%2Cp%2Cc%2Cabcdefghijklmno",	/* token 15 chars */
		"h%2Cp%2Cc%2C%zz" TOKEN,	/* malformed escape */
		"h%2Cp%2Cc%2C" TOKEN "%2",	/* truncated escape */
		"h%2Cp%2Cc%2C" TOKEN "%",	/* bare percent */
		"h%00x%2Cp%2Cc%2C" TOKEN,	/* NUL */
		"h%C3%A9%2Cp%2Cc%2C" TOKEN,	/* non-ASCII */
		"",
	};
	scep_proxy_id id, before;
	char seg[2048];
	size_t i;

	memset(&before, 'X', sizeof(before));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		id = before;
		if (scep_proxy_id_parse(bad[i], &id) != RN_EINVAL)
			fail_msg("accepted '%s'", bad[i]);
		/* no partial result */
		assert_memory_equal(&id, &before, sizeof(id));
	}
	assert_int_equal(scep_proxy_id_parse(NULL, &id), RN_EINVAL);

	/* host of 129 */
	memset(seg, 'h', 129);
	snprintf(seg + 129, sizeof(seg) - 129, ",p,c,%s", TOKEN);
	assert_int_equal(scep_proxy_id_parse(seg, &id), RN_EINVAL);
	/* ca of 65 */
	memset(seg, 0, sizeof(seg));
	memcpy(seg, "h,p,", 4);
	memset(seg + 4, 'c', 65);
	strcat(seg, "," TOKEN);
	assert_int_equal(scep_proxy_id_parse(seg, &id), RN_EINVAL);
	/* token of 129 */
	memset(seg, 0, sizeof(seg));
	memcpy(seg, "h,p,c,", 6);
	memset(seg + 6, 't', 129);
	assert_int_equal(scep_proxy_id_parse(seg, &id), RN_EINVAL);
	/* token of 128 is fine, over 512 decoded bytes is not */
	seg[6 + 128] = '\0';
	assert_int_equal(scep_proxy_id_parse(seg, &id), 0);
	memset(seg, 0, sizeof(seg));
	memset(seg, 'h', 600);
	assert_int_equal(scep_proxy_id_parse(seg, &id), RN_EINVAL);
}

/* ---- fixtures: one key, a CA certificate and a leaf ------------------- */

#define NOT_BEFORE 1700000000
#define NOT_AFTER 2000000000

static EVP_PKEY *g_key;
static X509 *g_ca, *g_leaf;

static X509 *
make_cert(const char *cn, int is_ca, X509 *issuer, long serial)
{
	X509 *x = X509_new();
	X509_NAME *n;
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(x);
	assert_true(X509_set_version(x, 2));
	assert_true(ASN1_INTEGER_set(X509_get_serialNumber(x), serial));
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), NOT_BEFORE));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), NOT_AFTER));
	assert_true(X509_set_pubkey(x, g_key));
	n = X509_get_subject_name(x);
	assert_true(X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
		(const unsigned char *)"renewd test", -1, -1, 0));
	assert_true(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
		(const unsigned char *)cn, -1, -1, 0));
	assert_true(X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer)
						   : n));
	X509V3_set_ctx_nodb(&ctx);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
				  is_ca ? "critical,CA:TRUE" : "CA:FALSE");
	assert_non_null(ext);
	assert_true(X509_add_ext(x, ext, -1));
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(x, g_key, EVP_sha256()) > 0);
	return x;
}

static int
group_setup(void **state)
{
	g_key = EVP_RSA_gen(2048);
	if (g_key == NULL)
		return -1;
	g_ca = make_cert("Test CA", 1, NULL, 1);
	g_leaf = make_cert("Test RA", 0, g_ca, 2);
	return 0;
}

static int
group_teardown(void **state)
{
	X509_free(g_leaf);
	X509_free(g_ca);
	EVP_PKEY_free(g_key);
	return 0;
}

static unsigned char *
cert_der(X509 *x, size_t *len)
{
	unsigned char *der = NULL;
	int n = i2d_X509(x, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static void
cert_sha256(X509 *x, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0, i;

	assert_true(X509_digest(x, EVP_sha256(), md, &n));
	assert_int_equal(n, 32);
	for (i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* ---- CertRep ---------------------------------------------------------- */

#define A_MSGTYPE "2.16.840.1.113733.1.9.2"
#define A_STATUS "2.16.840.1.113733.1.9.3"
#define A_FAILINFO "2.16.840.1.113733.1.9.4"
#define A_TXID "2.16.840.1.113733.1.9.7"
#define A_FAILTEXT "1.3.6.1.5.5.7.24.1"

typedef struct attr {
	const char *oid;
	int type;
	const char *value;
} attr;

/*
 * A signed CMS over "x" with the given extra signed attributes and the
 * signer's certificate: DER, or with ber BER as OpenSSL streams it
 * (indefinite lengths).
 */
static unsigned char *
make_certrep_enc(const attr *attrs, size_t nattrs, int ber, size_t *len)
{
	BIO *in = BIO_new_mem_buf("x", 1);
	CMS_ContentInfo *cms;
	CMS_SignerInfo *si;
	unsigned char *der = NULL;
	int fl = CMS_PARTIAL | CMS_BINARY | (ber ? CMS_STREAM : 0);
	size_t i;
	int n;

	cms = CMS_sign(NULL, NULL, NULL, NULL, fl);
	assert_non_null(cms);
	si = CMS_add1_signer(cms, g_ca, g_key, EVP_sha256(), fl);
	assert_non_null(si);
	for (i = 0; i < nattrs; i++) {
		ASN1_OBJECT *o = OBJ_txt2obj(attrs[i].oid, 1);

		assert_non_null(o);
		assert_true(CMS_signed_add1_attr_by_OBJ(si, o, attrs[i].type,
					attrs[i].value,
					(int)strlen(attrs[i].value)));
		ASN1_OBJECT_free(o);
	}
	if (ber) {
		BIO *out = BIO_new(BIO_s_mem());
		char *p;
		long m;

		assert_true(i2d_CMS_bio_stream(out, cms, in, fl));
		m = BIO_get_mem_data(out, &p);
		assert_true(m > 0);
		der = OPENSSL_malloc((size_t)m);
		memcpy(der, p, (size_t)m);
		*len = (size_t)m;
		BIO_free(out);
	} else {
		assert_true(CMS_final(cms, in, NULL, CMS_BINARY));
		n = i2d_CMS_ContentInfo(cms, &der);
		assert_true(n > 0);
		*len = (size_t)n;
	}
	CMS_ContentInfo_free(cms);
	BIO_free(in);
	return der;
}

static unsigned char *
make_certrep(const attr *attrs, size_t nattrs, size_t *len)
{
	return make_certrep_enc(attrs, nattrs, 0, len);
}

static void
test_certrep_success(void **state)
{
	attr a[] = {
		{A_MSGTYPE, V_ASN1_PRINTABLESTRING, "3"},
		{A_STATUS, V_ASN1_PRINTABLESTRING, "0"},
		{A_TXID, V_ASN1_PRINTABLESTRING, "7A3F00C1"},
	};
	scep_certrep r;
	unsigned char *der;
	size_t len;

	der = make_certrep(a, 3, &len);
	memset(&r, 0x55, sizeof(r));
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	assert_int_equal(r.status, SCEP_SUCCESS);
	assert_int_equal(r.message_type, SCEP_MSG_CERTREP);
	assert_int_equal(r.fail_info, SCEP_FAIL_NONE);
	assert_string_equal(r.fail_info_text, "");
	assert_string_equal(r.transaction_id, "7A3F00C1");
	assert_string_equal(scep_status_name(r.status), "SUCCESS");
	OPENSSL_free(der);
}

static void
test_certrep_failure(void **state)
{
	attr a[] = {
		{A_MSGTYPE, V_ASN1_PRINTABLESTRING, "3"},
		{A_STATUS, V_ASN1_PRINTABLESTRING, "2"},
		{A_FAILINFO, V_ASN1_PRINTABLESTRING, "2"},
		{A_FAILTEXT, V_ASN1_UTF8STRING, "challenge r\xc3\xa9jected\n"},
	};
	scep_certrep r;
	unsigned char *der;
	size_t len;

	der = make_certrep(a, 4, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	assert_int_equal(r.status, SCEP_FAILURE);
	assert_int_equal(r.fail_info, SCEP_FAIL_BAD_REQUEST);
	assert_string_equal(scep_failinfo_name(r.fail_info), "badRequest");
	/* UTF-8 kept, the control byte made loggable */
	assert_string_equal(r.fail_info_text, "challenge r\xc3\xa9jected?");
	assert_string_equal(r.transaction_id, "");
	OPENSSL_free(der);

	assert_string_equal(scep_failinfo_name(SCEP_FAIL_BAD_ALG), "badAlg");
	assert_string_equal(scep_failinfo_name(SCEP_FAIL_BAD_MESSAGE_CHECK),
			    "badMessageCheck");
	assert_string_equal(scep_failinfo_name(SCEP_FAIL_BAD_TIME), "badTime");
	assert_string_equal(scep_failinfo_name(SCEP_FAIL_BAD_CERT_ID),
			    "badCertId");
	assert_string_equal(scep_failinfo_name(42), "unknown");
}

static void
test_certrep_pending_and_odd_values(void **state)
{
	char longtext[600];
	attr a[] = {
		{A_MSGTYPE, V_ASN1_PRINTABLESTRING, "3"},
		{A_STATUS, V_ASN1_PRINTABLESTRING, "3"},
	};
	attr b[] = {
		{A_STATUS, V_ASN1_PRINTABLESTRING, "9"},
		{A_FAILINFO, V_ASN1_PRINTABLESTRING, "77"},
		{A_FAILTEXT, V_ASN1_UTF8STRING, longtext},
	};
	scep_certrep r;
	unsigned char *der;
	size_t len;

	der = make_certrep(a, 2, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	assert_int_equal(r.status, SCEP_PENDING);
	assert_int_equal(r.fail_info, SCEP_FAIL_NONE);
	OPENSSL_free(der);

	/* "é" (2 bytes) straddling the cut: dropped whole */
	memset(longtext, 'a', sizeof(longtext));
	longtext[254] = '\xc3';
	longtext[255] = '\xa9';
	longtext[599] = '\0';
	der = make_certrep(b, 3, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	assert_int_equal(r.status, SCEP_UNKNOWN);
	assert_int_equal(r.fail_info, SCEP_FAIL_UNKNOWN);
	assert_int_equal(r.message_type, -1);
	assert_int_equal(strlen(r.fail_info_text), 254);
	OPENSSL_free(der);
}

/*
 * The reader walks DER itself and leaves anything else (BER's indefinite
 * lengths, as a streaming CA sends) to OpenSSL's CMS decoder: both read
 * the same. An attribute whose value is not a string reads as absent.
 */
static void
test_certrep_ber_and_attr_forms(void **state)
{
	attr a[] = {
		{A_MSGTYPE, V_ASN1_PRINTABLESTRING, "3"},
		{A_STATUS, V_ASN1_PRINTABLESTRING, "2"},
		{A_FAILINFO, V_ASN1_PRINTABLESTRING, "3"},
		{A_FAILTEXT, V_ASN1_UTF8STRING, "too late"},
		{A_TXID, V_ASN1_PRINTABLESTRING, "T1"},
	};
	attr b[] = {
		{A_STATUS, V_ASN1_PRINTABLESTRING, "0"},
		{A_FAILINFO, V_ASN1_INTEGER, "\x02"},
		{A_MSGTYPE, V_ASN1_BIT_STRING, "3"},
	};
	attr c[] = {{A_STATUS, V_ASN1_BMPSTRING, "\0\x30"}};
	scep_certrep r, rb;
	unsigned char *der, *ber;
	size_t len, blen;
	int enc;

	der = make_certrep_enc(a, 5, 0, &len);
	ber = make_certrep_enc(a, 5, 1, &blen);
	assert_int_equal(ber[1], 0x80); /* indefinite length, so not DER */
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	assert_int_equal(scep_certrep_parse(ber, blen, &rb), 0);
	assert_int_equal(r.status, SCEP_FAILURE);
	assert_int_equal(r.fail_info, SCEP_FAIL_BAD_TIME);
	assert_int_equal(r.message_type, SCEP_MSG_CERTREP);
	assert_string_equal(r.fail_info_text, "too late");
	assert_string_equal(r.transaction_id, "T1");
	assert_int_equal(rb.status, r.status);
	assert_int_equal(rb.fail_info, r.fail_info);
	assert_int_equal(rb.message_type, r.message_type);
	assert_string_equal(rb.fail_info_text, r.fail_info_text);
	assert_string_equal(rb.transaction_id, r.transaction_id);
	OPENSSL_free(der);
	OPENSSL_free(ber);

	for (enc = 0; enc < 2; enc++) {
		der = make_certrep_enc(b, 3, enc, &len);
		assert_int_equal(scep_certrep_parse(der, len, &r), 0);
		assert_int_equal(r.status, SCEP_SUCCESS);
		assert_int_equal(r.fail_info, SCEP_FAIL_NONE);
		assert_int_equal(r.message_type, -1);
		OPENSSL_free(der);
		/* a pkiStatus that is no string: no status at all */
		der = make_certrep_enc(c, 1, enc, &len);
		assert_int_equal(scep_certrep_parse(der, len, &r), RN_EINVAL);
		OPENSSL_free(der);
	}
}

static void
test_certrep_invalid(void **state)
{
	attr a[] = {{A_MSGTYPE, V_ASN1_PRINTABLESTRING, "3"}};
	attr ok[] = {{A_STATUS, V_ASN1_PRINTABLESTRING, "0"}};
	static const unsigned char garbage[] = "\x30\x82\xff\xffnot a cms";
	unsigned char *der, *p7der = NULL, rnd[512];
	scep_certrep r, before;
	size_t len, i;
	PKCS7 *p7;
	int n;

	memset(&before, 0x33, sizeof(before));
	r = before;
	assert_int_equal(scep_certrep_parse(garbage, sizeof(garbage), &r),
			 RN_EINVAL);
	assert_int_equal(scep_certrep_parse("", 0, &r), RN_EINVAL);
	assert_int_equal(scep_certrep_parse(NULL, 10, &r), RN_EINVAL);
	for (i = 0; i < sizeof(rnd); i++)
		rnd[i] = (unsigned char)(i * 131 + 7);
	assert_int_equal(scep_certrep_parse(rnd, sizeof(rnd), &r), RN_EINVAL);

	/* no pkiStatus */
	der = make_certrep(a, 1, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), RN_EINVAL);
	assert_memory_equal(&r, &before, sizeof(r));
	OPENSSL_free(der);

	/* a good one, truncated anywhere */
	der = make_certrep(ok, 1, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), 0);
	r = before;
	assert_int_equal(scep_certrep_parse(der, len - 1, &r), RN_EINVAL);
	assert_int_equal(scep_certrep_parse(der, len / 2, &r), RN_EINVAL);
	assert_int_equal(scep_certrep_parse(der, 8, &r), RN_EINVAL);
	assert_memory_equal(&r, &before, sizeof(r));
	OPENSSL_free(der);

	/* a certificate is DER but not CMS; a certs-only bundle has no signer */
	der = cert_der(g_ca, &len);
	assert_int_equal(scep_certrep_parse(der, len, &r), RN_EINVAL);
	OPENSSL_free(der);
	p7 = PKCS7_new();
	assert_true(PKCS7_set_type(p7, NID_pkcs7_signed));
	assert_true(PKCS7_content_new(p7, NID_pkcs7_data));
	assert_true(PKCS7_add_certificate(p7, g_ca));
	n = i2d_PKCS7(p7, &p7der);
	assert_true(n > 0);
	assert_int_equal(scep_certrep_parse(p7der, (size_t)n, &r), RN_EINVAL);
	OPENSSL_free(p7der);
	PKCS7_free(p7);
}

/* ---- GetCACert -------------------------------------------------------- */

/* Degenerate PKCS#7: the RA (not a CA) first, then the CA. */
static unsigned char *
make_bundle(size_t *len)
{
	PKCS7 *p7 = PKCS7_new();
	unsigned char *der = NULL;
	int n;

	assert_non_null(p7);
	assert_true(PKCS7_set_type(p7, NID_pkcs7_signed));
	assert_true(PKCS7_content_new(p7, NID_pkcs7_data));
	assert_true(PKCS7_add_certificate(p7, g_leaf));
	assert_true(PKCS7_add_certificate(p7, g_ca));
	n = i2d_PKCS7(p7, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	PKCS7_free(p7);
	return der;
}

static void
test_cacert_single(void **state)
{
	scep_ca_info info;
	unsigned char *der;
	char want[65];
	size_t len;

	cert_sha256(g_ca, want);
	der = cert_der(g_ca, &len);
	memset(&info, 0, sizeof(info));
	assert_int_equal(scep_cacert_parse(der, len,
			 "application/x-x509-ca-cert", &info), 0);
	assert_string_equal(info.sha256, want);
	assert_string_equal(info.ca_subject, "CN=Test CA,O=renewd test");
	assert_int_equal(info.not_before, NOT_BEFORE);
	assert_int_equal(info.not_after, NOT_AFTER);
	assert_int_equal(info.ncerts, 1);
	assert_string_equal(info.content_type, "application/x-x509-ca-cert");
	assert_int_equal(info.ok, 0); /* not the parser's to set */

	/* trailing bytes, truncation, garbage */
	memset(&info, 0, sizeof(info));
	assert_int_equal(scep_cacert_parse(der, len - 1,
			 "application/x-x509-ca-cert", &info), RN_EINVAL);
	assert_int_equal(scep_cacert_parse("garbage", 7,
			 "application/x-x509-ca-cert", &info), RN_EINVAL);
	assert_string_equal(info.sha256, "");
	OPENSSL_free(der);
}

static void
test_cacert_bundle(void **state)
{
	scep_ca_info info;
	unsigned char *der;
	char want[65], leaf[65];
	size_t len;

	cert_sha256(g_ca, want);
	cert_sha256(g_leaf, leaf);
	assert_string_not_equal(want, leaf);
	der = make_bundle(&len);
	memset(&info, 0, sizeof(info));
	assert_int_equal(scep_cacert_parse(der, len,
			 "application/x-x509-ca-ra-cert; charset=binary",
			 &info), 0);
	assert_string_equal(info.sha256, want);
	assert_string_equal(info.ca_subject, "CN=Test CA,O=renewd test");
	assert_int_equal(info.ncerts, 2);
	/* a bundle sent as a single certificate is not one */
	assert_int_equal(scep_cacert_parse(der, len,
			 "application/x-x509-ca-cert", &info), RN_EINVAL);
	/* no content type: tried both ways */
	memset(&info, 0, sizeof(info));
	assert_int_equal(scep_cacert_parse(der, len, NULL, &info), 0);
	assert_string_equal(info.sha256, want);
	OPENSSL_free(der);
}

/* ---- CA check against a scripted server ------------------------------- */

/*
 * th_srv answers every request with its current fields. A check handle
 * runs after each poll phase, i.e. after a request was answered and
 * before the client can have sent the next one, and moves the server on
 * to the next scripted answer, recording each request target.
 */
typedef struct answer {
	int status;
	const char *ctype;
	const void *body;
	size_t len;
} answer;

typedef struct script {
	uv_check_t chk;
	th_srv *s;
	const answer *a;
	int n, seen;
	char targets[4][256];
} script;

static void
script_apply(script *sc, int i)
{
	if (i >= sc->n)
		return;
	sc->s->status = sc->a[i].status;
	sc->s->ctype = sc->a[i].ctype;
	sc->s->body = sc->a[i].body;
	sc->s->body_len = sc->a[i].len;
}

static void
script_check(uv_check_t *h)
{
	script *sc = h->data;

	if (sc->s->requests > sc->seen) {
		assert_int_equal(sc->s->requests, sc->seen + 1);
		if (sc->seen < 4)
			memcpy(sc->targets[sc->seen], sc->s->target, 256);
		sc->seen++;
		script_apply(sc, sc->seen);
	}
}

typedef struct got_ca {
	int n;
	scep_ca_info info;
} got_ca;

static void
got_ca_cb(void *arg, const scep_ca_info *info)
{
	got_ca *g = arg;

	g->n++;
	g->info = *info;
}

/* Run one check against a server scripted with a[0..n). */
static void
run_check(const answer *a, int n, got_ca *g, script *sc)
{
	uv_loop_t loop;
	net_http *h;
	th_srv s;
	cfg_ca ca;

	memset(&ca, 0, sizeof(ca));
	memset(sc, 0, sizeof(*sc));
	memset(g, 0, sizeof(*g));
	assert_int_equal(uv_loop_init(&loop), 0);
	th_srv_start(&loop, &s);
	sc->s = &s;
	sc->a = a;
	sc->n = n;
	script_apply(sc, 0);
	assert_int_equal(uv_check_init(&loop, &sc->chk), 0);
	sc->chk.data = sc;
	assert_int_equal(uv_check_start(&sc->chk, script_check), 0);
	assert_int_equal(net_http_new(&loop, &h), 0);
	ca.name = "Test_SCEP";
	ca.url = th_url_for(&s, "/scep");
	ca.timeout = 5;

	assert_int_equal(scep_ca_check(h, &ca, got_ca_cb, g), 0);
	assert_int_equal(g->n, 0); /* never from inside the call */
	assert_true(th_run_until(&loop, &g->n, 1, 10000));
	assert_int_equal(g->n, 1);

	free(ca.url);
	net_http_free(h);
	th_srv_stop(&s);
	uv_close((uv_handle_t *)&sc->chk, NULL);
	th_drain_and_close(&loop);
	assert_int_equal(g->n, 1); /* exactly once */
}

static const char caps[] = "POSTPKIOperation\r\nSHA-256\n  AES \n\n";

static void
test_ca_check_ok(void **state)
{
	unsigned char *der;
	size_t len;
	char want[65];
	got_ca g;
	script sc;

	cert_sha256(g_ca, want);
	der = cert_der(g_ca, &len);
	{
		answer a[] = {
			{200, "text/plain", caps, sizeof(caps) - 1},
			{200, "application/x-x509-ca-cert", der, len},
		};

		run_check(a, 2, &g, &sc);
	}
	assert_int_equal(sc.seen, 2);
	assert_string_equal(sc.targets[0], "/scep?operation=GetCACaps");
	assert_string_equal(sc.targets[1], "/scep?operation=GetCACert");
	assert_true(g.info.ok);
	assert_string_equal(g.info.error, "");
	assert_string_equal(g.info.capabilities,
			    "POSTPKIOperation,SHA-256,AES");
	assert_string_equal(g.info.sha256, want);
	assert_string_equal(g.info.ca_subject, "CN=Test CA,O=renewd test");
	assert_int_equal(g.info.not_after, NOT_AFTER);
	assert_int_equal(g.info.ncerts, 1);
	assert_string_equal(g.info.content_type, "application/x-x509-ca-cert");
	OPENSSL_free(der);
}

static void
test_ca_check_ra_bundle(void **state)
{
	unsigned char *der;
	size_t len;
	char want[65];
	got_ca g;
	script sc;

	cert_sha256(g_ca, want);
	der = make_bundle(&len);
	{
		answer a[] = {
			{200, "text/plain", "", 0},
			{200, "application/x-x509-ca-ra-cert", der, len},
		};

		run_check(a, 2, &g, &sc);
	}
	assert_true(g.info.ok);
	assert_string_equal(g.info.capabilities, "");
	assert_string_equal(g.info.sha256, want);
	assert_int_equal(g.info.ncerts, 2);
	OPENSSL_free(der);
}

static void
test_ca_check_http_500(void **state)
{
	answer a[] = {
		{200, "text/plain", caps, sizeof(caps) - 1},
		{500, "text/plain", "boom", 4},
	};
	got_ca g;
	script sc;

	run_check(a, 2, &g, &sc);
	assert_int_equal(sc.seen, 2);
	assert_false(g.info.ok);
	assert_string_equal(g.info.error, "GetCACert: http 500");
}

static void
test_ca_check_caps_error_stops(void **state)
{
	answer a[] = {{404, "text/plain", "no", 2}};
	got_ca g;
	script sc;

	run_check(a, 1, &g, &sc);
	assert_int_equal(sc.seen, 1); /* GetCACert never asked */
	assert_false(g.info.ok);
	assert_string_equal(g.info.error, "GetCACaps: http 404");
}

static void
test_ca_check_unparsable(void **state)
{
	answer a[] = {
		{200, "text/plain", caps, sizeof(caps) - 1},
		{200, "application/x-x509-ca-cert", "not der", 7},
	};
	got_ca g;
	script sc;

	run_check(a, 2, &g, &sc);
	assert_false(g.info.ok);
	assert_string_equal(g.info.error, "GetCACert: unparsable certificate");
}

static void
test_ca_check_refused(void **state)
{
	uv_loop_t loop;
	net_http *h;
	cfg_ca ca;
	got_ca g;
	char url[64];

	memset(&g, 0, sizeof(g));
	memset(&ca, 0, sizeof(ca));
	assert_int_equal(uv_loop_init(&loop), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d/scep",
		 th_closed_port(&loop));
	ca.name = "Test_SCEP";
	ca.url = url;
	ca.timeout = 5;
	assert_int_equal(net_http_new(&loop, &h), 0);

	/* an error return never calls back */
	assert_int_equal(scep_ca_check(h, NULL, got_ca_cb, &g), RN_EINVAL);
	assert_int_equal(scep_ca_check(h, &ca, NULL, &g), RN_EINVAL);

	assert_int_equal(scep_ca_check(h, &ca, got_ca_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 10000));
	assert_false(g.info.ok);
	assert_non_null(strstr(g.info.error, "GetCACaps: connect error: "));
	assert_true(strlen(g.info.error) > strlen("GetCACaps: connect error: "));
	net_http_free(h);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_proxy_id_good),
		cmocka_unit_test(test_proxy_id_bad),
		cmocka_unit_test(test_certrep_success),
		cmocka_unit_test(test_certrep_failure),
		cmocka_unit_test(test_certrep_pending_and_odd_values),
		cmocka_unit_test(test_certrep_ber_and_attr_forms),
		cmocka_unit_test(test_certrep_invalid),
		cmocka_unit_test(test_cacert_single),
		cmocka_unit_test(test_cacert_bundle),
		cmocka_unit_test(test_ca_check_ok),
		cmocka_unit_test(test_ca_check_ra_bundle),
		cmocka_unit_test(test_ca_check_http_500),
		cmocka_unit_test(test_ca_check_caps_error_stops),
		cmocka_unit_test(test_ca_check_unparsable),
		cmocka_unit_test(test_ca_check_refused),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
