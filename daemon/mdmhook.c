/*
 * POST /webhook/mdm: NanoMDM / MicroMDM webhook events. See http.h.
 *
 * Every event is processed in one store transaction that also records its
 * event_id, so a redelivered event (MDMs retry on any non-2xx) changes
 * nothing, and an event that fails half-way leaves nothing behind.
 */
#define _GNU_SOURCE
#include "http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/metrics.h"
#include "mdm/webhook.h"
#include "notifiers/alert.h"
#include "notifiers/notify.h"

typedef struct hook_ctx {
	http_env *env;
	const mdm_wh_event *ev;
	int64_t now;
	int kick; /* new queued work: wake the scheduler after commit */
	int64_t acked_job; /* acknowledged job: ask for the device's
			    * CertificateList after commit; 0 = none */
	int cancelled; /* jobs a CheckOut cancelled */
} hook_ctx;

static void
reply(net_httpd_req *req, unsigned status, const char *msg)
{
	net_httpd_respond(req, status, "text/plain; charset=utf-8", msg,
			  strlen(msg));
}

/* 503 while the database is full: the MDM delivers the event again. */
static void
reply_full(http_env *env, net_httpd_req *req)
{
	http_retry_after_full(env, req);
	reply(req, 503, "database is full, try again later");
}

static int
job_is_open(const store_job *j)
{
	return strcmp(j->state, JOB_QUEUED) == 0 ||
	       strcmp(j->state, JOB_RUNNING) == 0 ||
	       strcmp(j->state, JOB_PUSHED) == 0 ||
	       strcmp(j->state, JOB_ACKNOWLEDGED) == 0;
}

static int
profile_assigned(const cfg *cf, const prof_template *t)
{
	size_t i;

	for (i = 0; i < cf->nassignments; i++) {
		const char *g = cf->assignments[i].profile;
		if (rn_glob_match(g, t->uuid) ||
		    (t->identifier && rn_glob_match(g, t->identifier)))
			return 1;
	}
	return 0;
}

/*
 * Authenticate / TokenUpdate: the device is (again) enrolled. Register it,
 * apply the assignments, and queue an 'issue' job for every assigned
 * profile it has no certificate and no open job for.
 */
static int
on_checkin(hook_ctx *h)
{
	const mdm_wh_event *ev = h->ev;
	const rn_conf *c = h->env->conf;
	store *s = h->env->s;
	store_cert cur;
	store_job open;
	int64_t id;
	size_t i;
	int rc;

	rc = store_host_upsert(s, ev->udid, ev->serial_number, h->now);
	if (rc == RN_OK && ev->enrollment_id)
		rc = store_host_set_enrollment(s, ev->udid, ev->enrollment_id,
					       h->now);
	if (rc == RN_OK)
		rc = store_host_set_state(s, ev->udid, "active", h->now);
	for (i = 0; rc == RN_OK && i < c->nprofiles; i++) {
		const prof_template *t = c->profiles[i];

		if (!profile_assigned(c->cfg, t))
			continue;
		rc = store_host_profile_add(s, ev->udid, t->uuid);
		if (rc || t->ca_name == NULL)
			continue;
		if (store_cert_current(s, ev->udid, t->uuid, t->ca_name,
				       &cur) == RN_OK) {
			store_cert_release(&cur);
			continue;
		}
		if (store_job_open(s, ev->udid, t->uuid, t->ca_name, &open) ==
		    RN_OK) {
			store_job_release(&open);
			continue;
		}
		rc = store_job_enqueue(s, ev->udid, t->uuid, t->ca_name,
				       "issue", 0, ev->topic_text, h->now, &id);
		if (rc == RN_EEXIST)
			rc = RN_OK;
		else if (rc == RN_OK)
			h->kick = 1;
	}
	return rc;
}

static int
cancel_job(void *arg, const store_job *j)
{
	hook_ctx *h = arg;
	int rc = store_job_cancel(h->env->s, j->id, "host checked out", 0,
				  h->now);

	if (rc == RN_OK)
		h->cancelled++;
	/* A job that became final meanwhile needs nothing. */
	return rc == RN_EBUSY ? RN_OK : rc;
}

/*
 * CheckOut: the device left the MDM. Its certificates stay as history;
 * host.retired goes to the notifiers in the same transaction.
 */
static int
on_checkout(hook_ctx *h)
{
	int rc = store_host_set_state(h->env->s, h->ev->udid, "retired",
				      h->now);

	if (rc == RN_ENOTFOUND)
		return RN_OK; /* never seen: nothing to retire */
	if (rc)
		return rc;
	rc = store_host_open_jobs_each(h->env->s, h->ev->udid, cancel_job, h);
	if (rc)
		return rc;
	return notif_host_retired(h->env->s, h->ev->udid, h->cancelled,
				  h->now);
}

typedef struct cert_pick {
	int64_t job_id;
	char *profile, *ca;
	store_cert cert;
} cert_pick;

/*
 * A CertificateList result: a certificate whose renewal ID belongs to an
 * open job of this host verifies that job (the newest valid one when
 * several do); the rest, unless already managed, are remembered as
 * unmatched for the operator.
 */
static int
on_cert_list(hook_ctx *h)
{
	const mdm_wh_event *ev = h->ev;
	store *s = h->env->s;
	cert_pick *picks;
	size_t npicks = 0, i, k;
	int rc = RN_OK, dup;

	if (ev->ncerts == 0)
		return RN_OK;
	picks = calloc(ev->ncerts, sizeof(*picks));
	if (picks == NULL)
		return RN_ENOMEM;
	for (i = 0; rc == RN_OK && i < ev->ncerts; i++) {
		store_cert c;
		store_job j;
		char *err = NULL;
		int matched = 0;

		if (renewal_cert_parse(ev->certs[i].der, ev->certs[i].len, &c,
				       &err) != RN_OK) {
			log_kv(RN_LOG_DEBUG, "mdm webhook: unreadable "
			       "certificate skipped", "udid", ev->udid, "err",
			       err ? err : "?", NULL);
			free(err);
			continue;
		}
		if (c.renewal_id &&
		    store_job_by_renewal_id(s, c.renewal_id, &j) == RN_OK) {
			/* Another host's renewal ID verifies nothing here. */
			if (strcmp(j.host_uuid, ev->udid) == 0 &&
			    job_is_open(&j)) {
				matched = 1;
				for (k = 0; k < npicks; k++)
					if (picks[k].job_id == j.id)
						break;
				if (c.not_valid_after > h->now &&
				    (k == npicks ||
				     c.not_valid_before >
					 picks[k].cert.not_valid_before)) {
					if (k == npicks) {
						picks[k].job_id = j.id;
						picks[k].profile = j.profile_uuid;
						picks[k].ca = j.ca_name;
						j.profile_uuid = j.ca_name = NULL;
						npicks++;
					} else {
						store_cert_release(
						    &picks[k].cert);
					}
					picks[k].cert = c;
					memset(&c, 0, sizeof(c));
				}
			}
			store_job_release(&j);
		}
		if (!matched)
			rc = store_unmatched_add(s, ev->udid, &c, h->now);
		store_cert_release(&c);
	}
	for (k = 0; k < npicks; k++) {
		if (rc == RN_OK) {
			rc = renewal_cert_place(s, h->env->conf, &picks[k].cert,
						ev->udid, picks[k].profile,
						picks[k].ca, h->now, &dup);
			if (rc == RN_OK && picks[k].cert.job_id) {
				char jid[24];
				snprintf(jid, sizeof(jid), "%lld",
					 (long long)picks[k].cert.job_id);
				log_kv(RN_LOG_INFO, "job verified by mdm "
				       "certificate list", "job", jid, "udid",
				       ev->udid, NULL);
			}
		}
		store_cert_release(&picks[k].cert);
		free(picks[k].profile);
		free(picks[k].ca);
	}
	free(picks);
	return rc;
}

/* mdm.Connect: the device's result for a command. */
static int
on_ack(hook_ctx *h)
{
	const mdm_wh_event *ev = h->ev;
	store *s = h->env->s;
	store_job j;
	char jid[24];
	int rc = RN_OK;

	if (ev->has_cert_list)
		rc = on_cert_list(h);
	if (rc || ev->command_uuid == NULL)
		return rc;
	if (store_job_by_command_uuid(s, ev->command_uuid, &j) != RN_OK)
		return RN_OK; /* not a command renewd sent */
	snprintf(jid, sizeof(jid), "%lld", (long long)j.id);
	if (strcmp(j.host_uuid, ev->udid)) {
		/* Only the device the command went to may answer it. */
		log_kv(RN_LOG_WARN, "mdm webhook: command result from another "
		       "device ignored", "job", jid, "udid", ev->udid, NULL);
		store_job_release(&j);
		return RN_OK;
	}
	switch (ev->status) {
	case MDM_WH_STATUS_ACKNOWLEDGED:
		rc = store_job_acknowledged(s, j.id, "device installed the "
						     "profile", h->now);
		if (rc == RN_OK) {
			log_kv(RN_LOG_INFO, "job acknowledged", "job", jid,
			       NULL);
			h->acked_job = j.id;
		}
		break;
	case MDM_WH_STATUS_ERROR:
	case MDM_WH_STATUS_COMMAND_FORMAT_ERROR: {
		char *d = rn_asprintf("%s: %s", ev->status_text,
				      ev->error_text ? ev->error_text
						     : "no error chain");
		rc = d ? sched_job_refused(h->env->sc, j.id, "device_error", d)
		       : RN_ENOMEM;
		free(d);
		break;
	}
	case MDM_WH_STATUS_NOT_NOW:
		rc = store_job_event(s, j.id, "not_now", NULL, h->now);
		break;
	default:
		break;
	}
	store_job_release(&j);
	/* A job that moved on meanwhile is not an error of the event. */
	return rc == RN_EBUSY ? RN_OK : rc;
}

void
http_mdm_webhook(http_env *env, net_httpd_req *req)
{
	const char *key = env->conf->cfg->http.webhook_hmac_key;
	const void *body;
	size_t len;
	mdm_wh_event ev;
	hook_ctx h;
	char *err = NULL;
	int rc;

	body = net_httpd_req_body(req, &len);
	if (key) {
		rc = mdm_wh_verify(key, strlen(key), body, len,
				   net_httpd_req_header(req,
							"X-Hmac-Signature"));
		if (rc) {
			log_kv(RN_LOG_WARN, "mdm webhook: bad signature",
			       "peer", net_httpd_req_peer(req), NULL);
			reply(req, 401, "bad signature");
			return;
		}
	}
	rc = mdm_wh_parse(body, len, &ev, &err);
	if (rc) {
		reply(req, rc == RN_ENOMEM ? 500 : 400,
		      err ? err : "out of memory");
		log_kv(RN_LOG_INFO, "mdm webhook: event refused", "err",
		       err ? err : "out of memory", NULL);
		free(err);
		return;
	}
	if (sched_store_full(env->sc)) {
		reply_full(env, req);
		mdm_wh_event_release(&ev);
		return;
	}
	memset(&h, 0, sizeof(h));
	h.env = env;
	h.ev = &ev;
	h.now = rn_now();
	rc = store_begin(env->s);
	if (rc == RN_OK) {
		rc = store_mdm_event_record(env->s, ev.event_id, ev.topic_text,
					    h.now);
		if (rc == RN_EEXIST) {
			store_rollback(env->s);
			reply(req, 200, "duplicate");
			mdm_wh_event_release(&ev);
			return;
		}
	}
	if (rc == RN_OK) {
		switch (ev.topic) {
		case MDM_WH_AUTHENTICATE:
		case MDM_WH_TOKEN_UPDATE:
			rc = on_checkin(&h);
			break;
		case MDM_WH_CHECKOUT:
			rc = on_checkout(&h);
			break;
		case MDM_WH_CONNECT:
			rc = on_ack(&h);
			break;
		default:
			break; /* recorded, nothing to do */
		}
	}
	if (rc == RN_OK)
		rc = store_commit(env->s);
	if (rc) {
		store_rollback(env->s);
		log_kv(RN_LOG_ERROR, "mdm webhook: cannot process event",
		       "topic", ev.topic_text, "udid", ev.udid, "err",
		       rn_strerror(rc), NULL);
		/* 503 so the MDM delivers it again. */
		if (rc == RN_EFULL) {
			sched_store_error(env->sc, rc, "an mdm webhook event");
			reply_full(env, req);
		} else {
			reply(req, 503, "cannot process event");
		}
	} else {
		log_kv(RN_LOG_DEBUG, "mdm webhook event", "topic",
		       ev.topic_text, "udid", ev.udid, NULL);
		/* counted once committed: the daemon's own cancellations */
		if (h.cancelled)
			metrics_counter_add("renewd_job_outcomes_total",
					    h.cancelled, "result",
					    "cancelled", NULL);
		if (h.kick)
			sched_kick(env->sc);
		/* CheckOut and CertificateList may have written alerts */
		notif_engine_kick(env->notif);
		/*
		 * Network I/O only now that the transaction is committed.
		 * RN_EINVAL: the driver has no command channel.
		 */
		if (h.acked_job) {
			rc = sched_mdm_command(env->sc, ev.udid,
					       "CertificateList", h.acked_job);
			if (rc && rc != RN_EINVAL)
				log_kv(RN_LOG_WARN, "mdm webhook: cannot ask "
				       "for the certificate list", "udid",
				       ev.udid, "err", rn_strerror(rc), NULL);
		}
		reply(req, 200, "ok");
	}
	mdm_wh_event_release(&ev);
}
