/*
 * sdnotify: systemd's service notification protocol, spoken directly (no
 * libsystemd): one AF_UNIX datagram of "KEY=VALUE\n" lines per message to
 * $NOTIFY_SOCKET, a file system path ("/run/systemd/notify") or an
 * abstract name ("@...").
 *
 *   READY=1        start-up finished (Type=notify)
 *   STATUS=...     one line of free text for `systemctl status`
 *   RELOADING=1    a reload began; READY=1 ends it
 *   STOPPING=1     shutdown began
 *   WATCHDOG=1     keep-alive for WatchdogSec=
 *
 * Invariants:
 *  - without NOTIFY_SOCKET nothing happens at all: sdn_init hands back
 *    NULL and every function here accepts NULL and returns 0;
 *  - sending never blocks the loop: the socket is non-blocking and a full
 *    queue (EAGAIN) drops the message, since the next status or watchdog
 *    ping supersedes it;
 *  - sdn_init removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from
 *    the environment, so push hooks and notifiers (children) cannot speak
 *    for renewd;
 *  - the watchdog pings from a loop timer every WATCHDOG_USEC / 2, so a
 *    loop that is stuck stops pinging and systemd restarts the service;
 *  - handles are freed in their close callbacks: after sdn_close, running
 *    the loop lets uv_loop_close() return 0.
 * Private to the daemon.
 */
#ifndef RN_SDNOTIFY_H
#define RN_SDNOTIFY_H

#include <stddef.h>
#include <stdint.h>

#include <uv.h>

typedef struct sdn sdn;

/* Writes one STATUS line (no newline) into buf for sdn_status_every. */
typedef void (*sdn_status_fn)(void *arg, char *buf, size_t len);

/*
 * Read the environment and open the socket. *out is NULL (and 0 is
 * returned) when NOTIFY_SOCKET is unset or empty. RN_EINVAL for an
 * address that is neither a path nor an abstract name or is too long,
 * RN_EIO when the socket cannot be created, RN_ENOMEM.
 * When WATCHDOG_USEC is set (and WATCHDOG_PID is unset or is our pid),
 * the watchdog timer starts at once.
 */
int sdn_init(uv_loop_t *loop, sdn **out);
/* Send raw lines ("READY=1\nSTATUS=x"); RN_EIO when sendto fails with
 * anything but EAGAIN. Messages are capped at 4 KiB. */
int sdn_notify(sdn *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int sdn_ready(sdn *n);
/* RELOADING=1 with MONOTONIC_USEC (what Type=notify-reload wants). */
int sdn_reloading(sdn *n);
/* STATUS=...; newlines in the text become spaces. Remembered, so
 * sdn_status_every does not send the same text again. */
int sdn_status(sdn *n, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/*
 * Every interval_ms call fn and send its text as STATUS= when it differs
 * from the last STATUS sent. sdn_stopping and sdn_close end it.
 */
int sdn_status_every(sdn *n, uint64_t interval_ms, sdn_status_fn fn,
		     void *arg);
/* STOPPING=1; ends sdn_status_every (the watchdog keeps pinging while
 * in-flight work drains). */
int sdn_stopping(sdn *n);
/* Milliseconds between watchdog pings, 0 when the watchdog is off. */
uint64_t sdn_watchdog_interval(const sdn *n);
/* Stop the timers, close the socket; n is freed in the close callbacks. */
void sdn_close(sdn *n);

#endif
