/*
 * Shared helpers of the libFuzzer targets (tests/fuzz/fuzz_*.c): every
 * target gets arbitrary bytes and must neither crash, leak, hit undefined
 * behaviour nor break an invariant its header promises. A broken
 * invariant is reported with FUZZ_CHECK, which aborts so that libFuzzer
 * records the input as a crash.
 */
#ifndef RN_FUZZ_H
#define RN_FUZZ_H

#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                     \
	do {                                                                 \
		if (!(cond)) {                                               \
			fprintf(stderr, "%s:%d: invariant broken: %s\n",      \
				__FILE__, __LINE__, #cond);                  \
			abort();                                             \
		}                                                            \
	} while (0)

/*
 * The parsers that take a path (cfg_load, prof_template_load) read the
 * input from one memfd reopened through /proc/self/fd: no file on disk,
 * nothing left behind, and every run starts from a fresh offset.
 */
static inline const char *
fuzz_file(const uint8_t *data, size_t size)
{
	static int fd = -1;
	static char path[64];
	size_t off = 0;

	if (fd < 0) {
		fd = memfd_create("renewd-fuzz", MFD_CLOEXEC);
		if (fd < 0) {
			perror("memfd_create");
			abort();
		}
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	}
	if (ftruncate(fd, 0) != 0)
		abort();
	while (off < size) {
		ssize_t n = pwrite(fd, data + off, size - off, (off_t)off);
		if (n <= 0)
			abort();
		off += (size_t)n;
	}
	return path;
}

/* A NUL-terminated copy (the input may hold NULs: C sees up to the first). */
static inline char *
fuzz_cstr(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);

	if (s == NULL)
		abort();
	memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Is s NUL-terminated within n bytes and free of control characters? */
static inline int
fuzz_clean_text(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (s[i] == '\0')
			return 1;
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return 0;
	}
	return 0;
}

#endif
