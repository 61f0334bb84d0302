/*
 * testhttp: loop helpers and a tiny HTTP/1.1 server for the unit tests.
 * See testhttp.h.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/common.h"
#include "tests/unit/support/testhttp.h"

/* ---- loop helpers ----------------------------------------------------- */

static void
guard_fired(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/*
 * Run the loop until *count reaches want or ms pass, whichever is first,
 * so that a broken implementation fails the test instead of hanging it.
 */
int
th_run_until(uv_loop_t *loop, const int *count, int want, uint64_t ms)
{
	uv_timer_t guard;
	int expired = 0;

	uv_timer_init(loop, &guard);
	guard.data = &expired;
	uv_timer_start(&guard, guard_fired, ms, 0);
	while (*count < want && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *count >= want;
}

/* Let pending closes finish (bounded), then the loop must close. */
void
th_drain_and_close(uv_loop_t *loop)
{
	uint64_t deadline = uv_hrtime() + 3000000000ULL;

	while (uv_loop_alive(loop) && uv_hrtime() < deadline) {
		uv_run(loop, UV_RUN_NOWAIT);
		usleep(1000);
	}
	assert_int_equal(uv_loop_close(loop), 0);
}

uint64_t
th_ms_since(uint64_t start)
{
	return (uv_hrtime() - start) / 1000000;
}

/* ---- a tiny HTTP/1.1 server ------------------------------------------- */

typedef struct th_conn {
	uv_tcp_t tcp;
	th_srv *s;
	rn_buf in;
	struct th_conn *prev, *next;
} srv_conn;

typedef struct srv_write {
	uv_write_t req;
	char *data;
	srv_conn *c;
	int close_after;
} srv_write;

static void
srv_conn_closed(uv_handle_t *hd)
{
	srv_conn *c = hd->data;

	rn_buf_release(&c->in);
	free(c);
}

static void
srv_conn_close(srv_conn *c)
{
	th_srv *s = c->s;

	if (uv_is_closing((uv_handle_t *)&c->tcp))
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	uv_close((uv_handle_t *)&c->tcp, srv_conn_closed);
}

static void
srv_written(uv_write_t *req, int status)
{
	srv_write *w = req->data;

	if (w->close_after && status == 0)
		srv_conn_close(w->c);
	free(w->data);
	free(w);
}

static void
srv_answer(srv_conn *c)
{
	th_srv *s = c->s;
	rn_buf r;
	srv_write *w;
	uv_buf_t b;

	rn_buf_init(&r, 0);
	rn_buf_addf(&r, "HTTP/1.1 %d Test\r\n", s->status);
	if (s->ctype)
		rn_buf_addf(&r, "Content-Type: %s\r\n", s->ctype);
	if (s->extra_header)
		rn_buf_addf(&r, "%s\r\n", s->extra_header);
	if (s->no_length)
		rn_buf_adds(&r, "Connection: close\r\n");
	else
		rn_buf_addf(&r, "Content-Length: %zu\r\n", s->body_len);
	rn_buf_adds(&r, "\r\n");
	if (s->body_len)
		rn_buf_add(&r, s->body, s->body_len);
	w = calloc(1, sizeof(*w));
	assert_non_null(w);
	w->c = c;
	w->close_after = s->no_length;
	w->req.data = w;
	w->data = rn_buf_detach(&r, &b.len);
	b.base = w->data;
	assert_int_equal(uv_write(&w->req, (uv_stream_t *)&c->tcp, &b, 1,
				  srv_written), 0);
}

/* One complete request at the front of c->in: record it and answer. */
static int
srv_take_request(srv_conn *c)
{
	th_srv *s = c->s;
	char *end, *line;
	size_t hlen, clen = 0, total;

	if (c->in.len == 0)
		return 0;
	end = memmem(c->in.data, c->in.len, "\r\n\r\n", 4);
	if (end == NULL)
		return 0;
	hlen = (size_t)(end - c->in.data) + 4;
	for (line = strstr(c->in.data, "\r\n"); line && line < end;
	     line = strstr(line + 2, "\r\n"))
		if (strncasecmp(line + 2, "Content-Length:", 15) == 0)
			clen = strtoul(line + 17, NULL, 10);
	total = hlen + clen;
	if (c->in.len < total)
		return 0;

	s->requests++;
	s->method[0] = s->target[0] = '\0';
	sscanf(c->in.data, "%15s %255s", s->method, s->target);
	free(s->headers);
	s->headers = strndup(c->in.data, hlen);
	free(s->req_body);
	s->req_body = malloc(clen + 1);
	memcpy(s->req_body, c->in.data + hlen, clen);
	s->req_body[clen] = '\0';
	s->req_body_len = clen;
	memmove(c->in.data, c->in.data + total, c->in.len - total);
	c->in.len -= total;
	c->in.data[c->in.len] = '\0';
	if (s->respond)
		srv_answer(c);
	return 1;
}

static void
srv_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	buf->base = malloc(suggested);
	buf->len = suggested;
}

static void
srv_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	srv_conn *c = st->data;

	if (nread < 0) {
		srv_conn_close(c);
	} else if (nread > 0) {
		assert_int_equal(rn_buf_add(&c->in, buf->base, nread), 0);
		while (srv_take_request(c))
			;
	}
	free(buf->base);
}

static void
srv_accept(uv_stream_t *l, int status)
{
	th_srv *s = l->data;
	srv_conn *c;

	assert_int_equal(status, 0);
	c = calloc(1, sizeof(*c));
	assert_non_null(c);
	c->s = s;
	c->tcp.data = c;
	rn_buf_init(&c->in, 0);
	uv_tcp_init(l->loop, &c->tcp);
	assert_int_equal(uv_accept(l, (uv_stream_t *)&c->tcp), 0);
	s->accepts++;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	uv_read_start((uv_stream_t *)&c->tcp, srv_alloc, srv_read);
}

void
th_srv_start(uv_loop_t *loop, th_srv *s)
{
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof(ss);

	memset(s, 0, sizeof(*s));
	s->respond = 1;
	s->status = 200;
	s->ctype = "text/plain";
	s->body = "ok";
	s->body_len = 2;
	uv_tcp_init(loop, &s->listener);
	s->listener.data = s;
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&s->listener,
				     (const struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_listen((uv_stream_t *)&s->listener, 16,
				   srv_accept), 0);
	assert_int_equal(uv_tcp_getsockname(&s->listener,
					    (struct sockaddr *)&ss, &len), 0);
	s->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	assert_true(s->port > 0);
}

void
th_srv_stop(th_srv *s)
{
	uv_close((uv_handle_t *)&s->listener, NULL);
	while (s->conns)
		srv_conn_close(s->conns);
	free(s->headers);
	free(s->req_body);
	s->headers = s->req_body = NULL;
}

char *
th_url_for(const th_srv *s, const char *path)
{
	return rn_asprintf("http://127.0.0.1:%d%s", s->port, path);
}

int
th_closed_port(uv_loop_t *loop)
{
	uv_tcp_t t;
	struct sockaddr_in a;
	struct sockaddr_storage ss;
	int len = sizeof(ss), port;

	uv_tcp_init(loop, &t);
	uv_ip4_addr("127.0.0.1", 0, &a);
	assert_int_equal(uv_tcp_bind(&t, (const struct sockaddr *)&a, 0), 0);
	assert_int_equal(uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len),
			 0);
	port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return port;
}
