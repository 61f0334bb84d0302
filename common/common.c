/*
 * common: error texts, durations, time, randomness, hashes, buffers and
 * string helpers. See common.h.
 */
#define _GNU_SOURCE
#include "common.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

const char *
rn_strerror(int err)
{
	switch (err) {
	case RN_OK: return "success";
	case RN_ENOMEM: return "out of memory";
	case RN_EINVAL: return "invalid argument";
	case RN_EIO: return "input/output error";
	case RN_ENOTFOUND: return "not found";
	case RN_EEXIST: return "already exists";
	case RN_ETOOBIG: return "too big";
	case RN_ETIMEDOUT: return "timed out";
	case RN_ESTORE: return "database error";
	case RN_ECONFIG: return "configuration error";
	case RN_EBUSY: return "busy";
	case RN_EPROTO: return "protocol error";
	case RN_ECRYPTO: return "cryptographic failure";
	case RN_ECANCELED: return "cancelled";
	case RN_EFULL: return "storage full";
	}
	return "unknown error";
}

/* ---- durations -------------------------------------------------------- */

int
rn_duration_parse(const char *s, int64_t *out)
{
	int64_t n = 0, mult;
	const char *p = s;

	if (s == NULL || *s < '0' || *s > '9')
		return RN_EINVAL;
	while (*p >= '0' && *p <= '9') {
		if (n > (INT64_MAX - 9) / 10)
			return RN_EINVAL;
		n = n * 10 + (*p - '0');
		p++;
	}
	switch (*p) {
	case 's': mult = 1; break;
	case 'm': mult = 60; break;
	case 'h': mult = 3600; break;
	case 'd': mult = 86400; break;
	default: return RN_EINVAL;
	}
	if (p[1] != '\0')
		return RN_EINVAL;
	if (n > INT64_MAX / mult)
		return RN_EINVAL;
	*out = n * mult;
	return RN_OK;
}

void
rn_duration_format(int64_t secs, char *buf, size_t len)
{
	if (secs != 0 && secs % 86400 == 0)
		snprintf(buf, len, "%lldd", (long long)(secs / 86400));
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(buf, len, "%lldh", (long long)(secs / 3600));
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, len, "%lldm", (long long)(secs / 60));
	else
		snprintf(buf, len, "%llds", (long long)secs);
}

int64_t
rn_now(void)
{
	static int checked;
	static int64_t offset;

	/*
	 * RENEWD_TIME_OFFSET shifts the clock by a number of seconds so
	 * integration tests can move a whole fleet through time without
	 * waiting; it is read once.
	 */
	if (!checked) {
		const char *e = getenv("RENEWD_TIME_OFFSET");
		if (e != NULL)
			offset = strtoll(e, NULL, 10);
		checked = 1;
	}
	return (int64_t)time(NULL) + offset;
}

void
rn_time_format(int64_t t, char *buf, size_t len)
{
	struct tm tm;
	time_t tt = (time_t)t;

	if (gmtime_r(&tt, &tm) == NULL) {
		snprintf(buf, len, "%lld", (long long)t);
		return;
	}
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* ---- randomness and hashes -------------------------------------------- */

/*
 * RAND_bytes costs about 1 us a call (locks, the DRBG's per-call work);
 * a renewal takes three small draws (two UUIDs, a token). Small draws
 * come from a per-thread pool filled 512 bytes at a time; a byte handed
 * out is wiped from the pool.
 */
#define RAND_POOL 512

int
rn_random_bytes(void *buf, size_t len)
{
	static _Thread_local unsigned char pool[RAND_POOL];
	static _Thread_local size_t left;

	if (len > RAND_POOL / 4)
		return RAND_bytes(buf, (int)len) == 1 ? RN_OK : RN_ECRYPTO;
	if (left < len) {
		if (RAND_bytes(pool, RAND_POOL) != 1)
			return RN_ECRYPTO;
		left = RAND_POOL;
	}
	memcpy(buf, pool + RAND_POOL - left, len);
	explicit_bzero(pool + RAND_POOL - left, len);
	left -= len;
	return RN_OK;
}

static void
hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * len] = '\0';
}

/* 8-4-4-4-12 lowercase hex with the version and RFC 4122 variant set; by
 * table, not snprintf (two of these per renewal). */
static int
uuid_format(unsigned char b[16], int version, char out[37])
{
	static const unsigned char groups[] = {4, 2, 2, 2, 6};
	size_t g, at = 0;

	b[6] = (unsigned char)((b[6] & 0x0f) | (version << 4));
	b[8] = (b[8] & 0x3f) | 0x80;
	for (g = 0; g < sizeof(groups); g++) {
		hex(b, groups[g], out + at);
		b += groups[g];
		at += 2 * groups[g];
		if (g + 1 < sizeof(groups))
			out[at++] = '-';
	}
	return RN_OK;
}

int
rn_uuid_v4(char out[37])
{
	unsigned char b[16];
	int rc = rn_random_bytes(b, sizeof(b));

	return rc ? rc : uuid_format(b, 4, out);
}

/* Unix time in milliseconds, 48 bits: what leads a v7 UUID and a token. */
static uint64_t
unix_ms48(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000) &
	       0xffffffffffffULL;
}

int
rn_uuid_v7(char out[37])
{
	unsigned char b[16];
	uint64_t ms = unix_ms48();
	int i, rc = rn_random_bytes(b, sizeof(b));

	if (rc)
		return rc;
	for (i = 5; i >= 0; i--, ms >>= 8)
		b[i] = (unsigned char)(ms & 0xff);
	return uuid_format(b, 7, out);
}

void
rn_sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256(data, len, md);
	hex(md, sizeof(md), out);
}

static void base64_to_url(char *s);

int
rn_token_new(char out[RN_TOKEN_LEN + 1])
{
	unsigned char raw[24]; /* 32 base64 characters, no padding */
	int rc = rn_random_bytes(raw, sizeof(raw));

	if (rc)
		return rc;
	snprintf(out, 13, "%012llx", (unsigned long long)unix_ms48());
	rn_base64_to(out + 12, raw, sizeof(raw));
	explicit_bzero(raw, sizeof(raw));
	base64_to_url(out + 12);
	return RN_OK;
}

void
rn_token_key(const char *token, char out[RN_TOKEN_KEY_LEN + 1])
{
	size_t len = strlen(token), i;
	int timed = len == RN_TOKEN_LEN;

	for (i = 0; timed && i < 12; i++)
		timed = (token[i] >= '0' && token[i] <= '9') ||
			(token[i] >= 'a' && token[i] <= 'f');
	if (!timed) {
		rn_sha256_hex(token, len, out);
		return;
	}
	memcpy(out, token, 12);
	rn_sha256_hex(token, len, out + 12);
}

int
rn_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
		   size_t len, char out[65])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (HMAC(EVP_sha256(), key, (int)keylen, data, len, md, &mdlen) == NULL)
		return RN_ECRYPTO;
	hex(md, mdlen, out);
	return RN_OK;
}

char *
rn_base64(const void *data, size_t len)
{
	char *out = malloc(4 * ((len + 2) / 3) + 1);

	if (out != NULL)
		rn_base64_to(out, data, len);
	return out;
}

/*
 * Base64 by a table of all 4,096 pairs of characters: one lookup per 12
 * bits. Each push carries its profile (about 4 KiB) in base64, and
 * OpenSSL's EVP_EncodeBlock spent about 10 instructions a byte on it,
 * 14% of the loop's per renewal; this takes about 4 (6 with one group
 * of three bytes a turn).
 */
static char b64_pairs[4096][2];
static pthread_once_t b64_once = PTHREAD_ONCE_INIT;

static void
b64_pairs_init(void)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
				  "abcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;

	for (i = 0; i < 4096; i++) {
		b64_pairs[i][0] = tab[i >> 6];
		b64_pairs[i][1] = tab[i & 63];
	}
}

size_t
rn_base64_to(char *out, const void *data, size_t len)
{
	const unsigned char *p = data;
	size_t whole = len - len % 3, i;
	char *o = out;
	uint32_t v;

	pthread_once(&b64_once, b64_pairs_init);
	/* six bytes a turn from one 8-byte big-endian load (two bytes of
	 * it unused, so it stops 8 bytes before the end) */
	for (i = 0; i + 8 <= len; i += 6, o += 8) {
		uint64_t w;

		memcpy(&w, p + i, 8);
		w = be64toh(w);
		memcpy(o, b64_pairs[w >> 52], 2);
		memcpy(o + 2, b64_pairs[(w >> 40) & 0xfff], 2);
		memcpy(o + 4, b64_pairs[(w >> 28) & 0xfff], 2);
		memcpy(o + 6, b64_pairs[(w >> 16) & 0xfff], 2);
	}
	for (; i < whole; i += 3, o += 4) {
		v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		memcpy(o, b64_pairs[v >> 12], 2);
		memcpy(o + 2, b64_pairs[v & 0xfff], 2);
	}
	if (len % 3) {
		v = (uint32_t)p[i] << 16 |
		    (len % 3 == 2 ? (uint32_t)p[i + 1] << 8 : 0);
		memcpy(o, b64_pairs[v >> 12], 2);
		o[2] = len % 3 == 2 ? b64_pairs[v & 0xfff][0] : '=';
		o[3] = '=';
		o += 4;
	}
	*o = '\0';
	return (size_t)(o - out);
}

/* Standard base64 to base64url, in place: the alphabet, no padding. */
static void
base64_to_url(char *s)
{
	char *p;
	size_t n;

	for (p = s; *p; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	n = (size_t)(p - s);
	while (n > 0 && s[n - 1] == '=')
		s[--n] = '\0';
}

char *
rn_base64url(const void *data, size_t len)
{
	char *s = rn_base64(data, len);

	if (s != NULL)
		base64_to_url(s);
	return s;
}

int
rn_base64_decode(const char *s, size_t slen, unsigned char **out,
		 size_t *outlen)
{
	char *clean;
	unsigned char *dec;
	size_t i, n = 0, pad = 0;
	int dlen;

	clean = malloc(slen + 1);
	if (clean == NULL)
		return RN_ENOMEM;
	/*
	 * EVP_DecodeBlock is lenient ("Q=Q=", "===="): check the alphabet
	 * and that padding, at most two '=', only ends the text.
	 */
	for (i = 0; i < slen; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=')
			pad++;
		else if (pad > 0 || !((c >= 'A' && c <= 'Z') ||
				      (c >= 'a' && c <= 'z') ||
				      (c >= '0' && c <= '9') || c == '+' ||
				      c == '/'))
			break;
		clean[n++] = (char)c;
	}
	clean[n] = '\0';
	if (i < slen || n % 4 != 0 || pad > 2) {
		free(clean);
		return RN_EINVAL;
	}
	dec = malloc(n / 4 * 3 + 1);
	if (dec == NULL) {
		free(clean);
		return RN_ENOMEM;
	}
	dlen = n ? EVP_DecodeBlock(dec, (unsigned char *)clean, (int)n) : 0;
	if (dlen < 0) {
		free(clean);
		free(dec);
		return RN_EINVAL;
	}
	free(clean);
	*out = dec;
	*outlen = (size_t)dlen - pad;
	dec[*outlen] = '\0';
	return RN_OK;
}

uint64_t
rn_hash64(const void *data, size_t len, uint64_t seed)
{
	const unsigned char *p = data;
	uint64_t h = 0xcbf29ce484222325ULL ^ seed;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= 0x100000001b3ULL;
	}
	/* final avalanche so nearby inputs spread over the whole range */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

/* ---- buffers ---------------------------------------------------------- */

void
rn_buf_init(rn_buf *b, size_t cap)
{
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	b->cap = cap;
}

void
rn_buf_release(rn_buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->alloc = 0;
}

void
rn_buf_reset(rn_buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

static int
buf_grow(rn_buf *b, size_t extra)
{
	size_t need = b->len + extra + 1, na;
	char *nd;

	if (b->cap && b->len + extra > b->cap)
		return RN_ETOOBIG;
	if (need <= b->alloc)
		return RN_OK;
	na = b->alloc ? b->alloc : 64;
	while (na < need)
		na *= 2;
	nd = realloc(b->data, na);
	if (nd == NULL)
		return RN_ENOMEM;
	b->data = nd;
	b->alloc = na;
	return RN_OK;
}

int
rn_buf_add(rn_buf *b, const void *data, size_t len)
{
	int rc = buf_grow(b, len);

	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return RN_OK;
}

int
rn_buf_reserve(rn_buf *b, size_t extra)
{
	return buf_grow(b, extra);
}

int
rn_buf_adds(rn_buf *b, const char *s)
{
	return rn_buf_add(b, s, strlen(s));
}

int
rn_buf_addf(rn_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return RN_EINVAL;
	rc = buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return RN_OK;
}

int
rn_buf_add_pct(rn_buf *b, const char *s)
{
	int rc = RN_OK;

	for (; *s && rc == RN_OK; s++) {
		unsigned char ch = (unsigned char)*s;
		if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' ||
		    ch == '.' || ch == '~')
			rc = rn_buf_add(b, s, 1);
		else
			rc = rn_buf_addf(b, "%%%02X", ch);
	}
	return rc;
}

char *
rn_buf_detach(rn_buf *b, size_t *len)
{
	char *d = b->data;

	if (d == NULL)
		d = calloc(1, 1);
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->alloc = 0;
	return d;
}

/* ---- strings and files ------------------------------------------------ */

char *
rn_strdup(const char *s)
{
	return s ? strdup(s) : NULL;
}

char *
rn_strndup(const char *s, size_t n)
{
	return s ? strndup(s, n) : NULL;
}

char *
rn_asprintf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

int
rn_file_read(const char *path, size_t cap, char **out, size_t *len)
{
	rn_buf b;
	char chunk[16384];
	ssize_t n;
	int fd, rc = RN_OK;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return RN_EIO;
	rn_buf_init(&b, cap);
	for (;;) {
		n = read(fd, chunk, sizeof(chunk));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = RN_EIO;
			break;
		}
		if (n == 0)
			break;
		rc = rn_buf_add(&b, chunk, (size_t)n);
		if (rc)
			break;
	}
	{
		int saved = errno;
		close(fd);
		errno = saved;
	}
	if (rc) {
		rn_buf_release(&b);
		return rc;
	}
	*out = rn_buf_detach(&b, len);
	return RN_OK;
}

int
rn_secret_read_file(const char *path, char **out)
{
	size_t len;
	int rc = rn_file_read(path, 64 * 1024, out, &len);

	if (rc)
		return rc;
	if (len > 0 && (*out)[len - 1] == '\n')
		(*out)[--len] = '\0';
	if (len > 0 && (*out)[len - 1] == '\r')
		(*out)[--len] = '\0';
	return RN_OK;
}

int
rn_glob_match(const char *pattern, const char *s)
{
	if (pattern == NULL || strcmp(pattern, "*") == 0)
		return 1;
	return s != NULL && fnmatch(pattern, s, 0) == 0;
}

/* ---- error lists ------------------------------------------------------ */

void
rn_errlist_init(rn_errlist *l)
{
	l->msgs = NULL;
	l->n = l->alloc = 0;
}

void
rn_errlist_release(rn_errlist *l)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		free(l->msgs[i]);
	free(l->msgs);
	rn_errlist_init(l);
}

void
rn_errlist_addf(rn_errlist *l, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (s == NULL)
		return;
	if (l->n == l->alloc) {
		size_t na = l->alloc ? l->alloc * 2 : 8;
		char **nm = realloc(l->msgs, na * sizeof(*nm));
		if (nm == NULL) {
			free(s);
			return;
		}
		l->msgs = nm;
		l->alloc = na;
	}
	l->msgs[l->n++] = s;
}
