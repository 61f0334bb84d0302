/*
 * renewd's HTTP routes on net_httpd:
 *   GET  /healthz                         200 "ok" when the store answers
 *        a trivial read, else 503 "store unavailable: <why>"
 *   GET  /metrics                         Prometheus text 0.0.4: the
 *        process registry (common/metrics.h) and the store aggregates,
 *        read on a read-only connection in the libuv thread pool and
 *        shared by the scrapes of 5 s; 503 "store unavailable: <why>"
 *        when that read fails. Never one series per certificate.
 *   GET|POST /mdm/scep/proxy/{id}?operation=...   the SCEP proxy
 *   POST /webhook/mdm                     NanoMDM/MicroMDM events
 *        (mdmhook.c): 401 "bad signature" when webhook_hmac_key is set and
 *        X-Hmac-Signature does not verify, 400 with the parser's message,
 *        200 "duplicate" for an event_id seen before, else 200 "ok" once
 *        the event and its effects committed together.
 *   POST /api/v1/certificates             import a device's certificate
 *        (the same matching as renewctl import): Authorization: Bearer
 *        <http.api_token>, compared in constant time; 404 when no token
 *        is configured (API disabled), 401 on a missing/wrong token.
 *        Body {"host_uuid","profile_uuid","ca_name","pem"} (strings);
 *        200 {"id","serial","renewal_id"|null,"verified_job"|null,
 *        "duplicate"}; 400 {"error"} for bad JSON, a missing field, an
 *        unknown profile/CA or an unparsable certificate (nothing
 *        written); 500 {"error"} on a store failure. Always JSON.
 * The proxy ties every request to a host, profile, CA and live one-time
 * token before anything goes upstream, forwards GetCACaps, GetCACert and
 * PKIOperation to the CA with libcurl on the loop, records the CA's answer
 * (pkiStatus, failInfo) on the job, and passes the answer back byte for
 * byte. A CA's 200 to GetCACaps and GetCACert is kept per CA for 60 s and
 * answers the authorised requests of that time without going upstream
 * (one fetch at a time per CA and operation); PKIOperation always goes
 * upstream. Private to the daemon.
 */
#ifndef RN_DAEMON_HTTP_H
#define RN_DAEMON_HTTP_H

#include <uv.h>

#include "net/httpd.h"
#include "net/net.h"
#include "renewal/renewal.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

typedef struct http_env {
	store *s;
	const rn_conf *conf; /* updated by the daemon on reload */
	net_http *http;
	sched *sc;
	struct notif_engine *notif; /* kicked after outbox writes; or NULL */
	struct ca_health *cah;	    /* told about unreachable CAs; or NULL */
} http_env;

typedef struct http_srv http_srv;

int http_start(uv_loop_t *loop, http_env *env, http_srv **out,
	       char **errmsg);
/* Upstream calls in flight are detached (their answers are dropped),
 * held requests are answered 503, and the server closes. */
void http_stop(http_srv *h);

/*
 * Forget the cached GetCACaps/GetCACert answers of one CA (ca NULL: of
 * every CA): on reload, and when the CA is found unhealthy. A fetch in
 * flight still answers the requests waiting for it, but is not kept.
 */
void http_cache_drop(http_srv *h, const char *ca);

/* Retry-After for a 503 while the database is full: the seconds until
 * the scheduler's next write probe. */
void http_retry_after_full(http_env *env, net_httpd_req *req);
/* The /webhook/mdm route (mdmhook.c); answers req exactly once. */
void http_mdm_webhook(http_env *env, net_httpd_req *req);

#endif
