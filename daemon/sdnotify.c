/*
 * sdnotify: systemd's notify protocol on a non-blocking datagram socket,
 * with the watchdog and the periodic status on loop timers.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "common/common.h"
#include "daemon/sdnotify.h"

#define SDN_MSG_MAX 4096
#define SDN_STATUS_MAX 1024

struct sdn {
	uv_loop_t *loop;
	int fd;
	struct sockaddr_un addr;
	socklen_t addrlen;
	char *name; /* $NOTIFY_SOCKET as given, for messages */
	uv_timer_t wd_timer;
	uv_timer_t st_timer;
	uint64_t wd_ms;
	sdn_status_fn st_fn;
	void *st_arg;
	char last_status[SDN_STATUS_MAX];
	int warned;
	int open_handles;
};

/*
 * NOTIFY_SOCKET is a path or, with a leading '@', an abstract name whose
 * address is a NUL byte and the rest, not NUL-terminated (the length
 * says where it ends).
 */
static int
parse_address(const char *s, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(s);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (s[0] == '/') {
		if (n >= sizeof(sa->sun_path))
			return RN_EINVAL;
		memcpy(sa->sun_path, s, n + 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
		return RN_OK;
	}
	if (s[0] == '@' && n > 1) {
		if (n > sizeof(sa->sun_path))
			return RN_EINVAL;
		sa->sun_path[0] = '\0';
		memcpy(sa->sun_path + 1, s + 1, n - 1);
		*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
		return RN_OK;
	}
	return RN_EINVAL;
}

/*
 * The watchdog applies to us only when WATCHDOG_PID is unset or names
 * this process (it is meant for the main process, not for a child that
 * inherited the environment). Returns the ping interval in ms, 0 = off.
 */
static uint64_t
watchdog_ms(void)
{
	const char *us = getenv("WATCHDOG_USEC"), *ps = getenv("WATCHDOG_PID");
	unsigned long long usec;
	long pid;
	char *end;

	if (us == NULL || *us == '\0')
		return 0;
	if (ps && *ps) {
		errno = 0;
		pid = strtol(ps, &end, 10);
		if (errno || *end || pid != (long)getpid())
			return 0;
	}
	errno = 0;
	usec = strtoull(us, &end, 10);
	if (errno || *end || us[0] == '-' || usec == 0) {
		log_warnx("ignoring WATCHDOG_USEC '%s': not a number of "
			  "microseconds", us);
		return 0;
	}
	/* Half the period, as sd_watchdog_enabled(3) advises. */
	usec /= 2000;
	return usec ? (uint64_t)usec : 1;
}

static int
send_msg(sdn *n, const char *msg, size_t len)
{
	ssize_t r;

	if (n->fd < 0)
		return RN_OK;
	r = sendto(n->fd, msg, len, MSG_NOSIGNAL | MSG_DONTWAIT,
		   (const struct sockaddr *)&n->addr, n->addrlen);
	if (r >= 0)
		return RN_OK;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return RN_OK;
	if (!n->warned) {
		/* Once: a supervisor that went away would flood the log. */
		log_warn("cannot notify systemd at '%s'", n->name);
		n->warned = 1;
	}
	return RN_EIO;
}

static int
vnotify(sdn *n, const char *fmt, va_list ap)
{
	char buf[SDN_MSG_MAX];
	int len;

	len = vsnprintf(buf, sizeof(buf), fmt, ap);
	if (len < 0)
		return RN_EINVAL;
	if ((size_t)len >= sizeof(buf))
		len = sizeof(buf) - 1;
	return send_msg(n, buf, (size_t)len);
}

int
sdn_notify(sdn *n, const char *fmt, ...)
{
	va_list ap;
	int rc;

	if (n == NULL)
		return RN_OK;
	va_start(ap, fmt);
	rc = vnotify(n, fmt, ap);
	va_end(ap);
	return rc;
}

int
sdn_ready(sdn *n)
{
	return sdn_notify(n, "READY=1");
}

int
sdn_reloading(sdn *n)
{
	struct timespec ts;

	if (n == NULL)
		return RN_OK;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return sdn_notify(n, "RELOADING=1\nMONOTONIC_USEC=%llu",
			  (unsigned long long)ts.tv_sec * 1000000ULL +
				  (unsigned long long)ts.tv_nsec / 1000ULL);
}

/* One line: a newline would start a new KEY= assignment. */
static int
send_status(sdn *n, const char *text)
{
	char *p;

	if (text != n->last_status)
		snprintf(n->last_status, sizeof(n->last_status), "%s", text);
	for (p = n->last_status; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	return sdn_notify(n, "STATUS=%s", n->last_status);
}

int
sdn_status(sdn *n, const char *fmt, ...)
{
	char buf[SDN_STATUS_MAX];
	va_list ap;

	if (n == NULL)
		return RN_OK;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	return send_status(n, buf);
}

static void
on_status_timer(uv_timer_t *t)
{
	sdn *n = t->data;
	char buf[SDN_STATUS_MAX];
	char *p;

	buf[0] = '\0';
	n->st_fn(n->st_arg, buf, sizeof(buf));
	for (p = buf; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (strcmp(buf, n->last_status) != 0)
		send_status(n, buf);
}

int
sdn_status_every(sdn *n, uint64_t interval_ms, sdn_status_fn fn, void *arg)
{
	if (n == NULL)
		return RN_OK;
	if (fn == NULL || interval_ms == 0)
		return RN_EINVAL;
	n->st_fn = fn;
	n->st_arg = arg;
	uv_timer_start(&n->st_timer, on_status_timer, interval_ms,
		       interval_ms);
	return RN_OK;
}

int
sdn_stopping(sdn *n)
{
	if (n == NULL)
		return RN_OK;
	uv_timer_stop(&n->st_timer);
	return sdn_notify(n, "STOPPING=1");
}

uint64_t
sdn_watchdog_interval(const sdn *n)
{
	return n ? n->wd_ms : 0;
}

static void
on_watchdog(uv_timer_t *t)
{
	sdn_notify(t->data, "WATCHDOG=1");
}

int
sdn_init(uv_loop_t *loop, sdn **out)
{
	const char *addr = getenv("NOTIFY_SOCKET");
	sdn *n = NULL;
	int rc;

	*out = NULL;
	if (addr == NULL || *addr == '\0') {
		rc = RN_OK;
		goto out;
	}
	n = calloc(1, sizeof(*n));
	if (n == NULL || (n->name = rn_strdup(addr)) == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	n->fd = -1;
	rc = parse_address(addr, &n->addr, &n->addrlen);
	if (rc) {
		log_warnx("cannot use NOTIFY_SOCKET '%s': not a path or an "
			  "abstract socket name", addr);
		goto out;
	}
	n->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (n->fd < 0) {
		log_warn("cannot create the systemd notify socket");
		rc = RN_EIO;
		goto out;
	}
	n->wd_ms = watchdog_ms();
	n->loop = loop;
	uv_timer_init(loop, &n->wd_timer);
	uv_timer_init(loop, &n->st_timer);
	n->wd_timer.data = n->st_timer.data = n;
	/* Neither timer may keep the loop alive on its own. */
	uv_unref((uv_handle_t *)&n->wd_timer);
	uv_unref((uv_handle_t *)&n->st_timer);
	n->open_handles = 2;
	if (n->wd_ms)
		uv_timer_start(&n->wd_timer, on_watchdog, n->wd_ms, n->wd_ms);
	log_debug("notifying systemd at '%s', watchdog every %llu ms (0: off)",
		  n->name, (unsigned long long)n->wd_ms);
	*out = n;
	n = NULL;
out:
	/* Children (push hooks, notifiers) must not inherit these. */
	unsetenv("NOTIFY_SOCKET");
	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	if (n) {
		if (n->fd >= 0)
			close(n->fd);
		free(n->name);
		free(n);
	}
	return rc;
}

static void
on_closed(uv_handle_t *h)
{
	sdn *n = h->data;

	if (--n->open_handles > 0)
		return;
	free(n->name);
	free(n);
}

void
sdn_close(sdn *n)
{
	if (n == NULL)
		return;
	uv_timer_stop(&n->wd_timer);
	uv_timer_stop(&n->st_timer);
	if (n->fd >= 0) {
		close(n->fd);
		n->fd = -1;
	}
	uv_close((uv_handle_t *)&n->wd_timer, on_closed);
	uv_close((uv_handle_t *)&n->st_timer, on_closed);
}
