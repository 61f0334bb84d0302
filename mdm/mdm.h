/*
 * mdm: push drivers. A driver takes one rendered profile for one job and
 * hands it to the MDM, asynchronously on the loop, and reports whether the
 * MDM accepted it. Drivers in this module: exec (a child process with the
 * profile on stdin), webhook (JSON POST through net_http), nanomdm (an
 * InstallProfile plist PUT to /v1/enqueue/{id}) and micromdm (JSON POST to
 * /v1/commands), the last two with HTTP basic auth "<driver>:<api key>".
 *
 * A push either returns an error (and never calls back) or calls back
 * exactly once from the loop.
 */
#ifndef RN_MDM_H
#define RN_MDM_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/common.h"
#include "config/config.h"
#include "net/net.h"

typedef struct mdm_push {
	int64_t job_id;
	const char *host_uuid, *profile_uuid, *ca_name, *renewal_id;
	const char *kind;	   /* issue | renew | resend */
	const char *command_uuid;  /* fresh UUID for this push */
	const char *enrollment_id; /* NULL = host_uuid */
	const char *profile;	   /* rendered .mobileconfig */
	size_t profile_len;
} mdm_push;

typedef struct mdm_result {
	int ok;		    /* 1 = the MDM accepted the command */
	const char *detail; /* what happened, one line; e.g. "exit 0",
			     * "http 202", "exit 3: <first output line>",
			     * "timed out after 30s"; never a secret */
	const char *command_uuid; /* the command UUID the MDM assigned
				   * (micromdm), valid during the callback;
				   * NULL when the MDM assigns none and the
				   * push's own command_uuid stands */
	int unreachable;    /* 1 when the MDM could not be reached: connect
			     * error, timeout, HTTP 5xx (HTTP drivers) */
} mdm_result;

/*
 * A bare MDM command without payload (e.g. CertificateList), for the
 * drivers that talk to an MDM command API.
 */
typedef struct mdm_command {
	const char *host_uuid;
	const char *enrollment_id; /* NULL = host_uuid */
	const char *request_type;  /* e.g. "CertificateList" */
	const char *command_uuid;  /* fresh UUID (nanomdm; micromdm assigns
				    * its own, passed back in the result) */
} mdm_command;

typedef void (*mdm_cb)(void *arg, const mdm_result *r);

typedef struct mdm mdm;

/* The driver of cfg->mdm; `http` is shared, not owned. cfg must outlive it
 * (the daemon swaps drivers on reload). */
int mdm_new(uv_loop_t *loop, net_http *http, const cfg_mdm *c, mdm **out);
void mdm_free(mdm *m);
int mdm_push_start(mdm *m, const mdm_push *p, mdm_cb cb, void *arg);
/*
 * The webhook driver's request body for a push (compact JSON, the profile
 * in base64), as mdm_push_start sends it; *out malloc'd. RN_EINVAL when a
 * member is not UTF-8. For the tests and the fuzz target.
 */
int mdm_webhook_body(const mdm_push *p, char **out);
/*
 * Send a command through the nanomdm or micromdm driver; same callback
 * contract as mdm_push_start. The exec and webhook drivers have no
 * command channel and return RN_EINVAL (without calling back).
 */
int mdm_command_start(mdm *m, const mdm_command *c, mdm_cb cb, void *arg);
const char *mdm_driver_name(int driver);

#endif
