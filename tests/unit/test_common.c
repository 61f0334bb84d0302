/*
 * common: durations, buffers, base64, hashes, UUIDs, time and HMAC.
 *
 * Pure functions: every expected value is fixed here (known answers from
 * RFCs, or pinned values computed once from the documented algorithm).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "common/common.h"

/* ---- durations -------------------------------------------------------- */

static void
test_duration_parse_ok(void **state)
{
	static const struct {
		const char *in;
		int64_t want;
	} cases[] = {
		{ "90s", 90 },
		{ "5m", 300 },
		{ "12h", 12 * 3600 },
		{ "7d", 7 * 86400 },
		{ "0s", 0 },
		{ "0d", 0 },
		{ "1s", 1 },
		{ "007m", 420 },
		{ "30d", 30 * 86400 },
		/* largest whole-day value that fits in int64 */
		{ "106751991167300d", INT64_C(106751991167300) * 86400 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int64_t v = -12345;
		int rc = rn_duration_parse(cases[i].in, &v);
		if (rc != RN_OK || v != cases[i].want)
			print_message("input '%s': rc %d value %lld\n",
				      cases[i].in, rc, (long long)v);
		assert_int_equal(rc, RN_OK);
		assert_true(v == cases[i].want);
	}
}

static void
test_duration_parse_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"5",
		"m",
		"-5m",
		"+5m",
		"5x",
		"5mm",
		" 5m",
		"5m ",
		"5 m",
		"5.5h",
		"5M",
		"99999999999999999999d",
		"9223372036854775808s",	 /* INT64_MAX + 1 */
		"106751991167301d",	 /* days * 86400 overflows */
		"153722867280912931m",	 /* minutes * 60 overflows */
		"2562047788015216h",	 /* hours * 3600 overflows */
	};
	size_t i;

	assert_int_equal(rn_duration_parse(NULL, &(int64_t){ 0 }), RN_EINVAL);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t v = 4242;
		int rc = rn_duration_parse(bad[i], &v);
		if (rc != RN_EINVAL)
			print_message("input '%s' accepted: %lld\n", bad[i],
				      (long long)v);
		assert_int_equal(rc, RN_EINVAL);
		/* a rejected input does not write the output */
		assert_true(v == 4242);
	}
}

static void
test_duration_format(void **state)
{
	static const struct {
		int64_t secs;
		const char *want;
	} cases[] = {
		{ 0, "0s" },	   { 1, "1s" },		 { 59, "59s" },
		{ 60, "1m" },	   { 90, "90s" },	 { 300, "5m" },
		{ 3600, "1h" },	   { 5400, "90m" },	 { 43200, "12h" },
		{ 86400, "1d" },   { 90000, "25h" },	 { 604800, "7d" },
		{ 86401, "86401s" }, { 2592000, "30d" },
	};
	static const int64_t roundtrip[] = {
		0, 1, 59, 60, 61, 90, 300, 3599, 3600, 3660, 5400, 43200,
		86399, 86400, 86460, 90000, 604800, 2592000, 31536000,
		INT64_C(106751991167300) * 86400,
	};
	char buf[32];
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rn_duration_format(cases[i].secs, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
	for (i = 0; i < sizeof(roundtrip) / sizeof(roundtrip[0]); i++) {
		int64_t back = -1;
		rn_duration_format(roundtrip[i], buf, sizeof(buf));
		assert_int_equal(rn_duration_parse(buf, &back), RN_OK);
		assert_true(back == roundtrip[i]);
	}
}

/* ---- buffers ---------------------------------------------------------- */

static void
test_buf_cap(void **state)
{
	rn_buf b;
	char *d;
	size_t len = 99;

	rn_buf_init(&b, 10);
	assert_int_equal(rn_buf_adds(&b, "hello"), RN_OK);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "hello");
	/* 5 + 6 > 10: refused, contents unchanged */
	assert_int_equal(rn_buf_adds(&b, "world!"), RN_ETOOBIG);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "hello");
	assert_int_equal(rn_buf_addf(&b, "%d", 123456), RN_ETOOBIG);
	assert_int_equal(b.len, 5);
	assert_string_equal(b.data, "hello");
	/* exactly up to the cap is fine */
	assert_int_equal(rn_buf_addf(&b, "%s", "world"), RN_OK);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "helloworld");
	assert_int_equal(rn_buf_add(&b, "x", 1), RN_ETOOBIG);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "helloworld");
	/* adding nothing at the cap is not an error */
	assert_int_equal(rn_buf_add(&b, "", 0), RN_OK);
	assert_int_equal(b.len, 10);

	rn_buf_reset(&b);
	assert_int_equal(b.len, 0);
	assert_string_equal(b.data, "");
	assert_int_equal(rn_buf_adds(&b, "0123456789"), RN_OK);
	d = rn_buf_detach(&b, &len);
	assert_int_equal(len, 10);
	assert_string_equal(d, "0123456789");
	assert_null(b.data);
	assert_int_equal(b.len, 0);
	free(d);
	rn_buf_release(&b);
}

static void
test_buf_unlimited_grow(void **state)
{
	rn_buf b = RN_BUF_INIT;
	size_t i;

	for (i = 0; i < 1000; i++)
		assert_int_equal(rn_buf_addf(&b, "%03zu,", i % 1000), RN_OK);
	assert_int_equal(b.len, 4000);
	assert_int_equal(strlen(b.data), 4000);
	assert_memory_equal(b.data, "000,001,002,", 12);
	assert_memory_equal(b.data + 3996, "999,", 4);
	rn_buf_release(&b);

	/* detach of an empty buffer still gives a C string */
	{
		size_t len = 7;
		char *d = rn_buf_detach(&b, &len);
		assert_non_null(d);
		assert_int_equal(len, 0);
		assert_string_equal(d, "");
		free(d);
	}
}

/* ---- base64 ----------------------------------------------------------- */

/* base64url -> standard base64 with padding, for decoding. */
static char *
url_to_std(const char *u)
{
	size_t n = strlen(u), i, padded = (n + 3) / 4 * 4;
	char *s = malloc(padded + 1);

	assert_non_null(s);
	for (i = 0; i < n; i++)
		s[i] = u[i] == '-' ? '+' : u[i] == '_' ? '/' : u[i];
	for (; i < padded; i++)
		s[i] = '=';
	s[padded] = '\0';
	return s;
}

static void
test_base64_known(void **state)
{
	/* RFC 4648 section 10 test vectors */
	static const char *const vec[][2] = {
		{ "", "" },	       { "f", "Zg==" },
		{ "fo", "Zm8=" },      { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" },
		{ "foobar", "Zm9vYmFy" },
	};
	static const unsigned char hi[] = { 0xfb, 0xff, 0xbf, 0xfe };
	size_t i;
	char *s;

	for (i = 0; i < sizeof(vec) / sizeof(vec[0]); i++) {
		s = rn_base64(vec[i][0], strlen(vec[i][0]));
		assert_non_null(s);
		assert_string_equal(s, vec[i][1]);
		free(s);
	}
	/* bytes that map to '+' and '/' */
	s = rn_base64(hi, sizeof(hi));
	assert_string_equal(s, "+/+//g==");
	free(s);
	s = rn_base64url(hi, sizeof(hi));
	assert_string_equal(s, "-_-__g");
	free(s);
	s = rn_base64url("f", 1);
	assert_string_equal(s, "Zg");
	free(s);
	s = rn_base64url("", 0);
	assert_string_equal(s, "");
	free(s);
}

/* The table encoder gives OpenSSL's bytes for every length and byte. */
static void
test_base64_matches_openssl(void **state)
{
	unsigned char data[600];
	char ours[801], theirs[801];
	size_t len, i;

	(void)state;
	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(i * 7 + (i >> 8));
	for (len = 0; len <= sizeof(data); len++) {
		size_t n = rn_base64_to(ours, data + sizeof(data) - len, len);
		int m = EVP_EncodeBlock((unsigned char *)theirs,
					data + sizeof(data) - len, (int)len);

		assert_int_equal(n, (size_t)m);
		assert_string_equal(ours, theirs);
	}
}

static void
test_base64_roundtrip(void **state)
{
	unsigned char data[64];
	size_t len, i;

	for (i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(0xf8 + i * 37); /* hits +,/ too */
	for (len = 0; len <= 5; len++) {
		unsigned char *dec = NULL;
		size_t dlen = 999;
		char *b = rn_base64(data, len);
		char *u = rn_base64url(data, len);
		char *std;

		assert_non_null(b);
		assert_non_null(u);
		assert_int_equal(strlen(b), 4 * ((len + 2) / 3));
		assert_null(strchr(u, '='));
		assert_null(strchr(u, '+'));
		assert_null(strchr(u, '/'));
		assert_int_equal(strlen(u), (len * 4 + 2) / 3);

		assert_int_equal(rn_base64_decode(b, strlen(b), &dec, &dlen),
				 RN_OK);
		assert_int_equal(dlen, len);
		if (len)
			assert_memory_equal(dec, data, len);
		free(dec);

		std = url_to_std(u);
		assert_string_equal(std, b);
		dec = NULL;
		assert_int_equal(rn_base64_decode(std, strlen(std), &dec,
						  &dlen),
				 RN_OK);
		assert_int_equal(dlen, len);
		if (len)
			assert_memory_equal(dec, data, len);
		free(dec);
		free(std);
		free(b);
		free(u);
	}
	/* longer, with whitespace and line breaks as in PEM */
	{
		char *b = rn_base64(data, sizeof(data));
		rn_buf w = RN_BUF_INIT;
		unsigned char *dec = NULL;
		size_t dlen = 0;

		for (i = 0; b[i]; i++) {
			assert_int_equal(rn_buf_add(&w, &b[i], 1), RN_OK);
			if (i % 10 == 9)
				assert_int_equal(rn_buf_adds(&w, "\r\n \t"),
						 RN_OK);
		}
		assert_int_equal(rn_base64_decode(w.data, w.len, &dec, &dlen),
				 RN_OK);
		assert_int_equal(dlen, sizeof(data));
		assert_memory_equal(dec, data, sizeof(data));
		free(dec);
		free(b);
		rn_buf_release(&w);
	}
}

static void
test_base64_decode_rejects(void **state)
{
	unsigned char *dec = NULL;
	size_t dlen = 0;

	/* not a multiple of 4 */
	assert_int_equal(rn_base64_decode("Zm9", 3, &dec, &dlen), RN_EINVAL);
	/* invalid character */
	assert_int_equal(rn_base64_decode("Zm9*", 4, &dec, &dlen),
			 RN_EINVAL);
}

/* ---- hashes, ids, time ------------------------------------------------ */

static void
test_hash64(void **state)
{
	/*
	 * Pinned: FNV-1a 64 (offset basis ^ seed, prime 0x100000001b3) then
	 * the murmur3 fmix64 finaliser, as documented in common.c. Computed
	 * once independently; a change here reshuffles every fleet's smear.
	 */
	assert_true(rn_hash64("renewd", 6, 0) == UINT64_C(0xdfc63d6976e27c10));
	assert_true(rn_hash64("renewd", 6, 1) == UINT64_C(0x0f7aa1d3935597c7));
	assert_true(rn_hash64("", 0, 0) == UINT64_C(0xefd01f60ba992926));
	/* stable across calls */
	assert_true(rn_hash64("renewd", 6, 0) == rn_hash64("renewd", 6, 0));
	/* seed matters, input matters, length matters */
	assert_true(rn_hash64("renewd", 6, 0) != rn_hash64("renewd", 6, 2));
	assert_true(rn_hash64("renewd", 6, 0) != rn_hash64("renewe", 6, 0));
	assert_true(rn_hash64("renewd", 6, 0) != rn_hash64("renewd", 5, 0));
}

static int
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* Draws from the pool and beyond it never repeat and are never blank. */
static void
test_random_bytes(void **state)
{
	static unsigned char seen[2000][16];
	unsigned char big[300], zero[300];
	int i, k;

	for (i = 0; i < 2000; i++) {
		assert_int_equal(rn_random_bytes(seen[i], 16), RN_OK);
		for (k = 0; k < i; k++)
			assert_memory_not_equal(seen[i], seen[k], 16);
	}
	memset(zero, 0, sizeof(zero));
	memset(big, 0, sizeof(big));
	assert_int_equal(rn_random_bytes(big, sizeof(big)), RN_OK);
	assert_memory_not_equal(big, zero, sizeof(big));
	assert_memory_not_equal(big, seen[1999], 16);
}

/* A well-formed UUID string of this version and the RFC 9562 variant. */
static void
assert_uuid(const char *a, char version)
{
	int i;

	assert_int_equal(strlen(a), 36);
	for (i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23)
			assert_int_equal(a[i], '-');
		else
			assert_true(is_hex(a[i]));
	}
	assert_int_equal(a[14], version);
	assert_non_null(strchr("89ab", a[19]));
}

static void
test_uuid_v4(void **state)
{
	char a[37], b[37];
	int k;

	for (k = 0; k < 200; k++) {
		assert_int_equal(rn_uuid_v4(a), RN_OK);
		assert_uuid(a, '4');
		assert_int_equal(rn_uuid_v4(b), RN_OK);
		assert_string_not_equal(a, b);
	}
}

/* Version 7: the first 48 bits are now in Unix milliseconds. */
static void
test_uuid_v7(void **state)
{
	char a[37], b[37], ms[13];
	unsigned long long t0 = (unsigned long long)time(NULL) * 1000, t;
	int k;

	for (k = 0; k < 200; k++) {
		assert_int_equal(rn_uuid_v7(a), RN_OK);
		assert_uuid(a, '7');
		memcpy(ms, a, 8);
		memcpy(ms + 8, a + 9, 4);
		ms[12] = '\0';
		t = strtoull(ms, NULL, 16);
		assert_true(t >= t0 && t < t0 + 60000);
		assert_int_equal(rn_uuid_v7(b), RN_OK);
		assert_string_not_equal(a, b);
		/* a later one never sorts before an earlier one's time */
		assert_true(memcmp(b, a, 13) >= 0);
	}
}

/*
 * Proxy tokens: 12 hex digits of the time, then 32 base64url characters;
 * the key is those digits and the whole token's SHA-256. A token of any
 * other form is keyed by its SHA-256 alone.
 */
static void
test_token_key(void **state)
{
	char a[RN_TOKEN_LEN + 1], b[RN_TOKEN_LEN + 1];
	char ka[RN_TOKEN_KEY_LEN + 1], kb[RN_TOKEN_KEY_LEN + 1], h[65];
	const char *legacy = "Zm9vYmFyYmF6cXV1eGZvb2JhcmJhenF1dXhmb29iYXI";
	int i;

	assert_int_equal(rn_token_new(a), RN_OK);
	assert_int_equal(strlen(a), RN_TOKEN_LEN);
	for (i = 0; i < 12; i++)
		assert_true(is_hex(a[i]));
	for (; i < RN_TOKEN_LEN; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
				       "nopqrstuvwxyz0123456789-_", a[i]));
	assert_int_equal(rn_token_new(b), RN_OK);
	assert_string_not_equal(a, b);

	rn_token_key(a, ka);
	rn_token_key(b, kb);
	assert_int_equal(strlen(ka), RN_TOKEN_KEY_LEN);
	assert_memory_equal(ka, a, 12);
	rn_sha256_hex(a, strlen(a), h);
	assert_string_equal(ka + 12, h);
	/* minted later: the key sorts with or after the earlier one */
	assert_true(memcmp(kb, ka, 12) >= 0);
	assert_string_not_equal(ka, kb);

	/* the 43-character tokens of earlier versions: SHA-256 only */
	rn_token_key(legacy, ka);
	rn_sha256_hex(legacy, strlen(legacy), h);
	assert_string_equal(ka, h);
	/* 44 characters without the hex time: the same */
	memcpy(b, a, sizeof(b));
	b[3] = 'Z';
	rn_token_key(b, ka);
	rn_sha256_hex(b, strlen(b), h);
	assert_string_equal(ka, h);
}

static void
test_time_format(void **state)
{
	char buf[RN_TIME_LEN];

	rn_time_format(0, buf, sizeof(buf));
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	rn_time_format(1700000000, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20Z");
	rn_time_format(951782400, buf, sizeof(buf)); /* leap day 2000 */
	assert_string_equal(buf, "2000-02-29T00:00:00Z");
	/* the documented minimum buffer of 21 bytes is enough */
	{
		char small[21];
		rn_time_format(4102444799, small, sizeof(small));
		assert_string_equal(small, "2099-12-31T23:59:59Z");
	}
}

static void
test_hmac_sha256(void **state)
{
	char out[65];
	static const unsigned char key1[20] = {
		0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
		0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b, 0x0b,
	};

	/* RFC 4231 test case 2 */
	assert_int_equal(rn_hmac_sha256_hex("Jefe", 4,
					    "what do ya want for nothing?", 28,
					    out),
			 RN_OK);
	assert_string_equal(out, "5bdcc146bf60754e6a042426089575c7"
				 "5a003f089d2739839dec58b964ec3843");
	/* RFC 4231 test case 1 */
	assert_int_equal(rn_hmac_sha256_hex(key1, sizeof(key1), "Hi There", 8,
					    out),
			 RN_OK);
	assert_string_equal(out, "b0344c61d8db38535ca8afceaf0bf12b"
				 "881dc200c9833da726e9376c2e32cff7");
}

static void
test_sha256_hex(void **state)
{
	char out[65];

	rn_sha256_hex("abc", 3, out);
	assert_string_equal(out, "ba7816bf8f01cfea414140de5dae2223"
				 "b00361a396177a9cb410ff61f20015ad");
	rn_sha256_hex("", 0, out);
	assert_string_equal(out, "e3b0c44298fc1c149afbf4c8996fb924"
				 "27ae41e4649b934ca495991b7852b855");
}

static void
test_buf_add_pct(void **state)
{
	rn_buf b;

	(void)state;
	rn_buf_init(&b, 0);
	assert_int_equal(rn_buf_add_pct(&b, "aZ09-_.~"), RN_OK);
	assert_string_equal(b.data, "aZ09-_.~");
	rn_buf_reset(&b);
	assert_int_equal(rn_buf_add_pct(&b, "a,b/c+d=e %\xc3\xa9"), RN_OK);
	assert_string_equal(b.data, "a%2Cb%2Fc%2Bd%3De%20%25%C3%A9");
	rn_buf_release(&b);
	/* the cap holds for encoded output too */
	rn_buf_init(&b, 4);
	assert_int_equal(rn_buf_add_pct(&b, ",,"), RN_ETOOBIG);
	rn_buf_release(&b);
}

static void
test_base64_strict(void **state)
{
	static const char *const bad[] = {"Q=Q=", "====", "QQ=A", "Q===",
					  "QUJD*A==", "QUJ", "QU\x80""D"};
	unsigned char *out = NULL;
	size_t len = 0, i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(rn_base64_decode(bad[i], strlen(bad[i]), &out,
						  &len),
				 RN_EINVAL);
	assert_int_equal(rn_base64_decode("QUI=\n", 5, &out, &len), RN_OK);
	assert_int_equal(len, 2);
	assert_memory_equal(out, "AB", 3); /* NUL-terminated */
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_buf_add_pct),
		cmocka_unit_test(test_base64_strict),
		cmocka_unit_test(test_duration_parse_ok),
		cmocka_unit_test(test_duration_parse_rejects),
		cmocka_unit_test(test_duration_format),
		cmocka_unit_test(test_buf_cap),
		cmocka_unit_test(test_buf_unlimited_grow),
		cmocka_unit_test(test_base64_known),
		cmocka_unit_test(test_base64_matches_openssl),
		cmocka_unit_test(test_base64_roundtrip),
		cmocka_unit_test(test_base64_decode_rejects),
		cmocka_unit_test(test_hash64),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_uuid_v4),
		cmocka_unit_test(test_uuid_v7),
		cmocka_unit_test(test_token_key),
		cmocka_unit_test(test_time_format),
		cmocka_unit_test(test_hmac_sha256),
		cmocka_unit_test(test_sha256_hex),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
