/*
 * renewd: load and check the configuration, open the store, and run the
 * scheduler, the control socket and the signal handlers on one libuv
 * loop until SIGTERM/SIGINT (or, with --once, until the due work is done
 * and its alerts are sent).
 */
#define _GNU_SOURCE
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <uv.h>

#include "common/common.h"
#include "common/metrics.h"
#include "daemon/cahealth.h"
#include "daemon/control.h"
#include "daemon/http.h"
#include "daemon/sdnotify.h"
#include "net/net.h"
#include "notifiers/alert.h"
#include "notifiers/notify.h"
#include "renewal/renewal.h"
#include "scheduler/scheduler.h"
#include "store/store.h"

#define SHUTDOWN_GRACE_MS 30000
#define SD_STATUS_MS 2000 /* how often systemd's STATUS= is refreshed */

typedef struct rn_daemon {
	uv_loop_t loop;
	const char *config_path;
	rn_conf *conf;
	store *store;
	net_http *http;
	net_http *push_http; /* the scheduler's pushes, on a thread */
	sched *sched;
	ctl_server *ctl;
	ca_health *cah;
	http_env web_env;
	http_srv *web;
	uv_signal_t sig_term, sig_int, sig_hup;
	notif_engine *notif; /* NULL with --once */
	sdn *sdn; /* NULL when not started by systemd */
	int reload_failed;
	int once;
	int stopping;
	int exit_code;
} rn_daemon;

static void
usage(FILE *f)
{
	fprintf(f, "usage: renewd -c FILE [-n | --once]\n"
		   "       renewd --version\n"
		   "  -c, --config FILE  configuration file\n"
		   "  -n, --check        check the configuration and exit\n"
		   "      --once         one scan, run due jobs, send the "
		   "alerts raised,\n"
		   "                     exit 0 (all pushed) or 1\n");
}

static void
print_errors(const rn_errlist *errs, int as_log)
{
	size_t i;

	for (i = 0; i < errs->n; i++) {
		if (as_log)
			log_kv(RN_LOG_ERROR, errs->msgs[i], NULL);
		else
			fprintf(stderr, "%s\n", errs->msgs[i]);
	}
}

/*
 * The line `systemctl status` shows: the last scan and the work in
 * flight, and a failed reload until a good one, since a reload that kept
 * the old configuration is otherwise only in the log.
 */
static void
sd_status_line(void *arg, char *buf, size_t len)
{
	rn_daemon *d = arg;
	const sched_scan *ls;
	char at[RN_TIME_LEN];
	const char *note = d->reload_failed ?
		"; last reload failed, old configuration kept" : "";

	if (d->sched == NULL) {
		snprintf(buf, len, "stopping");
		return;
	}
	ls = sched_last_scan(d->sched);
	if (ls->at == 0) {
		snprintf(buf, len, "no scan yet; %zu jobs in flight%s",
			 sched_in_flight(d->sched), note);
		return;
	}
	rn_time_format(ls->at, at, sizeof(at));
	snprintf(buf, len,
		 "last scan %s: %lld due, %lld enqueued, %.1f ms; "
		 "%zu jobs in flight%s",
		 at, (long long)ls->due, (long long)ls->enqueued,
		 ls->duration_ms, sched_in_flight(d->sched), note);
}

/*
 * READY=1 and a fresh status line, at start-up and after every reload:
 * READY=1 also ends systemd's "reloading" state, good file or not.
 */
static void
sd_ready(rn_daemon *d, int reload_failed)
{
	char line[512];

	d->reload_failed = reload_failed;
	sd_status_line(d, line, sizeof(line));
	sdn_ready(d->sdn);
	sdn_status(d->sdn, "%s", line);
}

/* After each scan: check current certificates against their deadlines. */
static void
on_scan_done(void *arg, const sched_scan *res)
{
	rn_daemon *d = arg;

	(void)res;
	notif_engine_sweep(d->notif);
}

static void
on_outbox(void *arg)
{
	rn_daemon *d = arg;

	notif_engine_kick(d->notif);
}

/* Every CA check result; the alert module sends only the transitions. */
static void
on_ca_checked(void *arg, const char *ca, int healthy, const char *err)
{
	rn_daemon *d = arg;
	int rc = notif_ca_state(d->store, ca, healthy, err, rn_now());

	/* the proxy's cached GetCACaps/GetCACert must not outlive it */
	if (!healthy)
		http_cache_drop(d->web, ca);
	if (rc)
		log_kv(RN_LOG_ERROR, "cannot record ca health", "ca", ca,
		       "err", rn_strerror(rc), NULL);
	notif_engine_kick(d->notif);
}

static void
on_sched_done(void *arg)
{
	rn_daemon *d = arg;

	d->sched = NULL;
	sdn_close(d->sdn);
	d->sdn = NULL;
	if (d->http) {
		net_http_free(d->http);
		d->http = NULL;
	}
	net_http_free(d->push_http);
	d->push_http = NULL;
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
}

static void
shutdown_daemon(rn_daemon *d)
{
	if (d->stopping)
		return;
	d->stopping = 1;
	sdn_stopping(d->sdn);
	sdn_status(d->sdn, "stopping; %zu jobs in flight",
		   sched_in_flight(d->sched));
	if (d->ctl) {
		ctl_close(d->ctl);
		d->ctl = NULL;
	}
	http_stop(d->web);
	d->web = NULL;
	ca_health_free(d->cah);
	d->cah = NULL;
	notif_engine_stop(d->notif);
	d->notif = NULL;
	d->web_env.notif = NULL;
	sched_stop(d->sched, SHUTDOWN_GRACE_MS, on_sched_done, d);
}

static void
on_stop_signal(uv_signal_t *h, int signum)
{
	rn_daemon *d = h->data;

	log_kv(RN_LOG_INFO, "stopping", "signal",
	       signum == SIGTERM ? "TERM" : "INT", NULL);
	shutdown_daemon(d);
}

/*
 * SIGHUP: load the whole new configuration; only when it is valid is it
 * swapped in. A broken file is logged with every error and changes
 * nothing.
 */
static void
on_hup(uv_signal_t *h, int signum)
{
	rn_daemon *d = h->data;
	rn_errlist errs;
	rn_conf *nc = NULL;
	int rc;

	(void)signum;
	if (d->stopping)
		return;
	sdn_reloading(d->sdn);
	rn_errlist_init(&errs);
	rc = renewal_conf_load(d->config_path, &nc, &errs);
	if (rc) {
		log_kv(RN_LOG_ERROR,
		       "reload failed, keeping the old configuration", "file",
		       d->config_path, NULL);
		print_errors(&errs, 1);
		rn_errlist_release(&errs);
		sd_ready(d, 1);
		return;
	}
	rn_errlist_release(&errs);
	if (strcmp(nc->cfg->daemon.database, d->conf->cfg->daemon.database) ||
	    strcmp(nc->cfg->daemon.control_socket,
		   d->conf->cfg->daemon.control_socket) ||
	    strcmp(nc->cfg->http.listen, d->conf->cfg->http.listen))
		log_warnx("'daemon.database', 'daemon.control_socket' and "
			  "'http.listen' changes take effect at the next "
			  "restart");
	rc = renewal_conf_sync(d->store, nc, rn_now());
	if (rc == RN_OK)
		rc = sched_set_conf(d->sched, nc);
	if (rc) {
		log_kv(RN_LOG_ERROR,
		       "reload failed, keeping the old configuration", "err",
		       rn_strerror(rc), NULL);
		renewal_conf_free(nc);
		sd_ready(d, 1);
		return;
	}
	log_setup(nc->cfg->daemon.log_level, nc->cfg->daemon.log_format);
	if (d->notif)
		notif_engine_set_conf(d->notif, nc->cfg);
	if (d->cah)
		ca_health_check_all(d->cah, nc->cfg);
	renewal_conf_free(d->conf);
	d->conf = nc;
	d->web_env.conf = nc;
	/* a CA may have a new URL, or a new certificate at the old one */
	http_cache_drop(d->web, NULL);
	log_kv(RN_LOG_INFO, "configuration reloaded", "file", d->config_path,
	       NULL);
	sd_ready(d, 0);
}

static void
on_once_drained(void *arg)
{
	shutdown_daemon(arg);
}

/*
 * --once: the due work is done. The alerts it raised go out before the
 * run ends (each delivery tried once; one that fails waits for the next
 * run), for at most the slowest notifier's timeout and 5 s more.
 */
static void
on_once_idle(void *arg)
{
	rn_daemon *d = arg;
	const cfg *c = d->conf->cfg;
	int64_t wait_s = 0;
	size_t i;

	d->exit_code = sched_failures(d->sched) ? 1 : 0;
	for (i = 0; i < c->nnotifiers; i++)
		if (c->notifiers[i].timeout > wait_s)
			wait_s = c->notifiers[i].timeout;
	notif_engine_drain(d->notif, (uint64_t)(wait_s + 5) * 1000,
			   on_once_drained, d);
}

/* Make the folder of a file path (var/renewd.db -> var) if missing. */
static void
ensure_parent(const char *path)
{
	char *dir = rn_strdup(path), *slash;

	if (dir == NULL)
		return;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		mkdir(dir, 0750);
	}
	free(dir);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'n'},
		{"once", no_argument, NULL, 'o'},
		{"version", no_argument, NULL, 'V'},
		{"help", no_argument, NULL, 'h'},
		{NULL, 0, NULL, 0},
	};
	rn_daemon d;
	rn_errlist errs;
	char *err = NULL;
	int ch, check = 0, rc, n;

	memset(&d, 0, sizeof(d));
	while ((ch = getopt_long(argc, argv, "c:nh", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': d.config_path = optarg; break;
		case 'n': check = 1; break;
		case 'o': d.once = 1; break;
		case 'V': printf("renewd %s\n", RN_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (d.config_path == NULL || optind != argc || (check && d.once)) {
		usage(stderr);
		return 2;
	}
	rn_errlist_init(&errs);
	rc = renewal_conf_load(d.config_path, &d.conf, &errs);
	if (rc) {
		print_errors(&errs, 0);
		rn_errlist_release(&errs);
		return 1;
	}
	rn_errlist_release(&errs);
	if (check) {
		printf("configuration OK\n");
		renewal_conf_free(d.conf);
		return 0;
	}
	log_setup(d.conf->cfg->daemon.log_level, d.conf->cfg->daemon.log_format);
	signal(SIGPIPE, SIG_IGN);

	ensure_parent(d.conf->cfg->daemon.database);
	rc = store_open(d.conf->cfg->daemon.database, 0, &d.store, &err);
	if (rc) {
		log_errorx("%s", err);
		free(err);
		renewal_conf_free(d.conf);
		return 1;
	}
	/* WAL checkpoints off the loop; without the thread SQLite's own
	 * inline checkpoints still work. */
	if (store_checkpoint_start(d.store, d.conf->cfg->daemon.database))
		log_warnx("WAL checkpoints stay on the loop thread");
	rc = renewal_conf_sync(d.store, d.conf, rn_now());
	if (rc) {
		log_errorx("cannot store profiles: %s", rn_strerror(rc));
		goto fail;
	}
	uv_loop_init(&d.loop);
	metrics_gauge_set("renewd_build_info", 1, "version", RN_VERSION, NULL);
	metrics_gauge_set("renewd_start_time_seconds", (double)rn_now(), NULL);
	/* Not fatal: sdn_init logs why, and renewd runs without notifying. */
	sdn_init(&d.loop, &d.sdn);
	/*
	 * Pushes go through a client on a thread of its own: libcurl and the
	 * socket calls of a push wave stay off the loop, which keeps the
	 * store, the proxy and the API. Everything else uses the loop's.
	 */
	rc = net_http_new(&d.loop, &d.http);
	if (rc == RN_OK)
		rc = net_http_new_threaded(&d.loop, &d.push_http);
	if (rc == RN_OK)
		rc = sched_new(&d.loop, d.store, d.conf, d.push_http, d.once,
			       &d.sched);
	if (rc) {
		log_errorx("cannot start: %s", rn_strerror(rc));
		goto fail_loop;
	}
	rc = notif_engine_new(&d.loop, d.store, d.http, d.conf->cfg,
			      &d.notif);
	if (rc == RN_OK) {
		sched_hooks hk = { on_scan_done, on_outbox, &d };
		sched_set_hooks(d.sched, &hk);
	}
	if (rc == RN_OK && !d.once) {
		ensure_parent(d.conf->cfg->daemon.control_socket);
		rc = ca_health_new(&d.loop, d.http, &d.cah);
		if (rc == RN_OK)
			ca_health_set_cb(d.cah, on_ca_checked, &d);
		if (rc == RN_OK)
			rc = ctl_listen(&d.loop,
					d.conf->cfg->daemon.control_socket,
					d.sched, d.cah, rn_now(), &d.ctl, &err);
		if (rc == RN_OK) {
			d.web_env.s = d.store;
			d.web_env.conf = d.conf;
			d.web_env.http = d.http;
			d.web_env.sc = d.sched;
			d.web_env.notif = d.notif;
			d.web_env.cah = d.cah;
			rc = http_start(&d.loop, &d.web_env, &d.web, &err);
		}
	}
	if (rc) {
		log_errorx("%s", err ? err : rn_strerror(rc));
		free(err);
		if (d.ctl)
			ctl_close(d.ctl);
		ca_health_free(d.cah);
		notif_engine_stop(d.notif);
		sched_stop(d.sched, 0, NULL, NULL);
		d.sched = NULL;
		goto fail_loop;
	}
	if (d.once)
		sched_on_idle(d.sched, on_once_idle, &d);
	uv_signal_init(&d.loop, &d.sig_term);
	uv_signal_init(&d.loop, &d.sig_int);
	uv_signal_init(&d.loop, &d.sig_hup);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	uv_signal_start(&d.sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&d.sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&d.sig_hup, on_hup, SIGHUP);

	if (d.cah)
		ca_health_check_all(d.cah, d.conf->cfg);
	rc = sched_start(d.sched);
	if (rc) {
		log_errorx("cannot recover jobs: %s", rn_strerror(rc));
		d.exit_code = 1;
		shutdown_daemon(&d);
	} else {
		char pid[16];
		snprintf(pid, sizeof(pid), "%d", (int)getpid());
		log_kv(RN_LOG_INFO, "renewd started", "version", RN_VERSION,
		       "pid", pid, "config", d.config_path, "database",
		       d.conf->cfg->daemon.database, "listen",
		       d.web ? d.conf->cfg->http.listen : NULL, "mdm",
		       mdm_driver_name(d.conf->cfg->mdm.driver), NULL);
		/* Store open, control socket and HTTP listening, scheduler
		 * started: renewctl and devices can reach us now. */
		sd_ready(&d, 0);
		sdn_status_every(d.sdn, SD_STATUS_MS, sd_status_line, &d);
	}
	uv_run(&d.loop, UV_RUN_DEFAULT);
	n = uv_loop_close(&d.loop);
	if (n != 0)
		log_warnx("event loop closed with handles still open");
	store_close(d.store);
	renewal_conf_free(d.conf);
	metrics_reset();
	log_kv(RN_LOG_INFO, "renewd stopped", NULL);
	return d.exit_code;

fail_loop:
	if (d.http)
		net_http_free(d.http);
	net_http_free(d.push_http);
	sdn_close(d.sdn);
	uv_run(&d.loop, UV_RUN_DEFAULT);
	uv_loop_close(&d.loop);
fail:
	store_close(d.store);
	renewal_conf_free(d.conf);
	metrics_reset();
	return 1;
}
