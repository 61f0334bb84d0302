/*
 * scanprobe: the store side of one due scan, without the loop: opens a
 * database, runs store_scan_due in batches of SCHED_SCAN_BATCH (or BATCH)
 * at time NOW until a short batch, and prints each batch's time. A
 * profiling aid for bench_scan.py (perf, callgrind); the benchmark itself
 * measures renewd.
 *
 *   scanprobe DB NOW [BATCH]
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <sys/resource.h>

#include "scheduler/scheduler.h"
#include "store/store.h"

static double
cpu_ms(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e3 +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e3;
}

static double
ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int
main(int argc, char **argv)
{
	store *s = NULL;
	char *err = NULL;
	int seen = 0, enq = 0, total = 0, batch = SCHED_SCAN_BATCH, rc;
	double t0, t1, start, cpu0;

	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: scanprobe DB NOW [BATCH]\n");
		return 2;
	}
	if (argc == 4 && (batch = atoi(argv[3])) < 1) {
		fprintf(stderr, "scanprobe: BATCH must be a positive number\n");
		return 2;
	}
	if (store_open(argv[1], 0, &s, &err)) {
		fprintf(stderr, "scanprobe: %s\n", err ? err : "cannot open");
		return 1;
	}
	start = ms_now();
	cpu0 = cpu_ms();
	do {
		t0 = ms_now();
		rc = store_scan_due(s, strtoll(argv[2], NULL, 10),
				    batch, &seen, &enq);
		t1 = ms_now();
		if (rc) {
			fprintf(stderr, "scanprobe: scan failed: %s\n",
				rn_strerror(rc));
			store_close(s);
			return 1;
		}
		total += enq;
		printf("batch seen=%d enqueued=%d ms=%.2f\n", seen, enq,
		       t1 - t0);
	} while (seen == batch);
	printf("scan enqueued=%d ms=%.2f cpu_ms=%.2f\n", total,
	       ms_now() - start, cpu_ms() - cpu0);
	store_close(s);
	return 0;
}
