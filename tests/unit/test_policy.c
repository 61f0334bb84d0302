/*
 * scheduler/policy: due times (renew_before, short-lived rule,
 * renew_at_percent), the deterministic smear and the retry backoff.
 *
 * Pure functions, so every value is checked exactly or against the
 * documented bounds over many deterministic pseudo-random inputs.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/common.h"
#include "config/config.h"
#include "scheduler/policy.h"

#define MINUTE INT64_C(60)
#define HOUR INT64_C(3600)
#define DAY INT64_C(86400)
#define NVB INT64_C(1700000000) /* 2023-11-14T22:13:20Z */

static const char *const PROFILE = "6f1c2f64-3b0e-4c51-9d0f-0a4b8f3c2e11";
static const char *const HOST = "0d6b6a8e-2a55-4c7e-8d0b-1f5a9c3e7b42";

/* Deterministic PRNG (splitmix64) so failures reproduce. */
static uint64_t
rnd64(uint64_t *st)
{
	uint64_t z = (*st += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* A UUID-shaped string from the PRNG. */
static void
rnd_uuid(uint64_t *st, char out[37])
{
	uint64_t a = rnd64(st), b = rnd64(st);

	snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx",
		 (unsigned)(a >> 32), (unsigned)(a >> 16) & 0xffff,
		 (unsigned)a & 0xfff, (unsigned)(b >> 48 & 0x3fff) | 0x8000,
		 (unsigned long long)(b & UINT64_C(0xffffffffffff)));
}

static cfg_policy
pol(int64_t renew_before, double percent, int64_t smear)
{
	cfg_policy p = *cfg_policy_default();

	p.renew_before = renew_before;
	p.renew_at_percent = percent;
	p.smear = smear;
	return p;
}

/* ---- due times without smear ------------------------------------------ */

static void
test_defaults_are_documented(void **state)
{
	const cfg_policy *d = cfg_policy_default();

	/* the tests below rely on these documented defaults */
	assert_true(d->renew_before == 30 * DAY);
	assert_true(d->renew_at_percent == 0);
	assert_true(d->short_lived_fraction == 0.5);
	assert_true(d->smear == 0);
	assert_true(d->backoff_initial == 5 * MINUTE);
	assert_true(d->backoff_max == 12 * HOUR);
}

static void
test_long_lived(void **state)
{
	cfg_policy p = pol(30 * DAY, 0, 0);
	int64_t nva = NVB + 365 * DAY;

	assert_true(sched_renew_at(&p, NVB, nva, HOST, PROFILE) ==
		    nva - 30 * DAY);
	/* one second longer than R: still the renew_before branch */
	assert_true(sched_renew_at(&p, NVB, NVB + 30 * DAY + 1, HOST,
				   PROFILE) == NVB + 1);
	/* 90-day certificate (ACME-like) */
	assert_true(sched_renew_at(&p, NVB, NVB + 90 * DAY, HOST, PROFILE) ==
		    NVB + 60 * DAY);
	assert_true(sched_smear_offset(&p, HOST, PROFILE) == 0);
}

static void
test_short_lived(void **state)
{
	cfg_policy p = pol(30 * DAY, 0, 0);

	p.short_lived_fraction = 0.5;
	assert_true(sched_renew_at(&p, NVB, NVB + 20 * DAY, HOST, PROFILE) ==
		    NVB + 10 * DAY);
	/* exactly L == R is short-lived: half-life, not nva - R == nvb */
	assert_true(sched_renew_at(&p, NVB, NVB + 30 * DAY, HOST, PROFILE) ==
		    NVB + 15 * DAY);
	/* another fraction */
	p.short_lived_fraction = 0.25;
	assert_true(sched_renew_at(&p, NVB, NVB + 20 * DAY, HOST, PROFILE) ==
		    NVB + 5 * DAY);
	/* a one-hour certificate */
	p.short_lived_fraction = 0.5;
	assert_true(sched_renew_at(&p, NVB, NVB + HOUR, HOST, PROFILE) ==
		    NVB + 30 * MINUTE);
}

static void
test_percent(void **state)
{
	cfg_policy p = pol(0, 66, 0);

	assert_true(sched_renew_at(&p, NVB, NVB + 100 * DAY, HOST, PROFILE) ==
		    NVB + 66 * DAY);
	/* percent applies to short certificates too (no short-lived rule) */
	assert_true(sched_renew_at(&p, NVB, NVB + 10 * DAY, HOST, PROFILE) ==
		    NVB + 10 * DAY * 66 / 100);
	p.renew_at_percent = 50;
	assert_true(sched_renew_at(&p, NVB, NVB + 365 * DAY, HOST, PROFILE) ==
		    NVB + 365 * DAY / 2);
}

static void
test_broken_validity(void **state)
{
	cfg_policy p = pol(30 * DAY, 0, 0);
	cfg_policy ps = pol(30 * DAY, 0, 24 * HOUR);
	cfg_policy pp = pol(0, 66, 24 * HOUR);

	assert_true(sched_renew_at(&p, NVB, NVB, HOST, PROFILE) == NVB);
	assert_true(sched_renew_at(&p, NVB, NVB - DAY, HOST, PROFILE) == NVB);
	assert_true(sched_renew_at(&ps, NVB, NVB, HOST, PROFILE) == NVB);
	assert_true(sched_renew_at(&ps, NVB, NVB - 1, HOST, PROFILE) == NVB);
	assert_true(sched_renew_at(&pp, NVB, NVB - 365 * DAY, HOST, PROFILE) ==
		    NVB);
}

/* ---- smear ------------------------------------------------------------ */

static void
test_smear_range_stable_spread(void **state)
{
	cfg_policy p = pol(30 * DAY, 0, 24 * HOUR);
	cfg_policy p0 = pol(30 * DAY, 0, 0);
	uint64_t seed = 42;
	int64_t first = -1, lo = INT64_MAX, hi = -1;
	int differs = 0, i, buckets[4] = { 0, 0, 0, 0 };
	int64_t nva = NVB + 365 * DAY;
	int64_t unsmeared = sched_renew_at(&p0, NVB, nva, HOST, PROFILE);

	assert_true(unsmeared == nva - 30 * DAY);
	for (i = 0; i < 1000; i++) {
		char host[37];
		int64_t off, off2, at;

		rnd_uuid(&seed, host);
		off = sched_smear_offset(&p, host, PROFILE);
		off2 = sched_smear_offset(&p, host, PROFILE);
		assert_true(off >= 0);
		assert_true(off < 24 * HOUR);
		assert_true(off == off2); /* stable across calls */
		at = sched_renew_at(&p, NVB, nva, host, PROFILE);
		assert_true(at == sched_renew_at(&p, NVB, nva, host, PROFILE));
		/* deep window: no clamp, exactly the offset earlier */
		assert_true(at == unsmeared - off);
		if (first < 0)
			first = off;
		else if (off != first)
			differs++;
		if (off < lo)
			lo = off;
		if (off > hi)
			hi = off;
		buckets[off / (6 * HOUR)]++;
	}
	assert_true(differs > 0);
	/* spread over the whole window, not a few values */
	assert_true(lo < HOUR);
	assert_true(hi > 23 * HOUR);
	for (i = 0; i < 4; i++)
		assert_true(buckets[i] > 150);
	/* the profile takes part in the offset */
	{
		char prof[37];
		int same = 0;
		for (i = 0; i < 100; i++) {
			rnd_uuid(&seed, prof);
			if (sched_smear_offset(&p, HOST, prof) ==
			    sched_smear_offset(&p, HOST, PROFILE))
				same++;
		}
		assert_true(same < 5);
	}
}

static void
test_smear_pinned(void **state)
{
	/*
	 * The offset must be stable across builds (a restart must not
	 * reshuffle the fleet): pin it for one input. 24993 was computed once,
	 * independently, as rn_hash64(profile, rn_hash64(host, 0)) % 86400.
	 */
	cfg_policy p = pol(30 * DAY, 0, 24 * HOUR);

	assert_true(sched_smear_offset(&p, HOST, PROFILE) == 24993);
	assert_true(sched_renew_at(&p, NVB, NVB + 365 * DAY, HOST, PROFILE) ==
		    NVB + 335 * DAY - 24993);
}

/* ---- invariants over random inputs ------------------------------------ */

static void
check_bounds(const cfg_policy *p, uint64_t *seed, int n)
{
	cfg_policy p0 = *p;
	int i;

	p0.smear = 0;
	for (i = 0; i < n; i++) {
		char host[37], prof[37];
		int64_t nvb = (int64_t)(rnd64(seed) % (UINT64_C(1) << 34));
		int64_t life, un, at, off;
		uint64_t kind = rnd64(seed) % 4;

		if (kind == 0)
			life = 1 + (int64_t)(rnd64(seed) % 120); /* tiny */
		else if (kind == 1)
			life = 1 + (int64_t)(rnd64(seed) % (2 * DAY));
		else if (kind == 2)
			life = 1 + (int64_t)(rnd64(seed) % (60 * DAY));
		else
			life = 1 + (int64_t)(rnd64(seed) % (3 * 365 * DAY));
		rnd_uuid(seed, host);
		rnd_uuid(seed, prof);
		un = sched_renew_at(&p0, nvb, nvb + life, host, prof);
		at = sched_renew_at(p, nvb, nvb + life, host, prof);
		off = sched_smear_offset(p, host, prof);
		if (at < nvb || at > un || at > nvb + life)
			print_message("nvb %lld life %lld unsmeared %lld "
				      "got %lld\n",
				      (long long)nvb, (long long)life,
				      (long long)un, (long long)at);
		assert_true(un >= nvb);
		assert_true(un <= nvb + life);
		assert_true(at >= nvb);
		assert_true(at <= un);
		/* never moved by more than the offset */
		assert_true(un - at <= off);
		/* stable */
		assert_true(at == sched_renew_at(p, nvb, nvb + life, host,
						 prof));
	}
}

static void
test_bounds_random(void **state)
{
	uint64_t seed = 7;
	cfg_policy a = pol(30 * DAY, 0, 24 * HOUR);
	cfg_policy b = pol(0, 66, 24 * HOUR);
	cfg_policy c = pol(HOUR, 0, 7 * DAY);
	cfg_policy d = pol(0, 1, 24 * HOUR);

	check_bounds(&a, &seed, 20000);
	check_bounds(&b, &seed, 20000);
	check_bounds(&c, &seed, 20000);
	check_bounds(&d, &seed, 20000);
}

static void
test_tiny_lifetime_smear(void **state)
{
	/* 60 s certificate, 24 h smear: short-lived rule gives nvb + 30 s;
	 * the smear may not push it before nvb nor after 30 s, and (per
	 * policy.c) moves it by at most half the window so it is not
	 * renewed the moment it is issued. */
	cfg_policy p = pol(30 * DAY, 0, 24 * HOUR);
	uint64_t seed = 99;
	int i, moved = 0;

	for (i = 0; i < 1000; i++) {
		char host[37];
		int64_t at;

		rnd_uuid(&seed, host);
		at = sched_renew_at(&p, NVB, NVB + 60, host, PROFILE);
		assert_true(at >= NVB + 15);
		assert_true(at <= NVB + 30);
		if (at != NVB + 30)
			moved++;
	}
	assert_true(moved > 0);
	/* 1 s certificate: due at once at nvb, never before */
	for (i = 0; i < 100; i++) {
		char host[37];
		rnd_uuid(&seed, host);
		assert_true(sched_renew_at(&p, NVB, NVB + 1, host, PROFILE) ==
			    NVB);
	}
}

/* ---- backoff ---------------------------------------------------------- */

static void
test_backoff(void **state)
{
	cfg_policy p = pol(30 * DAY, 0, 0);
	uint64_t seed = 1234;
	int64_t lo1 = INT64_MAX, hi1 = 0;
	int i;

	p.backoff_initial = 5 * MINUTE;
	p.backoff_max = 12 * HOUR;

	/* rnd 0: the lower bound, half of the doubled delay */
	assert_true(sched_backoff(&p, 1, 0) == 150);
	assert_true(sched_backoff(&p, 2, 0) == 300);
	assert_true(sched_backoff(&p, 3, 0) == 600);
	assert_true(sched_backoff(&p, 30, 0) == 6 * HOUR);
	assert_true(sched_backoff(&p, 1000, 0) == 6 * HOUR);
	assert_true(sched_backoff(&p, INT_MAX, 0) == 6 * HOUR);

	for (i = 0; i < 10000; i++) {
		uint64_t r = rnd64(&seed);
		int64_t d1 = sched_backoff(&p, 1, r);
		int64_t d2 = sched_backoff(&p, 2, r);
		int64_t d3 = sched_backoff(&p, 3, r);
		int64_t d30 = sched_backoff(&p, 30, r);
		int64_t d1000 = sched_backoff(&p, 1000, r);

		assert_true(d1 >= 150 && d1 <= 300);
		assert_true(d2 >= 300 && d2 <= 600);
		assert_true(d3 >= 600 && d3 <= 1200);
		assert_true(d30 >= 6 * HOUR && d30 <= 12 * HOUR);
		assert_true(d1000 >= 6 * HOUR && d1000 <= 12 * HOUR);
		if (d1 < lo1)
			lo1 = d1;
		if (d1 > hi1)
			hi1 = d1;
	}
	/* the jitter really spreads over the half-window */
	assert_true(lo1 < 160);
	assert_true(hi1 > 290);

	{
		static const uint64_t big[] = {
			UINT64_MAX, UINT64_MAX - 1, UINT64_MAX / 2,
			UINT64_C(1) << 63, (UINT64_C(1) << 63) - 1,
		};
		size_t k;
		for (k = 0; k < sizeof(big) / sizeof(big[0]); k++) {
			int64_t d;
			d = sched_backoff(&p, 1, big[k]);
			assert_true(d >= 150 && d <= 300);
			d = sched_backoff(&p, 30, big[k]);
			assert_true(d >= 6 * HOUR && d <= 12 * HOUR);
			d = sched_backoff(&p, 1000, big[k]);
			assert_true(d >= 6 * HOUR && d <= 12 * HOUR);
		}
	}
	/* never decreasing lower bound, capped */
	{
		int64_t prev = 0;
		for (i = 1; i <= 64; i++) {
			int64_t d = sched_backoff(&p, i, 0);
			assert_true(d >= prev);
			assert_true(d <= 6 * HOUR);
			prev = d;
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_are_documented),
		cmocka_unit_test(test_long_lived),
		cmocka_unit_test(test_short_lived),
		cmocka_unit_test(test_percent),
		cmocka_unit_test(test_broken_validity),
		cmocka_unit_test(test_smear_range_stable_spread),
		cmocka_unit_test(test_smear_pinned),
		cmocka_unit_test(test_bounds_random),
		cmocka_unit_test(test_tiny_lifetime_smear),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
