/*
 * devsim: a simulated fleet of Apple devices behind a NanoMDM-compatible
 * enqueue API, for exercising renewd end to end on one machine.
 *
 *   devsim --listen 127.0.0.1:PORT --webhook URL [--hmac-key-file F]
 *          [--api-key-file F] [--devices N] [--concurrency C]
 *          [--latency-ms L] [--fail-fraction F] [--offline-fraction F]
 *          [--key-pool DIR [--key-pool-size K] [--key-pool-jobs J]]
 *
 * PUT /v1/enqueue/{id} queues an MDM command (plist) on device {id}
 * (dev-0001 .. dev-NNNN). Each device runs its commands in order, at most
 * C devices at once; results go to --webhook as NanoMDM acknowledge_event
 * JSON. InstallProfile enrolls with Debian's scepclient against the SCEP
 * payload of the profile; CertificateList reports the certificates got.
 * Each enrollment uses a fresh key from `openssl genrsa` (350 ms of CPU
 * for 2048 bits), or with --key-pool the next key of a pool of K keys
 * generated once into DIR and reused by later runs (keypool.h); a device
 * never gets the key it already holds. scepclient still builds a CSR of
 * its own for every enrollment (CN, challenge) with that key.
 * One line per action on stderr; SIGINT/SIGTERM exit 0.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <plist/plist.h>
#include <uv.h>

#include "common/common.h"
#include "net/httpd.h"
#include "net/net.h"

#include "keypool.h"

#define OFFLINE_DELAY_MS 5000
#define PROC_TIMEOUT_MS 60000
#define POOL_BITS 2048 /* what a profile asks for when it says nothing */
#define POOL_DEFAULT_SIZE 256

typedef struct cmd {
	char *uuid;
	char *type;
	char *payload; /* InstallProfile: the profile bytes */
	size_t payload_len;
	int notnow_sent;
	struct cmd *next;
} cmd;

typedef struct cert {
	unsigned char *der;
	size_t len;
	char *cn;
} cert;

typedef struct device {
	char id[32];
	int offline;
	int busy;
	cmd *head, *tail, *cur;
	cert *certs;
	size_t ncerts;
	uv_timer_t timer;
	/* the enrollment in progress */
	char *dir, *key, *crt, *url, *challenge, *cn, *ou, *o;
	int bits;
	long key_idx;  /* the pool key of the last enrollment; -1: none */
	long key_pick; /* the pool key of the one in progress; -1: genrsa */
	int ready;     /* on the ready list */
	struct device *rnext;
} device;

typedef struct post_ctx {
	device *dev;
	int finish; /* the device's command is done once posted */
	char *what;
} post_ctx;

static struct {
	uv_loop_t *loop;
	net_httpd *httpd;
	net_http *http;
	uv_signal_t sigint, sigterm;
	const char *webhook;
	char *hmac_key;
	char *api_key;
	device *devs;
	size_t ndevs;
	unsigned concurrency;
	unsigned active;
	int64_t latency_ms;
	double fail_fraction;
	double offline_fraction;
	int stopping;
	keypool *pool;
	size_t pool_cursor;
	/* devices with a command waiting and none running, FIFO */
	device *ready_head, *ready_tail;
} g;

static void device_act(device *d);
static void schedule(void);
static void device_timer(uv_timer_t *t);

static void
schedule_timer(uv_timer_t *t)
{
	schedule();
}

static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void
say(const char *fmt, ...)
{
	va_list ap;
	char ts[RN_TIME_LEN];

	rn_time_format(rn_now(), ts, sizeof ts);
	fprintf(stderr, "devsim %s ", ts);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static double
rnd01(void)
{
	uint32_t v = 0;

	if (rn_random_bytes(&v, sizeof v) != 0)
		v = (uint32_t)random();
	return (double)v / 4294967296.0;
}

static void
cmd_free(cmd *c)
{
	if (c == NULL)
		return;
	free(c->uuid);
	free(c->type);
	free(c->payload);
	free(c);
}

/* dev-0001 .. dev-NNNN: the number is the index, no search */
static device *
device_find(const char *id)
{
	char *end;
	unsigned long k;

	if (strncmp(id, "dev-", 4) != 0 || id[4] < '0' || id[4] > '9')
		return NULL;
	errno = 0;
	k = strtoul(id + 4, &end, 10);
	if (errno || *end || k < 1 || k > g.ndevs ||
	    strcmp(g.devs[k - 1].id, id) != 0)
		return NULL;
	return &g.devs[k - 1];
}

static void
ready_push(device *d)
{
	if (d->ready || d->busy || d->head == NULL)
		return;
	d->ready = 1;
	d->rnext = NULL;
	if (g.ready_tail)
		g.ready_tail->rnext = d;
	else
		g.ready_head = d;
	g.ready_tail = d;
}

static device *
ready_pop(void)
{
	device *d = g.ready_head;

	if (d == NULL)
		return NULL;
	g.ready_head = d->rnext;
	if (g.ready_head == NULL)
		g.ready_tail = NULL;
	d->rnext = NULL;
	d->ready = 0;
	return d;
}

/* ---- enrollment scratch ------------------------------------------------ */

static void
rm_dir(const char *dir)
{
	DIR *dp;
	struct dirent *e;

	if (dir == NULL || (dp = opendir(dir)) == NULL)
		return;
	while ((e = readdir(dp)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		char *p = rn_asprintf("%s/%s", dir, e->d_name);
		if (p != NULL)
			unlink(p);
		free(p);
	}
	closedir(dp);
	rmdir(dir);
}

static void
enroll_clear(device *d)
{
	rm_dir(d->dir);
	free(d->dir);
	free(d->key);
	free(d->crt);
	free(d->url);
	free(d->challenge);
	free(d->cn);
	free(d->ou);
	free(d->o);
	d->dir = d->key = d->crt = d->url = d->challenge = NULL;
	d->cn = d->ou = d->o = NULL;
	d->bits = 0;
}

/* ---- the webhook ------------------------------------------------------- */

static void
post_done(void *arg, const net_http_resp *r)
{
	post_ctx *p = arg;
	device *d = p->dev;

	if (r->rc != 0)
		say("%s webhook %s failed: %s", d->id, p->what,
		    r->error ? r->error : rn_strerror(r->rc));
	else
		say("%s webhook %s -> http %ld", d->id, p->what, r->status);
	if (p->finish) {
		cmd_free(d->cur);
		d->cur = NULL;
		d->busy = 0;
		g.active--;
		ready_push(d);
		schedule();
	}
	free(p->what);
	free(p);
}

/* base64 HMAC-SHA256 of data under g.hmac_key; malloc'd. */
static char *
sign(const char *data, size_t len)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;

	if (HMAC(EVP_sha256(), g.hmac_key, (int)strlen(g.hmac_key),
		 (const unsigned char *)data, len, mac, &maclen) == NULL)
		return NULL;
	return rn_base64(mac, maclen);
}

/*
 * Post an acknowledge_event for d's current command with status and the
 * raw payload plist `raw` (consumed). When finish, the command is done
 * once the post completes.
 */
static void
post_ack(device *d, const char *status, plist_t raw, int finish)
{
	char *xml = NULL, *b64 = NULL, *body = NULL, *sig = NULL;
	char *sighdr = NULL;
	uint32_t xlen = 0;
	char eid[37], ts[RN_TIME_LEN];
	json_t *j;
	post_ctx *p;
	net_http_req req;
	const char *hdrs[3];
	int rc = RN_ENOMEM;

	plist_to_xml(raw, &xml, &xlen);
	plist_free(raw);
	p = calloc(1, sizeof *p);
	if (xml == NULL || p == NULL)
		goto out;
	b64 = rn_base64(xml, xlen);
	rn_uuid_v4(eid);
	rn_time_format(rn_now(), ts, sizeof ts);
	j = json_pack("{s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s}}",
		      "topic", "mdm.Connect", "event_id", eid,
		      "created_at", ts, "acknowledge_event",
		      "udid", d->id, "status", status,
		      "command_uuid", d->cur->uuid,
		      "raw_payload", b64 ? b64 : "");
	if (j == NULL || b64 == NULL) {
		json_decref(j);
		goto out;
	}
	body = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (body == NULL)
		goto out;
	hdrs[0] = "Content-Type: application/json";
	hdrs[1] = NULL;
	hdrs[2] = NULL;
	if (g.hmac_key != NULL) {
		sig = sign(body, strlen(body));
		sighdr = sig ? rn_asprintf("X-Hmac-Signature: %s", sig) : NULL;
		if (sighdr == NULL)
			goto out;
		hdrs[1] = sighdr;
	}
	memset(&req, 0, sizeof req);
	req.method = "POST";
	req.url = g.webhook;
	req.headers = hdrs;
	req.body = body;
	req.body_len = strlen(body);
	req.timeout_ms = 30000;
	p->dev = d;
	p->finish = finish;
	p->what = rn_asprintf("%s %s %s", d->cur->type, d->cur->uuid, status);
	if (p->what == NULL)
		goto out;
	say("%s posting %s", d->id, p->what);
	rc = net_http_request(g.http, &req, post_done, p);
	if (rc == 0)
		p = NULL;
out:
	if (rc != 0) {
		say("%s cannot post %s: %s", d->id, status, rn_strerror(rc));
		if (finish) {
			cmd_free(d->cur);
			d->cur = NULL;
			d->busy = 0;
			g.active--;
			ready_push(d);
			/* schedule from the next timer tick, not recursively */
			uv_timer_start(&d->timer, schedule_timer, 0, 0);
		}
	}
	if (p != NULL) {
		free(p->what);
		free(p);
	}
	if (xml != NULL)
		plist_to_xml_free(xml);
	free(b64);
	free(body);
	free(sig);
	free(sighdr);
}

static plist_t
raw_base(device *d, const char *status)
{
	plist_t r = plist_new_dict();

	plist_dict_set_item(r, "CommandUUID", plist_new_string(d->cur->uuid));
	plist_dict_set_item(r, "Status", plist_new_string(status));
	plist_dict_set_item(r, "UDID", plist_new_string(d->id));
	plist_dict_set_item(r, "RequestType", plist_new_string(d->cur->type));
	return r;
}

static void
post_error(device *d, const char *msg)
{
	plist_t r = raw_base(d, "Error"), chain, e;

	chain = plist_new_array();
	e = plist_new_dict();
	plist_dict_set_item(e, "ErrorDomain", plist_new_string("devsim"));
	plist_dict_set_item(e, "ErrorCode", plist_new_uint(1));
	plist_dict_set_item(e, "LocalizedDescription",
			    plist_new_string(msg ? msg : "error"));
	plist_array_append_item(chain, e);
	plist_dict_set_item(r, "ErrorChain", chain);
	say("%s %s %s failed: %s", d->id, d->cur->type, d->cur->uuid, msg);
	post_ack(d, "Error", r, 1);
}

/* ---- InstallProfile ---------------------------------------------------- */

static char *
str_item(plist_t dict, const char *key)
{
	plist_t v = plist_dict_get_item(dict, key);
	char *s = NULL;

	if (v != NULL && plist_get_node_type(v) == PLIST_STRING)
		plist_get_string_val(v, &s);
	return s;
}

/* The profile plist: plain, or the XML inside a signed (CMS) profile. */
static plist_t
profile_parse(const char *data, size_t len)
{
	plist_t p = NULL;
	const char *a, *b;

	plist_from_memory(data, (uint32_t)len, &p);
	if (p != NULL)
		return p;
	a = memmem(data, len, "<?xml", 5);
	if (a == NULL)
		return NULL;
	b = memmem(a, len - (size_t)(a - data), "</plist>", 8);
	if (b == NULL)
		return NULL;
	plist_from_xml(a, (uint32_t)(b + 8 - a), &p);
	return p;
}

/* Fill d's enrollment fields from the profile's SCEP payload. */
static int
scep_from_profile(device *d, const char *data, size_t len)
{
	plist_t prof, content, scep = NULL, subj, v;
	uint32_t i, n;

	prof = profile_parse(data, len);
	if (prof == NULL || plist_get_node_type(prof) != PLIST_DICT) {
		plist_free(prof);
		return RN_EINVAL;
	}
	content = plist_dict_get_item(prof, "PayloadContent");
	n = content && plist_get_node_type(content) == PLIST_ARRAY ?
		    plist_array_get_size(content) : 0;
	for (i = 0; i < n; i++) {
		plist_t it = plist_array_get_item(content, i);
		char *t = str_item(it, "PayloadType");
		int hit = t != NULL && strcmp(t, "com.apple.security.scep") == 0;
		free(t);
		if (hit) {
			scep = plist_dict_get_item(it, "PayloadContent");
			break;
		}
	}
	if (scep == NULL || plist_get_node_type(scep) != PLIST_DICT) {
		plist_free(prof);
		return RN_ENOTFOUND;
	}
	d->url = str_item(scep, "URL");
	d->challenge = str_item(scep, "Challenge");
	d->bits = 2048;
	v = plist_dict_get_item(scep, "Keysize");
	if (v != NULL && plist_get_node_type(v) == PLIST_UINT) {
		uint64_t k = 0;
		plist_get_uint_val(v, &k);
		if (k >= 1024 && k <= 8192)
			d->bits = (int)k;
	}
	subj = plist_dict_get_item(scep, "Subject");
	n = subj && plist_get_node_type(subj) == PLIST_ARRAY ?
		    plist_array_get_size(subj) : 0;
	for (i = 0; i < n; i++) {
		plist_t rdn = plist_array_get_item(subj, i);
		uint32_t m = plist_get_node_type(rdn) == PLIST_ARRAY ?
				     plist_array_get_size(rdn) : 0;
		for (uint32_t k = 0; k < m; k++) {
			plist_t pair = plist_array_get_item(rdn, k);
			char *oid = NULL, *val = NULL;
			if (plist_get_node_type(pair) != PLIST_ARRAY ||
			    plist_array_get_size(pair) != 2)
				continue;
			plist_t a = plist_array_get_item(pair, 0);
			plist_t b = plist_array_get_item(pair, 1);
			if (plist_get_node_type(a) != PLIST_STRING ||
			    plist_get_node_type(b) != PLIST_STRING)
				continue;
			plist_get_string_val(a, &oid);
			plist_get_string_val(b, &val);
			char **slot = NULL;
			if (strcmp(oid, "CN") == 0)
				slot = &d->cn;
			else if (strcmp(oid, "OU") == 0)
				slot = &d->ou;
			else if (strcmp(oid, "O") == 0)
				slot = &d->o;
			if (slot != NULL && *slot == NULL) {
				*slot = val;
				val = NULL;
			}
			free(oid);
			free(val);
		}
	}
	plist_free(prof);
	if (d->url == NULL || d->challenge == NULL || d->cn == NULL)
		return RN_EINVAL;
	return 0;
}

/* The last non-empty line of out, malloc'd. */
static char *
last_line(const char *out, size_t len)
{
	while (len > 0 && (out[len - 1] == '\n' || out[len - 1] == '\r' ||
			   out[len - 1] == ' '))
		len--;
	size_t start = len;
	while (start > 0 && out[start - 1] != '\n')
		start--;
	if (len == start)
		return rn_strdup("no output");
	return rn_strndup(out + start, len - start);
}

static int
load_cert(device *d)
{
	FILE *fp = fopen(d->crt, "r");
	X509 *x;
	unsigned char *der = NULL;
	int len;
	cert *nc;

	if (fp == NULL)
		return RN_EIO;
	x = PEM_read_X509(fp, NULL, NULL, NULL);
	fclose(fp);
	if (x == NULL)
		return RN_ECRYPTO;
	len = i2d_X509(x, &der);
	X509_free(x);
	if (len <= 0)
		return RN_ECRYPTO;
	nc = realloc(d->certs, (d->ncerts + 1) * sizeof *nc);
	if (nc == NULL) {
		OPENSSL_free(der);
		return RN_ENOMEM;
	}
	d->certs = nc;
	nc[d->ncerts].der = malloc((size_t)len);
	if (nc[d->ncerts].der == NULL) {
		OPENSSL_free(der);
		return RN_ENOMEM;
	}
	memcpy(nc[d->ncerts].der, der, (size_t)len);
	OPENSSL_free(der);
	nc[d->ncerts].len = (size_t)len;
	nc[d->ncerts].cn = rn_strdup(d->cn);
	d->ncerts++;
	return 0;
}

/* 1 when a child of an enrollment succeeded; else its error is posted
 * (unless devsim is stopping) and the enrollment ends with the caller. */
static int
proc_ok(device *d, const net_proc_result *res)
{
	char *line;

	if (g.stopping)
		return 0;
	if (res->rc != 0 || res->exit_status != 0) {
		line = last_line(res->output, res->output_len);
		post_error(d, line);
		free(line);
		return 0;
	}
	return 1;
}

static void
scepclient_done(void *arg, const net_proc_result *res)
{
	device *d = arg;

	if (proc_ok(d, res)) {
		if (load_cert(d) != 0) {
			post_error(d, "scepclient wrote no certificate");
		} else {
			if (d->key_pick >= 0)
				d->key_idx = d->key_pick;
			say("%s enrolled CN=%s (%zu certificates)", d->id,
			    d->cn, d->ncerts);
			post_ack(d, "Acknowledged",
				 raw_base(d, "Acknowledged"), 1);
		}
	}
	enroll_clear(d);
}

/*
 * scepclient with d's key: it uses a key file that exists (and generates
 * one only when there is none), and caches its CSR as csr.pem (and
 * self.pem) in the key's directory, which is d->dir, fresh for every
 * enrollment: so each run builds its own CSR with this CN and challenge.
 */
static void
run_scepclient(device *d)
{
	char *argv[24];
	int n = 0, rc;

	argv[n++] = "scepclient";
	argv[n++] = "-server-url";
	argv[n++] = d->url;
	argv[n++] = "-challenge";
	argv[n++] = d->challenge;
	argv[n++] = "-cn";
	argv[n++] = d->cn;
	if (d->ou != NULL) {
		argv[n++] = "-ou";
		argv[n++] = d->ou;
	}
	if (d->o != NULL) {
		argv[n++] = "-organization";
		argv[n++] = d->o;
	}
	argv[n++] = "-private-key";
	argv[n++] = d->key;
	argv[n++] = "-certificate";
	argv[n++] = d->crt;
	argv[n] = NULL;
	net_proc_opts o = { .argv = argv, .timeout_ms = PROC_TIMEOUT_MS };
	say("%s scepclient CN=%s %s", d->id, d->cn, d->url);
	rc = net_proc_run(g.loop, &o, scepclient_done, d);
	if (rc != 0) {
		post_error(d, rn_strerror(rc));
		enroll_clear(d);
	}
}

static void
genrsa_done(void *arg, const net_proc_result *res)
{
	device *d = arg;

	if (proc_ok(d, res))
		run_scepclient(d);
	else
		enroll_clear(d);
}

/* Write pool key i to d->key (mode 0600); 0 or an RN_ error. */
static int
write_pool_key(device *d, size_t i)
{
	size_t len = 0;
	const char *pem = keypool_pem(g.pool, i, &len);
	int fd, rc = 0;

	if (pem == NULL)
		return RN_EINVAL;
	fd = open(d->key, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return RN_EIO;
	for (size_t off = 0; off < len && rc == 0;) {
		ssize_t w = write(fd, pem + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = RN_EIO;
		else
			off += (size_t)w;
	}
	if (close(fd) != 0 && rc == 0)
		rc = RN_EIO;
	return rc;
}

static void
install_profile(device *d)
{
	cmd *c = d->cur;
	char bits[16];
	int rc;

	if (d->offline && !c->notnow_sent) {
		c->notnow_sent = 1;
		say("%s offline: NotNow for %s, retry in %d ms", d->id,
		    c->uuid, OFFLINE_DELAY_MS);
		post_ack(d, "NotNow", raw_base(d, "NotNow"), 0);
		uv_timer_start(&d->timer, device_timer,
			       OFFLINE_DELAY_MS, 0);
		return;
	}
	if (g.fail_fraction > 0 && rnd01() < g.fail_fraction) {
		post_error(d, "simulated failure (--fail-fraction)");
		return;
	}
	rc = scep_from_profile(d, c->payload, c->payload_len);
	if (rc != 0) {
		enroll_clear(d);
		post_error(d, "profile has no usable com.apple.security.scep "
			      "payload");
		return;
	}
	d->dir = rn_strdup("/tmp/devsim-XXXXXX");
	if (d->dir == NULL || mkdtemp(d->dir) == NULL) {
		free(d->dir);
		d->dir = NULL;
		enroll_clear(d);
		post_error(d, "cannot create a temp directory");
		return;
	}
	d->key = rn_asprintf("%s/device.key", d->dir);
	d->crt = rn_asprintf("%s/device.pem", d->dir);
	if (d->key == NULL || d->crt == NULL) {
		enroll_clear(d);
		post_error(d, "out of memory");
		return;
	}
	d->key_pick = -1;
	if (g.pool != NULL && d->bits == keypool_bits(g.pool)) {
		size_t i = keypool_pick(&g.pool_cursor, keypool_size(g.pool),
					d->key_idx);
		rc = write_pool_key(d, i);
		if (rc != 0) {
			enroll_clear(d);
			post_error(d, "cannot write the pool key");
			return;
		}
		d->key_pick = (long)i;
		say("%s InstallProfile %s: pool key %zu", d->id, c->uuid, i);
		run_scepclient(d);
		return;
	}
	snprintf(bits, sizeof bits, "%d", d->bits);
	char *argv[] = { "openssl", "genrsa", "-traditional", "-out", d->key,
			 bits, NULL };
	net_proc_opts o = { .argv = argv, .timeout_ms = PROC_TIMEOUT_MS };
	say("%s InstallProfile %s: genrsa %s", d->id, c->uuid, bits);
	rc = net_proc_run(g.loop, &o, genrsa_done, d);
	if (rc != 0) {
		enroll_clear(d);
		post_error(d, rn_strerror(rc));
	}
}

/* ---- CertificateList --------------------------------------------------- */

static void
certificate_list(device *d)
{
	plist_t r = raw_base(d, "Acknowledged"), list = plist_new_array();

	for (size_t i = 0; i < d->ncerts; i++) {
		plist_t e = plist_new_dict();
		plist_dict_set_item(e, "Data",
				    plist_new_data((const char *)d->certs[i].der,
						   d->certs[i].len));
		plist_dict_set_item(e, "CommonName",
				    plist_new_string(d->certs[i].cn ?
							     d->certs[i].cn : ""));
		plist_dict_set_item(e, "IsIdentity", plist_new_bool(1));
		plist_array_append_item(list, e);
	}
	plist_dict_set_item(r, "CertificateList", list);
	say("%s CertificateList %s: %zu certificates", d->id, d->cur->uuid,
	    d->ncerts);
	post_ack(d, "Acknowledged", r, 1);
}

/* ---- the per-device queue ---------------------------------------------- */

static void
device_act(device *d)
{
	if (g.stopping)
		return;
	if (strcmp(d->cur->type, "InstallProfile") == 0)
		install_profile(d);
	else if (strcmp(d->cur->type, "CertificateList") == 0)
		certificate_list(d);
	else
		post_error(d, "request type not supported by devsim");
}

static void
device_timer(uv_timer_t *t)
{
	device_act(t->data);
}

static void
schedule(void)
{
	if (g.stopping)
		return;
	while (g.active < g.concurrency) {
		device *d = ready_pop();
		if (d == NULL)
			break;
		d->cur = d->head;
		d->head = d->cur->next;
		if (d->head == NULL)
			d->tail = NULL;
		d->cur->next = NULL;
		d->busy = 1;
		g.active++;
		uv_timer_start(&d->timer, device_timer, (uint64_t)g.latency_ms,
			       0);
	}
}

/* ---- the enqueue API --------------------------------------------------- */

static void
reply_json(net_httpd_req *req, unsigned status, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	json_decref(j);
	if (s == NULL) {
		net_httpd_respond(req, 500, "text/plain", "error\n", 6);
		return;
	}
	net_httpd_respond(req, status, "application/json", s, strlen(s));
	free(s);
}

static int
auth_ok(net_httpd_req *req)
{
	const char *h = net_httpd_req_header(req, "Authorization");
	char *want, *b64;
	int ok;

	if (g.api_key == NULL)
		return 1;
	if (h == NULL || strncmp(h, "Basic ", 6) != 0)
		return 0;
	want = rn_asprintf("nanomdm:%s", g.api_key);
	b64 = want ? rn_base64(want, strlen(want)) : NULL;
	ok = b64 != NULL && strcmp(h + 6, b64) == 0;
	free(want);
	free(b64);
	return ok;
}

static void
handler(void *arg, net_httpd_req *req)
{
	const char *path = net_httpd_req_path(req);
	const char *method = net_httpd_req_method(req);
	char id[128];
	const void *body;
	size_t blen = 0;
	plist_t pl = NULL, cmdd, v;
	char *uuid = NULL, *type = NULL;
	device *d;

	if (strncmp(path, "/v1/enqueue/", 12) != 0) {
		net_httpd_respond(req, 404, "text/plain", "not found\n", 10);
		return;
	}
	if (strcmp(method, "PUT") != 0 && strcmp(method, "POST") != 0) {
		net_httpd_respond(req, 405, "text/plain", "method\n", 7);
		return;
	}
	if (!auth_ok(req)) {
		net_httpd_req_set_header(req, "WWW-Authenticate",
					 "Basic realm=\"nanomdm\"");
		net_httpd_respond(req, 401, "text/plain", "Unauthorized\n", 13);
		return;
	}
	if (net_httpd_pct_decode(path + 12, id, sizeof id) <= 0 ||
	    strchr(id, ',') != NULL || strchr(id, '/') != NULL) {
		net_httpd_respond(req, 400, "text/plain", "bad id\n", 7);
		return;
	}
	body = net_httpd_req_body(req, &blen);
	if (blen > 0)
		plist_from_memory(body, (uint32_t)blen, &pl);
	cmdd = pl ? plist_dict_get_item(pl, "Command") : NULL;
	if (pl == NULL || plist_get_node_type(pl) != PLIST_DICT ||
	    cmdd == NULL || plist_get_node_type(cmdd) != PLIST_DICT ||
	    (uuid = str_item(pl, "CommandUUID")) == NULL ||
	    (type = str_item(cmdd, "RequestType")) == NULL) {
		free(uuid);
		plist_free(pl);
		say("enqueue %s: bad command plist", id);
		net_httpd_respond(req, 400, "text/plain", "bad command\n", 12);
		return;
	}
	d = device_find(id);
	json_t *st = json_object();
	if (d == NULL) {
		json_object_set_new(st, id, json_pack("{s:s}", "command_error",
						      "unknown enrollment"));
		say("enqueue %s %s %s: unknown enrollment", id, type, uuid);
	} else {
		cmd *c = calloc(1, sizeof *c);
		if (c == NULL)
			abort();
		c->uuid = uuid;
		c->type = type;
		v = plist_dict_get_item(cmdd, "Payload");
		if (v != NULL && plist_get_node_type(v) == PLIST_DATA) {
			uint64_t l = 0;
			plist_get_data_val(v, &c->payload, &l);
			c->payload_len = (size_t)l;
		}
		if (d->tail)
			d->tail->next = c;
		else
			d->head = c;
		d->tail = c;
		ready_push(d);
		json_object_set_new(st, id, json_object());
		say("enqueue %s %s %s", id, type, uuid);
	}
	json_t *j = json_pack("{s:o, s:s, s:s}", "status", st, "command_uuid",
			      uuid, "request_type", type);
	if (d == NULL) {
		free(uuid);
		free(type);
	}
	plist_free(pl);
	reply_json(req, 200, j);
	schedule();
}

/* ---- main -------------------------------------------------------------- */

static void
on_close_free_nothing(uv_handle_t *h)
{
}

static void
on_signal(uv_signal_t *s, int signum)
{
	if (g.stopping)
		return;
	g.stopping = 1;
	say("signal %d: stopping", signum);
	net_httpd_stop(g.httpd);
	g.httpd = NULL;
	net_proc_kill_all();
	net_http_free(g.http);
	g.http = NULL;
	for (size_t i = 0; i < g.ndevs; i++)
		uv_close((uv_handle_t *)&g.devs[i].timer, on_close_free_nothing);
	uv_close((uv_handle_t *)&g.sigint, on_close_free_nothing);
	uv_close((uv_handle_t *)&g.sigterm, on_close_free_nothing);
}

static void
usage(void)
{
	fprintf(stderr,
		"usage: devsim --listen ADDR:PORT --webhook URL "
		"[--hmac-key-file F]\n"
		"              [--api-key-file F] [--devices N] "
		"[--concurrency C] [--latency-ms L]\n"
		"              [--fail-fraction F] [--offline-fraction F]\n"
		"              [--key-pool DIR [--key-pool-size K] "
		"[--key-pool-jobs J]]\n"
		"\n"
		"Without --key-pool each enrollment generates its key with "
		"`openssl genrsa`.\n"
		"--key-pool DIR: enrollments take RSA %d keys from a pool of "
		"K (default %d)\n"
		"  in DIR (key-00000.pem ...), generated by J threads "
		"(default: online CPUs)\n"
		"  where missing or invalid and reused by later runs; a "
		"device never gets\n"
		"  the key it holds. Each enrollment still makes its own CSR "
		"with scepclient.\n", POOL_BITS, POOL_DEFAULT_SIZE);
	exit(2);
}

static int
parse_frac(const char *s, double *out)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || *end || end == s || !(v >= 0 && v <= 1))
		return -1;
	*out = v;
	return 0;
}

static long
parse_long(const char *s, long lo, long hi)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || *end || end == s || v < lo || v > hi)
		usage();
	return v;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "webhook", required_argument, NULL, 'w' },
		{ "hmac-key-file", required_argument, NULL, 'k' },
		{ "api-key-file", required_argument, NULL, 'a' },
		{ "devices", required_argument, NULL, 'n' },
		{ "concurrency", required_argument, NULL, 'c' },
		{ "latency-ms", required_argument, NULL, 'L' },
		{ "fail-fraction", required_argument, NULL, 'f' },
		{ "offline-fraction", required_argument, NULL, 'o' },
		{ "key-pool", required_argument, NULL, 'P' },
		{ "key-pool-size", required_argument, NULL, 'S' },
		{ "key-pool-jobs", required_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *listen = NULL, *hmac_file = NULL, *api_file = NULL;
	long ndevs = 10, conc = 4, pool_size = POOL_DEFAULT_SIZE, pool_jobs;
	const char *pool_dir = NULL;
	char *err = NULL;
	int ch, rc;

	g.latency_ms = 0;
	pool_jobs = sysconf(_SC_NPROCESSORS_ONLN);
	if (pool_jobs < 1)
		pool_jobs = 1;
	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'l': listen = optarg; break;
		case 'w': g.webhook = optarg; break;
		case 'k': hmac_file = optarg; break;
		case 'a': api_file = optarg; break;
		case 'n': ndevs = parse_long(optarg, 1, 100000); break;
		case 'c': conc = parse_long(optarg, 1, 100000); break;
		case 'L': g.latency_ms = parse_long(optarg, 0, 3600000); break;
		case 'f':
			if (parse_frac(optarg, &g.fail_fraction))
				usage();
			break;
		case 'o':
			if (parse_frac(optarg, &g.offline_fraction))
				usage();
			break;
		case 'P': pool_dir = optarg; break;
		case 'S': pool_size = parse_long(optarg, 1, 1000000); break;
		case 'J': pool_jobs = parse_long(optarg, 1, 1024); break;
		default: usage();
		}
	}
	if (optind != argc || listen == NULL || g.webhook == NULL)
		usage();
	if (hmac_file && rn_secret_read_file(hmac_file, &g.hmac_key) != 0) {
		fprintf(stderr, "devsim: cannot read %s\n", hmac_file);
		return 1;
	}
	if (api_file && rn_secret_read_file(api_file, &g.api_key) != 0) {
		fprintf(stderr, "devsim: cannot read %s\n", api_file);
		return 1;
	}
	if (pool_dir != NULL) {
		keypool_stats st;
		rc = keypool_open(pool_dir, (size_t)pool_size, POOL_BITS,
				  (unsigned)pool_jobs, &g.pool, &st, &err);
		if (rc != 0) {
			fprintf(stderr, "devsim: key pool: %s\n",
				err ? err : strerror(rc));
			free(err);
			return 1;
		}
		say("key pool %s: %zu RSA %d keys, %zu reused, %zu generated "
		    "in %.1f s (%ld threads)", pool_dir, (size_t)pool_size,
		    POOL_BITS, st.reused, st.generated, st.gen_seconds,
		    pool_jobs);
	}
	signal(SIGPIPE, SIG_IGN);
	g.loop = uv_default_loop();
	g.concurrency = (unsigned)conc;
	g.ndevs = (size_t)ndevs;
	g.devs = calloc(g.ndevs, sizeof *g.devs);
	if (g.devs == NULL)
		return 1;
	/* offline devices: the first round(N * fraction), deterministic */
	size_t noff = (size_t)(g.offline_fraction * (double)g.ndevs + 0.5);
	for (size_t i = 0; i < g.ndevs; i++) {
		device *d = &g.devs[i];
		snprintf(d->id, sizeof d->id, "dev-%04zu", i + 1);
		d->offline = i < noff;
		d->key_idx = -1;
		d->key_pick = -1;
		uv_timer_init(g.loop, &d->timer);
		d->timer.data = d;
	}
	if ((rc = net_http_new(g.loop, &g.http)) != 0) {
		fprintf(stderr, "devsim: http client: %s\n", rn_strerror(rc));
		return 1;
	}
	rc = net_httpd_start(g.loop, listen, NULL, handler, NULL, &g.httpd,
			     &err);
	if (rc != 0) {
		fprintf(stderr, "devsim: %s\n", err ? err : rn_strerror(rc));
		free(err);
		return 1;
	}
	uv_signal_init(g.loop, &g.sigint);
	uv_signal_init(g.loop, &g.sigterm);
	uv_signal_start(&g.sigint, on_signal, SIGINT);
	uv_signal_start(&g.sigterm, on_signal, SIGTERM);
	say("listening on %s port %d, %zu devices (%zu offline), "
	    "concurrency %u, webhook %s", listen, net_httpd_port(g.httpd),
	    g.ndevs, noff, g.concurrency, g.webhook);
	uv_run(g.loop, UV_RUN_DEFAULT);
	for (size_t i = 0; i < g.ndevs; i++) {
		device *d = &g.devs[i];
		cmd *c, *nx;
		enroll_clear(d);
		cmd_free(d->cur);
		for (c = d->head; c; c = nx) {
			nx = c->next;
			cmd_free(c);
		}
		for (size_t k = 0; k < d->ncerts; k++) {
			free(d->certs[k].der);
			free(d->certs[k].cn);
		}
		free(d->certs);
	}
	free(g.devs);
	keypool_free(g.pool);
	free(g.hmac_key);
	free(g.api_key);
	uv_loop_close(g.loop);
	say("stopped");
	return 0;
}
