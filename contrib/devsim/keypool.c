/* devsim's key pool: see keypool.h. */
#define _GNU_SOURCE
#include "keypool.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "common/common.h"

#define KEY_FILE_MAX (64 * 1024)
#define PEM_HEAD "-----BEGIN RSA PRIVATE KEY-----"

typedef struct pem {
	char *data;
	size_t len;
} pem;

struct keypool {
	pem *keys;
	size_t size;
	int bits;
};

int
keypool_name(char *buf, size_t n, size_t i)
{
	int w = snprintf(buf, n, "key-%05zu.pem", i);

	return w < 0 || (size_t)w >= n ? -1 : 0;
}

size_t
keypool_pick(size_t *cursor, size_t size, long current)
{
	size_t i;

	if (size == 0)
		return 0;
	i = *cursor % size;
	*cursor = i + 1;
	if (size > 1 && current >= 0 && (size_t)current == i) {
		i = (i + 1) % size;
		*cursor = i + 1;
	}
	return i;
}

/* Whole file into *out (NUL-terminated); 0 or an errno. */
static int
read_file(const char *path, pem *out)
{
	FILE *fp = fopen(path, "rb");
	char *buf;
	size_t n;

	if (fp == NULL)
		return errno;
	buf = malloc(KEY_FILE_MAX + 1);
	if (buf == NULL) {
		fclose(fp);
		return ENOMEM;
	}
	n = fread(buf, 1, KEY_FILE_MAX + 1, fp);
	if (ferror(fp) || n > KEY_FILE_MAX) {
		fclose(fp);
		free(buf);
		return EFBIG;
	}
	fclose(fp);
	buf[n] = '\0';
	out->data = buf;
	out->len = n;
	return 0;
}

static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)u;
	return -1;
}

/*
 * 1 when p is a traditional PEM RSA key of `bits` bits (what `openssl
 * genrsa -traditional` writes) whose modulus is the product of its primes.
 * Not EVP_PKEY_pairwise_check: in OpenSSL 3 that tests the primes too, 70
 * ms a key, 18 s to reopen a pool of 256 on a loaded machine.
 */
static int
pem_valid(const pem *p, int bits)
{
	BIO *b;
	EVP_PKEY *pk;
	BIGNUM *n = NULL, *f1 = NULL, *f2 = NULL, *pq = NULL;
	BN_CTX *bctx = NULL;
	int ok = 0;

	if (p->len < sizeof PEM_HEAD ||
	    strncmp(p->data, PEM_HEAD, sizeof PEM_HEAD - 1) != 0)
		return 0;
	b = BIO_new_mem_buf(p->data, (int)p->len);
	if (b == NULL)
		return 0;
	pk = PEM_read_bio_PrivateKey(b, NULL, no_passphrase, NULL);
	BIO_free(b);
	if (pk != NULL && EVP_PKEY_is_a(pk, "RSA") &&
	    EVP_PKEY_get_bits(pk) == bits &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR1, &f1) &&
	    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_FACTOR2, &f2) &&
	    (bctx = BN_CTX_new()) != NULL && (pq = BN_new()) != NULL &&
	    BN_mul(pq, f1, f2, bctx) && BN_cmp(pq, n) == 0)
		ok = 1;
	BN_free(n);
	BN_free(f1);
	BN_free(f2);
	BN_free(pq);
	BN_CTX_free(bctx);
	EVP_PKEY_free(pk);
	return ok;
}

/* Generate key `i` into dir: a temp file renamed into place. */
static char *
generate(const char *dir, size_t i, int bits)
{
	char name[32], *path = NULL, *tmp = NULL, *err = NULL;
	EVP_PKEY *pk;
	BIO *b = NULL;
	FILE *fp = NULL;
	int fd;

	keypool_name(name, sizeof name, i);
	path = rn_asprintf("%s/%s", dir, name);
	tmp = rn_asprintf("%s/.%s.XXXXXX", dir, name);
	if (path == NULL || tmp == NULL) {
		err = rn_asprintf("out of memory");
		goto out;
	}
	pk = EVP_RSA_gen((unsigned)bits);
	if (pk == NULL) {
		err = rn_asprintf("RSA %d key generation failed", bits);
		goto out;
	}
	fd = mkstemp(tmp); /* mode 0600 */
	if (fd < 0 || (fp = fdopen(fd, "wb")) == NULL) {
		err = rn_asprintf("%s: %s", tmp, strerror(errno));
		if (fd >= 0)
			close(fd);
		EVP_PKEY_free(pk);
		goto out;
	}
	b = BIO_new_fp(fp, BIO_NOCLOSE);
	if (b == NULL ||
	    !PEM_write_bio_PrivateKey_traditional(b, pk, NULL, NULL, 0, NULL,
						  NULL) ||
	    BIO_flush(b) != 1)
		err = rn_asprintf("%s: cannot write the key", tmp);
	BIO_free(b);
	EVP_PKEY_free(pk);
	if (fclose(fp) != 0 && err == NULL)
		err = rn_asprintf("%s: %s", tmp, strerror(errno));
	if (err == NULL && rename(tmp, path) != 0)
		err = rn_asprintf("%s: %s", path, strerror(errno));
	if (err != NULL)
		unlink(tmp);
out:
	free(path);
	free(tmp);
	return err;
}

typedef struct genwork {
	pthread_mutex_t mu;
	const char *dir;
	int bits;
	const size_t *todo;
	size_t ntodo, next;
	char *err;
} genwork;

static void *
gen_thread(void *arg)
{
	genwork *w = arg;

	for (;;) {
		size_t k;
		char *e;

		pthread_mutex_lock(&w->mu);
		if (w->next >= w->ntodo || w->err != NULL) {
			pthread_mutex_unlock(&w->mu);
			return NULL;
		}
		k = w->todo[w->next++];
		pthread_mutex_unlock(&w->mu);
		e = generate(w->dir, k, w->bits);
		if (e != NULL) {
			pthread_mutex_lock(&w->mu);
			if (w->err == NULL)
				w->err = e;
			else
				free(e);
			pthread_mutex_unlock(&w->mu);
		}
	}
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Generate keys todo[0..n-1] with `jobs` threads; NULL or an error. */
static char *
generate_all(const char *dir, int bits, const size_t *todo, size_t n,
	     unsigned jobs)
{
	genwork w = { .dir = dir, .bits = bits, .todo = todo, .ntodo = n };
	pthread_t *th;
	unsigned started = 0;

	if (jobs < 1)
		jobs = 1;
	if (jobs > n)
		jobs = (unsigned)n;
	pthread_mutex_init(&w.mu, NULL);
	th = calloc(jobs, sizeof *th);
	if (th == NULL)
		return rn_asprintf("out of memory");
	for (unsigned t = 0; t < jobs; t++)
		if (pthread_create(&th[t], NULL, gen_thread, &w) == 0)
			started++;
		else
			break;
	if (started == 0)
		gen_thread(&w); /* no thread: do it here */
	for (unsigned t = 0; t < started; t++)
		pthread_join(th[t], NULL);
	free(th);
	pthread_mutex_destroy(&w.mu);
	return w.err;
}

void
keypool_free(keypool *kp)
{
	if (kp == NULL)
		return;
	for (size_t i = 0; i < kp->size; i++)
		free(kp->keys[i].data);
	free(kp->keys);
	free(kp);
}

int
keypool_open(const char *dir, size_t size, int bits, unsigned jobs,
	     keypool **out, keypool_stats *st, char **err)
{
	keypool *kp;
	size_t *todo = NULL, ntodo = 0;
	char name[32];
	char *e = NULL;
	double t0;

	*out = NULL;
	*err = NULL;
	memset(st, 0, sizeof *st);
	if (size == 0 || bits < 512) {
		*err = rn_asprintf("bad key pool size %zu or key size %d", size, bits);
		return EINVAL;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		*err = rn_asprintf("%s: %s", dir, strerror(errno));
		return errno;
	}
	kp = calloc(1, sizeof *kp);
	todo = calloc(size, sizeof *todo);
	if (kp == NULL || todo == NULL ||
	    (kp->keys = calloc(size, sizeof *kp->keys)) == NULL) {
		free(todo);
		free(kp);
		*err = rn_asprintf("out of memory");
		return ENOMEM;
	}
	kp->size = size;
	kp->bits = bits;
	/* what is there and valid stays; the rest is generated */
	for (size_t i = 0; i < size; i++) {
		pem p = { 0 };
		char *path;

		keypool_name(name, sizeof name, i);
		path = rn_asprintf("%s/%s", dir, name);
		if (path == NULL) {
			e = rn_asprintf("out of memory");
			goto fail;
		}
		if (read_file(path, &p) == 0 && pem_valid(&p, bits)) {
			kp->keys[i] = p;
			st->reused++;
		} else {
			free(p.data);
			todo[ntodo++] = i;
		}
		free(path);
	}
	t0 = now_s();
	if (ntodo > 0 &&
	    (e = generate_all(dir, bits, todo, ntodo, jobs)) != NULL)
		goto fail;
	st->generated = ntodo;
	st->gen_seconds = ntodo > 0 ? now_s() - t0 : 0;
	for (size_t k = 0; k < ntodo; k++) {
		size_t i = todo[k];
		char *path;
		int rc;

		keypool_name(name, sizeof name, i);
		path = rn_asprintf("%s/%s", dir, name);
		if (path == NULL) {
			e = rn_asprintf("out of memory");
			goto fail;
		}
		rc = read_file(path, &kp->keys[i]);
		if (rc != 0)
			e = rn_asprintf("%s: %s", path, strerror(rc));
		free(path);
		if (e != NULL)
			goto fail;
	}
	free(todo);
	*out = kp;
	return 0;
fail:
	free(todo);
	keypool_free(kp);
	*err = e;
	return EIO;
}

size_t
keypool_size(const keypool *kp)
{
	return kp->size;
}

int
keypool_bits(const keypool *kp)
{
	return kp->bits;
}

const char *
keypool_pem(const keypool *kp, size_t i, size_t *len)
{
	if (i >= kp->size)
		return NULL;
	*len = kp->keys[i].len;
	return kp->keys[i].data;
}
