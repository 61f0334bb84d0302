/*
 * Policy math (pure functions, no I/O): when a certificate is due for
 * renewal and how long a failed attempt waits.
 */
#ifndef RN_POLICY_H
#define RN_POLICY_H

#include <stdint.h>

#include "config/config.h"

/*
 * Due time of a certificate valid from nvb to nva under policy p:
 *  - renew_before R: nva - R when the lifetime L > R, else
 *    nvb + L * short_lived_fraction (the short-lived rule);
 *  - renew_at_percent P: nvb + L * P / 100;
 * minus the smear offset, never before nvb and never after the window.
 */
int64_t sched_renew_at(const cfg_policy *p, int64_t nvb, int64_t nva,
		       const char *host_uuid, const char *profile_uuid);
/* Deterministic offset in [0, p->smear) from the host and profile UUIDs:
 * stable across restarts and builds. */
int64_t sched_smear_offset(const cfg_policy *p, const char *host_uuid,
			   const char *profile_uuid);
/*
 * Wait after the `failed`-th failed attempt (1-based): initial doubling
 * each time, capped at max, with "equal jitter": half fixed, half from
 * `rnd` (uniform random 64 bits), so it stays within [d/2, d].
 */
int64_t sched_backoff(const cfg_policy *p, int failed, uint64_t rnd);
/* The same from initial doubling to max (the notifiers' retries). */
int64_t sched_backoff_span(int64_t initial, int64_t max, int failed,
			   uint64_t rnd);

#endif
