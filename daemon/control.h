/*
 * The control socket: a unix stream socket (mode 0600) speaking one JSON
 * line per request and one per reply, version 1:
 *   {"v":1,"cmd":"trigger"} -> {"v":1,"ok":true,"due":N,"enqueued":M}
 *   {"v":1,"cmd":"status"}  -> {"v":1,"ok":true,"pid":..,"version":..,
 *                               "started_at":..,"last_scan":{..}|null,
 *                               "in_flight":N,"cas":[...]}
 *   {"v":1,"cmd":"wake"}    -> {"v":1,"ok":true}
 * Errors: {"v":1,"ok":false,"error":"..."}. Requests over 64 KiB are
 * refused. Private to the daemon.
 */
#ifndef RN_CONTROL_H
#define RN_CONTROL_H

#include <uv.h>

#include "daemon/cahealth.h"
#include "scheduler/scheduler.h"

typedef struct ctl_server ctl_server;

/* Listen on path (a stale socket file is replaced; a live one is an
 * error: another renewd runs). */
int ctl_listen(uv_loop_t *loop, const char *path, sched *sc,
	       const ca_health *cah, int64_t started_at, ctl_server **out,
	       char **errmsg);
/* Stop listening, close clients, unlink the socket; frees on close. */
void ctl_close(ctl_server *c);

typedef enum ctl_cmd { CTL_CMD_TRIGGER, CTL_CMD_STATUS, CTL_CMD_WAKE } ctl_cmd;

/*
 * Parse one request line (NUL-terminated, without its '\n'): 0 and *cmd,
 * or RN_EINVAL and *why, the static text of the error reply. Pure: no
 * loop, no scheduler (a fuzz target).
 */
int ctl_request_parse(const char *line, ctl_cmd *cmd, const char **why);

#endif
