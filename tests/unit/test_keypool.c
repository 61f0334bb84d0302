/*
 * devsim's key pool (contrib/devsim/keypool.c): which key a device gets
 * next, the file names, and a pool directory that is generated once,
 * reused when valid and repaired where not. The pool tests use 1024-bit
 * keys: the same code as 2048, a fraction of the generation time.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "keypool.h"

#define BITS 1024

/* ---- keypool_pick ------------------------------------------------------ */

static void
test_pick_round_robin_without_current(void **state)
{
	size_t cur = 0;

	(void)state;
	assert_int_equal(keypool_pick(&cur, 3, -1), 0);
	assert_int_equal(keypool_pick(&cur, 3, -1), 1);
	assert_int_equal(keypool_pick(&cur, 3, -1), 2);
	assert_int_equal(keypool_pick(&cur, 3, -1), 0);
	assert_int_equal(cur, 1);
}

static void
test_pick_skips_the_key_the_device_holds(void **state)
{
	size_t cur = 4; /* next is 4 % 4 == 0 */

	(void)state;
	assert_int_equal(keypool_pick(&cur, 4, 0), 1);
	assert_int_equal(cur, 2);
	assert_int_equal(keypool_pick(&cur, 4, 3), 2);
	assert_int_equal(keypool_pick(&cur, 4, 3), 0); /* 3 skipped */
	assert_int_equal(cur, 1);
	/* a different current key is no reason to skip */
	assert_int_equal(keypool_pick(&cur, 4, 2), 1);
}

static void
test_pick_every_device_changes_key_on_renewal(void **state)
{
	/* n devices enroll, then renew, from pools of several sizes: each
	 * renewal's key differs from the device's key (pools of 2 or more) */
	enum { N = 37 };
	size_t sizes[] = { 2, 3, 5, 36, 37, 38, 100 };

	(void)state;
	for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
		size_t cur = 0, held[N];
		for (size_t d = 0; d < N; d++) {
			held[d] = keypool_pick(&cur, sizes[s], -1);
			assert_true(held[d] < sizes[s]);
		}
		for (size_t d = 0; d < N; d++) {
			size_t k = keypool_pick(&cur, sizes[s], (long)held[d]);
			assert_true(k < sizes[s]);
			assert_int_not_equal(k, held[d]);
		}
	}
}

static void
test_pick_pool_of_one(void **state)
{
	size_t cur = 0;

	(void)state;
	assert_int_equal(keypool_pick(&cur, 1, -1), 0);
	assert_int_equal(keypool_pick(&cur, 1, 0), 0);
	assert_int_equal(keypool_pick(&cur, 0, -1), 0);
}

static void
test_name(void **state)
{
	char buf[32], small[8];

	(void)state;
	assert_int_equal(keypool_name(buf, sizeof buf, 0), 0);
	assert_string_equal(buf, "key-00000.pem");
	assert_int_equal(keypool_name(buf, sizeof buf, 123456), 0);
	assert_string_equal(buf, "key-123456.pem");
	assert_int_equal(keypool_name(small, sizeof small, 1), -1);
}

/* ---- the pool directory ------------------------------------------------ */

static char *
path_of(const char *dir, size_t i)
{
	char name[32], *p = NULL;

	assert_int_equal(keypool_name(name, sizeof name, i), 0);
	assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
	return p;
}

static char *
slurp(const char *path)
{
	FILE *fp = fopen(path, "rb");
	char *buf = calloc(1, 65536);
	size_t n;

	assert_non_null(fp);
	assert_non_null(buf);
	n = fread(buf, 1, 65535, fp);
	fclose(fp);
	buf[n] = '\0';
	return buf;
}

static void
spit(const char *path, const char *data)
{
	FILE *fp = fopen(path, "wb");

	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, strlen(data), fp), strlen(data));
	assert_int_equal(fclose(fp), 0);
}

/* pk as a traditional (PKCS#1 for RSA) PEM string; pk is freed */
static char *
pem_of(EVP_PKEY *pk)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *out;
	long n;

	assert_non_null(pk);
	assert_non_null(b);
	assert_true(PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0,
							 NULL, NULL));
	n = BIO_get_mem_data(b, &data);
	out = strndup(data, (size_t)n);
	BIO_free(b);
	EVP_PKEY_free(pk);
	return out;
}

/* a key file of another kind or size, PEM-encoded */
static char *
other_key_pem(const char *alg, int bits)
{
	return pem_of(strcmp(alg, "EC") == 0 ? EVP_EC_gen("P-256")
					     : EVP_RSA_gen((unsigned)bits));
}

/* an RSA key of `bits` bits whose modulus is not the product of its
 * primes: n from one key, everything else from another */
static char *
mismatched_key_pem(int bits)
{
	EVP_PKEY *a = EVP_RSA_gen((unsigned)bits);
	EVP_PKEY *b = EVP_RSA_gen((unsigned)bits);
	EVP_PKEY *m = NULL;
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params;
	BIGNUM *n = NULL, *e = NULL, *d = NULL, *p = NULL, *q = NULL;
	BIGNUM *dp = NULL, *dq = NULL, *qi = NULL;
	char *out;

	assert_non_null(a);
	assert_non_null(b);
	assert_true(EVP_PKEY_get_bn_param(a, OSSL_PKEY_PARAM_RSA_N, &n));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_E, &e));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_D, &d));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_FACTOR1, &p));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_FACTOR2, &q));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_EXPONENT1,
					  &dp));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_EXPONENT2,
					  &dq));
	assert_true(EVP_PKEY_get_bn_param(b, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
					  &qi));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1,
					   dp));
	assert_true(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2,
					   dq));
	assert_true(OSSL_PARAM_BLD_push_BN(bld,
					   OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qi));
	params = OSSL_PARAM_BLD_to_param(bld);
	assert_non_null(params);
	assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);
	assert_int_equal(EVP_PKEY_fromdata(ctx, &m, EVP_PKEY_KEYPAIR, params), 1);
	out = pem_of(m);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	EVP_PKEY_CTX_free(ctx);
	BN_free(n);
	BN_free(e);
	BN_free(d);
	BN_free(p);
	BN_free(q);
	BN_free(dp);
	BN_free(dq);
	BN_free(qi);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
	return out;
}

static void
rm_pool(const char *dir, size_t n)
{
	for (size_t i = 0; i < n + 2; i++) {
		char *p = path_of(dir, i);
		unlink(p);
		free(p);
	}
	rmdir(dir);
}

static void
test_pool_generated_then_reused_then_repaired(void **state)
{
	char base[] = "/tmp/test_keypool-XXXXXX";
	char *dir, *err = NULL, *before[4];
	keypool *kp = NULL;
	keypool_stats st;
	size_t len;

	(void)state;
	assert_non_null(mkdtemp(base));
	assert_true(asprintf(&dir, "%s/pool", base) > 0);

	/* Given no directory: it is created and 4 keys generated... */
	assert_int_equal(keypool_open(dir, 4, BITS, 2, &kp, &st, &err), 0);
	assert_null(err);
	assert_int_equal(st.generated, 4);
	assert_int_equal(st.reused, 0);
	assert_int_equal(keypool_size(kp), 4);
	assert_int_equal(keypool_bits(kp), BITS);
	for (size_t i = 0; i < 4; i++) {
		char *p = path_of(dir, i);
		struct stat sb;
		const char *pem = keypool_pem(kp, i, &len);
		assert_non_null(pem);
		before[i] = slurp(p);
		/* ...the pool serves what is on disk, PKCS#1 for scepclient,
		 * owner-only, and the keys differ */
		assert_int_equal(strlen(before[i]), len);
		assert_memory_equal(pem, before[i], len);
		assert_true(strncmp(pem, "-----BEGIN RSA PRIVATE KEY-----",
				    31) == 0);
		assert_int_equal(stat(p, &sb), 0);
		assert_int_equal(sb.st_mode & 0777, 0600);
		for (size_t k = 0; k < i; k++)
			assert_string_not_equal(before[k], before[i]);
		free(p);
	}
	assert_null(keypool_pem(kp, 4, &len));
	keypool_free(kp);

	/* Given the same directory: every key is reused as it is. */
	assert_int_equal(keypool_open(dir, 4, BITS, 2, &kp, &st, &err), 0);
	assert_int_equal(st.reused, 4);
	assert_int_equal(st.generated, 0);
	for (size_t i = 0; i < 4; i++) {
		const char *pem = keypool_pem(kp, i, &len);
		assert_memory_equal(pem, before[i], len);
	}
	keypool_free(kp);

	/* Given a missing key, a truncated one and an EC key, and a pool
	 * grown to 6: those three and the two new ones are generated, key 3
	 * is kept. */
	char *p0 = path_of(dir, 0), *p1 = path_of(dir, 1);
	char *p2 = path_of(dir, 2), *p3 = path_of(dir, 3);
	char *ec = other_key_pem("EC", 0), *small = other_key_pem("RSA", 512);
	char trunc[200];
	snprintf(trunc, sizeof trunc, "%.150s", before[1]);
	assert_int_equal(unlink(p0), 0);
	spit(p1, trunc);
	spit(p2, ec);
	assert_int_equal(keypool_open(dir, 6, BITS, 3, &kp, &st, &err), 0);
	assert_int_equal(st.reused, 1); /* key 3 */
	assert_int_equal(st.generated, 5);
	for (size_t i = 0; i < 3; i++) {
		const char *pem = keypool_pem(kp, i, &len);
		assert_string_not_equal(pem, before[i]);
		assert_true(strncmp(pem, "-----BEGIN RSA PRIVATE KEY-----",
				    31) == 0);
	}
	assert_string_equal(keypool_pem(kp, 3, &len), before[3]);
	keypool_free(kp);
	/* Given an RSA key of the wrong size: it alone is regenerated. */
	spit(p3, small);
	assert_int_equal(keypool_open(dir, 6, BITS, 1, &kp, &st, &err), 0);
	assert_int_equal(st.reused, 5);
	assert_int_equal(st.generated, 1);
	assert_string_not_equal(keypool_pem(kp, 3, &len), small);
	keypool_free(kp);

	/* Given a key of the right size whose modulus is not the product of
	 * its primes: it alone is regenerated. */
	char *bad = mismatched_key_pem(BITS);
	spit(p1, bad);
	assert_int_equal(keypool_open(dir, 6, BITS, 1, &kp, &st, &err), 0);
	assert_int_equal(st.reused, 5);
	assert_int_equal(st.generated, 1);
	assert_string_not_equal(keypool_pem(kp, 1, &len), bad);
	keypool_free(kp);
	free(bad);

	/* A size of 0 is refused. */
	assert_int_not_equal(keypool_open(dir, 0, BITS, 1, &kp, &st, &err), 0);
	assert_null(kp);
	assert_non_null(err);
	free(err);

	for (size_t i = 0; i < 4; i++)
		free(before[i]);
	free(p0);
	free(p1);
	free(p2);
	free(p3);
	free(ec);
	free(small);
	rm_pool(dir, 6);
	free(dir);
	rmdir(base);
}

static void
test_pool_dir_unusable(void **state)
{
	char *err = NULL;
	keypool *kp = NULL;
	keypool_stats st;

	(void)state;
	assert_int_not_equal(keypool_open("/nonexistent-dir/sub/pool", 2, BITS,
					  1, &kp, &st, &err), 0);
	assert_null(kp);
	assert_non_null(err);
	assert_non_null(strstr(err, "/nonexistent-dir/sub/pool"));
	free(err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pick_round_robin_without_current),
		cmocka_unit_test(test_pick_skips_the_key_the_device_holds),
		cmocka_unit_test(test_pick_every_device_changes_key_on_renewal),
		cmocka_unit_test(test_pick_pool_of_one),
		cmocka_unit_test(test_name),
		cmocka_unit_test(test_pool_generated_then_reused_then_repaired),
		cmocka_unit_test(test_pool_dir_unusable),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
