/*
 * net_http on a thread of its own: see net_http_new_threaded in net.h
 * (http_client.c routes a threaded net_http's calls here).
 *
 * The caller's loop thread copies each request into a job, queues it and
 * wakes the worker (uv_async). The worker runs an ordinary net_http on a
 * loop of its own, so libcurl, its sockets and its timers live on that
 * thread only; each answer is copied into its job, queued back, and the
 * caller's loop is woken to run the callbacks. A job belongs to exactly
 * one side at a time: to the loop thread until it is queued, to the
 * worker from when it takes it until it queues the answer, then to the
 * loop thread again. The two queues are the only shared state, under mu.
 *
 * Stopping: http_mt_free marks the worker to stop and wakes it; the
 * worker frees its client (which cancels what is in flight: those jobs
 * come back with RN_ECANCELED), closes its handle and returns. The loop
 * thread joins it, then calls every callback still owed (the cancelled
 * ones and the jobs the worker never took) before returning, as
 * net_http_free does for the inline client.
 */
#define _GNU_SOURCE
#include "net/http_mt.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct http_job http_job;

struct http_job {
	http_job *next;
	net_http_mt *m;
	net_http_cb cb;
	void *arg;
	/* the request, every pointer into this job's own allocation (the
	 * header array, then the strings and the body, after the struct) */
	net_http_req req;
	/* the answer (resp.body etc. point at the copies below) */
	net_http_resp resp;
	char *body, *ctype, *error;
};

struct net_http_mt {
	uv_loop_t *loop;	  /* the caller's */
	uv_async_t done;	  /* worker -> loop: answers are queued */
	uv_thread_t tid;
	uv_loop_t wloop;	  /* the worker's */
	uv_async_t wake;	  /* loop -> worker: jobs queued, or stop */
	net_http *inner;	  /* the worker's client */
	uv_mutex_t mu;
	http_job *todo, **todo_tail; /* for the worker */
	http_job *answered, **answered_tail; /* for the loop */
	int stop;		  /* under mu */
	size_t active;		  /* loop thread: requests not answered */
	int in_dispatch, freeing, joined; /* loop thread */
};

static void
job_free(http_job *j)
{
	if (j == NULL)
		return;
	free(j->body);
	free(j->ctype);
	free(j->error);
	free(j);
}

/* Copy s to *at (NULL stays NULL) and move *at past it. */
static const char *
put_str(char **at, const char *s)
{
	char *d = *at;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	memcpy(d, s, n);
	*at += n;
	return d;
}

/*
 * A job holding its own copy of req, in one allocation: the struct, the
 * header array, then the strings and the body. NULL when out of memory.
 */
static http_job *
job_new(net_http_mt *m, const net_http_req *req, net_http_cb cb, void *arg)
{
	const char *strs[] = {req->method, req->url, req->userpwd,
			      req->ca_file};
	size_t nh = 0, size = sizeof(http_job), i;
	const char **hdrs = NULL;
	http_job *j;
	char *at;

	if (req->headers)
		while (req->headers[nh])
			nh++;
	if (req->headers)
		size += (nh + 1) * sizeof(char *);
	for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
		size += strs[i] ? strlen(strs[i]) + 1 : 0;
	for (i = 0; i < nh; i++)
		size += strlen(req->headers[i]) + 1;
	size += req->body_len;
	/* zeroed: the job itself, not the copies after it (a body is KiBs) */
	if ((j = malloc(size)) == NULL)
		return NULL;
	memset(j, 0, sizeof(*j));
	j->m = m;
	j->cb = cb;
	j->arg = arg;
	j->req = *req;
	at = (char *)(j + 1);
	if (req->headers) {
		hdrs = (const char **)(void *)at;
		at += (nh + 1) * sizeof(char *);
		for (i = 0; i < nh; i++)
			hdrs[i] = put_str(&at, req->headers[i]);
		hdrs[nh] = NULL;
	}
	j->req.headers = hdrs;
	j->req.method = put_str(&at, req->method);
	j->req.url = put_str(&at, req->url);
	j->req.userpwd = put_str(&at, req->userpwd);
	j->req.ca_file = put_str(&at, req->ca_file);
	j->req.body = NULL;
	if (req->body_len) {
		memcpy(at, req->body, req->body_len);
		j->req.body = at;
	}
	return j;
}

/* ---- the worker's side ------------------------------------------------ */

/* The worker's client answered: copy the answer and hand the job back. */
static void
worker_answered(void *arg, const net_http_resp *r)
{
	http_job *j = arg;

	j->resp = *r;
	j->body = malloc(r->body_len + 1);
	if (j->body) {
		if (r->body_len)
			memcpy(j->body, r->body, r->body_len);
		j->body[r->body_len] = '\0';
		j->resp.body = j->body;
	} else {
		j->resp.rc = RN_ENOMEM;
		j->resp.body = "";
		j->resp.body_len = 0;
	}
	j->ctype = r->content_type ? strdup(r->content_type) : NULL;
	j->resp.content_type = j->ctype;
	j->error = r->error ? strdup(r->error) : NULL;
	j->resp.error = j->error;
}

/* An answer of our own: the request never reached the server. */
static void
job_fail(http_job *j, int rc, const char *why)
{
	net_http_resp r;

	memset(&r, 0, sizeof(r));
	r.rc = rc;
	r.body = "";
	r.error = why;
	worker_answered(j, &r);
}

static void
answer(net_http_mt *m, http_job *j)
{
	uv_mutex_lock(&m->mu);
	*m->answered_tail = j;
	m->answered_tail = &j->next;
	uv_mutex_unlock(&m->mu);
	uv_async_send(&m->done);
}

static void
worker_done(void *arg, const net_http_resp *r)
{
	http_job *j = arg;

	worker_answered(j, r);
	answer(j->m, j);
}

/* Start what the loop thread queued; on stop, cancel and wind down. */
static void
worker_wake(uv_async_t *a)
{
	net_http_mt *m = a->data;
	http_job *list, *j;
	int stop;

	uv_mutex_lock(&m->mu);
	list = m->todo;
	m->todo = NULL;
	m->todo_tail = &m->todo;
	stop = m->stop;
	uv_mutex_unlock(&m->mu);
	while ((j = list) != NULL) {
		list = j->next;
		j->next = NULL;
		if (stop) {
			job_fail(j, RN_ECANCELED, "cancelled");
			answer(m, j);
		} else if (http_request_body_kept(m->inner, &j->req,
						  worker_done, j) != 0) {
			job_fail(j, RN_EIO, "cannot start the request");
			answer(m, j);
		}
	}
	if (stop) {
		/* cancels what is in flight: worker_done answers each */
		net_http_free(m->inner);
		m->inner = NULL;
		uv_close((uv_handle_t *)&m->wake, NULL);
	}
}

static void
worker_main(void *arg)
{
	net_http_mt *m = arg;

	/* named for top -H, ps -L and the benchmarks' per-thread CPU */
	pthread_setname_np(pthread_self(), "renewd-http");
	uv_run(&m->wloop, UV_RUN_DEFAULT);
}

/* ---- the loop thread's side ------------------------------------------- */

static void mt_shutdown(net_http_mt *m);

/* Run the callbacks of the answered jobs. */
static void
mt_dispatch(net_http_mt *m)
{
	http_job *list, *j;

	uv_mutex_lock(&m->mu);
	list = m->answered;
	m->answered = NULL;
	m->answered_tail = &m->answered;
	uv_mutex_unlock(&m->mu);
	m->in_dispatch++;
	while ((j = list) != NULL) {
		list = j->next;
		m->active--;
		j->cb(j->arg, &j->resp);
		job_free(j);
	}
	if (--m->in_dispatch == 0 && m->freeing && !m->joined)
		mt_shutdown(m);
}

static void
mt_done(uv_async_t *a)
{
	net_http_mt *m = a->data;

	if (!m->freeing)
		mt_dispatch(m);
}

static void
mt_closed(uv_handle_t *h)
{
	net_http_mt *m = h->data;

	uv_mutex_destroy(&m->mu);
	free(m);
}

int
http_mt_new(uv_loop_t *loop, net_http_mt **out)
{
	net_http_mt *m;
	int rc;

	if (loop == NULL || out == NULL)
		return RN_EINVAL;
	*out = NULL;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return RN_ENOMEM;
	m->loop = loop;
	m->todo_tail = &m->todo;
	m->answered_tail = &m->answered;
	if (uv_mutex_init(&m->mu) != 0) {
		free(m);
		return RN_ENOMEM;
	}
	if (uv_loop_init(&m->wloop) != 0) {
		uv_mutex_destroy(&m->mu);
		free(m);
		return RN_ENOMEM;
	}
	/* on the loop thread: curl_global_init is done here, not there */
	rc = net_http_new(&m->wloop, &m->inner);
	if (rc == RN_OK && uv_async_init(&m->wloop, &m->wake, worker_wake))
		rc = RN_ENOMEM;
	if (rc) {
		if (m->inner)
			net_http_free(m->inner);
		uv_run(&m->wloop, UV_RUN_DEFAULT);
		uv_loop_close(&m->wloop);
		uv_mutex_destroy(&m->mu);
		free(m);
		return rc;
	}
	m->wake.data = m;
	uv_async_init(loop, &m->done, mt_done);
	m->done.data = m;
	if (uv_thread_create(&m->tid, worker_main, m) != 0) {
		net_http_free(m->inner);
		uv_close((uv_handle_t *)&m->wake, NULL);
		uv_run(&m->wloop, UV_RUN_DEFAULT);
		uv_loop_close(&m->wloop);
		uv_close((uv_handle_t *)&m->done, mt_closed);
		return RN_ENOMEM;
	}
	*out = m;
	return RN_OK;
}

int
http_mt_request(net_http_mt *m, const net_http_req *req, net_http_cb cb,
		    void *arg)
{
	http_job *j;

	if (m == NULL || req == NULL || req->url == NULL || cb == NULL ||
	    m->freeing || (req->body == NULL && req->body_len))
		return RN_EINVAL;
	if ((j = job_new(m, req, cb, arg)) == NULL)
		return RN_ENOMEM;
	uv_mutex_lock(&m->mu);
	*m->todo_tail = j;
	m->todo_tail = &j->next;
	uv_mutex_unlock(&m->mu);
	m->active++;
	uv_async_send(&m->wake);
	return RN_OK;
}

size_t
http_mt_active(const net_http_mt *m)
{
	return m ? m->active : 0;
}

/* Stop and join the worker, then pay every callback still owed. */
static void
mt_shutdown(net_http_mt *m)
{
	http_job *j;

	uv_mutex_lock(&m->mu);
	m->stop = 1;
	uv_mutex_unlock(&m->mu);
	uv_async_send(&m->wake);
	uv_thread_join(&m->tid);
	uv_loop_close(&m->wloop);
	/* what the worker never took: cancelled here */
	while ((j = m->todo) != NULL) {
		m->todo = j->next;
		j->next = NULL;
		job_fail(j, RN_ECANCELED, "cancelled");
		answer(m, j);
	}
	m->joined = 1;
	mt_dispatch(m);
	uv_close((uv_handle_t *)&m->done, mt_closed);
}

void
http_mt_free(net_http_mt *m)
{
	if (m == NULL || m->freeing)
		return;
	m->freeing = 1;
	if (m->in_dispatch == 0)
		mt_shutdown(m);
}
