/*
 * net: asynchronous I/O on the libuv loop for the modules above it.
 *
 *  - net_http: an HTTP client on libcurl's multi-socket interface, its
 *    sockets under uv_poll and its timeout under a uv_timer (curl's
 *    multi-uv pattern). Connections are reused across requests. Never
 *    blocks the loop.
 *  - net_proc: a child process with uv_spawn: data on stdin, stdout and
 *    stderr captured (capped), killed after a timeout.
 *
 * A function that takes a callback and returns an error never calls the
 * callback; when it returns 0 the callback is called exactly once, always
 * from the loop (never from inside the starting call).
 */
#ifndef RN_NET_H
#define RN_NET_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

#include "common/common.h"

/* ---- HTTP client ------------------------------------------------------ */

typedef struct net_http net_http;

typedef struct net_http_req {
	const char *method;	     /* "GET", "POST", "PUT" */
	const char *url;
	const char *const *headers; /* NULL-terminated "Name: value", or NULL */
	const void *body;	     /* copied by net_http_request */
	size_t body_len;
	int64_t timeout_ms;	     /* whole request; 0 = 30 s */
	size_t max_response;	     /* response body cap; 0 = 1 MiB */
	const char *userpwd;	     /* HTTP basic "user:password", or NULL */
	const char *ca_file;	     /* PEM CAs trusted for https instead of
				      * the system's, or NULL */
} net_http_req;

typedef struct net_http_resp {
	int rc;		   /* 0, RN_ETIMEDOUT, RN_EIO (connect/transport),
			    * RN_ETOOBIG (response over cap), RN_ECANCELED */
	long status;	   /* HTTP status, 0 when none */
	const char *body;  /* NUL-terminated, valid during the callback */
	size_t body_len;
	const char *content_type; /* or NULL */
	const char *error; /* human text when rc != 0 (curl's error buffer) */
	double total_seconds;
} net_http_resp;

typedef void (*net_http_cb)(void *arg, const net_http_resp *resp);

int net_http_new(uv_loop_t *loop, net_http **out);
/*
 * The same client on a thread of its own (http_thread.c), for the bulk of
 * pushes: libcurl and the sockets' system calls leave the caller's loop,
 * which only copies each request over and runs each callback (on the
 * loop, as for net_http_new). HTTP only: net_smtp_send says RN_EINVAL.
 * net_http_free joins the thread; the callbacks it cancels run before it
 * returns.
 */
int net_http_new_threaded(uv_loop_t *loop, net_http **out);
int net_http_request(net_http *h, const net_http_req *req, net_http_cb cb,
		     void *arg);
/*
 * Send one email through the same multi handle (libcurl's SMTP): the
 * message is a complete RFC 5322 message with CRLF line ends. The
 * callback's status is the SMTP reply code; rc as for HTTP.
 */
typedef struct net_smtp_req {
	const char *url;	 /* smtp://host[:port] or smtps://... */
	const char *from;	 /* envelope sender */
	const char *const *rcpt; /* NULL-terminated, at least one */
	const char *username;	 /* or NULL: no AUTH */
	const char *password;
	int starttls;		 /* require STARTTLS on smtp:// */
	const void *message;
	size_t message_len;
	int64_t timeout_ms;	 /* 0 = 30 s */
	const char *ca_file;	 /* PEM CAs for TLS instead of the system's */
} net_smtp_req;

int net_smtp_send(net_http *h, const net_smtp_req *req, net_http_cb cb,
		  void *arg);
/* Requests in flight. */
size_t net_http_active(const net_http *h);
/*
 * Cancel every request (their callbacks run with RN_ECANCELED), close the
 * handles and free h once they are closed. h must not be used after.
 */
void net_http_free(net_http *h);

/* ---- child processes -------------------------------------------------- */

typedef struct net_proc_result {
	int rc;		    /* 0 when the child ran and exited on its own;
			     * RN_ETIMEDOUT when killed for the timeout;
			     * RN_ECANCELED when killed by net_proc_kill_all */
	int64_t exit_status;
	int term_signal;
	const char *output; /* stdout then stderr, capped, NUL-terminated */
	size_t output_len;
} net_proc_result;

typedef void (*net_proc_cb)(void *arg, const net_proc_result *res);

typedef struct net_proc_opts {
	char *const *argv;	/* argv[0] is looked up in PATH */
	char *const *env_extra; /* "K=V" added to the inherited environment */
	const void *stdin_data; /* copied; written then stdin is closed */
	size_t stdin_len;
	int64_t timeout_ms;	/* SIGTERM at timeout, SIGKILL 2 s later */
	size_t output_cap;	/* 0 = 64 KiB */
} net_proc_opts;

/* Spawn failure (no such file, ...) is an error return, not a callback. */
int net_proc_run(uv_loop_t *loop, const net_proc_opts *o, net_proc_cb cb,
		 void *arg);
/* Children still running. */
size_t net_proc_active(void);
/* Kill every running child now (SIGKILL); their callbacks follow. */
void net_proc_kill_all(void);

#endif
