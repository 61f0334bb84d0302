/*
 * store_checkpoint_start: WAL checkpoints on the store's own thread. The
 * daemon's connection no longer checkpoints inside its commits, so pages
 * reach the database file only if the thread does its work.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include "store/store.h"

#define NOW INT64_C(1700000000)

typedef struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX + 16];
} fx;

static int
rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
	(void)st;
	(void)flag;
	(void)f;
	return remove(p);
}

static int
setup(void **state)
{
	fx *f = calloc(1, sizeof(*f));

	snprintf(f->dir, sizeof(f->dir), "/tmp/renewd-ckpt-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/renewd.db", f->dir);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	fx *f = *state;

	nftw(f->dir, rm_one, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

static off_t
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

/*
 * The WAL's size and how much of it is in the database file, from the
 * wal-index (the -shm file, sqlite.org/walformat.html): mxFrame of the
 * first header copy at byte 16, nBackfill of the checkpoint info after the
 * two 48-byte header copies at byte 96, both in the host's byte order.
 * Read without a connection, so nothing here checkpoints or commits.
 */
static void
wal_state(const fx *f, uint32_t *mx_frame, uint32_t *backfilled)
{
	char shm[PATH_MAX + 32];
	unsigned char b[100];
	int fd;

	snprintf(shm, sizeof(shm), "%s-shm", f->path);
	fd = open(shm, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, sizeof(b), 0), (ssize_t)sizeof(b));
	close(fd);
	memcpy(mx_frame, b + 16, 4);
	memcpy(backfilled, b + 96, 4);
}

/* Waits up to 10 s for the thread to backfill the whole WAL. */
static void
wait_backfilled(const fx *f, uint32_t *mx_frame)
{
	uint32_t bf = 0;
	int waited;

	for (waited = 0; waited < 200; waited++) {
		wal_state(f, mx_frame, &bf);
		if (bf == *mx_frame)
			break;
		usleep(50 * 1000);
	}
	assert_int_equal(bf, *mx_frame);
}

static void
upsert_hosts(store *s, int from, int n)
{
	char uuid[64];
	int i;

	for (i = from; i < from + n; i++) {
		snprintf(uuid, sizeof(uuid), "host-%05d-%s", i,
			 "0123456789abcdef0123456789abcdef");
		assert_int_equal(store_host_upsert(s, uuid, "SN", NOW + i),
				 RN_OK);
	}
}

/*
 * The frames of the commits since the thread's last wake are backfilled
 * once the writes pause, without another commit: commits that write more
 * than CKPT_SETTLE_FRAMES (256) but never reach CKPT_WAKE_FRAMES (1,000),
 * and the tail of 2,500 that woke it twice. Then the next write restarts
 * the WAL from its start, so a scan after a pause starts with a short WAL
 * and no inline checkpoint.
 */
static void
test_thread_catches_up_when_writes_stop(void **state)
{
	fx *f = *state;
	store *s = NULL;
	char *err = NULL;
	uint32_t mx = 0, bf = 0;

	/* Given a daemon's store with the checkpoint thread... */
	assert_int_equal(store_open(f->path, 0, &s, &err), RN_OK);
	assert_int_equal(store_checkpoint_start(s, f->path), RN_OK);

	/* ...when 200 commits write fewer than 1,000 frames and stop... */
	upsert_hosts(s, 0, 200);
	wal_state(f, &mx, &bf);
	/* (about 460 frames; fewer if the thread caught up meanwhile and
	 * the WAL restarted, never the 1,000 that wake it) */
	assert_true(mx > 0 && mx < 1000);

	/* ...then the thread backfills all of them on its own... */
	wait_backfilled(f, &mx);
	assert_true(mx > 0);

	/* ...and the next commit starts the WAL over. */
	upsert_hosts(s, 200, 1);
	wal_state(f, &mx, &bf);
	assert_true(mx < 20);

	/* When 2,500 commits wake it twice and stop, it catches up too. */
	upsert_hosts(s, 201, 2500);
	wait_backfilled(f, &mx);
	assert_true(mx > 0);
	upsert_hosts(s, 2701, 1);
	wal_state(f, &mx, &bf);
	assert_true(mx < 20);
	store_close(s);
}

/*
 * One big transaction grows the WAL past 64 MiB; once the thread has
 * backfilled it, the first commit after the WAL starts over cuts the file
 * back to 64 MiB (journal_size_limit) instead of keeping the space.
 */
static void
test_big_transaction_wal_shrinks(void **state)
{
	fx *f = *state;
	store *s = NULL;
	char *err = NULL, uuid[64], wal[PATH_MAX + 32], *serial;
	uint32_t mx = 0;
	int i;

	assert_int_equal(store_open(f->path, 0, &s, &err), RN_OK);
	assert_int_equal(store_checkpoint_start(s, f->path), RN_OK);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	serial = malloc(2001);
	assert_non_null(serial);
	memset(serial, 'S', 2000);
	serial[2000] = '\0';

	/* Given a commit of 40,000 hosts with 2 KB serial numbers... */
	assert_int_equal(store_begin(s), RN_OK);
	for (i = 0; i < 40000; i++) {
		snprintf(uuid, sizeof(uuid), "host-%05d", i);
		assert_int_equal(store_host_upsert(s, uuid, serial, NOW),
				 RN_OK);
	}
	assert_int_equal(store_commit(s), RN_OK);
	free(serial);
	assert_true(file_size(wal) > 67108864);

	/* ...when the thread has backfilled it and a small commit comes,
	 * then the WAL file is 64 MiB at most. */
	wait_backfilled(f, &mx);
	upsert_hosts(s, 0, 1);
	assert_true(file_size(wal) <= 67108864);
	store_close(s);
}

static void
test_thread_checkpoints_the_wal(void **state)
{
	fx *f = *state;
	store *s = NULL, *ro = NULL;
	char *err = NULL, uuid[64];
	store_host h;
	off_t before;
	int i, waited;

	/* Given a daemon's store with the checkpoint thread... */
	assert_int_equal(store_open(f->path, 0, &s, &err), RN_OK);
	assert_int_equal(store_checkpoint_start(s, f->path), RN_OK);
	assert_int_equal(store_checkpoint_start(s, f->path), RN_EINVAL);
	before = file_size(f->path);
	assert_true(before > 0);

	/* ...when 2,000 commits fill the WAL well past 1,000 frames... */
	for (i = 0; i < 2000; i++) {
		snprintf(uuid, sizeof(uuid), "host-%05d-%s", i,
			 "0123456789abcdef0123456789abcdef");
		assert_int_equal(store_host_upsert(s, uuid, "SN", NOW + i),
				 RN_OK);
	}

	/* ...then the thread copies them into the database file (nothing
	 * else checkpoints: the commits only wake it). */
	for (waited = 0; waited < 200 && file_size(f->path) <= before;
	     waited++)
		usleep(50 * 1000);
	assert_true(file_size(f->path) > before);

	/* Everything is there for another connection and after a close. */
	assert_int_equal(store_open(f->path, 1, &ro, &err), RN_OK);
	assert_int_equal(store_checkpoint_start(ro, f->path), RN_EINVAL);
	assert_int_equal(store_host_get(ro, "host-01999-0123456789abcdef"
				       "0123456789abcdef", &h), RN_OK);
	store_host_release(&h);
	store_close(ro);
	store_close(s);
	assert_int_equal(store_open(f->path, 0, &s, &err), RN_OK);
	assert_int_equal(store_host_get(s, "host-00000-0123456789abcdef"
				       "0123456789abcdef", &h), RN_OK);
	assert_string_equal(h.serial_number, "SN");
	store_host_release(&h);
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_thread_checkpoints_the_wal,
						setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_thread_catches_up_when_writes_stop, setup,
			teardown),
		cmocka_unit_test_setup_teardown(
			test_big_transaction_wal_shrinks, setup, teardown),
	};

	log_setup(RN_LOG_ERROR, RN_LOGFMT_LOGFMT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
