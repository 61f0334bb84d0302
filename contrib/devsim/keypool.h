/*
 * devsim's key pool: RSA keys generated once into a directory (key-00000.pem
 * .. key-NNNNN.pem, traditional PEM as `openssl genrsa -traditional` writes
 * them), reused by later runs when valid, and handed to the simulated
 * devices in turn so that a device does not spend 350 ms of CPU on a fresh
 * 2048-bit key for every enrollment.
 */
#ifndef DEVSIM_KEYPOOL_H
#define DEVSIM_KEYPOOL_H

#include <stddef.h>

typedef struct keypool keypool;

typedef struct keypool_stats {
	size_t reused;	    /* valid keys found in the directory */
	size_t generated;   /* keys generated (missing or invalid ones) */
	double gen_seconds; /* wall time of the generation */
} keypool_stats;

/*
 * Open the pool in dir (created if missing, one level): keys 0..size-1 of
 * `bits` bits. A file that is missing, unreadable, not an RSA key of `bits`
 * bits or whose key fails its pairwise check is (re)generated, by `jobs`
 * threads at once; each is written to a temp file and renamed into place.
 * On error *err is a malloc'd message.
 */
int keypool_open(const char *dir, size_t size, int bits, unsigned jobs,
		 keypool **out, keypool_stats *st, char **err);
void keypool_free(keypool *kp);
size_t keypool_size(const keypool *kp);
int keypool_bits(const keypool *kp);
/* Key i's PEM bytes (owned by the pool). */
const char *keypool_pem(const keypool *kp, size_t i, size_t *len);

/* "key-%05zu.pem" into buf; 0, or -1 when buf is too small. */
int keypool_name(char *buf, size_t n, size_t i);

/*
 * The next key for a device whose current key is `current` (-1: none):
 * *cursor % size, advancing *cursor; when that is the device's current key
 * and the pool has another, the one after it. A pool of one key always
 * gives key 0.
 */
size_t keypool_pick(size_t *cursor, size_t size, long current);

#endif
