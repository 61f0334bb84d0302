/*
 * scep CA check: GetCACaps then GetCACert through net_http, and the
 * parser of the GetCACert answer. See scep.h.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "scep/scep.h"

#define CT_CA "application/x-x509-ca-cert"
#define CT_CA_RA "application/x-x509-ca-ra-cert"
#define RESP_CAP (1024 * 1024)

/* Does content type ct (parameters after ';' ignored) name media `want`? */
static int
ctype_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	if (ct == NULL)
		return 0;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	if (strncasecmp(ct, want, n) != 0)
		return 0;
	ct += n;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	return *ct == '\0' || *ct == ';';
}

static int64_t
asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return 0;
	return (int64_t)timegm(&tm);
}

/* Fill the certificate fields of *out from the chosen CA certificate. */
static int
fill_from_cert(X509 *x, scep_ca_info *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0, i;
	BIO *b;
	char *p;
	long n;

	if (!X509_digest(x, EVP_sha256(), md, &mdlen) || mdlen != 32)
		return RN_ECRYPTO;
	for (i = 0; i < mdlen; i++)
		snprintf(out->sha256 + 2 * i, 3, "%02x", md[i]);
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return RN_ENOMEM;
	if (X509_NAME_print_ex(b, X509_get_subject_name(x), 0,
			       XN_FLAG_RFC2253) < 0) {
		BIO_free(b);
		return RN_ECRYPTO;
	}
	n = BIO_get_mem_data(b, &p);
	if (n < 0)
		n = 0;
	if ((size_t)n >= sizeof(out->ca_subject))
		n = (long)sizeof(out->ca_subject) - 1;
	memcpy(out->ca_subject, p, (size_t)n);
	out->ca_subject[n] = '\0';
	BIO_free(b);
	out->not_before = asn1_time_unix(X509_get0_notBefore(x));
	out->not_after = asn1_time_unix(X509_get0_notAfter(x));
	return 0;
}

/* One DER certificate filling the whole body. */
static X509 *
parse_single(const unsigned char *body, size_t len)
{
	const unsigned char *p = body;
	X509 *x = d2i_X509(NULL, &p, (long)len);

	if (x && p != body + len) {
		X509_free(x);
		x = NULL;
	}
	return x;
}

/*
 * A degenerate SignedData: its certificates, the one with CA:TRUE (an RA
 * bundle also carries the RA's own certificates) or else the first.
 */
static X509 *
parse_bundle(const unsigned char *body, size_t len, int *ncerts)
{
	const unsigned char *p = body;
	CMS_ContentInfo *cms;
	STACK_OF(X509) *certs = NULL;
	X509 *pick = NULL;
	int i, n;

	cms = d2i_CMS_ContentInfo(NULL, &p, (long)len);
	if (cms == NULL)
		return NULL;
	if (OBJ_obj2nid(CMS_get0_type(cms)) == NID_pkcs7_signed)
		certs = CMS_get1_certs(cms);
	n = certs ? sk_X509_num(certs) : 0;
	for (i = 0; i < n && pick == NULL; i++)
		if (X509_check_ca(sk_X509_value(certs, i)) == 1)
			pick = sk_X509_value(certs, i);
	if (pick == NULL && n > 0)
		pick = sk_X509_value(certs, 0);
	if (pick)
		X509_up_ref(pick);
	*ncerts = n;
	sk_X509_pop_free(certs, X509_free);
	CMS_ContentInfo_free(cms);
	return pick;
}

int
scep_cacert_parse(const void *body, size_t len, const char *content_type,
		  scep_ca_info *out)
{
	scep_ca_info r;
	X509 *x = NULL;
	int ncerts = 0, rc;

	if (body == NULL || out == NULL || len == 0 || len > LONG_MAX)
		return RN_EINVAL;
	if (ctype_is(content_type, CT_CA)) {
		x = parse_single(body, len);
		ncerts = x ? 1 : 0;
	} else if (ctype_is(content_type, CT_CA_RA)) {
		x = parse_bundle(body, len, &ncerts);
	} else {
		x = parse_single(body, len);
		ncerts = x ? 1 : 0;
		if (x == NULL)
			x = parse_bundle(body, len, &ncerts);
	}
	if (x == NULL)
		return RN_EINVAL;

	r = *out;
	r.ncerts = ncerts;
	r.content_type[0] = '\0';
	if (content_type) {
		size_t i;

		for (i = 0; content_type[i] && i < sizeof(r.content_type) - 1;
		     i++) {
			unsigned char c = (unsigned char)content_type[i];

			r.content_type[i] = (c < 0x20 || c >= 0x7f) ? '?'
								     : (char)c;
		}
		r.content_type[i] = '\0';
	}
	rc = fill_from_cert(x, &r);
	X509_free(x);
	if (rc)
		return rc;
	*out = r;
	return 0;
}

/* ---- the asynchronous check ------------------------------------------- */

typedef struct ca_check {
	net_http *http;
	char *url; /* base, without the operation */
	char *ca_file; /* the CA's cas[].ca_file, or NULL */
	int64_t timeout_ms;
	scep_ca_check_cb cb;
	void *arg;
	scep_ca_info info;
} ca_check;

static void check_cacert_done(void *arg, const net_http_resp *resp);

static void
check_finish(ca_check *c)
{
	c->cb(c->arg, &c->info);
	free(c->url);
	free(c->ca_file);
	free(c);
}

static int
check_start(ca_check *c, const char *op, net_http_cb cb)
{
	net_http_req req;
	char *url;
	int rc;

	url = rn_asprintf("%s%soperation=%s", c->url,
			  strchr(c->url, '?') ? "&" : "?", op);
	if (url == NULL)
		return RN_ENOMEM;
	memset(&req, 0, sizeof(req));
	req.method = "GET";
	req.url = url;
	req.timeout_ms = c->timeout_ms;
	req.max_response = RESP_CAP;
	req.ca_file = c->ca_file;
	rc = net_http_request(c->http, &req, cb, c);
	free(url);
	return rc;
}

/* 0 when resp is a 200; else the error text in c->info, nonzero. */
static int
check_resp_failed(ca_check *c, const char *op, const net_http_resp *resp)
{
	char *e = c->info.error;
	size_t n = sizeof(c->info.error);

	switch (resp->rc) {
	case 0:
		if (resp->status == 200)
			return 0;
		snprintf(e, n, "%s: http %ld", op, resp->status);
		return 1;
	case RN_ETIMEDOUT:
		snprintf(e, n, "%s: timeout", op);
		return 1;
	case RN_ETOOBIG:
		snprintf(e, n, "%s: response over %d bytes", op, RESP_CAP);
		return 1;
	case RN_ECANCELED:
		snprintf(e, n, "%s: cancelled", op);
		return 1;
	default:
		snprintf(e, n, "%s: connect error: %s", op,
			 resp->error ? resp->error : rn_strerror(resp->rc));
		return 1;
	}
}

/*
 * GetCACaps is one capability per line (RFC 8894 3.5.2); keep whole,
 * printable items only, so a long or hostile answer cannot produce a
 * half item or an unloggable byte.
 */
static void
caps_join(char *dst, size_t size, const char *body, size_t len)
{
	size_t i = 0, used = 0;

	dst[0] = '\0';
	while (i < len) {
		size_t s = i, e, k, need;

		while (i < len && body[i] != '\n')
			i++;
		e = i;
		i++; /* past '\n' */
		while (s < e && (body[s] == ' ' || body[s] == '\t' ||
				 body[s] == '\r'))
			s++;
		while (e > s && (body[e - 1] == ' ' || body[e - 1] == '\t' ||
				 body[e - 1] == '\r'))
			e--;
		if (e == s)
			continue;
		need = (e - s) + (used ? 1 : 0);
		if (used + need >= size)
			break;
		if (used)
			dst[used++] = ',';
		for (k = s; k < e; k++) {
			unsigned char c = (unsigned char)body[k];

			dst[used++] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
		}
		dst[used] = '\0';
	}
}

static void
check_cacaps_done(void *arg, const net_http_resp *resp)
{
	ca_check *c = arg;
	int rc;

	if (check_resp_failed(c, "GetCACaps", resp)) {
		check_finish(c);
		return;
	}
	caps_join(c->info.capabilities, sizeof(c->info.capabilities),
		  resp->body, resp->body_len);
	rc = check_start(c, "GetCACert", check_cacert_done);
	if (rc) {
		snprintf(c->info.error, sizeof(c->info.error),
			 "GetCACert: %s", rn_strerror(rc));
		check_finish(c);
	}
}

static void
check_cacert_done(void *arg, const net_http_resp *resp)
{
	ca_check *c = arg;

	if (check_resp_failed(c, "GetCACert", resp)) {
		check_finish(c);
		return;
	}
	if (scep_cacert_parse(resp->body, resp->body_len, resp->content_type,
			      &c->info) != 0) {
		snprintf(c->info.error, sizeof(c->info.error),
			 "GetCACert: unparsable certificate");
		check_finish(c);
		return;
	}
	c->info.ok = 1;
	check_finish(c);
}

int
scep_ca_check(net_http *http, const cfg_ca *ca, scep_ca_check_cb cb,
	      void *arg)
{
	ca_check *c;
	int rc;

	if (http == NULL || ca == NULL || ca->url == NULL || cb == NULL)
		return RN_EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RN_ENOMEM;
	c->url = rn_strdup(ca->url);
	c->ca_file = rn_strdup(ca->ca_file);
	if (c->url == NULL || (ca->ca_file && c->ca_file == NULL)) {
		free(c->url);
		free(c->ca_file);
		free(c);
		return RN_ENOMEM;
	}
	c->http = http;
	c->timeout_ms = ca->timeout <= 0 ? 30000
		       : ca->timeout > INT64_MAX / 1000 ? INT64_MAX
							: ca->timeout * 1000;
	c->cb = cb;
	c->arg = arg;
	rc = check_start(c, "GetCACaps", check_cacaps_done);
	if (rc) {
		free(c->url);
		free(c->ca_file);
		free(c);
	}
	return rc;
}
