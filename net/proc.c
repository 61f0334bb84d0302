/*
 * net_proc: child processes on the libuv loop. See net.h.
 *
 * A child is a uv_process_t, three pipes and a kill timer, all inside one
 * proc_child. It is done when the process has exited and both output
 * pipes have reached EOF; then every handle is closed and the callback
 * runs from the last close callback, so a caller that was only waiting
 * for this child can close its loop right after.
 *
 * Each child leads its own process group (UV_PROCESS_DETACHED, i.e.
 * setsid) and signals go to the whole group: a shell's own children die
 * with it and cannot hold the output pipes open past a timeout.
 *
 * Writing stdin to a child that does not read it ends in EPIPE, which is
 * ignored; the process must ignore SIGPIPE (the daemon does) or that
 * write kills it.
 *
 * Details net.h leaves open: timeout_ms <= 0 means 60 s; the output is
 * all of stdout (up to the cap) followed by as much of stderr as still
 * fits; rc is RN_ETIMEDOUT also when the child exited in time but
 * something it started kept the output pipes open past the timeout. A
 * child that survives SIGKILL (stuck in the kernel) delays its callback
 * until it exits.
 */
#define _GNU_SOURCE
#include "net/net.h"

#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PROC_DEFAULT_CAP ((size_t)64 * 1024)
#define PROC_DEFAULT_TIMEOUT_MS 60000
#define PROC_KILL_GRACE_MS 2000 /* SIGTERM -> SIGKILL */
#define PROC_DRAIN_GRACE_MS 2000 /* SIGKILL -> give up on the pipes */

enum {
	PROC_WAITING,	/* timer armed for the timeout */
	PROC_TERM_SENT, /* timer armed for SIGKILL */
	PROC_KILL_SENT, /* timer armed to force the pipes shut */
	PROC_GAVE_UP,	/* no timer left */
};

typedef struct proc_child proc_child;

struct proc_child {
	uv_process_t process;
	uv_pipe_t in, out, err;
	uv_timer_t timer;
	uv_write_t wreq;
	char *stdin_data;
	size_t stdin_len;
	rn_buf out_buf, err_buf;
	int64_t exit_status;
	int term_signal;
	int rc;		/* RN_ETIMEDOUT / RN_ECANCELED once decided */
	int exited;
	int open_pipes;	/* stdout/stderr not yet at EOF */
	int handles;	/* uv handles not yet closed */
	int stage;
	int finishing;	/* handles are being closed */
	int failed;	/* spawn failed: no callback */
	net_proc_cb cb;
	void *arg;
	char rbuf[16384];
	proc_child *prev, *next;
};

static proc_child *children;
static size_t nchildren;

static void
proc_link(proc_child *p)
{
	p->next = children;
	if (children)
		children->prev = p;
	children = p;
	nchildren++;
}

static void
proc_unlink(proc_child *p)
{
	if (p->prev)
		p->prev->next = p->next;
	else
		children = p->next;
	if (p->next)
		p->next->prev = p->prev;
	p->prev = p->next = NULL;
	nchildren--;
}

static void
proc_free(proc_child *p)
{
	free(p->stdin_data);
	rn_buf_release(&p->out_buf);
	rn_buf_release(&p->err_buf);
	free(p);
}

/*
 * Every handle is closed: report (stdout, then as much stderr as still
 * fits under the cap) and free the child.
 */
static void
proc_handle_closed(uv_handle_t *hd)
{
	proc_child *p = hd->data;
	net_proc_result res;
	size_t room;

	if (--p->handles > 0)
		return;
	if (p->failed) {
		proc_free(p);
		return;
	}
	proc_unlink(p);
	room = p->out_buf.cap - p->out_buf.len;
	if (p->err_buf.len < room)
		room = p->err_buf.len;
	if (room)
		rn_buf_add(&p->out_buf, p->err_buf.data, room);

	memset(&res, 0, sizeof(res));
	res.rc = p->rc;
	res.exit_status = p->exit_status;
	res.term_signal = p->term_signal;
	res.output = p->out_buf.data ? p->out_buf.data : "";
	res.output_len = p->out_buf.len;
	p->cb(p->arg, &res);
	proc_free(p);
}

static void
proc_close(proc_child *p, uv_handle_t *hd)
{
	if (!uv_is_closing(hd))
		uv_close(hd, proc_handle_closed);
}

/* Done once the process is gone and nothing more can be read. */
static void
proc_maybe_finish(proc_child *p)
{
	if (p->finishing || !p->exited || p->open_pipes > 0)
		return;
	p->finishing = 1;
	proc_close(p, (uv_handle_t *)&p->timer);
	proc_close(p, (uv_handle_t *)&p->in);
	proc_close(p, (uv_handle_t *)&p->out);
	proc_close(p, (uv_handle_t *)&p->err);
	proc_close(p, (uv_handle_t *)&p->process);
}

/*
 * Signal the child's process group, which also reaches what a shell
 * started. Only when the group is gone and the child has not been
 * reaped yet is the child itself tried.
 */
static void
proc_signal(proc_child *p, int sig)
{
	if (kill(-p->process.pid, sig) == 0)
		return;
	if (!p->exited)
		uv_process_kill(&p->process, sig);
}

static void
proc_exit_cb(uv_process_t *proc, int64_t exit_status, int term_signal)
{
	proc_child *p = proc->data;

	p->exited = 1;
	p->exit_status = exit_status;
	p->term_signal = term_signal;
	proc_maybe_finish(p);
}

static void
proc_pipe_done(proc_child *p, uv_stream_t *s)
{
	if (uv_is_closing((uv_handle_t *)s))
		return;
	uv_close((uv_handle_t *)s, proc_handle_closed);
	p->open_pipes--;
}

static void
proc_alloc_cb(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	proc_child *p = hd->data;

	/* one buffer is enough: libuv hands it back before the next alloc */
	*buf = uv_buf_init(p->rbuf, sizeof(p->rbuf));
}

/* Keep what fits under the cap and drop the rest, but keep reading. */
static void
proc_read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	proc_child *p = s->data;
	rn_buf *b = s == (uv_stream_t *)&p->out ? &p->out_buf : &p->err_buf;
	size_t n, room;

	if (nread > 0) {
		n = (size_t)nread;
		room = b->cap - b->len;
		if (n > room)
			n = room;
		if (n && rn_buf_add(b, buf->base, n))
			log_warnx("cannot keep output of child %d: "
				  "out of memory", p->process.pid);
		return;
	}
	if (nread == 0)
		return;
	if (nread != UV_EOF)
		log_warnx("cannot read output of child %d: %s",
			  p->process.pid, uv_strerror((int)nread));
	proc_pipe_done(p, s);
	proc_maybe_finish(p);
}

/* stdin is written once; success or EPIPE, the pipe is closed after. */
static void
proc_write_cb(uv_write_t *req, int status)
{
	proc_child *p = req->data;

	if (status < 0 && status != UV_EPIPE && status != UV_ECANCELED)
		log_warnx("cannot write stdin of child %d: %s",
			  p->process.pid, uv_strerror(status));
	proc_close(p, (uv_handle_t *)&p->in);
}

/*
 * The kill timer walks through the stages: SIGTERM at the timeout,
 * SIGKILL after a grace period, and if the pipes are still open after
 * another one (something left the process group and kept them), stop
 * reading so the callback can still run.
 */
static void
proc_timer_cb(uv_timer_t *t)
{
	proc_child *p = t->data;

	switch (p->stage) {
	case PROC_WAITING:
		if (p->rc == 0)
			p->rc = RN_ETIMEDOUT;
		proc_signal(p, SIGTERM);
		p->stage = PROC_TERM_SENT;
		uv_timer_start(t, proc_timer_cb, PROC_KILL_GRACE_MS, 0);
		break;
	case PROC_TERM_SENT:
		proc_signal(p, SIGKILL);
		p->stage = PROC_KILL_SENT;
		uv_timer_start(t, proc_timer_cb, PROC_DRAIN_GRACE_MS, 0);
		break;
	case PROC_KILL_SENT:
		p->stage = PROC_GAVE_UP;
		if (p->open_pipes > 0)
			log_warnx("child %d: output still open after kill, "
				  "closing it", p->process.pid);
		proc_pipe_done(p, (uv_stream_t *)&p->out);
		proc_pipe_done(p, (uv_stream_t *)&p->err);
		proc_maybe_finish(p);
		break;
	default:
		break;
	}
}

/*
 * The inherited environment plus extra "K=V" entries; an extra entry
 * replaces any earlier one with the same key. The strings are borrowed,
 * only the array is allocated, and it is only needed during uv_spawn.
 */
static int
proc_env_build(char *const *extra, char ***out)
{
	size_t n = 0, m = 0, k, i, j, keylen;
	const char *eq;
	char **env;

	while (environ && environ[n])
		n++;
	while (extra && extra[m])
		m++;
	env = calloc(n + m + 1, sizeof(*env));
	if (env == NULL)
		return RN_ENOMEM;
	for (i = 0; i < n; i++)
		env[i] = environ[i];
	k = n;
	for (j = 0; j < m; j++) {
		eq = strchr(extra[j], '=');
		if (eq == NULL || eq == extra[j]) {
			free(env);
			return RN_EINVAL;
		}
		keylen = (size_t)(eq - extra[j]) + 1;
		for (i = 0; i < k; i++)
			if (strncmp(env[i], extra[j], keylen) == 0)
				break;
		env[i] = extra[j];
		if (i == k)
			k++;
	}
	env[k] = NULL;
	*out = env;
	return RN_OK;
}

static int
proc_err_from_uv(int uverr)
{
	switch (uverr) {
	case UV_ENOENT: return RN_ENOTFOUND;
	case UV_ENOMEM: return RN_ENOMEM;
	case UV_EINVAL: return RN_EINVAL;
	}
	return RN_EIO;
}

int
net_proc_run(uv_loop_t *loop, const net_proc_opts *o, net_proc_cb cb,
	     void *arg)
{
	uv_process_options_t po;
	uv_stdio_container_t stdio[3];
	proc_child *p;
	char **env = NULL;
	size_t cap;
	uint64_t tmo;
	int rc, uvrc;

	if (loop == NULL || o == NULL || o->argv == NULL ||
	    o->argv[0] == NULL || cb == NULL ||
	    (o->stdin_data == NULL && o->stdin_len))
		return RN_EINVAL;
	if (o->stdin_len > UINT_MAX)
		return RN_ETOOBIG;
	rc = proc_env_build(o->env_extra, &env);
	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (p == NULL) {
		free(env);
		return RN_ENOMEM;
	}
	cap = o->output_cap ? o->output_cap : PROC_DEFAULT_CAP;
	rn_buf_init(&p->out_buf, cap);
	rn_buf_init(&p->err_buf, cap);
	if (o->stdin_len) {
		p->stdin_data = malloc(o->stdin_len);
		if (p->stdin_data == NULL) {
			free(env);
			proc_free(p);
			return RN_ENOMEM;
		}
		memcpy(p->stdin_data, o->stdin_data, o->stdin_len);
		p->stdin_len = o->stdin_len;
	}
	p->cb = cb;
	p->arg = arg;

	/* from here on p is only freed by the last close callback */
	uv_pipe_init(loop, &p->in, 0);
	uv_pipe_init(loop, &p->out, 0);
	uv_pipe_init(loop, &p->err, 0);
	uv_timer_init(loop, &p->timer);
	p->in.data = p->out.data = p->err.data = p->timer.data = p;
	p->process.data = p;
	p->wreq.data = p;
	p->handles = 5;

	stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
	stdio[0].data.stream = (uv_stream_t *)&p->in;
	stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[1].data.stream = (uv_stream_t *)&p->out;
	stdio[2].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
	stdio[2].data.stream = (uv_stream_t *)&p->err;
	memset(&po, 0, sizeof(po));
	po.exit_cb = proc_exit_cb;
	po.file = o->argv[0];
	po.args = (char **)o->argv;
	po.env = env;
	po.flags = UV_PROCESS_DETACHED;
	po.stdio = stdio;
	po.stdio_count = 3;

	uvrc = uv_spawn(loop, &p->process, &po);
	free(env);
	if (uvrc) {
		log_warnx("cannot run '%s': %s", o->argv[0],
			  uv_strerror(uvrc));
		/* the process handle needs closing even after a failure */
		p->failed = 1;
		p->finishing = 1;
		proc_close(p, (uv_handle_t *)&p->timer);
		proc_close(p, (uv_handle_t *)&p->in);
		proc_close(p, (uv_handle_t *)&p->out);
		proc_close(p, (uv_handle_t *)&p->err);
		proc_close(p, (uv_handle_t *)&p->process);
		return proc_err_from_uv(uvrc);
	}
	proc_link(p);
	p->open_pipes = 2;
	uv_read_start((uv_stream_t *)&p->out, proc_alloc_cb, proc_read_cb);
	uv_read_start((uv_stream_t *)&p->err, proc_alloc_cb, proc_read_cb);
	if (p->stdin_len) {
		uv_buf_t b = uv_buf_init(p->stdin_data,
					 (unsigned int)p->stdin_len);

		if (uv_write(&p->wreq, (uv_stream_t *)&p->in, &b, 1,
			     proc_write_cb) != 0)
			proc_close(p, (uv_handle_t *)&p->in);
	} else {
		proc_close(p, (uv_handle_t *)&p->in);
	}
	tmo = o->timeout_ms > 0 ? (uint64_t)o->timeout_ms
				: PROC_DEFAULT_TIMEOUT_MS;
	uv_timer_start(&p->timer, proc_timer_cb, tmo, 0);
	return RN_OK;
}

size_t
net_proc_active(void)
{
	return nchildren;
}

/*
 * SIGKILL every child's group. The pipes get the short last grace
 * before they are given up on, so the callbacks follow promptly.
 */
void
net_proc_kill_all(void)
{
	proc_child *p;

	for (p = children; p != NULL; p = p->next) {
		if (p->finishing)
			continue;
		if (p->rc == 0)
			p->rc = RN_ECANCELED;
		proc_signal(p, SIGKILL);
		p->stage = PROC_KILL_SENT;
		uv_timer_start(&p->timer, proc_timer_cb, PROC_DRAIN_GRACE_MS,
			       0);
	}
}
