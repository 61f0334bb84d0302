/*
 * scepload: a SCEP load generator for the proxy benchmark. Requests go
 * out on C keep-alive connections at once (libcurl multi, one easy handle
 * per slot, reused), each latency measured from the request's start to
 * its last byte.
 *
 *   scepload get URLFILE OPERATION COUNT C
 *       GET <url>?operation=OPERATION, cycling through the URLs of
 *       URLFILE (one a line).
 *   scepload pki URLFILE CA_PEM CHALLENGE COUNT C
 *       POST <url>?operation=PKIOperation, URL i of URLFILE for request i
 *       (COUNT <= lines: a proxy token is good for one enrollment). The
 *       COUNT PKCSReq messages (one RSA key, a CSR per request with its
 *       own CN and the challenge, enveloped to CA_PEM with AES-128) are
 *       built before the clock starts.
 *
 * Prints one JSON line: count, ok (HTTP 200, and for pki a CertRep whose
 * pkiStatus is SUCCESS), seconds, per_s, p50_ms, p90_ms, p99_ms, max_ms;
 * with SCEPLOAD_EACH set in the environment also each_ms, the latency of
 * request i at index i (for paired comparisons of interleaved URLs).
 * Only for 127.0.0.1 targets; stops after COUNT requests.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

typedef struct body {
	unsigned char *p;
	int len;
} body;

typedef struct slot {
	CURL *h;
	int idx; /* request index, -1 when idle */
	double t0;
	char *resp;
	size_t rlen;
	struct curl_slist *hdrs;
} slot;

static char **urls;
static int nurls;
static body *bodies;
static double *lat, *lat_each; /* in finishing order; by request */
static int nid_msgtype, nid_pkistatus, nid_txid, nid_snonce;

static double
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static void
die(const char *m)
{
	fprintf(stderr, "scepload: %s\n", m);
	exit(1);
}

static void
read_urls(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int cap = 0;

	if (f == NULL)
		die("cannot open the URL file");
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '\0')
			continue;
		if (nurls == cap) {
			cap = cap ? cap * 2 : 256;
			urls = realloc(urls, (size_t)cap * sizeof(*urls));
		}
		urls[nurls++] = strdup(line);
	}
	fclose(f);
	if (nurls == 0)
		die("no URLs");
}

/* ---- PKCSReq messages ----------------------------------------------- */

static X509 *
self_signed(EVP_PKEY *k)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)"scepload", -1, -1,
				   0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_set_pubkey(x, k);
	X509_sign(x, k, EVP_sha256());
	X509_NAME_free(n);
	return x;
}

static int
csr_der(EVP_PKEY *k, const char *cn, const char *challenge,
	unsigned char **out)
{
	X509_REQ *r = X509_REQ_new();
	X509_NAME *n = X509_NAME_new();
	int len;

	X509_NAME_add_entry_by_txt(n, "O", MBSTRING_ASC,
				   (const unsigned char *)"renewd bench", -1,
				   -1, 0);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_REQ_set_subject_name(r, n);
	X509_REQ_set_pubkey(r, k);
	X509_REQ_add1_attr_by_NID(r, NID_pkcs9_challengePassword,
				  MBSTRING_ASC,
				  (const unsigned char *)challenge, -1);
	X509_REQ_sign(r, k, EVP_sha256());
	*out = NULL;
	len = i2d_X509_REQ(r, out);
	X509_NAME_free(n);
	X509_REQ_free(r);
	return len;
}

static void
add_str_attr(PKCS7_SIGNER_INFO *si, int nid, int type, const void *p,
	     int len)
{
	ASN1_STRING *s = ASN1_STRING_type_new(type);

	ASN1_STRING_set(s, p, len);
	PKCS7_add_signed_attribute(si, nid, type, s);
}

static body
pkcsreq(EVP_PKEY *k, X509 *signer, X509 *ca, const char *cn,
	const char *challenge)
{
	unsigned char *csr = NULL, nonce[16], txid[32];
	char txhex[65];
	STACK_OF(X509) *rcpt = sk_X509_new_null();
	PKCS7 *env, *p7;
	PKCS7_SIGNER_INFO *si;
	BIO *in, *out, *mem;
	body b;
	int len, i;

	len = csr_der(k, cn, challenge, &csr);
	sk_X509_push(rcpt, ca);
	in = BIO_new_mem_buf(csr, len);
	env = PKCS7_encrypt(rcpt, in, EVP_aes_128_cbc(), PKCS7_BINARY);
	if (env == NULL)
		die("cannot envelope the CSR");
	mem = BIO_new(BIO_s_mem());
	i2d_PKCS7_bio(mem, env);

	p7 = PKCS7_new();
	PKCS7_set_type(p7, NID_pkcs7_signed);
	PKCS7_content_new(p7, NID_pkcs7_data);
	si = PKCS7_add_signature(p7, signer, k, EVP_sha256());
	PKCS7_add_certificate(p7, signer);
	PKCS7_add_signed_attribute(si, NID_pkcs9_contentType, V_ASN1_OBJECT,
				   OBJ_nid2obj(NID_pkcs7_data));
	add_str_attr(si, nid_msgtype, V_ASN1_PRINTABLESTRING, "19", 2);
	RAND_bytes(txid, sizeof(txid));
	for (i = 0; i < 32; i++)
		sprintf(txhex + 2 * i, "%02x", txid[i]);
	add_str_attr(si, nid_txid, V_ASN1_PRINTABLESTRING, txhex, 64);
	RAND_bytes(nonce, sizeof(nonce));
	add_str_attr(si, nid_snonce, V_ASN1_OCTET_STRING, nonce,
		     sizeof(nonce));
	out = PKCS7_dataInit(p7, NULL);
	{
		char *ep;
		long el = BIO_get_mem_data(mem, &ep);
		BIO_write(out, ep, (int)el);
	}
	if (!PKCS7_dataFinal(p7, out))
		die("cannot sign the PKCSReq");
	b.p = NULL;
	b.len = i2d_PKCS7(p7, &b.p);
	BIO_free_all(out);
	BIO_free(mem);
	BIO_free(in);
	PKCS7_free(env);
	PKCS7_free(p7);
	sk_X509_free(rcpt);
	OPENSSL_free(csr);
	return b;
}

/* pkiStatus of a CertRep: 0 SUCCESS, 2 FAILURE, 3 PENDING; -1 unreadable */
static int
certrep_status(const char *p, size_t n)
{
	const unsigned char *q = (const unsigned char *)p;
	PKCS7 *p7 = d2i_PKCS7(NULL, &q, (long)n);
	STACK_OF(PKCS7_SIGNER_INFO) *sis;
	ASN1_TYPE *t;
	int st = -1;

	if (p7 == NULL)
		return -1;
	sis = PKCS7_get_signer_info(p7);
	if (sis && sk_PKCS7_SIGNER_INFO_num(sis) > 0) {
		t = PKCS7_get_signed_attribute(
		    sk_PKCS7_SIGNER_INFO_value(sis, 0), nid_pkistatus);
		if (t && t->type == V_ASN1_PRINTABLESTRING)
			st = atoi((const char *)ASN1_STRING_get0_data(
			    t->value.printablestring));
	}
	PKCS7_free(p7);
	return st;
}

/* ---- the load ------------------------------------------------------- */

static size_t
on_data(char *p, size_t sz, size_t n, void *arg)
{
	slot *s = arg;

	s->resp = realloc(s->resp, s->rlen + sz * n + 1);
	memcpy(s->resp + s->rlen, p, sz * n);
	s->rlen += sz * n;
	return sz * n;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pctl(const double *v, int n, double p)
{
	int k = (int)(p / 100.0 * n + 0.5) - 1;

	if (n == 0)
		return 0;
	if (k < 0)
		k = 0;
	if (k >= n)
		k = n - 1;
	return v[k];
}

int
main(int argc, char **argv)
{
	const char *mode, *op = "PKIOperation";
	int count, conc, i, started = 0, finished = 0, ok = 0, pki, running;
	int freed;
	CURLM *m;
	slot *slots;
	double t0, t1;

	if (argc < 2)
		goto usage;
	mode = argv[1];
	pki = strcmp(mode, "pki") == 0;
	if (pki ? argc != 7 : argc != 6 || strcmp(mode, "get"))
		goto usage;
	read_urls(argv[2]);
	count = atoi(argv[pki ? 5 : 4]);
	conc = atoi(argv[pki ? 6 : 5]);
	if (count < 1 || conc < 1)
		goto usage;
	if (conc > count)
		conc = count;
	lat = calloc((size_t)count, sizeof(*lat));
	lat_each = calloc((size_t)count, sizeof(*lat_each));
	if (pki) {
		FILE *f = fopen(argv[3], "r");
		X509 *ca, *signer;
		EVP_PKEY *k;
		char cn[64];

		if (count > nurls)
			die("fewer URLs (tokens) than requests");
		if (f == NULL || (ca = PEM_read_X509(f, NULL, NULL, NULL)) ==
				     NULL)
			die("cannot read the CA certificate");
		fclose(f);
		nid_msgtype = OBJ_create("2.16.840.1.113733.1.9.2",
					 "messageType", "messageType");
		nid_pkistatus = OBJ_create("2.16.840.1.113733.1.9.3",
					   "pkiStatus", "pkiStatus");
		nid_snonce = OBJ_create("2.16.840.1.113733.1.9.5",
					"senderNonce", "senderNonce");
		nid_txid = OBJ_create("2.16.840.1.113733.1.9.7",
				      "transactionID", "transactionID");
		k = EVP_RSA_gen(2048);
		signer = self_signed(k);
		bodies = calloc((size_t)count, sizeof(*bodies));
		for (i = 0; i < count; i++) {
			/* unique across runs: scepserver refuses a DN it
			 * issued before, and short runs share a second */
			snprintf(cn, sizeof(cn), "scepload %d-%ld-%d", i,
				 (long)time(NULL), (int)getpid());
			bodies[i] = pkcsreq(k, signer, ca, cn, argv[4]);
		}
	} else {
		op = argv[3];
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	m = curl_multi_init();
	slots = calloc((size_t)conc, sizeof(*slots));
	t0 = now_ms();
	for (i = 0; i < conc; i++) {
		slots[i].h = curl_easy_init();
		slots[i].idx = -1;
	}
	for (;;) {
		CURLMsg *msg;
		int left;

		for (i = 0; i < conc && started < count; i++) {
			slot *s = &slots[i];
			char *u;
			const char *base;

			if (s->idx >= 0)
				continue;
			s->idx = started++;
			base = urls[pki ? s->idx : s->idx % nurls];
			if (asprintf(&u, "%s%soperation=%s", base,
				     strchr(base, '?') ? "&" : "?", op) < 0)
				die("out of memory");
			curl_easy_setopt(s->h, CURLOPT_URL, u);
			free(u);
			curl_easy_setopt(s->h, CURLOPT_WRITEFUNCTION, on_data);
			curl_easy_setopt(s->h, CURLOPT_WRITEDATA, s);
			curl_easy_setopt(s->h, CURLOPT_TIMEOUT, 60L);
			curl_easy_setopt(s->h, CURLOPT_NOSIGNAL, 1L);
			if (pki) {
				if (s->hdrs == NULL)
					s->hdrs = curl_slist_append(
					    NULL, "Content-Type: "
						  "application/x-pki-message");
				curl_easy_setopt(s->h, CURLOPT_HTTPHEADER,
						 s->hdrs);
				curl_easy_setopt(s->h, CURLOPT_POSTFIELDS,
						 bodies[s->idx].p);
				curl_easy_setopt(s->h, CURLOPT_POSTFIELDSIZE,
						 (long)bodies[s->idx].len);
			}
			s->rlen = 0;
			s->t0 = now_ms();
			curl_multi_add_handle(m, s->h);
		}
		if (finished == count)
			break;
		curl_multi_perform(m, &running);
		freed = 0;
		while ((msg = curl_multi_info_read(m, &left))) {
			slot *s = NULL;
			long code = 0;

			if (msg->msg != CURLMSG_DONE)
				continue;
			for (i = 0; i < conc; i++)
				if (slots[i].h == msg->easy_handle)
					s = &slots[i];
			curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &code);
			lat[finished++] = now_ms() - s->t0;
			lat_each[s->idx] = lat[finished - 1];
			if (msg->data.result == CURLE_OK && code == 200 &&
			    (!pki || certrep_status(s->resp, s->rlen) == 0))
				ok++;
			else if (ok + 5 > finished) /* the first few only */
				fprintf(stderr, "scepload: request %d: curl %d "
					"http %ld\n", s->idx, msg->data.result,
					code);
			curl_multi_remove_handle(m, s->h);
			s->idx = -1;
			freed++;
		}
		/* a freed slot takes its next request at once */
		if (!freed)
			curl_multi_poll(m, NULL, 0, 100, NULL);
	}
	t1 = now_ms();
	qsort(lat, (size_t)count, sizeof(*lat), cmp_d);
	printf("{\"count\": %d, \"ok\": %d, \"seconds\": %.4f, "
	       "\"per_s\": %.1f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, "
	       "\"p99_ms\": %.3f, \"max_ms\": %.3f",
	       count, ok, (t1 - t0) / 1e3, count / ((t1 - t0) / 1e3),
	       pctl(lat, count, 50), pctl(lat, count, 90),
	       pctl(lat, count, 99), lat[count - 1]);
	if (getenv("SCEPLOAD_EACH")) {
		printf(", \"each_ms\": [");
		for (i = 0; i < count; i++)
			printf("%s%.3f", i ? ", " : "", lat_each[i]);
		printf("]");
	}
	printf("}\n");
	return 0;
usage:
	fprintf(stderr, "usage: scepload get URLFILE OPERATION COUNT C\n"
			"       scepload pki URLFILE CA_PEM CHALLENGE COUNT C\n");
	return 2;
}
