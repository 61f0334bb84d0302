/*
 * CA health: every configured CA is checked with GetCACaps + GetCACert at
 * start-up and on reload; an unhealthy CA is retried every minute and is
 * never fatal. Results are logged (subject, fingerprint, capabilities) and
 * reported by the control socket's status. Private to the daemon.
 */
#ifndef RN_CAHEALTH_H
#define RN_CAHEALTH_H

#include <jansson.h>
#include <uv.h>

#include "config/config.h"
#include "net/net.h"

typedef struct ca_health ca_health;

int ca_health_new(uv_loop_t *loop, net_http *http, ca_health **out);
/* Check every CA of c now (the previous set is forgotten). c must stay
 * valid until the next call or ca_health_free. */
void ca_health_check_all(ca_health *h, const cfg *c);
/* [{"name","url","healthy","checked_at","error"|"subject","sha256",
 *   "capabilities"}] */
json_t *ca_health_json(const ca_health *h);
/* Called with every check's result (err NULL when healthy). */
typedef void (*ca_health_cb)(void *arg, const char *ca, int healthy,
			     const char *err);
void ca_health_set_cb(ca_health *h, ca_health_cb cb, void *arg);
/* The proxy could not reach a CA believed healthy: check it now. */
void ca_health_suspect(ca_health *h, const char *name);
/*
 * The proxy got an HTTP answer from a CA believed unhealthy: check it
 * now rather than at the next minute tick, so ca.recovered follows the
 * CA's return within seconds. Not within 5 s of the CA's last check
 * (which also spaces these checks out); a CA believed healthy is left
 * alone.
 */
void ca_health_answered(ca_health *h, const char *name);
/* Stop timers; checks in flight finish into nothing; freed on close. */
void ca_health_free(ca_health *h);

#endif
