/*
 * Control socket server. Each client sends one request line and gets one
 * reply line; the connection then closes. Replies to trigger wait for the
 * scan to finish.
 */
#define _GNU_SOURCE
#include "control.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <jansson.h>

#define CTL_MAX_REQUEST (64 * 1024)

struct ctl_server {
	uv_pipe_t pipe;
	uv_loop_t *loop;
	sched *sc;
	const ca_health *cah;
	char *path;
	int64_t started_at;
	struct ctl_client *clients;
};

typedef struct ctl_client {
	uv_pipe_t pipe;
	ctl_server *srv;
	rn_buf in;
	int replied;
	int closing;
	int waiting; /* a trigger reply is pending in the scheduler */
	int closed;  /* its handle is closed; freed when not waiting */
	struct ctl_client *next;
} ctl_client;

static void
client_closed(uv_handle_t *h)
{
	ctl_client *c = h->data;
	ctl_client **pp;

	if (c->srv != NULL)
		for (pp = &c->srv->clients; *pp; pp = &(*pp)->next)
			if (*pp == c) {
				*pp = c->next;
				break;
			}
	c->closed = 1;
	if (c->waiting)
		return; /* on_scanned frees it */
	rn_buf_release(&c->in);
	free(c);
}

static void
client_close(ctl_client *c)
{
	if (c->closing)
		return;
	c->closing = 1;
	uv_close((uv_handle_t *)&c->pipe, client_closed);
}

typedef struct write_req {
	uv_write_t req;
	char *data;
	ctl_client *c;
} write_req;

static void
on_written(uv_write_t *req, int status)
{
	write_req *w = (write_req *)req;

	client_close(w->c);
	free(w->data);
	free(w);
}

/* Send a JSON reply (stealing the reference) and close afterwards. */
static void
reply(ctl_client *c, json_t *o)
{
	write_req *w;
	uv_buf_t b;

	json_object_set_new(o, "v", json_integer(1));
	if (c->replied || c->closing) {
		json_decref(o);
		return;
	}
	c->replied = 1;
	w = calloc(1, sizeof(*w));
	if (w)
		w->data = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (w == NULL || w->data == NULL) {
		if (w)
			free(w);
		client_close(c);
		return;
	}
	w->c = c;
	{
		size_t n = strlen(w->data);
		char *d = realloc(w->data, n + 2);
		if (d == NULL) {
			free(w->data);
			free(w);
			client_close(c);
			return;
		}
		d[n] = '\n';
		d[n + 1] = '\0';
		w->data = d;
		b = uv_buf_init(d, (unsigned)(n + 1));
	}
	if (uv_write(&w->req, (uv_stream_t *)&c->pipe, &b, 1, on_written)) {
		free(w->data);
		free(w);
		client_close(c);
	}
}

static void
reply_error(ctl_client *c, const char *msg)
{
	reply(c, json_pack("{s:b,s:s}", "ok", 0, "error", msg));
}

static void
on_scanned(void *arg, const sched_scan *r)
{
	ctl_client *c = arg;

	c->waiting = 0;
	if (c->closed) {
		rn_buf_release(&c->in);
		free(c);
		return;
	}
	if (r == NULL) {
		reply_error(c, "renewd is shutting down");
		return;
	}
	if (r->rc == RN_EFULL) {
		reply_error(c, "database is full: the scan runs once renewd "
			    "can write again");
		return;
	}
	reply(c, json_pack("{s:b,s:I,s:I,s:f}", "ok", 1, "due",
			   (json_int_t)r->due, "enqueued",
			   (json_int_t)r->enqueued, "duration_ms",
			   r->duration_ms));
}

static json_t *
status_json(ctl_server *s)
{
	const sched_scan *l = sched_last_scan(s->sc);
	json_t *o, *scan = json_null();

	if (l->at)
		scan = json_pack("{s:I,s:I,s:I,s:f}", "at", (json_int_t)l->at,
				 "due", (json_int_t)l->due, "enqueued",
				 (json_int_t)l->enqueued, "duration_ms",
				 l->duration_ms);
	o = json_pack("{s:b,s:I,s:s,s:I,s:o,s:I,s:o}", "ok", 1, "pid",
		      (json_int_t)getpid(), "version", RN_VERSION,
		      "started_at", (json_int_t)s->started_at, "last_scan",
		      scan, "in_flight",
		      (json_int_t)sched_in_flight(s->sc), "cas",
		      ca_health_json(s->cah));
	/* the database is full: no new work until a write succeeds */
	if (o)
		json_object_set_new(o, "store_full",
				    json_boolean(sched_store_full(s->sc) > 0));
	return o;
}

/*
 * The request line is outside input: parsing is kept apart from acting on
 * it so that it can be fuzzed without a loop or a scheduler.
 */
int
ctl_request_parse(const char *line, ctl_cmd *cmd, const char **why)
{
	json_error_t jerr;
	json_t *req = json_loads(line, 0, &jerr);
	const char *name = NULL;
	json_int_t v = 0;
	int rc = RN_EINVAL;

	*why = NULL;
	if (req == NULL || json_unpack(req, "{s:I,s:s}", "v", &v, "cmd",
				       &name) != 0)
		*why = "bad request: want {\"v\":1,\"cmd\":...}";
	else if (v != 1)
		*why = "unsupported protocol version";
	else if (strcmp(name, "trigger") == 0)
		*cmd = CTL_CMD_TRIGGER;
	else if (strcmp(name, "status") == 0)
		*cmd = CTL_CMD_STATUS;
	else if (strcmp(name, "wake") == 0)
		*cmd = CTL_CMD_WAKE;
	else
		*why = "unknown command";
	if (*why == NULL)
		rc = RN_OK;
	json_decref(req);
	return rc;
}

static void
handle(ctl_client *c, const char *line)
{
	ctl_cmd cmd;
	const char *why;

	if (ctl_request_parse(line, &cmd, &why) != RN_OK) {
		reply_error(c, why);
		return;
	}
	switch (cmd) {
	case CTL_CMD_TRIGGER:
		c->waiting = 1;
		sched_trigger(c->srv->sc, on_scanned, c);
		break;
	case CTL_CMD_STATUS:
		reply(c, status_json(c->srv));
		break;
	case CTL_CMD_WAKE:
		sched_kick(c->srv->sc);
		reply(c, json_pack("{s:b}", "ok", 1));
		break;
	}
}

static void
on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char slab[4096];

	(void)h;
	(void)suggested;
	*buf = uv_buf_init(slab, sizeof(slab));
}

static void
on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
	ctl_client *c = st->data;
	char *nl;

	if (n < 0) {
		/* EOF before a full line, or an error: nothing to answer */
		if (!c->replied)
			uv_read_stop(st);
		if (!c->replied || n != UV_EOF)
			client_close(c);
		return;
	}
	if (n == 0 || c->replied)
		return;
	if (rn_buf_add(&c->in, buf->base, (size_t)n) != RN_OK) {
		uv_read_stop(st);
		reply_error(c, "request too large");
		return;
	}
	nl = memchr(c->in.data, '\n', c->in.len);
	if (nl == NULL)
		return;
	*nl = '\0';
	uv_read_stop(st);
	handle(c, c->in.data);
}

static void
on_connection(uv_stream_t *server, int status)
{
	ctl_server *s = server->data;
	ctl_client *c;

	if (status < 0)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return;
	c->srv = s;
	rn_buf_init(&c->in, CTL_MAX_REQUEST);
	uv_pipe_init(s->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->next = s->clients;
	s->clients = c;
	if (uv_accept(server, (uv_stream_t *)&c->pipe) ||
	    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read))
		client_close(c);
}

/* Is a renewd already answering on this socket? */
static int
socket_alive(const char *path)
{
	struct sockaddr_un sa;
	int fd, alive;

	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa.sun_path))
		return 0;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return alive;
}

int
ctl_listen(uv_loop_t *loop, const char *path, sched *sc,
	   const ca_health *cah, int64_t started_at, ctl_server **out,
	   char **errmsg)
{
	ctl_server *s;
	mode_t old;
	int rc;

	*out = NULL;
	*errmsg = NULL;
	if (socket_alive(path)) {
		*errmsg = rn_asprintf("control socket '%s' is in use: is "
				      "another renewd running?", path);
		return RN_EBUSY;
	}
	unlink(path);
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return RN_ENOMEM;
	s->loop = loop;
	s->sc = sc;
	s->cah = cah;
	s->started_at = started_at;
	s->path = rn_strdup(path);
	uv_pipe_init(loop, &s->pipe, 0);
	s->pipe.data = s;
	/* Created 0600 from the start: no window where others can connect. */
	old = umask(0177);
	rc = uv_pipe_bind(&s->pipe, path);
	umask(old);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s->pipe, 64, on_connection);
	if (rc) {
		*errmsg = rn_asprintf("cannot listen on control socket '%s': "
				      "%s", path, uv_strerror(rc));
		ctl_close(s);
		return RN_EIO;
	}
	chmod(path, 0600);
	*out = s;
	return RN_OK;
}

static void
server_closed(uv_handle_t *h)
{
	ctl_server *s = h->data;

	free(s->path);
	free(s);
}

void
ctl_close(ctl_server *s)
{
	ctl_client *c;

	if (s == NULL)
		return;
	for (c = s->clients; c; c = c->next) {
		c->srv = NULL;
		client_close(c);
	}
	s->clients = NULL;
	if (s->path)
		unlink(s->path);
	uv_close((uv_handle_t *)&s->pipe, server_closed);
}
