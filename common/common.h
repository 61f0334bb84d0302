/*
 * common: the things every module below daemon/ may use and nothing else:
 * error codes, logging, durations, times, UUIDs, growable buffers and
 * small string helpers. Nothing here knows about renewals.
 *
 * Invariants:
 *  - functions return 0 (RN_OK) or a negative rn_err; rn_strerror() has a
 *    text for every value;
 *  - rn_buf never holds more than its cap (0 = unlimited) and is always
 *    NUL-terminated so it can be used as a C string;
 *  - the logger never prints a value passed through log_secret fields:
 *    callers simply do not pass secrets.
 */
#ifndef RN_COMMON_H
#define RN_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define RN_VERSION "0.1.0"

typedef enum rn_err {
	RN_OK = 0,
	RN_ENOMEM = -1,	  /* out of memory */
	RN_EINVAL = -2,	  /* invalid argument or input */
	RN_EIO = -3,	  /* I/O error, see errno */
	RN_ENOTFOUND = -4, /* no such object */
	RN_EEXIST = -5,	  /* already exists */
	RN_ETOOBIG = -6,  /* size cap exceeded */
	RN_ETIMEDOUT = -7, /* deadline passed */
	RN_ESTORE = -8,	  /* database error */
	RN_ECONFIG = -9,  /* configuration error */
	RN_EBUSY = -10,	  /* resource busy / state conflict */
	RN_EPROTO = -11,  /* protocol error from a peer */
	RN_ECRYPTO = -12, /* OpenSSL failure */
	RN_ECANCELED = -13, /* operation cancelled */
	RN_EFULL = -14,	  /* storage full */
} rn_err;

const char *rn_strerror(int err);

/* ---- logging ---------------------------------------------------------- */

enum { RN_LOG_DEBUG, RN_LOG_INFO, RN_LOG_WARN, RN_LOG_ERROR };
enum { RN_LOGFMT_LOGFMT, RN_LOGFMT_JSON };

void log_setup(int level, int format);
int log_level_parse(const char *s); /* -1 when unknown */
/*
 * Structured log line. `msg` is a fixed human message; the varargs are
 * key/value pairs of C strings terminated by NULL, e.g.
 *   log_kv(RN_LOG_INFO, "job pushed", "job", id, "host", uuid, NULL);
 * NULL values are skipped.
 */
void log_kv(int level, const char *msg, ...);
/* printf-style message, no extra keys; log_warn appends strerror(errno). */
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_errorx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- durations and time ----------------------------------------------- */

/* "90s", "5m", "12h", "7d" -> seconds. Returns RN_EINVAL on anything else
 * (no sign, no empty number, no overflow, no missing unit). */
int rn_duration_parse(const char *s, int64_t *out);
/* Shortest exact form: 86400 -> "1d", 90 -> "90s". */
void rn_duration_format(int64_t secs, char *buf, size_t len);
/* Unix seconds, UTC, shifted by RENEWD_TIME_OFFSET seconds when set (tests). */
int64_t rn_now(void);
/* RFC 3339 UTC "2026-11-23T15:28:06Z"; buf >= 21 bytes. */
void rn_time_format(int64_t t, char *buf, size_t len);
#define RN_TIME_LEN 32

/* ---- randomness, ids, hashes ------------------------------------------ */

int rn_random_bytes(void *buf, size_t len); /* OpenSSL RAND_bytes */
/* Random version-4 UUID, lowercase, 36 chars + NUL. */
int rn_uuid_v4(char out[37]);
/*
 * A UUID of version 7 (RFC 9562): the first 48 bits are the Unix time in
 * milliseconds, the rest random, so IDs made one after the other sort
 * together. For keys the store indexes: a new one lands on the B-tree's
 * last page instead of a random one.
 */
int rn_uuid_v7(char out[37]);
/* Hex SHA-256 of data, 64 chars + NUL. */
void rn_sha256_hex(const void *data, size_t len, char out[65]);
/*
 * SCEP proxy tokens. A token is 12 hex digits of the Unix time in
 * milliseconds and 32 base64url characters of 24 random bytes (192
 * secret bits). The store keeps only its key: the time digits and the
 * SHA-256 of the whole token, so tokens minted one after the other sort
 * together and a new one lands on the index's last page. A token of
 * another form (the 43-character ones of renewd before 2026-11-24) is
 * keyed by its SHA-256 alone, as those were stored.
 */
#define RN_TOKEN_LEN 44
#define RN_TOKEN_KEY_LEN (12 + 64)
int rn_token_new(char out[RN_TOKEN_LEN + 1]);
void rn_token_key(const char *token, char out[RN_TOKEN_KEY_LEN + 1]);
/* HMAC-SHA256 of data under key as lowercase hex. */
int rn_hmac_sha256_hex(const void *key, size_t keylen, const void *data,
		       size_t len, char out[65]);
/* Standard base64 (with padding) / base64url (no padding); malloc'd. */
char *rn_base64(const void *data, size_t len);
/* Base64 of data into out (room for 4 * ((len + 2) / 3) + 1 bytes, NUL
 * written); returns the length without the NUL. */
size_t rn_base64_to(char *out, const void *data, size_t len);
char *rn_base64url(const void *data, size_t len);
/* Strict standard base64 decode (whitespace ignored, padding only at the
 * end); malloc'd with a NUL after the *outlen bytes. RN_EINVAL otherwise. */
int rn_base64_decode(const char *s, size_t slen, unsigned char **out,
		     size_t *outlen);
/* 64-bit FNV-1a; stable across runs and builds (used by the smear). */
uint64_t rn_hash64(const void *data, size_t len, uint64_t seed);

/* ---- buffers ---------------------------------------------------------- */

typedef struct rn_buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap; /* maximum len, 0 = no cap */
} rn_buf;

#define RN_BUF_INIT { NULL, 0, 0, 0 }
void rn_buf_init(rn_buf *b, size_t cap);
void rn_buf_release(rn_buf *b);
int rn_buf_add(rn_buf *b, const void *data, size_t len); /* RN_ETOOBIG past cap */
int rn_buf_adds(rn_buf *b, const char *s);
/* Room for `extra` more bytes (and the NUL) without another allocation:
 * data[len .. len + extra] may then be written before len is moved. */
int rn_buf_reserve(rn_buf *b, size_t extra);
int rn_buf_addf(rn_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void rn_buf_reset(rn_buf *b);
/* Append s percent-encoded: all but RFC 3986 unreserved characters. */
int rn_buf_add_pct(rn_buf *b, const char *s);
/* Hand over the data (NUL-terminated, caller frees); the buffer is empty. */
char *rn_buf_detach(rn_buf *b, size_t *len);

/* ---- strings and files ------------------------------------------------ */

char *rn_strdup(const char *s); /* NULL-safe */
char *rn_strndup(const char *s, size_t n);
char *rn_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Read a whole file up to cap bytes; RN_ETOOBIG past it, RN_EIO (errno). */
int rn_file_read(const char *path, size_t cap, char **out, size_t *len);
/* Read a secret file: contents with one trailing newline removed. */
int rn_secret_read_file(const char *path, char **out);
/* fnmatch(3) wrapper: "*" matches all. */
int rn_glob_match(const char *pattern, const char *s);

/* ---- error lists (configuration and validation) ----------------------- */

/* Ordered list of messages, e.g. "renewd.yaml:12:7: 'smear' ...". */
typedef struct rn_errlist {
	char **msgs;
	size_t n;
	size_t alloc;
} rn_errlist;

void rn_errlist_init(rn_errlist *l);
void rn_errlist_release(rn_errlist *l);
void rn_errlist_addf(rn_errlist *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
