/*
 * Policy math: due times, smear and backoff. Pure functions so the unit
 * tests can pin them exactly.
 */
#include "policy.h"

#include <string.h>

int64_t
sched_smear_offset(const cfg_policy *p, const char *host_uuid,
		   const char *profile_uuid)
{
	uint64_t h;

	if (p->smear <= 0)
		return 0;
	h = rn_hash64(host_uuid, strlen(host_uuid), 0);
	h = rn_hash64(profile_uuid, strlen(profile_uuid), h);
	return (int64_t)(h % (uint64_t)p->smear);
}

int64_t
sched_renew_at(const cfg_policy *p, int64_t nvb, int64_t nva,
	       const char *host_uuid, const char *profile_uuid)
{
	int64_t life = nva - nvb, due;

	if (life <= 0)
		return nvb; /* broken validity: due at once */
	if (p->renew_at_percent > 0)
		due = nvb + (int64_t)((double)life * p->renew_at_percent / 100.0);
	else if (life > p->renew_before)
		due = nva - p->renew_before;
	else
		due = nvb + (int64_t)((double)life * p->short_lived_fraction);
	/*
	 * The smear only moves renewals earlier, never past the window, and
	 * never by more than the window is deep, so a short-lived
	 * certificate is not renewed the moment it is issued.
	 */
	{
		int64_t off = sched_smear_offset(p, host_uuid, profile_uuid);
		if (off > (due - nvb) / 2)
			off = (due - nvb) / 2;
		due -= off;
	}
	if (due < nvb)
		due = nvb;
	return due;
}

int64_t
sched_backoff(const cfg_policy *p, int failed, uint64_t rnd)
{
	return sched_backoff_span(p->backoff_initial, p->backoff_max, failed,
				  rnd);
}

int64_t
sched_backoff_span(int64_t initial, int64_t max, int failed, uint64_t rnd)
{
	int64_t d = initial, half;
	int i;

	for (i = 1; i < failed && d < max; i++)
		d *= 2;
	if (d > max)
		d = max;
	if (d < 1)
		d = 1;
	half = d / 2;
	return d - half + (half > 0 ? (int64_t)(rnd % (uint64_t)(half + 1)) : 0);
}
