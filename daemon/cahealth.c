/*
 * CA health checks on the daemon's loop. Each check carries a generation
 * number: a reload starts a new generation, and answers of an older one
 * are dropped, so a slow CA of the old configuration cannot overwrite the
 * state of the new one.
 */
#define _GNU_SOURCE
#include "cahealth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "scep/scep.h"

#define CA_RETRY_MS 60000
#define CA_HINT_MS 5000 /* ca_health_answered: not within this of a check */
#define CA_RECHECK_TICKS 10 /* healthy CAs: every 10th retry tick */
#define CA_MAX 64

typedef struct ca_state {
	char name[65];
	char url[512];
	int checked, healthy;
	int in_flight; /* a check is running */
	int64_t checked_at;
	uint64_t checked_ms; /* uv_now when the last check ended */
	scep_ca_info info;
} ca_state;

struct ca_health {
	uv_loop_t *loop;
	net_http *http;
	uv_timer_t retry;
	const cfg *cfg;
	ca_state cas[CA_MAX];
	size_t n;
	unsigned gen;
	int freed;
	int pending; /* checks in flight */
	unsigned ticks;
	ca_health_cb cb;
	void *cb_arg;
};

typedef struct ca_req {
	ca_health *h;
	unsigned gen;
	size_t idx;
} ca_req;

static void check_one(ca_health *h, size_t i);

static void
maybe_free(ca_health *h)
{
	if (h->freed && h->pending == 0 && h->retry.data == NULL)
		free(h);
}

static void
on_checked(void *arg, const scep_ca_info *info)
{
	ca_req *r = arg;
	ca_health *h = r->h;
	ca_state *st;

	h->pending--;
	if (h->freed || r->gen != h->gen) {
		free(r);
		maybe_free(h);
		return;
	}
	st = &h->cas[r->idx];
	free(r);
	st->in_flight = 0;
	st->checked = 1;
	st->checked_at = rn_now();
	st->checked_ms = uv_now(h->loop);
	st->info = *info;
	if (info->ok) {
		log_kv(st->healthy ? RN_LOG_DEBUG : RN_LOG_INFO,
		       "certificate authority healthy", "ca", st->name,
		       "subject", info->ca_subject, "sha256", info->sha256,
		       "capabilities", info->capabilities, NULL);
		st->healthy = 1;
	} else {
		log_kv(RN_LOG_WARN, "certificate authority unhealthy", "ca",
		       st->name, "url", st->url, "err", info->error, NULL);
		st->healthy = 0;
	}
	metrics_gauge_set("renewd_ca_up", st->healthy, "ca", st->name, NULL);
	if (h->cb)
		h->cb(h->cb_arg, st->name, st->healthy,
		      info->ok ? NULL : info->error);
}

static void
check_one(ca_health *h, size_t i)
{
	ca_req *r = calloc(1, sizeof(*r));
	const cfg_ca *ca;

	if (r == NULL)
		return;
	if (h->cas[i].in_flight) {
		free(r);
		return;
	}
	ca = cfg_ca_find(h->cfg, h->cas[i].name);
	if (ca == NULL) {
		free(r);
		return;
	}
	r->h = h;
	r->gen = h->gen;
	r->idx = i;
	if (scep_ca_check(h->http, ca, on_checked, r) != RN_OK) {
		free(r);
		return;
	}
	h->pending++;
	h->cas[i].in_flight = 1;
}

/* Unhealthy CAs are tried again every tick, healthy ones now and then
 * (a CA that dies between renewals is noticed without traffic). */
static void
on_retry(uv_timer_t *t)
{
	ca_health *h = t->data;
	int all = ++h->ticks % CA_RECHECK_TICKS == 0;
	size_t i;

	for (i = 0; i < h->n; i++)
		if (h->cas[i].checked && (all || !h->cas[i].healthy))
			check_one(h, i);
}

void
ca_health_set_cb(ca_health *h, ca_health_cb cb, void *arg)
{
	h->cb = cb;
	h->cb_arg = arg;
}

void
ca_health_suspect(ca_health *h, const char *name)
{
	size_t i;

	for (i = 0; h && !h->freed && i < h->n; i++)
		if (strcmp(h->cas[i].name, name) == 0 && h->cas[i].healthy)
			check_one(h, i);
}

void
ca_health_answered(ca_health *h, const char *name)
{
	uint64_t now;
	size_t i;

	if (h == NULL || h->freed)
		return;
	now = uv_now(h->loop);
	for (i = 0; i < h->n; i++) {
		ca_state *st = &h->cas[i];
		if (strcmp(st->name, name) || !st->checked || st->healthy ||
		    st->in_flight || now - st->checked_ms < CA_HINT_MS)
			continue;
		log_kv(RN_LOG_INFO, "certificate authority answered the scep "
		       "proxy, checking it again", "ca", st->name, NULL);
		check_one(h, i);
	}
}

int
ca_health_new(uv_loop_t *loop, net_http *http, ca_health **out)
{
	ca_health *h = calloc(1, sizeof(*h));

	if (h == NULL)
		return RN_ENOMEM;
	h->loop = loop;
	h->http = http;
	uv_timer_init(loop, &h->retry);
	h->retry.data = h;
	*out = h;
	return RN_OK;
}

void
ca_health_check_all(ca_health *h, const cfg *c)
{
	size_t i;

	h->cfg = c;
	h->gen++;
	/* a CA removed by a reload must not stay in /metrics */
	metrics_family_clear("renewd_ca_up");
	h->n = c->ncas < CA_MAX ? c->ncas : CA_MAX;
	memset(h->cas, 0, sizeof(h->cas));
	for (i = 0; i < h->n; i++) {
		snprintf(h->cas[i].name, sizeof(h->cas[i].name), "%s",
			 c->cas[i].name);
		snprintf(h->cas[i].url, sizeof(h->cas[i].url), "%s",
			 c->cas[i].url);
		check_one(h, i);
	}
	uv_timer_start(&h->retry, on_retry, CA_RETRY_MS, CA_RETRY_MS);
}

json_t *
ca_health_json(const ca_health *h)
{
	json_t *arr = json_array();
	size_t i;

	for (i = 0; h && i < h->n; i++) {
		const ca_state *st = &h->cas[i];
		json_t *o = json_pack("{s:s,s:s,s:b}", "name", st->name, "url",
				      st->url, "healthy", st->healthy);
		if (st->checked) {
			json_object_set_new(o, "checked_at",
					    json_integer(st->checked_at));
			if (st->healthy) {
				json_object_set_new(
				    o, "subject",
				    json_string(st->info.ca_subject));
				json_object_set_new(
				    o, "sha256", json_string(st->info.sha256));
				json_object_set_new(
				    o, "capabilities",
				    json_string(st->info.capabilities));
			} else {
				json_object_set_new(
				    o, "error", json_string(st->info.error));
			}
		} else {
			json_object_set_new(o, "checked_at", json_null());
		}
		json_array_append_new(arr, o);
	}
	return arr;
}

static void
on_timer_closed(uv_handle_t *handle)
{
	ca_health *h = handle->data;

	h->retry.data = NULL;
	maybe_free(h);
}

void
ca_health_free(ca_health *h)
{
	if (h == NULL)
		return;
	h->freed = 1;
	uv_close((uv_handle_t *)&h->retry, on_timer_closed);
}
