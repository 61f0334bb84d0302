/*
 * store_checkpoint_start: WAL checkpoints on the store's own thread. The
 * daemon's connection no longer checkpoints inside its commits, so pages
 * reach the database file only if the thread does its work.
 */
#define _GNU_SOURCE
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
	};

	log_setup(RN_LOG_ERROR, RN_LOGFMT_LOGFMT);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
