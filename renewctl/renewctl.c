/*
 * renewctl: the operator's command-line tool. It reads the same
 * configuration as renewd, talks to the running daemon over its control
 * socket (one JSON line each way) and reads or changes the database only
 * through store.h. Human output by default, one JSON document with --json.
 *
 * Exit codes: 0 success, 1 failure, 2 usage or configuration error.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <yaml.h>

#include "common/common.h"
#include "config/config.h"
#include "notifiers/alert.h"
#include "notifiers/notify.h"
#include "profiles/profiles.h"
#include "renewal/renewal.h"
#include "scep/scep.h"
#include "store/store.h"

#define CTL_DEFAULT_CONFIG "/etc/renewd/renewd.yaml"
#define CTL_REPLY_CAP (1024 * 1024)
#define CTL_TIMEOUT_MS (60 * 1000)
#define CTL_FILE_CAP (1024 * 1024)

enum { CTL_OK = 0, CTL_FAIL = 1, CTL_USAGE = 2 };

typedef struct ctl {
	const char *config_path;
	int json;
	rn_conf *conf; /* loaded on demand by ctl_conf_load */
	char *socket_path, *db_path; /* from conf, or read leniently */
	int64_t now;
} ctl;

static const char *const job_states[] = {
	JOB_QUEUED, JOB_RUNNING, JOB_PUSHED, JOB_ACKNOWLEDGED,
	JOB_VERIFIED, JOB_FAILED, JOB_CANCELLED,
};
#define NJOB_STATES (sizeof(job_states) / sizeof(job_states[0]))

static const char *const open_job_states[] = {
	JOB_QUEUED, JOB_RUNNING, JOB_PUSHED, JOB_ACKNOWLEDGED,
};

static const char *const cert_states[] = {
	"active", "renewing", "superseded", "expired",
};
#define NCERT_STATES (sizeof(cert_states) / sizeof(cert_states[0]))

/* ---- messages --------------------------------------------------------- */

static void ctl_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void ctl_usage_err(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));

static void
ctl_err(const char *fmt, ...)
{
	va_list ap;

	fputs("renewctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void
ctl_usage_err(const char *fmt, ...)
{
	va_list ap;

	fputs("renewctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\ntry 'renewctl help'\n", stderr);
}

static void
ctl_usage(FILE *f)
{
	fputs(
	    "usage: renewctl [-c FILE] [--json] COMMAND [ARGS]\n"
	    "\n"
	    "commands:\n"
	    "  trigger                      scan now in the running daemon\n"
	    "  status                       daemon, last scan, jobs and "
	    "certificates by state,\n"
	    "                               next due\n"
	    "  certs [--expiring-within D] [--host UUID] [--state S] "
	    "[--unmatched]\n"
	    "  certs import --host UUID --profile UUID --ca NAME [--serial SN] FILE...\n"
	    "                               import PEM or DER certificates\n"
	    "  jobs [--state S] [--limit N] list jobs, newest first\n"
	    "  jobs show ID | jobs retry ID | jobs cancel ID\n"
	    "  plan [--within D]            dry run: what renews when, under "
	    "which policy\n"
	    "  resend --host UUID --profile UUID\n"
	    "                               push the profile again\n"
	    "  profile validate FILE        check a .mobileconfig template\n"
	    "  profile render --host UUID --profile UUID\n"
	    "                               preview a rendered profile (no "
	    "side effects)\n"
	    "  ca test NAME                 GetCACaps + GetCACert against the "
	    "upstream\n"
	    "  notify test NAME             send a test notification\n"
	    "  help                         this text\n"
	    "\n"
	    "options:\n"
	    "  -c FILE   configuration file (default: $RENEWD_CONFIG, else "
	    CTL_DEFAULT_CONFIG ")\n"
	    "  --json    print one JSON document\n"
	    "\n"
	    "Exit codes: 0 success, 1 failure, 2 usage or configuration "
	    "error.\n",
	    f);
}

/* strerror(3) text with a lowercase first letter, for our messages. */
static const char *
ctl_strerror(int e, char *buf, size_t len)
{
	snprintf(buf, len, "%s", strerror(e));
	buf[0] = (char)tolower((unsigned char)buf[0]);
	return buf;
}

/* The most useful text for a store error: SQLite's when it has one. */
static const char *
ctl_store_strerror(store *s, int rc)
{
	if (rc == RN_ESTORE && s != NULL && store_errmsg(s) != NULL)
		return store_errmsg(s);
	return rn_strerror(rc);
}

/* ---- formatting ------------------------------------------------------- */

/* RFC 3339 or "-" for "no time". */
static const char *
ctl_time(int64_t t, char *buf, size_t len)
{
	if (t == 0)
		snprintf(buf, len, "-");
	else
		rn_time_format(t, buf, len);
	return buf;
}

/*
 * A span for people: the two most significant units, e.g. "3d4h", "5m",
 * "12s". Exact values are in the RFC 3339 columns; this is for reading.
 */
static const char *
ctl_span(int64_t secs, char *buf, size_t len)
{
	static const struct {
		char unit;
		int64_t secs;
	} units[] = { { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 } };
	size_t i, used = 0, parts = 0;

	if (secs < 0)
		secs = 0;
	buf[0] = '\0';
	for (i = 0; i < 4 && parts < 2; i++) {
		int64_t n = secs / units[i].secs;
		if (n == 0 && parts == 0)
			continue;
		if (n > 0 && used < len)
			used += (size_t)snprintf(buf + used, len - used,
						 "%" PRId64 "%c", n,
						 units[i].unit);
		secs -= n * units[i].secs;
		parts++;
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "0s");
	return buf;
}

static const char *
ctl_id(int64_t id, char *buf, size_t len)
{
	if (id == 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRId64, id);
	return buf;
}

/* ---- tables ----------------------------------------------------------- */

/*
 * Column-aligned output: widths come from the content, so UUIDs are never
 * cut. Cells are copied; control characters become spaces so one row
 * stays one line.
 */
typedef struct ctl_table {
	size_t ncols;
	char **cells; /* row-major, the header is row 0 */
	size_t n, alloc;
} ctl_table;

static void
ctl_table_release(ctl_table *t)
{
	size_t i;

	for (i = 0; i < t->n; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->n = t->alloc = 0;
}

/* Append one row of t->ncols strings (NULL shows as "-"). */
static int
ctl_table_add(ctl_table *t, ...)
{
	va_list ap;
	size_t i;
	int rc = RN_OK;

	if (t->n + t->ncols > t->alloc) {
		size_t na = t->alloc ? t->alloc * 2 : 16 * t->ncols;
		char **nc;
		while (na < t->n + t->ncols)
			na *= 2;
		nc = realloc(t->cells, na * sizeof(*nc));
		if (nc == NULL)
			return RN_ENOMEM;
		t->cells = nc;
		t->alloc = na;
	}
	va_start(ap, t);
	for (i = 0; i < t->ncols; i++) {
		const char *s = va_arg(ap, const char *);
		char *c = rn_strdup(s ? s : "-"), *p;
		if (c == NULL)
			rc = RN_ENOMEM;
		for (p = c; p && *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = ' ';
		t->cells[t->n++] = c;
	}
	va_end(ap);
	return rc;
}

static void
ctl_table_print(const ctl_table *t, FILE *f)
{
	size_t *w, r, c, rows;

	w = calloc(t->ncols, sizeof(*w));
	if (w == NULL)
		return;
	rows = t->n / t->ncols;
	for (r = 0; r < rows; r++)
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			size_t l = s ? strlen(s) : 0;
			if (l > w[c])
				w[c] = l;
		}
	for (r = 0; r < rows; r++) {
		for (c = 0; c < t->ncols; c++) {
			const char *s = t->cells[r * t->ncols + c];
			if (s == NULL)
				s = "";
			if (c + 1 == t->ncols)
				fprintf(f, "%s\n", s);
			else
				fprintf(f, "%-*s  ", (int)w[c], s);
		}
	}
	free(w);
}

/* ---- JSON ------------------------------------------------------------- */

/* A JSON string, or null for NULL (or for text that is not UTF-8). */
static json_t *
ctl_jstr(const char *s)
{
	json_t *v;

	if (s == NULL)
		return json_null();
	v = json_string(s);
	return v ? v : json_null();
}

static json_t *
ctl_jtime(int64_t t)
{
	char buf[RN_TIME_LEN];

	if (t == 0)
		return json_null();
	rn_time_format(t, buf, sizeof(buf));
	return json_string(buf);
}

static json_t *
ctl_jid(int64_t id)
{
	return id ? json_integer(id) : json_null();
}

/* Print one JSON document on one line and drop the reference. */
static int
ctl_json_print(json_t *root)
{
	char *s;

	if (root == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	s = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (s == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	puts(s);
	free(s);
	return CTL_OK;
}

static json_t *
ctl_json_cert(const store_cert *c)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(c->id));
	json_object_set_new(o, "host_uuid", ctl_jstr(c->host_uuid));
	json_object_set_new(o, "profile_uuid", ctl_jstr(c->profile_uuid));
	json_object_set_new(o, "ca_name", ctl_jstr(c->ca_name));
	json_object_set_new(o, "serial", ctl_jstr(c->serial));
	json_object_set_new(o, "subject", ctl_jstr(c->subject));
	json_object_set_new(o, "issuer", ctl_jstr(c->issuer));
	json_object_set_new(o, "sha256", ctl_jstr(c->sha256));
	json_object_set_new(o, "renewal_id", ctl_jstr(c->renewal_id));
	json_object_set_new(o, "state", ctl_jstr(c->state));
	json_object_set_new(o, "policy", ctl_jstr(c->policy));
	json_object_set_new(o, "not_valid_before",
			    ctl_jtime(c->not_valid_before));
	json_object_set_new(o, "not_valid_after",
			    ctl_jtime(c->not_valid_after));
	json_object_set_new(o, "renew_at", ctl_jtime(c->renew_at));
	json_object_set_new(o, "job_id", ctl_jid(c->job_id));
	return o;
}

static json_t *
ctl_json_job(const store_job *j)
{
	json_t *o = json_object();

	json_object_set_new(o, "id", json_integer(j->id));
	json_object_set_new(o, "kind", ctl_jstr(j->kind));
	json_object_set_new(o, "state", ctl_jstr(j->state));
	json_object_set_new(o, "attempts", json_integer(j->attempts));
	json_object_set_new(o, "host_uuid", ctl_jstr(j->host_uuid));
	json_object_set_new(o, "profile_uuid", ctl_jstr(j->profile_uuid));
	json_object_set_new(o, "ca_name", ctl_jstr(j->ca_name));
	json_object_set_new(o, "renewal_id", ctl_jstr(j->renewal_id));
	json_object_set_new(o, "command_uuid", ctl_jstr(j->command_uuid));
	json_object_set_new(o, "cert_id", ctl_jid(j->cert_id));
	json_object_set_new(o, "next_attempt_at",
			    ctl_jtime(j->next_attempt_at));
	json_object_set_new(o, "last_error", ctl_jstr(j->last_error));
	json_object_set_new(o, "created_at", ctl_jtime(j->created_at));
	json_object_set_new(o, "updated_at", ctl_jtime(j->updated_at));
	return o;
}

/* ---- argument parsing ------------------------------------------------- */

typedef struct ctl_opt {
	const char *name;  /* "--host" */
	const char **val;  /* options taking a value */
	int *flag;	   /* flags */
} ctl_opt;

/*
 * Parse a command's arguments: "--name value", "--name=value" and flags
 * in any order, "--" ends options. Positionals are compacted to the front
 * of argv (a write index never passes the read index) and counted in
 * *npos. Prints the problem and returns CTL_USAGE on a bad argument.
 */
static int
ctl_opts_parse(const char *cmd, int argc, char **argv, const ctl_opt *opts,
	       int *npos)
{
	int i, n = 0, dashdash = 0;

	for (i = 0; i < argc; i++) {
		char *a = argv[i];
		const ctl_opt *o;
		const char *eq;
		size_t nl;

		if (dashdash || a[0] != '-' || a[1] == '\0') {
			argv[n++] = a;
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = 1;
			continue;
		}
		eq = strchr(a, '=');
		nl = eq ? (size_t)(eq - a) : strlen(a);
		for (o = opts; o && o->name; o++)
			if (strlen(o->name) == nl &&
			    strncmp(o->name, a, nl) == 0)
				break;
		if (o == NULL || o->name == NULL) {
			ctl_usage_err("unknown option '%.*s' for '%s'",
				      (int)nl, a, cmd);
			return CTL_USAGE;
		}
		if (o->flag) {
			if (eq) {
				ctl_usage_err("option '%s' takes no value",
					      o->name);
				return CTL_USAGE;
			}
			*o->flag = 1;
			continue;
		}
		if (eq) {
			*o->val = eq + 1;
		} else if (i + 1 < argc) {
			*o->val = argv[++i];
		} else {
			ctl_usage_err("option '%s' needs a value", o->name);
			return CTL_USAGE;
		}
	}
	*npos = n;
	return CTL_OK;
}

static int
ctl_need(const char *opt, const char *val, const char *what)
{
	if (val == NULL || val[0] == '\0') {
		ctl_usage_err("'%s' needs %s", what, opt);
		return CTL_USAGE;
	}
	return CTL_OK;
}

static int
ctl_parse_duration(const char *opt, const char *s, int64_t *out)
{
	if (rn_duration_parse(s, out) != RN_OK) {
		ctl_usage_err("'%s' must be a duration like 30d, not '%s'",
			      opt, s);
		return CTL_USAGE;
	}
	return CTL_OK;
}

/* A positive decimal integer (job ids, limits). */
static int
ctl_parse_pos(const char *what, const char *s, int64_t *out)
{
	char *end;
	long long v;

	errno = 0;
	if (s == NULL || *s < '0' || *s > '9')
		goto bad;
	v = strtoll(s, &end, 10);
	if (errno || *end != '\0' || v <= 0)
		goto bad;
	*out = v;
	return CTL_OK;
bad:
	ctl_usage_err("invalid %s '%s'", what, s ? s : "");
	return CTL_USAGE;
}

static int
ctl_state_valid(const char *s, const char *const *states, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(s, states[i]) == 0)
			return 1;
	return 0;
}

/* ---- configuration and store ------------------------------------------ */

/*
 * Load the configuration (and its templates) once. Every error goes to
 * stderr on its own line, as renewd -n prints them, and the command ends
 * with the configuration exit code.
 */
static int
ctl_conf_load(ctl *c)
{
	rn_errlist errs;
	size_t i;
	int rc;

	if (c->conf)
		return CTL_OK;
	rn_errlist_init(&errs);
	rc = renewal_conf_load(c->config_path, &c->conf, &errs);
	if (rc != RN_OK) {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		if (errs.n == 0)
			ctl_err("cannot load configuration '%s': %s",
				c->config_path, rn_strerror(rc));
		rn_errlist_release(&errs);
		c->conf = NULL;
		return CTL_USAGE;
	}
	rn_errlist_release(&errs);
	/* imports may resolve alerts: only subscribed events are queued */
	notif_alerts_configure(c->conf->cfg);
	c->socket_path = rn_strdup(c->conf->cfg->daemon.control_socket);
	c->db_path = rn_strdup(c->conf->cfg->daemon.database);
	if (c->socket_path == NULL || c->db_path == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	return CTL_OK;
}

/* The scalar value of `key` in a YAML mapping node, or NULL. */
static const char *
ctl_yaml_get(yaml_document_t *doc, yaml_node_t *map, const char *key,
	     yaml_node_t **node)
{
	yaml_node_pair_t *pair;

	if (map == NULL || map->type != YAML_MAPPING_NODE)
		return NULL;
	for (pair = map->data.mapping.pairs.start;
	     pair < map->data.mapping.pairs.top; pair++) {
		yaml_node_t *k = yaml_document_get_node(doc, pair->key);
		yaml_node_t *v = yaml_document_get_node(doc, pair->value);
		if (k == NULL || k->type != YAML_SCALAR_NODE ||
		    strcmp((const char *)k->data.scalar.value, key) != 0)
			continue;
		if (node)
			*node = v;
		if (v && v->type == YAML_SCALAR_NODE)
			return (const char *)v->data.scalar.value;
		return NULL;
	}
	return NULL;
}

/*
 * Only daemon.control_socket and daemon.database of a configuration that
 * does not validate (defaults when absent). An operator whose edit broke
 * the file still needs to reach the daemon that runs on the old one.
 */
static void
ctl_paths_lenient(ctl *c)
{
	const char *sock = NULL, *db = NULL;
	yaml_parser_t parser;
	yaml_document_t doc;
	yaml_node_t *daemon = NULL;
	FILE *f;
	int loaded = 0;

	f = fopen(c->config_path, "r");
	if (f != NULL && yaml_parser_initialize(&parser)) {
		yaml_parser_set_input_file(&parser, f);
		loaded = yaml_parser_load(&parser, &doc);
		if (loaded) {
			yaml_node_t *root = yaml_document_get_root_node(&doc);
			ctl_yaml_get(&doc, root, "daemon", &daemon);
			sock = ctl_yaml_get(&doc, daemon, "control_socket",
					    NULL);
			db = ctl_yaml_get(&doc, daemon, "database", NULL);
		}
		yaml_parser_delete(&parser);
	}
	c->socket_path = rn_strdup(sock ? sock : "var/renewd.sock");
	c->db_path = rn_strdup(db ? db : "var/renewd.db");
	if (loaded)
		yaml_document_delete(&doc);
	if (f != NULL)
		fclose(f);
}

/*
 * For commands that only talk to the daemon and read the database: a
 * configuration with errors is reported as a warning and the daemon and
 * database paths are read from it as far as possible.
 */
static int
ctl_conf_load_lenient(ctl *c)
{
	rn_errlist errs;
	size_t i;

	if (c->conf)
		return CTL_OK;
	rn_errlist_init(&errs);
	if (renewal_conf_load(c->config_path, &c->conf, &errs) == RN_OK) {
		rn_errlist_release(&errs);
		c->socket_path = rn_strdup(c->conf->cfg->daemon.control_socket);
		c->db_path = rn_strdup(c->conf->cfg->daemon.database);
	} else {
		c->conf = NULL;
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		rn_errlist_release(&errs);
		ctl_err("warning: configuration '%s' has errors; reading only "
			"its daemon paths", c->config_path);
		ctl_paths_lenient(c);
	}
	if (c->socket_path == NULL || c->db_path == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	return CTL_OK;
}

static int
ctl_store_open(ctl *c, int readonly, store **out)
{
	char *msg = NULL;
	int rc;

	rc = store_open(c->db_path, readonly, out, &msg);
	if (rc != RN_OK) {
		ctl_err("%s", msg ? msg : rn_strerror(rc));
		free(msg);
		*out = NULL;
		return CTL_FAIL;
	}
	return CTL_OK;
}

/* ---- control socket --------------------------------------------------- */

static int64_t
ctl_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * One request to the daemon: connect, send {"v":1,"cmd":CMD} as one line,
 * read one line back (at most 1 MiB, 60 s in all) and parse it. *down is
 * set when nobody listens on the socket so callers can say "not running"
 * instead of a raw errno text. *err (malloc'd) says what failed.
 */
static int
ctl_request(ctl *c, const char *cmd, json_t **reply, int *down, char **err)
{
	const char *path = c->socket_path;
	struct sockaddr_un sun;
	rn_buf in;
	json_t *req;
	json_error_t jerr;
	char *line = NULL, ebuf[128], *nl;
	size_t off = 0, len;
	int64_t deadline = ctl_mono_ms() + CTL_TIMEOUT_MS;
	int fd = -1, rc = RN_OK;

	*reply = NULL;
	*down = 0;
	*err = NULL;
	rn_buf_init(&in, CTL_REPLY_CAP);
	if (strlen(path) >= sizeof(sun.sun_path)) {
		*err = rn_asprintf("control socket path '%s' is too long",
				   path);
		return RN_EINVAL;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		*err = rn_asprintf("cannot create socket: %s",
				   ctl_strerror(errno, ebuf, sizeof(ebuf)));
		return RN_EIO;
	}
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int e = errno;
		*down = e == ENOENT || e == ECONNREFUSED;
		*err = rn_asprintf("cannot connect to '%s': %s", path,
				   ctl_strerror(e, ebuf, sizeof(ebuf)));
		rc = RN_EIO;
		goto out;
	}

	req = json_pack("{s:i,s:s}", "v", 1, "cmd", cmd);
	line = req ? json_dumps(req, JSON_COMPACT | JSON_PRESERVE_ORDER)
		   : NULL;
	json_decref(req);
	if (line == NULL) {
		rc = RN_ENOMEM;
		goto out;
	}
	len = strlen(line);
	while (off <= len) {
		/* the newline is sent as a separate one-byte write at the end */
		const char *p = off < len ? line + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			*err = rn_asprintf("cannot send to renewd: %s",
					   ctl_strerror(errno, ebuf,
							sizeof(ebuf)));
			rc = RN_EIO;
			goto out;
		}
		off += (size_t)w;
	}

	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		char buf[4096];
		int64_t left = deadline - ctl_mono_ms();
		ssize_t r;
		int pr;

		if (in.len && memchr(in.data, '\n', in.len))
			break;
		if (left <= 0) {
			*err = rn_asprintf("no reply from renewd within %ds",
					   CTL_TIMEOUT_MS / 1000);
			rc = RN_ETIMEDOUT;
			goto out;
		}
		pr = poll(&pfd, 1, (int)left);
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0) {
			*err = rn_asprintf("poll: %s", ctl_strerror(
							   errno, ebuf,
							   sizeof(ebuf)));
			rc = RN_EIO;
			goto out;
		}
		if (pr == 0)
			continue;
		r = recv(fd, buf, sizeof(buf), 0);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			*err = rn_asprintf("cannot read from renewd: %s",
					   ctl_strerror(errno, ebuf,
							sizeof(ebuf)));
			rc = RN_EIO;
			goto out;
		}
		if (r == 0) {
			*err = rn_asprintf("renewd closed the connection "
					   "without a reply");
			rc = RN_EPROTO;
			goto out;
		}
		if (rn_buf_add(&in, buf, (size_t)r) != RN_OK) {
			*err = rn_asprintf("reply from renewd is larger than "
					   "%d bytes", CTL_REPLY_CAP);
			rc = RN_ETOOBIG;
			goto out;
		}
	}
	nl = memchr(in.data, '\n', in.len);
	*reply = json_loadb(in.data, (size_t)(nl - in.data), 0, &jerr);
	if (*reply == NULL || !json_is_object(*reply)) {
		*err = rn_asprintf("invalid reply from renewd: %s",
				   *reply ? "not an object" : jerr.text);
		json_decref(*reply);
		*reply = NULL;
		rc = RN_EPROTO;
	}
out:
	free(line);
	rn_buf_release(&in);
	if (fd >= 0)
		close(fd);
	return rc;
}

/*
 * A request whose failure ends the command: prints "renewd is not
 * running" or the daemon's own error and returns CTL_FAIL.
 */
static int
ctl_call(ctl *c, const char *cmd, json_t **reply)
{
	char *err = NULL;
	int down, rc;

	rc = ctl_request(c, cmd, reply, &down, &err);
	if (rc != RN_OK) {
		if (down)
			ctl_err("renewd is not running (%s)", err);
		else
			ctl_err("%s", err ? err : rn_strerror(rc));
		free(err);
		return CTL_FAIL;
	}
	if (!json_is_true(json_object_get(*reply, "ok"))) {
		const char *e = json_string_value(
		    json_object_get(*reply, "error"));
		ctl_err("%s", e ? e : "renewd refused the request");
		json_decref(*reply);
		*reply = NULL;
		return CTL_FAIL;
	}
	return CTL_OK;
}

/* After a write, let a running daemon look at the queue now; the next
 * scan does it anyway, so every failure here is ignored. */
static void
ctl_wake(ctl *c)
{
	json_t *reply = NULL;
	char *err = NULL;
	int down;

	if (ctl_request(c, "wake", &reply, &down, &err) == RN_OK)
		json_decref(reply);
	free(err);
}

/* ---- trigger ---------------------------------------------------------- */

static int
cmd_trigger(ctl *c, int argc, char **argv)
{
	json_t *reply = NULL;
	json_int_t due, enq;
	double ms;
	int npos, rc;

	rc = ctl_opts_parse("trigger", argc, argv, NULL, &npos);
	if (rc)
		return rc;
	if (npos) {
		ctl_usage_err("unexpected argument '%s'", argv[0]);
		return CTL_USAGE;
	}
	if ((rc = ctl_conf_load_lenient(c)))
		return rc;
	if ((rc = ctl_call(c, "trigger", &reply)))
		return rc;
	due = json_integer_value(json_object_get(reply, "due"));
	enq = json_integer_value(json_object_get(reply, "enqueued"));
	ms = json_number_value(json_object_get(reply, "duration_ms"));
	json_decref(reply);
	if (c->json)
		return ctl_json_print(json_pack("{s:I,s:I,s:f}", "due", due,
						"enqueued", enq, "duration_ms",
						ms));
	printf("scan: %" JSON_INTEGER_FORMAT " due, %" JSON_INTEGER_FORMAT
	       " enqueued (%.1f ms)\n", due, enq, ms);
	return CTL_OK;
}

/* ---- status ----------------------------------------------------------- */

/* Counts by state with every known state present (0 when absent), known
 * states first in their natural order, then anything else the DB has. */
static json_t *
ctl_json_counts(const store_count *cnt, size_t n, const char *const *states,
		size_t nstates)
{
	json_t *o = json_object();
	size_t i;

	for (i = 0; i < nstates; i++)
		json_object_set_new(o, states[i], json_integer(0));
	for (i = 0; i < n; i++)
		json_object_set_new(o, cnt[i].name, json_integer(cnt[i].n));
	return o;
}

static void
ctl_print_counts(const char *label, const store_count *cnt, size_t n,
		 const char *const *states, size_t nstates)
{
	size_t i, k, shown = 0;

	printf("%-14s", label);
	/* known states in order, then unknown ones */
	for (k = 0; k <= nstates; k++)
		for (i = 0; i < n; i++) {
			int known = ctl_state_valid(cnt[i].name, states,
						    nstates);
			if (k < nstates ? strcmp(cnt[i].name, states[k]) != 0
					: known)
				continue;
			if (cnt[i].n == 0)
				continue;
			printf("%s%s %" PRId64, shown ? ", " : "",
			       cnt[i].name, cnt[i].n);
			shown++;
		}
	printf("%s\n", shown ? "" : "none");
}

static int
cmd_status(ctl *c, int argc, char **argv)
{
	store_count jc[32], cc[32];
	size_t njc = 0, ncc = 0;
	json_t *reply = NULL, *scan, *v;
	store *s = NULL;
	int64_t next;
	char t1[RN_TIME_LEN], t2[64];
	int npos, rc;

	rc = ctl_opts_parse("status", argc, argv, NULL, &npos);
	if (rc)
		return rc;
	if (npos) {
		ctl_usage_err("unexpected argument '%s'", argv[0]);
		return CTL_USAGE;
	}
	if ((rc = ctl_conf_load_lenient(c)))
		return rc;
	if ((rc = ctl_call(c, "status", &reply)))
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		goto out;
	if ((rc = store_job_counts(s, jc, 32, &njc)) ||
	    (rc = store_cert_counts(s, cc, 32, &ncc))) {
		ctl_err("cannot count jobs and certificates: %s",
			ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
		goto out;
	}
	next = store_next_due(s);

	if (c->json) {
		json_t *root = json_object(), *d = json_deep_copy(reply);
		json_object_del(d, "v");
		json_object_del(d, "ok");
		json_object_set_new(root, "daemon", d);
		json_object_set_new(root, "jobs",
				    ctl_json_counts(jc, njc, job_states,
						    NJOB_STATES));
		json_object_set_new(root, "certificates",
				    ctl_json_counts(cc, ncc, cert_states,
						    NCERT_STATES));
		json_object_set_new(root, "next_due", ctl_jtime(next));
		rc = ctl_json_print(root);
		goto out;
	}

	{
		json_int_t pid = json_integer_value(
		    json_object_get(reply, "pid"));
		const char *ver = json_string_value(
		    json_object_get(reply, "version"));
		json_int_t started = json_integer_value(
		    json_object_get(reply, "started_at"));
		printf("%-14spid %" JSON_INTEGER_FORMAT ", version %s",
		       "renewd", pid, ver ? ver : "?");
		if (started > 0)
			printf(", up %s (since %s)",
			       ctl_span(c->now - started, t2, sizeof(t2)),
			       ctl_time(started, t1, sizeof(t1)));
		printf("\n");
	}
	scan = json_object_get(reply, "last_scan");
	printf("%-14s", "last scan");
	if (json_is_object(scan)) {
		json_int_t at = json_integer_value(json_object_get(scan, "at"));
		printf("%s (%s ago): %" JSON_INTEGER_FORMAT " due, %"
		       JSON_INTEGER_FORMAT " enqueued",
		       ctl_time(at, t1, sizeof(t1)),
		       ctl_span(c->now - at, t2, sizeof(t2)),
		       json_integer_value(json_object_get(scan, "due")),
		       json_integer_value(json_object_get(scan, "enqueued")));
		v = json_object_get(scan, "duration_ms");
		if (json_is_number(v))
			printf(", %.1f ms", json_number_value(v));
		printf("\n");
	} else {
		printf("none yet\n");
	}
	v = json_object_get(reply, "in_flight");
	printf("%-14s%" JSON_INTEGER_FORMAT, "in flight",
	       json_integer_value(v));
	v = json_object_get(reply, "queued_in_memory");
	if (json_is_integer(v))
		printf(" (%" JSON_INTEGER_FORMAT " queued in memory)",
		       json_integer_value(v));
	printf("\n");
	if (json_is_true(json_object_get(reply, "store_full")))
		printf("%-14sFULL: no new work until renewd can write to it "
		       "again\n", "database");
	v = json_object_get(reply, "cas");
	if (json_is_array(v)) {
		size_t i;
		json_t *ca;

		json_array_foreach(v, i, ca) {
			const char *nm = json_string_value(
			    json_object_get(ca, "name"));
			const char *err = json_string_value(
			    json_object_get(ca, "error"));
			printf("%-14s%s: ", i == 0 ? "ca" : "",
			       nm ? nm : "?");
			if (json_is_true(json_object_get(ca, "healthy")))
				printf("healthy, %s\n",
				       json_string_value(json_object_get(
					   ca, "subject")));
			else if (err)
				printf("UNHEALTHY: %s\n", err);
			else
				printf("not checked yet\n");
		}
	}
	ctl_print_counts("jobs", jc, njc, job_states, NJOB_STATES);
	ctl_print_counts("certificates", cc, ncc, cert_states, NCERT_STATES);
	printf("%-14s", "next due");
	if (next == 0)
		printf("none\n");
	else if (next <= c->now)
		printf("%s (now)\n", ctl_time(next, t1, sizeof(t1)));
	else
		printf("%s (in %s)\n", ctl_time(next, t1, sizeof(t1)),
		       ctl_span(next - c->now, t2, sizeof(t2)));
	rc = CTL_OK;
out:
	json_decref(reply);
	store_close(s);
	return rc;
}

/* ---- certs ------------------------------------------------------------ */

typedef struct ctl_list {
	ctl_table table;
	json_t *arr;
	int err; /* RN_ENOMEM seen while collecting */
} ctl_list;

static int
ctl_cert_row(void *arg, const store_cert *c)
{
	ctl_list *l = arg;
	char id[24], nva[RN_TIME_LEN], ra[RN_TIME_LEN];

	if (l->arr) {
		if (json_array_append_new(l->arr, ctl_json_cert(c)))
			l->err = RN_ENOMEM;
		return RN_OK;
	}
	if (ctl_table_add(&l->table, ctl_id(c->id, id, sizeof(id)),
			  c->host_uuid, c->profile_uuid, c->ca_name, c->state,
			  ctl_time(c->not_valid_after, nva, sizeof(nva)),
			  ctl_time(c->renew_at, ra, sizeof(ra)), c->serial))
		l->err = RN_ENOMEM;
	return RN_OK;
}

/* A certificate a device reported that matched no job. */
static int
ctl_unmatched_row(void *arg, const store_unmatched *u)
{
	ctl_list *l = arg;
	char nva[RN_TIME_LEN], seen[RN_TIME_LEN];

	if (l->arr) {
		json_t *o = json_object();
		if (o == NULL ||
		    json_object_set_new(o, "host_uuid",
					ctl_jstr(u->host_uuid)) ||
		    json_object_set_new(o, "sha256", ctl_jstr(u->sha256)) ||
		    json_object_set_new(o, "subject", ctl_jstr(u->subject)) ||
		    json_object_set_new(o, "serial", ctl_jstr(u->serial)) ||
		    json_object_set_new(o, "not_valid_after",
					ctl_jstr(ctl_time(u->not_valid_after,
							  nva, sizeof(nva)))) ||
		    json_object_set_new(o, "seen_at",
					ctl_jstr(ctl_time(u->seen_at, seen,
							  sizeof(seen))))) {
			json_decref(o);
			l->err = RN_ENOMEM;
		} else if (json_array_append_new(l->arr, o)) {
			l->err = RN_ENOMEM;
		}
		return RN_OK;
	}
	if (ctl_table_add(&l->table, u->host_uuid,
			  ctl_time(u->not_valid_after, nva, sizeof(nva)),
			  ctl_time(u->seen_at, seen, sizeof(seen)),
			  u->serial ? u->serial : "-",
			  u->subject ? u->subject : "-"))
		l->err = RN_ENOMEM;
	return RN_OK;
}

static int cmd_certs_import(ctl *c, int argc, char **argv);

static int
cmd_certs(ctl *c, int argc, char **argv)
{
	const char *within = NULL, *host = NULL, *state = NULL;
	int unmatched = 0, npos, rc;
	const ctl_opt opts[] = {
		{ "--expiring-within", &within, NULL },
		{ "--host", &host, NULL },
		{ "--state", &state, NULL },
		{ "--unmatched", NULL, &unmatched },
		{ NULL, NULL, NULL },
	};
	store_cert_filter f;
	ctl_list l;
	store *s = NULL;
	int64_t d;

	if (argc > 0 && strcmp(argv[0], "import") == 0)
		return cmd_certs_import(c, argc - 1, argv + 1);
	rc = ctl_opts_parse("certs", argc, argv, opts, &npos);
	if (rc)
		return rc;
	if (npos) {
		ctl_usage_err("unexpected argument '%s' for 'certs'", argv[0]);
		return CTL_USAGE;
	}
	memset(&f, 0, sizeof(f));
	if (within) {
		if ((rc = ctl_parse_duration("--expiring-within", within, &d)))
			return rc;
		f.expiring_before = c->now + d;
	}
	if (state && !ctl_state_valid(state, cert_states, NCERT_STATES)) {
		ctl_usage_err("unknown certificate state '%s' (active, "
			      "renewing, superseded, expired)", state);
		return CTL_USAGE;
	}
	if (unmatched && (within || state)) {
		ctl_usage_err("--unmatched takes only --host");
		return CTL_USAGE;
	}
	f.host_uuid = host;
	f.state = state;
	if ((rc = ctl_conf_load(c)))
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		return rc;

	memset(&l, 0, sizeof(l));
	l.table.ncols = unmatched ? 5 : 8;
	if (c->json)
		l.arr = json_array();
	else if (unmatched)
		ctl_table_add(&l.table, "HOST", "NOT_AFTER", "SEEN_AT",
			      "SERIAL", "SUBJECT");
	else
		ctl_table_add(&l.table, "ID", "HOST", "PROFILE", "CA", "STATE",
			      "NOT_AFTER", "RENEW_AT", "SERIAL");
	if (unmatched)
		rc = store_unmatched_each(s, host, ctl_unmatched_row, &l);
	else
		rc = store_certs_each(s, &f, ctl_cert_row, &l);
	if (rc == RN_OK)
		rc = l.err;
	if (rc != RN_OK) {
		ctl_err("cannot list certificates: %s",
			ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
	} else if (c->json) {
		rc = ctl_json_print(json_pack("{s:O}", "certificates",
					      l.arr));
	} else {
		ctl_table_print(&l.table, stdout);
		rc = CTL_OK;
	}
	json_decref(l.arr);
	ctl_table_release(&l.table);
	store_close(s);
	return rc;
}

/* Read one certificate file; the message says why it cannot be used. */
static char *
ctl_read_cert_file(const char *path, char **data, size_t *len)
{
	char ebuf[128];
	int rc;

	rc = rn_file_read(path, CTL_FILE_CAP, data, len);
	if (rc == RN_ETOOBIG)
		return rn_asprintf("larger than %d bytes", CTL_FILE_CAP);
	if (rc == RN_EIO)
		return rn_asprintf("%s", ctl_strerror(errno, ebuf,
						      sizeof(ebuf)));
	if (rc != RN_OK)
		return rn_asprintf("%s", rn_strerror(rc));
	return NULL;
}

/*
 * Import certificates issued outside renewd (or before it ran) so that
 * it manages them from now on. Each file is its own transaction: the
 * files before a bad one stay imported and the bad one writes nothing.
 */
static int
cmd_certs_import(ctl *c, int argc, char **argv)
{
	const char *host = NULL, *profile = NULL, *ca = NULL, *serial = NULL;
	const ctl_opt opts[] = {
		{ "--host", &host, NULL },
		{ "--profile", &profile, NULL },
		{ "--ca", &ca, NULL },
		{ "--serial", &serial, NULL },
		{ NULL, NULL, NULL },
	};
	const prof_template *t;
	json_t *arr = NULL;
	store *s = NULL;
	int npos, rc, i, imported = 0;

	rc = ctl_opts_parse("certs import", argc, argv, opts, &npos);
	if (rc)
		return rc;
	if ((rc = ctl_need("--host", host, "certs import")) ||
	    (rc = ctl_need("--profile", profile, "certs import")) ||
	    (rc = ctl_need("--ca", ca, "certs import")))
		return rc;
	if (npos == 0) {
		ctl_usage_err("'certs import' needs at least one FILE");
		return CTL_USAGE;
	}
	if ((rc = ctl_conf_load(c)))
		return rc;
	if (cfg_ca_find(c->conf->cfg, ca) == NULL) {
		ctl_err("CA '%s' is not in the configuration", ca);
		return CTL_FAIL;
	}
	t = renewal_conf_profile(c->conf, profile);
	if (t == NULL) {
		ctl_err("profile '%s' is not in the configuration", profile);
		return CTL_FAIL;
	}
	if (t->ca_name && strcmp(t->ca_name, ca) != 0) {
		ctl_err("profile '%s' uses CA '%s', not '%s'", profile,
			t->ca_name, ca);
		return CTL_FAIL;
	}
	if ((rc = ctl_store_open(c, 0, &s)))
		return rc;
	rc = renewal_conf_sync(s, c->conf, c->now);
	if (rc != RN_OK) {
		ctl_err("cannot write the configured profiles: %s",
			ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
		goto out;
	}
	if (c->json)
		arr = json_array();

	rc = CTL_OK;
	for (i = 0; i < npos; i++) {
		const char *file = argv[i];
		renewal_import imp;
		char *data = NULL, *err;
		size_t len = 0;
		int r;

		err = ctl_read_cert_file(file, &data, &len);
		if (err) {
			ctl_err("%s: %s", file, err);
			free(err);
			rc = CTL_FAIL;
			break;
		}
		memset(&imp, 0, sizeof(imp));
		r = renewal_cert_import(s, c->conf, host, serial, profile, ca,
					data, len, c->now, &imp, &err);
		free(data);
		if (r != RN_OK) {
			ctl_err("%s: %s", file, err ? err : rn_strerror(r));
			free(err);
			rc = CTL_FAIL;
			break;
		}
		free(err);
		imported++;
		if (arr) {
			json_t *o = json_object();
			json_object_set_new(o, "file", ctl_jstr(file));
			json_object_set_new(o, "id",
					    json_integer(imp.cert.id));
			json_object_set_new(o, "serial",
					    ctl_jstr(imp.cert.serial));
			json_object_set_new(o, "renewal_id",
					    ctl_jstr(imp.cert.renewal_id));
			json_object_set_new(o, "verified_job",
					    ctl_jid(imp.verified_job));
			json_object_set_new(o, "duplicate",
					    json_boolean(imp.dup));
			json_array_append_new(arr, o);
		} else {
			printf("imported %s: certificate %" PRId64
			       " serial %s", file, imp.cert.id,
			       imp.cert.serial ? imp.cert.serial : "-");
			if (imp.dup)
				printf(" (already imported)");
			else if (imp.verified_job)
				printf(" (verified job %" PRId64 ")",
				       imp.verified_job);
			printf("\n");
		}
		store_cert_release(&imp.cert);
	}
	if (arr && ctl_json_print(json_pack("{s:O}", "imported", arr)))
		rc = CTL_FAIL;
	if (imported)
		ctl_wake(c);
out:
	json_decref(arr);
	store_close(s);
	return rc;
}

/* ---- jobs ------------------------------------------------------------- */

static int
ctl_job_row(void *arg, const store_job *j)
{
	ctl_list *l = arg;
	char id[24], att[16], na[RN_TIME_LEN];

	if (l->arr) {
		if (json_array_append_new(l->arr, ctl_json_job(j)))
			l->err = RN_ENOMEM;
		return RN_OK;
	}
	snprintf(att, sizeof(att), "%d", j->attempts);
	if (ctl_table_add(&l->table, ctl_id(j->id, id, sizeof(id)), j->kind,
			  j->state, att, j->host_uuid, j->profile_uuid,
			  j->ca_name,
			  ctl_time(j->next_attempt_at, na, sizeof(na)),
			  j->last_error))
		l->err = RN_ENOMEM;
	return RN_OK;
}

static int
ctl_event_row(void *arg, const store_event *e)
{
	ctl_list *l = arg;
	char at[RN_TIME_LEN];

	if (l->arr) {
		json_t *o = json_object();
		json_object_set_new(o, "at", ctl_jtime(e->at));
		json_object_set_new(o, "event", ctl_jstr(e->event));
		json_object_set_new(o, "detail", ctl_jstr(e->detail));
		if (json_array_append_new(l->arr, o))
			l->err = RN_ENOMEM;
		return RN_OK;
	}
	if (ctl_table_add(&l->table, ctl_time(e->at, at, sizeof(at)),
			  e->event, e->detail))
		l->err = RN_ENOMEM;
	return RN_OK;
}

static void
ctl_print_job(const store_job *j)
{
	char t[RN_TIME_LEN], id[24];

	printf("job %" PRId64 "\n", j->id);
	printf("  %-14s%s\n", "kind", j->kind ? j->kind : "-");
	printf("  %-14s%s\n", "state", j->state ? j->state : "-");
	printf("  %-14s%d\n", "attempts", j->attempts);
	printf("  %-14s%s\n", "host", j->host_uuid ? j->host_uuid : "-");
	printf("  %-14s%s\n", "profile",
	       j->profile_uuid ? j->profile_uuid : "-");
	printf("  %-14s%s\n", "ca", j->ca_name ? j->ca_name : "-");
	printf("  %-14s%s\n", "certificate", ctl_id(j->cert_id, id, sizeof(id)));
	printf("  %-14s%s\n", "renewal id",
	       j->renewal_id ? j->renewal_id : "-");
	printf("  %-14s%s\n", "command uuid",
	       j->command_uuid ? j->command_uuid : "-");
	printf("  %-14s%s\n", "next attempt",
	       ctl_time(j->next_attempt_at, t, sizeof(t)));
	printf("  %-14s%s\n", "last error",
	       j->last_error ? j->last_error : "-");
	printf("  %-14s%s\n", "created", ctl_time(j->created_at, t, sizeof(t)));
	printf("  %-14s%s\n", "updated", ctl_time(j->updated_at, t, sizeof(t)));
}

/* store_job_get with the operator's message for a missing job. */
static int
ctl_job_get(store *s, int64_t id, store_job *j)
{
	int rc = store_job_get(s, id, j);

	if (rc == RN_ENOTFOUND) {
		ctl_err("no job %" PRId64, id);
		return CTL_FAIL;
	}
	if (rc != RN_OK) {
		ctl_err("cannot read job %" PRId64 ": %s", id,
			ctl_store_strerror(s, rc));
		return CTL_FAIL;
	}
	return CTL_OK;
}

static int
cmd_jobs_show(ctl *c, int64_t id)
{
	store *s = NULL;
	store_job j;
	ctl_list l;
	int rc;

	memset(&j, 0, sizeof(j));
	memset(&l, 0, sizeof(l));
	if ((rc = ctl_conf_load(c)))
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		return rc;
	if ((rc = ctl_job_get(s, id, &j)))
		goto out;
	l.table.ncols = 3;
	if (c->json)
		l.arr = json_array();
	else
		ctl_table_add(&l.table, "TIME", "EVENT", "DETAIL");
	rc = store_job_events_each(s, id, ctl_event_row, &l);
	if (rc == RN_OK)
		rc = l.err;
	if (rc != RN_OK) {
		ctl_err("cannot read the events of job %" PRId64 ": %s", id,
			ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
		goto out;
	}
	if (c->json) {
		rc = ctl_json_print(json_pack("{s:o,s:O}", "job",
					      ctl_json_job(&j), "events",
					      l.arr));
	} else {
		ctl_print_job(&j);
		printf("\n");
		ctl_table_print(&l.table, stdout);
		rc = CTL_OK;
	}
out:
	json_decref(l.arr);
	ctl_table_release(&l.table);
	store_job_release(&j);
	store_close(s);
	return rc;
}

typedef struct ctl_find_open {
	const store_job *self;
	int64_t id;
} ctl_find_open;

static int
ctl_find_open_cb(void *arg, const store_job *j)
{
	ctl_find_open *f = arg;

	if (j->id != f->self->id &&
	    strcmp(j->host_uuid, f->self->host_uuid) == 0 &&
	    strcmp(j->profile_uuid, f->self->profile_uuid) == 0 &&
	    strcmp(j->ca_name, f->self->ca_name) == 0) {
		f->id = j->id;
		return 1;
	}
	return RN_OK;
}

/* The other open job of j's triple (for the retry conflict message), or
 * 0 when it cannot be found. */
static int64_t
ctl_find_open_job(store *s, const store_job *j)
{
	ctl_find_open f = { j, 0 };
	size_t i;

	for (i = 0; i < 4 && f.id == 0; i++)
		store_jobs_each(s, open_job_states[i], 0, ctl_find_open_cb,
				&f);
	return f.id;
}

/*
 * Retry or cancel one job. The store checks the state inside its
 * transaction; on a conflict we read the job again to say what it is.
 */
static int
cmd_jobs_change(ctl *c, int64_t id, int cancel)
{
	const cfg_policy *p;
	store *s = NULL;
	store_job j;
	int rc, r;

	memset(&j, 0, sizeof(j));
	if ((rc = ctl_conf_load(c)))
		return rc;
	if ((rc = ctl_store_open(c, 0, &s)))
		return rc;
	if ((rc = ctl_job_get(s, id, &j)))
		goto out;
	if (cancel) {
		p = renewal_conf_policy(c->conf, j.ca_name, j.profile_uuid);
		if (p == NULL)
			p = cfg_policy_default();
		r = store_job_cancel(s, id, "cancelled by operator",
				     c->now + p->backoff_max, c->now);
	} else {
		r = store_job_retry(s, id, c->now);
	}
	if (r == RN_EBUSY) {
		store_job_release(&j);
		if (ctl_job_get(s, id, &j) == CTL_OK)
			ctl_err("job %" PRId64 " is already %s", id, j.state);
		rc = CTL_FAIL;
		goto out;
	}
	if (r == RN_EEXIST) {
		int64_t other = ctl_find_open_job(s, &j);
		if (other)
			ctl_err("host %s profile %s CA %s already has an "
				"open job %" PRId64, j.host_uuid,
				j.profile_uuid, j.ca_name, other);
		else
			ctl_err("host %s profile %s CA %s already has an "
				"open job", j.host_uuid, j.profile_uuid,
				j.ca_name);
		rc = CTL_FAIL;
		goto out;
	}
	if (r != RN_OK) {
		ctl_err("cannot %s job %" PRId64 ": %s",
			cancel ? "cancel" : "retry", id,
			ctl_store_strerror(s, r));
		rc = CTL_FAIL;
		goto out;
	}
	store_job_release(&j);
	if ((rc = ctl_job_get(s, id, &j)))
		goto out;
	ctl_wake(c);
	if (c->json)
		rc = ctl_json_print(json_pack("{s:o}", "job",
					      ctl_json_job(&j)));
	else
		printf("job %" PRId64 " %s\n", id, j.state);
out:
	store_job_release(&j);
	store_close(s);
	return rc;
}

static int
cmd_jobs(ctl *c, int argc, char **argv)
{
	const char *state = NULL, *limit_s = NULL;
	const ctl_opt opts[] = {
		{ "--state", &state, NULL },
		{ "--limit", &limit_s, NULL },
		{ NULL, NULL, NULL },
	};
	int64_t limit = 100, id;
	store *s = NULL;
	ctl_list l;
	int npos, rc;

	if (argc > 0 && (strcmp(argv[0], "show") == 0 ||
			 strcmp(argv[0], "retry") == 0 ||
			 strcmp(argv[0], "cancel") == 0)) {
		char name[32];
		snprintf(name, sizeof(name), "jobs %s", argv[0]);
		rc = ctl_opts_parse(name, argc - 1, argv + 1, NULL, &npos);
		if (rc)
			return rc;
		if (npos != 1) {
			ctl_usage_err("'%s' needs one job ID", name);
			return CTL_USAGE;
		}
		if ((rc = ctl_parse_pos("job id", argv[1], &id)))
			return rc;
		if (strcmp(argv[0], "show") == 0)
			return cmd_jobs_show(c, id);
		return cmd_jobs_change(c, id, strcmp(argv[0], "cancel") == 0);
	}
	rc = ctl_opts_parse("jobs", argc, argv, opts, &npos);
	if (rc)
		return rc;
	if (npos) {
		ctl_usage_err("unknown 'jobs' subcommand '%s'", argv[0]);
		return CTL_USAGE;
	}
	if (state && !ctl_state_valid(state, job_states, NJOB_STATES)) {
		ctl_usage_err("unknown job state '%s' (queued, running, "
			      "pushed, acknowledged, verified, failed, "
			      "cancelled)", state);
		return CTL_USAGE;
	}
	if (limit_s && (rc = ctl_parse_pos("limit", limit_s, &limit)))
		return rc;
	if ((rc = ctl_conf_load(c)))
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		return rc;
	memset(&l, 0, sizeof(l));
	l.table.ncols = 9;
	if (c->json)
		l.arr = json_array();
	else
		ctl_table_add(&l.table, "ID", "KIND", "STATE", "ATTEMPTS",
			      "HOST", "PROFILE", "CA", "NEXT_ATTEMPT",
			      "LAST_ERROR");
	rc = store_jobs_each(s, state, limit, ctl_job_row, &l);
	if (rc == RN_OK)
		rc = l.err;
	if (rc != RN_OK) {
		ctl_err("cannot list jobs: %s", ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
	} else if (c->json) {
		rc = ctl_json_print(json_pack("{s:O}", "jobs", l.arr));
	} else {
		ctl_table_print(&l.table, stdout);
		rc = CTL_OK;
	}
	json_decref(l.arr);
	ctl_table_release(&l.table);
	store_close(s);
	return rc;
}

/* ---- plan ------------------------------------------------------------- */

typedef struct ctl_plan {
	ctl *c;
	ctl_list l;
} ctl_plan;

/* One plan row: the policy that applies now, the stored due time, and
 * "job open" for certificates already being renewed. */
static int
ctl_plan_row(void *arg, const store_cert *cert)
{
	ctl_plan *p = arg;
	const cfg_policy *pol;
	const char *pname;
	int open = strcmp(cert->state, "renewing") == 0;
	int due = !open && cert->renew_at <= p->c->now;
	char id[24], nva[RN_TIME_LEN], ra[RN_TIME_LEN], when[64], span[48];

	pol = renewal_conf_policy(p->c->conf, cert->ca_name,
				  cert->profile_uuid);
	pname = pol && pol->name ? pol->name : cert->policy;
	if (p->l.arr) {
		json_t *o = json_object();
		json_object_set_new(o, "cert_id", json_integer(cert->id));
		json_object_set_new(o, "host_uuid", ctl_jstr(cert->host_uuid));
		json_object_set_new(o, "profile_uuid",
				    ctl_jstr(cert->profile_uuid));
		json_object_set_new(o, "ca_name", ctl_jstr(cert->ca_name));
		json_object_set_new(o, "not_valid_after",
				    ctl_jtime(cert->not_valid_after));
		json_object_set_new(o, "renew_at", ctl_jtime(cert->renew_at));
		json_object_set_new(o, "policy", ctl_jstr(pname));
		json_object_set_new(o, "due_now", json_boolean(due));
		json_object_set_new(o, "job_open", json_boolean(open));
		if (json_array_append_new(p->l.arr, o))
			p->l.err = RN_ENOMEM;
		return RN_OK;
	}
	if (open)
		snprintf(when, sizeof(when), "job open");
	else if (due)
		snprintf(when, sizeof(when), "now");
	else
		snprintf(when, sizeof(when), "in %s",
			 ctl_span(cert->renew_at - p->c->now, span,
				  sizeof(span)));
	if (ctl_table_add(&p->l.table, ctl_id(cert->id, id, sizeof(id)),
			  cert->host_uuid, cert->profile_uuid, cert->ca_name,
			  ctl_time(cert->not_valid_after, nva, sizeof(nva)),
			  ctl_time(cert->renew_at, ra, sizeof(ra)), pname,
			  when))
		p->l.err = RN_ENOMEM;
	return RN_OK;
}

static int
cmd_plan(ctl *c, int argc, char **argv)
{
	const char *within_s = NULL;
	const ctl_opt opts[] = {
		{ "--within", &within_s, NULL },
		{ NULL, NULL, NULL },
	};
	int64_t within = 30 * 86400;
	store_cert_filter f;
	store *s = NULL;
	ctl_plan p;
	int npos, rc;

	rc = ctl_opts_parse("plan", argc, argv, opts, &npos);
	if (rc)
		return rc;
	if (npos) {
		ctl_usage_err("unexpected argument '%s' for 'plan'", argv[0]);
		return CTL_USAGE;
	}
	if (within_s && (rc = ctl_parse_duration("--within", within_s,
						 &within)))
		return rc;
	if ((rc = ctl_conf_load(c)))
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		return rc;
	memset(&p, 0, sizeof(p));
	p.c = c;
	p.l.table.ncols = 8;
	if (c->json)
		p.l.arr = json_array();
	else
		ctl_table_add(&p.l.table, "CERT", "HOST", "PROFILE", "CA",
			      "NOT_AFTER", "RENEW_AT", "POLICY", "WHEN");
	/* certificates being renewed (their triple's job is open), then
	 * the queued ones due within the window */
	memset(&f, 0, sizeof(f));
	f.state = "renewing";
	f.open_job = 1;
	rc = store_certs_each(s, &f, ctl_plan_row, &p);
	if (rc == RN_OK) {
		f.state = "active";
		f.open_job = 0;
		f.renew_before = c->now + within;
		rc = store_certs_each(s, &f, ctl_plan_row, &p);
	}
	if (rc == RN_OK)
		rc = p.l.err;
	if (rc != RN_OK) {
		ctl_err("cannot read certificates: %s",
			ctl_store_strerror(s, rc));
		rc = CTL_FAIL;
	} else if (c->json) {
		rc = ctl_json_print(json_pack("{s:O}", "plan", p.l.arr));
	} else {
		ctl_table_print(&p.l.table, stdout);
		rc = CTL_OK;
	}
	json_decref(p.l.arr);
	ctl_table_release(&p.l.table);
	store_close(s);
	return rc;
}

/* ---- resend ----------------------------------------------------------- */

/* A known host (messages for a missing one name the host). */
static int
ctl_host_get(store *s, const char *uuid, store_host *h)
{
	int rc = store_host_get(s, uuid, h);

	if (rc == RN_ENOTFOUND) {
		ctl_err("host '%s' is not known", uuid);
		return CTL_FAIL;
	}
	if (rc != RN_OK) {
		ctl_err("cannot read host '%s': %s", uuid,
			ctl_store_strerror(s, rc));
		return CTL_FAIL;
	}
	return CTL_OK;
}

/*
 * The shared front of resend and profile render: --host and --profile
 * (both required, nothing else), the configuration, and the profile's
 * template, which must be configured.
 */
static int
ctl_host_profile_args(ctl *c, const char *cmd, int argc, char **argv,
		      const char **host, const char **profile,
		      const prof_template **t)
{
	const ctl_opt opts[] = {
		{ "--host", host, NULL },
		{ "--profile", profile, NULL },
		{ NULL, NULL, NULL },
	};
	int npos, rc;

	*host = *profile = NULL;
	rc = ctl_opts_parse(cmd, argc, argv, opts, &npos);
	if (rc)
		return rc;
	if ((rc = ctl_need("--host", *host, cmd)) ||
	    (rc = ctl_need("--profile", *profile, cmd)))
		return rc;
	if (npos) {
		ctl_usage_err("unexpected argument '%s' for '%s'", argv[0],
			      cmd);
		return CTL_USAGE;
	}
	if ((rc = ctl_conf_load(c)))
		return rc;
	*t = renewal_conf_profile(c->conf, *profile);
	if (*t == NULL) {
		ctl_err("profile '%s' is not in the configuration", *profile);
		return CTL_FAIL;
	}
	return CTL_OK;
}

/*
 * Push a profile to a host again (lost, deleted, or a new key wanted).
 * The job goes through the daemon's normal path; renewctl only queues it.
 */
static int
cmd_resend(ctl *c, int argc, char **argv)
{
	const char *host, *profile;
	const prof_template *t;
	store_host h;
	store_cert cur;
	store_job j;
	store *s = NULL;
	int64_t cert_id = 0, id = 0;
	int rc, r;

	memset(&h, 0, sizeof(h));
	memset(&cur, 0, sizeof(cur));
	memset(&j, 0, sizeof(j));
	rc = ctl_host_profile_args(c, "resend", argc, argv, &host, &profile,
				   &t);
	if (rc)
		return rc;
	if (t->ca_name == NULL) {
		ctl_err("profile '%s' names no CA", profile);
		return CTL_FAIL;
	}
	if ((rc = ctl_store_open(c, 0, &s)))
		return rc;
	if ((rc = ctl_host_get(s, host, &h)))
		goto out;
	r = renewal_conf_sync(s, c->conf, c->now);
	if (r != RN_OK) {
		ctl_err("cannot write the configured profiles: %s",
			ctl_store_strerror(s, r));
		rc = CTL_FAIL;
		goto out;
	}
	r = store_cert_current(s, host, profile, t->ca_name, &cur);
	if (r == RN_OK)
		cert_id = cur.id;
	else if (r != RN_ENOTFOUND) {
		ctl_err("cannot read the current certificate: %s",
			ctl_store_strerror(s, r));
		rc = CTL_FAIL;
		goto out;
	}
	r = store_job_enqueue(s, host, profile, t->ca_name, "resend", cert_id,
			      "requested by operator", c->now, &id);
	if (r == RN_EEXIST) {
		ctl_err("an open job %" PRId64 " already exists for this host "
			"and profile", id);
		rc = CTL_FAIL;
		goto out;
	}
	if (r != RN_OK) {
		ctl_err("cannot queue a job: %s", ctl_store_strerror(s, r));
		rc = CTL_FAIL;
		goto out;
	}
	if ((rc = ctl_job_get(s, id, &j)))
		goto out;
	ctl_wake(c);
	if (c->json)
		rc = ctl_json_print(json_pack("{s:o}", "job",
					      ctl_json_job(&j)));
	else
		printf("job %" PRId64 " queued\n", id);
out:
	store_job_release(&j);
	store_cert_release(&cur);
	store_host_release(&h);
	store_close(s);
	return rc;
}

/* ---- profile ---------------------------------------------------------- */

/* The configured CA names, for the template checks (caller frees). */
static const char **
ctl_ca_names(const cfg *cf)
{
	const char **names;
	size_t i;

	names = calloc(cf->ncas + 1, sizeof(*names));
	if (names == NULL)
		return NULL;
	for (i = 0; i < cf->ncas; i++)
		names[i] = cf->cas[i].name;
	return names;
}

static int
cmd_profile_validate(ctl *c, int argc, char **argv)
{
	prof_template *t = NULL;
	const char **names;
	rn_errlist errs;
	size_t i;
	int npos, rc;

	rc = ctl_opts_parse("profile validate", argc, argv, NULL, &npos);
	if (rc)
		return rc;
	if (npos != 1) {
		ctl_usage_err("'profile validate' needs one FILE");
		return CTL_USAGE;
	}
	if ((rc = ctl_conf_load(c)))
		return rc;
	names = ctl_ca_names(c->conf->cfg);
	if (names == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	rn_errlist_init(&errs);
	rc = prof_template_load(argv[0], NULL,
				(const char *const *)names,
				c->conf->cfg->ncas, &t, &errs);
	free(names);
	if (c->json) {
		json_t *o = json_object(), *e = json_array();
		json_object_set_new(o, "file", ctl_jstr(argv[0]));
		json_object_set_new(o, "ok", json_boolean(rc == RN_OK));
		json_object_set_new(o, "uuid", ctl_jstr(t ? t->uuid : NULL));
		json_object_set_new(o, "identifier",
				    ctl_jstr(t ? t->identifier : NULL));
		json_object_set_new(o, "ca_name",
				    ctl_jstr(t ? t->ca_name : NULL));
		for (i = 0; i < errs.n; i++)
			json_array_append_new(e, ctl_jstr(errs.msgs[i]));
		if (rc != RN_OK && errs.n == 0)
			json_array_append_new(e, json_string(rn_strerror(rc)));
		json_object_set_new(o, "errors", e);
		if (ctl_json_print(o))
			rc = RN_ENOMEM;
	} else if (rc == RN_OK) {
		printf("%s: OK (profile %s, identifier %s, CA %s)\n", argv[0],
		       t->uuid, t->identifier ? t->identifier : "-",
		       t->ca_name ? t->ca_name : "-");
	} else {
		for (i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msgs[i]);
		if (errs.n == 0)
			ctl_err("%s: %s", argv[0], rn_strerror(rc));
	}
	rn_errlist_release(&errs);
	prof_template_free(t);
	return rc == RN_OK ? CTL_OK : CTL_FAIL;
}

static int
cmd_profile_render(ctl *c, int argc, char **argv)
{
	const char *host, *profile;
	const prof_template *t;
	store_host h;
	store *s = NULL;
	rn_buf out;
	char uuid[37], rid[64], *err = NULL;
	int rc, x;

	memset(&h, 0, sizeof(h));
	rn_buf_init(&out, 0);
	rc = ctl_host_profile_args(c, "profile render", argc, argv, &host,
				   &profile, &t);
	if (rc)
		return rc;
	if ((rc = ctl_store_open(c, 1, &s)))
		return rc;
	if ((rc = ctl_host_get(s, host, &h)))
		goto out;
	if (rn_uuid_v7(uuid) != RN_OK) {
		ctl_err("cannot generate a renewal id");
		rc = CTL_FAIL;
		goto out;
	}
	snprintf(rid, sizeof(rid), "renewd-%s", uuid);
	x = renewal_render_preview(s, c->conf, host, t->uuid, rid, &out, &err);
	if (x != RN_OK) {
		ctl_err("cannot render profile '%s': %s", profile,
			err ? err : rn_strerror(x));
		rc = CTL_FAIL;
		goto out;
	}
	if (c->json) {
		rc = ctl_json_print(json_pack("{s:s%,s:s}", "profile",
					      out.data ? out.data : "",
					      out.len, "renewal_id", rid));
	} else {
		fwrite(out.data ? out.data : "", 1, out.len, stdout);
		if (out.len && out.data[out.len - 1] != '\n')
			fputc('\n', stdout);
		rc = CTL_OK;
	}
out:
	free(err);
	rn_buf_release(&out);
	store_host_release(&h);
	store_close(s);
	return rc;
}

static int
cmd_profile(ctl *c, int argc, char **argv)
{
	if (argc > 0 && strcmp(argv[0], "validate") == 0)
		return cmd_profile_validate(c, argc - 1, argv + 1);
	if (argc > 0 && strcmp(argv[0], "render") == 0)
		return cmd_profile_render(c, argc - 1, argv + 1);
	ctl_usage_err("'profile' needs 'validate FILE' or 'render --host UUID "
		      "--profile UUID'");
	return CTL_USAGE;
}

/* ---- not yet ---------------------------------------------------------- */

/* "ca test NAME" / "notify test NAME": the NAME, or NULL after a usage
 * error was printed. */
static const char *
ctl_test_name(const char *cmd, int argc, char **argv)
{
	char name[32];
	int npos;

	if (argc < 1 || strcmp(argv[0], "test") != 0) {
		ctl_usage_err("'%s' needs 'test NAME'", cmd);
		return NULL;
	}
	snprintf(name, sizeof(name), "%s test", cmd);
	if (ctl_opts_parse(name, argc - 1, argv + 1, NULL, &npos))
		return NULL;
	if (npos != 1) {
		ctl_usage_err("'%s' needs one NAME", name);
		return NULL;
	}
	return argv[argc - 1];
}

/*
 * Run one asynchronous operation on a private loop until *done: start
 * begins it (0, or an error and no callback). Returns start's result.
 */
static int
ctl_run_async(int (*start)(uv_loop_t *loop, net_http *http, void *arg),
	      void *arg, const int *done)
{
	uv_loop_t loop;
	net_http *http = NULL;
	int rc;

	uv_loop_init(&loop);
	rc = net_http_new(&loop, &http);
	if (rc == RN_OK)
		rc = start(&loop, http, arg);
	if (rc == RN_OK)
		while (!*done && uv_run(&loop, UV_RUN_ONCE))
			;
	if (http)
		net_http_free(http);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return rc;
}

typedef struct ca_test {
	const cfg_ca *ca;
	scep_ca_info info;
	int done;
} ca_test;

static void
on_ca_checked(void *arg, const scep_ca_info *info)
{
	ca_test *t = arg;

	t->info = *info;
	t->done = 1;
}

static int
ca_test_start(uv_loop_t *loop, net_http *http, void *arg)
{
	ca_test *t = arg;

	(void)loop;
	return scep_ca_check(http, t->ca, on_ca_checked, t);
}

/*
 * GetCACaps and GetCACert against a configured CA, the same check renewd
 * runs at start-up, on a loop of its own.
 */
static int
cmd_ca_test(ctl *c, const char *name)
{
	const cfg_ca *ca;
	ca_test t;
	char nb[RN_TIME_LEN], na[RN_TIME_LEN];
	int rc;

	if ((rc = ctl_conf_load(c)))
		return rc;
	ca = cfg_ca_find(c->conf->cfg, name);
	if (ca == NULL) {
		ctl_err("certificate authority '%s' is not in the "
			"configuration", name);
		return CTL_FAIL;
	}
	memset(&t, 0, sizeof(t));
	t.ca = ca;
	rc = ctl_run_async(ca_test_start, &t, &t.done);
	if (rc != RN_OK || !t.done) {
		ctl_err("cannot check '%s': %s", name, rn_strerror(rc));
		return CTL_FAIL;
	}
	rn_time_format(t.info.not_before, nb, sizeof(nb));
	rn_time_format(t.info.not_after, na, sizeof(na));
	if (c->json) {
		json_t *o = json_pack("{s:s,s:s,s:b}", "ca", name, "url",
				      ca->url, "ok", t.info.ok);
		if (t.info.ok) {
			json_object_set_new(o, "subject",
					    json_string(t.info.ca_subject));
			json_object_set_new(o, "sha256",
					    json_string(t.info.sha256));
			json_object_set_new(o, "not_before", json_string(nb));
			json_object_set_new(o, "not_after", json_string(na));
			json_object_set_new(o, "capabilities",
					    json_string(t.info.capabilities));
		} else {
			json_object_set_new(o, "error",
					    json_string(t.info.error));
		}
		rc = ctl_json_print(o);
		return t.info.ok && rc == CTL_OK ? CTL_OK : CTL_FAIL;
	}
	if (!t.info.ok) {
		ctl_err("ca '%s' (%s): %s", name, ca->url, t.info.error);
		return CTL_FAIL;
	}
	printf("ca            %s\n", name);
	printf("url           %s\n", ca->url);
	printf("subject       %s\n", t.info.ca_subject);
	printf("sha256        %s\n", t.info.sha256);
	printf("valid         %s to %s\n", nb, na);
	printf("capabilities  %s\n", t.info.capabilities);
	return CTL_OK;
}

static int
cmd_ca(ctl *c, int argc, char **argv)
{
	const char *name = ctl_test_name("ca", argc, argv);

	return name ? cmd_ca_test(c, name) : CTL_USAGE;
}

typedef struct notify_test {
	const cfg_notifier *n;
	const char *payload;
	int done, ok;
	char detail[512];
} notify_test;

static void
on_notify_sent(void *arg, int ok, const char *detail)
{
	notify_test *t = arg;

	t->done = 1;
	t->ok = ok;
	snprintf(t->detail, sizeof(t->detail), "%s", detail);
}

static int
notify_test_start(uv_loop_t *loop, net_http *http, void *arg)
{
	notify_test *t = arg;

	return notif_send(loop, http, t->n, 0, t->payload, on_notify_sent, t);
}

/*
 * Send a test event through one notifier, directly (no daemon needed),
 * and say what the receiver answered.
 */
static int
cmd_notify_test(ctl *c, const char *name)
{
	static const char *const drivers[] = { "webhook", "exec", "smtp",
					       "syslog" };
	const cfg_notifier *n = NULL;
	notify_test t;
	char *payload;
	size_t i;
	int rc;

	if ((rc = ctl_conf_load(c)))
		return rc;
	for (i = 0; i < c->conf->cfg->nnotifiers; i++)
		if (strcmp(c->conf->cfg->notifiers[i].name, name) == 0)
			n = &c->conf->cfg->notifiers[i];
	if (n == NULL) {
		ctl_err("notifier '%s' is not in the configuration", name);
		return CTL_FAIL;
	}
	payload = notif_test_payload(name, rn_now());
	if (payload == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	memset(&t, 0, sizeof(t));
	t.n = n;
	t.payload = payload;
	rc = ctl_run_async(notify_test_start, &t, &t.done);
	free(payload);
	if (rc != RN_OK || !t.done)
		snprintf(t.detail, sizeof(t.detail), "cannot send: %s",
			 rn_strerror(rc ? rc : RN_EIO));
	if (c->json) {
		json_t *o = json_pack("{s:s,s:s,s:b,s:s}", "notifier", name,
				      "driver", drivers[n->driver], "ok",
				      t.ok, "detail", t.detail);
		rc = ctl_json_print(o);
		return t.ok && rc == CTL_OK ? CTL_OK : CTL_FAIL;
	}
	if (!t.ok) {
		ctl_err("notifier '%s' (%s): %s", name, drivers[n->driver],
			t.detail);
		return CTL_FAIL;
	}
	printf("notifier '%s' (%s): delivered (%s)\n", name,
	       drivers[n->driver], t.detail);
	return CTL_OK;
}

static int
cmd_notify(ctl *c, int argc, char **argv)
{
	const char *name = ctl_test_name("notify", argc, argv);

	return name ? cmd_notify_test(c, name) : CTL_USAGE;
}

static int
cmd_help(ctl *c, int argc, char **argv)
{
	ctl_usage(stdout);
	return CTL_OK;
}

/* ---- main ------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*fn)(ctl *c, int argc, char **argv);
} ctl_commands[] = {
	{ "trigger", cmd_trigger },
	{ "status", cmd_status },
	{ "certs", cmd_certs },
	{ "jobs", cmd_jobs },
	{ "plan", cmd_plan },
	{ "resend", cmd_resend },
	{ "profile", cmd_profile },
	{ "ca", cmd_ca },
	{ "notify", cmd_notify },
	{ "help", cmd_help },
};

/*
 * Global options come before the command; --json is also accepted
 * anywhere after it (until "--"), which is how people type it.
 */
int
main(int argc, char **argv)
{
	ctl c;
	char **args = NULL;
	const char *env;
	size_t k;
	int i, n = 0, rc = CTL_USAGE, dashdash = 0;
	const char *cmd;

	memset(&c, 0, sizeof(c));
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--json") == 0) {
			c.json = 1;
		} else if (strcmp(a, "-c") == 0 ||
			   strcmp(a, "--config") == 0) {
			if (i + 1 >= argc) {
				ctl_usage_err("option '%s' needs a file", a);
				return CTL_USAGE;
			}
			c.config_path = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			c.config_path = a + 9;
		} else if (strncmp(a, "-c", 2) == 0) {
			c.config_path = a + 2;
		} else if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			ctl_usage(stdout);
			return CTL_OK;
		} else if (strcmp(a, "--version") == 0) {
			printf("renewctl %s\n", RN_VERSION);
			return CTL_OK;
		} else if (a[0] == '-' && a[1] != '\0') {
			ctl_usage_err("unknown option '%s'", a);
			return CTL_USAGE;
		} else {
			break;
		}
	}
	if (i >= argc) {
		ctl_usage(stderr);
		return CTL_USAGE;
	}
	cmd = argv[i++];
	if (c.config_path == NULL) {
		env = getenv("RENEWD_CONFIG");
		c.config_path = env && *env ? env : CTL_DEFAULT_CONFIG;
	}
	args = calloc((size_t)(argc - i) + 1, sizeof(*args));
	if (args == NULL) {
		ctl_err("%s", rn_strerror(RN_ENOMEM));
		return CTL_FAIL;
	}
	for (; i < argc; i++) {
		if (!dashdash && strcmp(argv[i], "--json") == 0) {
			c.json = 1;
			continue;
		}
		if (strcmp(argv[i], "--") == 0)
			dashdash = 1;
		args[n++] = argv[i];
	}
	c.now = rn_now();
	for (k = 0; k < sizeof(ctl_commands) / sizeof(ctl_commands[0]); k++)
		if (strcmp(cmd, ctl_commands[k].name) == 0)
			break;
	if (k == sizeof(ctl_commands) / sizeof(ctl_commands[0]))
		ctl_usage_err("unknown command '%s'", cmd);
	else
		rc = ctl_commands[k].fn(&c, n, args);
	free(args);
	if (c.conf)
		renewal_conf_free(c.conf);
	free(c.socket_path);
	free(c.db_path);
	if (fflush(stdout) != 0 && rc == CTL_OK) {
		ctl_err("cannot write output");
		rc = CTL_FAIL;
	}
	return rc;
}
