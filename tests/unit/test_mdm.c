/*
 * mdm: the exec driver against real shell scripts in a temp dir and the
 * webhook, nanomdm and micromdm drivers against a tiny HTTP/1.1 server on
 * 127.0.0.1 on the same loop. Every test ends with uv_loop_close() == 0.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <plist/plist.h>

#include "mdm/mdm.h"
#include "tests/unit/support/testhttp.h"

/* ---- fixtures --------------------------------------------------------- */

/* A profile with bytes a careless driver would mangle: NUL, CR, 0xff. */
static const char profile[] = "<?xml version=\"1.0\"?>\r\n<plist>\0\xff"
			      "\x01 caf\xc3\xa9 </plist>\n";
#define PROFILE_LEN (sizeof(profile) - 1)

static void
push_fill(mdm_push *p)
{
	memset(p, 0, sizeof(*p));
	p->job_id = 4711;
	p->host_uuid = "6f1c1b2a-0000-4000-8000-00000000beef";
	p->profile_uuid = "com.example.scep.wifi";
	p->ca_name = "corp-ca";
	p->renewal_id = "r-42";
	p->kind = "renew";
	p->command_uuid = "0c0ffee0-1111-4222-8333-444455556666";
	p->enrollment_id = NULL;
	p->profile = profile;
	p->profile_len = PROFILE_LEN;
}

/* The MDM API key of the nanomdm/micromdm tests: never in a detail. */
#define API_KEY "s3cr3t-KEY-9f4e"

typedef struct res {
	int n;
	int ok;
	char *detail;
	char *uuid; /* mdm_result.command_uuid, or NULL */
} res;

static void
res_cb(void *arg, const mdm_result *r)
{
	res *g = arg;

	g->n++;
	g->ok = r->ok;
	assert_non_null(r->detail);
	assert_null(strstr(r->detail, API_KEY));
	free(g->detail);
	g->detail = rn_strdup(r->detail);
	free(g->uuid);
	g->uuid = rn_strdup(r->command_uuid);
}

static char *
slurp(const char *path, size_t *len)
{
	char *data = NULL;

	assert_int_equal(rn_file_read(path, 1 << 20, &data, len), 0);
	return data;
}

/* ---- exec ------------------------------------------------------------- */

static void
test_exec_stdin_and_env(void **state)
{
	char dir[] = "/tmp/rn-mdm-XXXXXX";
	char *argv[] = {"sh", "-c",
			"cat > \"$OUT/profile\"; "
			"printf '%s|%s|%s|%s|%s|%s|%s|%s' \"$HOST_UUID\" "
			"\"$PROFILE_UUID\" \"$CA_NAME\" \"$RENEWAL_ID\" "
			"\"$JOB_ID\" \"$COMMAND_UUID\" \"$JOB_KIND\" "
			"\"$ENROLLMENT_ID\" > \"$OUT/env\"",
			NULL};
	cfg_mdm c = {0};
	uv_loop_t loop;
	mdm *m;
	mdm_push p;
	res g = {0};
	char *path, *data;
	size_t len;

	assert_non_null(mkdtemp(dir));
	setenv("OUT", dir, 1);
	c.driver = CFG_MDM_EXEC;
	c.command = argv;
	c.ncommand = 3;
	c.timeout = 10;
	uv_loop_init(&loop);
	assert_int_equal(mdm_new(&loop, NULL, &c, &m), 0);
	push_fill(&p);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	/* the push owns its copies: free the driver while it runs */
	mdm_free(m);
	assert_int_equal(g.n, 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "exit 0");

	path = rn_asprintf("%s/profile", dir);
	data = slurp(path, &len);
	assert_int_equal(len, PROFILE_LEN);
	assert_memory_equal(data, profile, PROFILE_LEN);
	unlink(path);
	free(path);
	free(data);

	path = rn_asprintf("%s/env", dir);
	data = slurp(path, &len);
	assert_string_equal(data,
			    "6f1c1b2a-0000-4000-8000-00000000beef|"
			    "com.example.scep.wifi|corp-ca|r-42|4711|"
			    "0c0ffee0-1111-4222-8333-444455556666|renew|"
			    "6f1c1b2a-0000-4000-8000-00000000beef");
	unlink(path);
	free(path);
	free(data);
	rmdir(dir);
	unsetenv("OUT");

	th_drain_and_close(&loop);
	assert_int_equal(g.n, 1);
	free(g.detail);
	free(g.uuid);
}

/*
 * Push p through the exec driver c running command; the want-th result in
 * *g must be a failure with the given detail.
 */
static void
exec_fails(uv_loop_t *loop, cfg_mdm *c, char **command, const mdm_push *p,
	   res *g, int want, const char *detail)
{
	mdm *m;

	c->command = command;
	assert_int_equal(mdm_new(loop, NULL, c, &m), 0);
	assert_int_equal(mdm_push_start(m, p, res_cb, g), 0);
	assert_true(th_run_until(loop, &g->n, want, 5000));
	assert_int_equal(g->ok, 0);
	assert_string_equal(g->detail, detail);
	mdm_free(m);
}

static void
test_exec_failures(void **state)
{
	char *exit3[] = {"sh", "-c",
			 "cat >/dev/null; printf '  \\tMDM said no  \\r\\n"
			 "second line\\n'; exit 3",
			 NULL};
	char *quiet[] = {"sh", "-c", "exit 7", NULL};
	char *longl[] = {"sh", "-c",
			 "head -c 300 /dev/zero | tr '\\0' x; exit 1", NULL};
	char *sig[] = {"sh", "-c", "kill -9 $$", NULL};
	cfg_mdm c = {0};
	uv_loop_t loop;
	mdm_push p;
	res g = {0};
	char *want;

	c.driver = CFG_MDM_EXEC;
	c.timeout = 10;
	uv_loop_init(&loop);
	push_fill(&p);

	exec_fails(&loop, &c, exit3, &p, &g, 1, "exit 3: MDM said no");
	exec_fails(&loop, &c, quiet, &p, &g, 2, "exit 7");

	/* the output line is cut to 200 chars */
	want = malloc(8 + 200 + 1);
	memcpy(want, "exit 1: ", 8);
	memset(want + 8, 'x', 200);
	want[208] = '\0';
	exec_fails(&loop, &c, longl, &p, &g, 3, want);
	free(want);

	exec_fails(&loop, &c, sig, &p, &g, 4, "killed by signal 9");

	th_drain_and_close(&loop);
	assert_int_equal(g.n, 4);
	free(g.detail);
	free(g.uuid);
}

static void
test_exec_timeout(void **state)
{
	char *argv[] = {"sleep", "10", NULL};
	cfg_mdm c = {0};
	uv_loop_t loop;
	mdm *m;
	mdm_push p;
	res g = {0};
	uint64_t t0;

	c.driver = CFG_MDM_EXEC;
	c.command = argv;
	c.timeout = 1;
	uv_loop_init(&loop);
	assert_int_equal(mdm_new(&loop, NULL, &c, &m), 0);
	push_fill(&p);
	t0 = uv_hrtime();
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 6000));
	assert_true(th_ms_since(t0) >= 900);
	assert_true(th_ms_since(t0) < 3000);
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "timed out after 1s");
	mdm_free(m);
	th_drain_and_close(&loop);
	free(g.detail);
	free(g.uuid);
}

static void
test_exec_missing_program(void **state)
{
	char *argv[] = {"/nonexistent/rn-mdm-no-such-program", NULL};
	cfg_mdm c = {0};
	uv_loop_t loop;
	mdm *m;
	mdm_push p;
	res g = {0};

	c.driver = CFG_MDM_EXEC;
	c.command = argv;
	uv_loop_init(&loop);
	assert_int_equal(mdm_new(&loop, NULL, &c, &m), 0);
	push_fill(&p);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), RN_ENOTFOUND);
	mdm_free(m);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 0);
	assert_null(g.detail);
}

/* ---- webhook ---------------------------------------------------------- */

static char *
header_value(const char *headers, const char *name)
{
	char *needle = rn_asprintf("\r\n%s: ", name);
	const char *h = strcasestr(headers, needle), *e;
	size_t nl = strlen(needle);

	free(needle);
	if (h == NULL)
		return NULL;
	h += nl;
	e = strstr(h, "\r\n");
	return rn_strndup(h, e ? (size_t)(e - h) : strlen(h));
}

static void
assert_json_str(json_t *o, const char *key, const char *want)
{
	json_t *v = json_object_get(o, key);

	assert_non_null(v);
	assert_true(json_is_string(v));
	assert_string_equal(json_string_value(v), want);
}

static void
test_webhook_push(void **state)
{
	static const char hkey[] = "hm4c-k3y";
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	json_t *j;
	json_error_t jerr;
	unsigned char *dec, mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0, i;
	size_t declen;
	char hex[2 * EVP_MAX_MD_SIZE + 1], *v, *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	s.status = 202;
	s.body = "{\"queued\":true}";
	s.body_len = strlen(s.body);
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_WEBHOOK;
	c.url = th_url_for(&s, "/mdm/push");
	c.api_key = "tok-123";
	c.hmac_key = (char *)hkey;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);
	p.enrollment_id = "user-channel-9";
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	mdm_free(m); /* the push holds its own copies */
	assert_int_equal(g.n, 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 202");
	assert_null(g.uuid);

	assert_string_equal(s.method, "POST");
	assert_string_equal(s.target, "/mdm/push");
	v = header_value(s.headers, "Content-Type");
	assert_non_null(v);
	assert_string_equal(v, "application/json");
	free(v);
	v = header_value(s.headers, "Authorization");
	assert_non_null(v);
	assert_string_equal(v, "Bearer tok-123");
	free(v);
	v = header_value(s.headers, "User-Agent");
	assert_non_null(v);
	assert_string_equal(v, "renewd/" RN_VERSION);
	free(v);
	v = header_value(s.headers, "X-Renewd-Job");
	assert_non_null(v);
	assert_string_equal(v, "4711");
	free(v);

	/* the signature covers the exact body bytes, computed independently */
	assert_non_null(HMAC(EVP_sha256(), hkey, (int)strlen(hkey),
			     (const unsigned char *)s.req_body,
			     s.req_body_len, mac, &maclen));
	assert_int_equal(maclen, 32);
	for (i = 0; i < maclen; i++)
		sprintf(hex + 2 * i, "%02x", mac[i]);
	want = rn_asprintf("sha256=%s", hex);
	v = header_value(s.headers, "X-Renewd-Signature");
	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
	free(want);

	j = json_loadb(s.req_body, s.req_body_len, 0, &jerr);
	assert_non_null(j);
	assert_json_str(j, "event", "profile.push");
	assert_true(json_is_integer(json_object_get(j, "job_id")));
	assert_int_equal(json_integer_value(json_object_get(j, "job_id")),
			 4711);
	assert_json_str(j, "kind", "renew");
	assert_json_str(j, "host_uuid", "6f1c1b2a-0000-4000-8000-00000000beef");
	assert_json_str(j, "enrollment_id", "user-channel-9");
	assert_json_str(j, "profile_uuid", "com.example.scep.wifi");
	assert_json_str(j, "ca_name", "corp-ca");
	assert_json_str(j, "renewal_id", "r-42");
	assert_json_str(j, "command_uuid",
			"0c0ffee0-1111-4222-8333-444455556666");
	v = (char *)json_string_value(json_object_get(j, "profile"));
	assert_non_null(v);
	/* standard alphabet with padding: no '-' or '_' */
	assert_null(strpbrk(v, "-_"));
	assert_int_equal(strlen(v) % 4, 0);
	assert_int_equal(rn_base64_decode(v, strlen(v), &dec, &declen), 0);
	assert_int_equal(declen, PROFILE_LEN);
	assert_memory_equal(dec, profile, PROFILE_LEN);
	free(dec);
	json_decref(j);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 1);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/*
 * The body is written by hand, not by jansson: it must be byte for byte
 * what json_dumps gives for the same members (escapes, UTF-8 passed
 * through), and a member that is not UTF-8 refuses the body, as jansson's
 * json_string does. (tests/fuzz/fuzz_json_out.c does the same on any
 * bytes; test_webhook_statuses checks that a refused body sends nothing.)
 */
static void
test_webhook_body_json(void **state)
{
	static const char *const bad[] = {
		"ca\xff", "\xc0\xaf", "\xe0\x80\xaf", "\xed\xa0\x80",
		"\xf4\x90\x80\x80", "cut\xe2\x82", "\xf8\x88\x80\x80\x80",
	};
	mdm_push p;
	json_t *o;
	char *body, *want, *b64;
	size_t i;

	(void)state;
	push_fill(&p);
	p.kind = NULL; /* null, not "" */
	p.ca_name = "q\"b\\s/ \b\f\n\r\t \x01\x1f\x7f";
	p.profile_uuid = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x94\x91 \xef\xbf\xbf";
	p.renewal_id = "";
	assert_int_equal(mdm_webhook_body(&p, &body), RN_OK);

	o = json_object();
	b64 = rn_base64(profile, PROFILE_LEN);
	json_object_set_new(o, "event", json_string("profile.push"));
	json_object_set_new(o, "job_id", json_integer(p.job_id));
	json_object_set_new(o, "kind", json_null());
	json_object_set_new(o, "host_uuid", json_string(p.host_uuid));
	json_object_set_new(o, "enrollment_id", json_string(p.host_uuid));
	json_object_set_new(o, "profile_uuid", json_string(p.profile_uuid));
	json_object_set_new(o, "ca_name", json_string(p.ca_name));
	json_object_set_new(o, "renewal_id", json_string(""));
	json_object_set_new(o, "command_uuid", json_string(p.command_uuid));
	json_object_set_new(o, "profile", json_string(b64));
	want = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	assert_non_null(want);
	assert_string_equal(body, want);
	free(body);
	free(want);
	free(b64);
	json_decref(o);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		push_fill(&p);
		p.enrollment_id = bad[i];
		assert_null(json_string(bad[i]));
		body = (char *)1;
		assert_int_equal(mdm_webhook_body(&p, &body), RN_EINVAL);
		assert_null(body);
	}
}

/* Statuses decide ok; no keys means no auth or signature headers. */
static void
test_webhook_statuses(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	json_t *j;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_WEBHOOK;
	c.url = th_url_for(&s, "/hook");
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);

	s.status = 500;
	s.body = "internal\tboom\r\nstack trace here\n";
	s.body_len = strlen(s.body);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "http 500: internal boom");
	assert_null(strcasestr(s.headers, "\r\nAuthorization:"));
	assert_null(strcasestr(s.headers, "\r\nX-Renewd-Signature:"));
	j = json_loadb(s.req_body, s.req_body_len, 0, NULL);
	assert_non_null(j);
	/* enrollment_id defaults to the host */
	assert_json_str(j, "enrollment_id",
			"6f1c1b2a-0000-4000-8000-00000000beef");
	json_decref(j);

	s.status = 204;
	s.body = "";
	s.body_len = 0;
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 204");

	s.status = 404;
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 3, 5000));
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "http 404");

	/* one shared client: the connection was reused */
	assert_int_equal(s.requests, 3);
	assert_int_equal(s.accepts, 1);

	/* a member that is not UTF-8: refused at once, nothing sent */
	p.enrollment_id = "dev\xff";
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), RN_EINVAL);
	assert_false(th_run_until(&loop, &g.n, 4, 200));
	assert_int_equal(s.requests, 3);

	mdm_free(m);
	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 3);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

static void
test_webhook_transport_errors(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	int port;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	uint64_t t0;

	uv_loop_init(&loop);
	/* a port that was just ours and is now closed */
	port = th_closed_port(&loop);

	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_WEBHOOK;
	c.url = rn_asprintf("http://127.0.0.1:%d/hook", port);
	c.timeout = 1;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 0);
	assert_true(strncmp(g.detail, "connect error: ", 15) == 0);
	assert_true(strlen(g.detail) > 15);
	mdm_free(m);
	free(c.url);

	/* a server that reads the request and never answers */
	th_srv_start(&loop, &s);
	s.respond = 0;
	c.url = th_url_for(&s, "/slow");
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	t0 = uv_hrtime();
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 5000));
	assert_true(th_ms_since(t0) >= 900);
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "timed out after 1s");
	assert_int_equal(s.requests, 1);
	mdm_free(m);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* ---- nanomdm ---------------------------------------------------------- */

/* An enrollment id with characters that must be percent-encoded. */
#define ENR_ID "dev/ch 9+\xc3\xa9"
#define ENR_PCT "dev%2Fch%209%2B%C3%A9"

/* The Authorization header value basic auth "user:API_KEY" must give. */
static char *
basic_for(const char *user)
{
	char *up = rn_asprintf("%s:%s", user, API_KEY), *b64, *v;

	b64 = rn_base64(up, strlen(up));
	v = rn_asprintf("Basic %s", b64);
	free(b64);
	free(up);
	return v;
}

static void
assert_header(const th_srv *s, const char *name, const char *want)
{
	char *v = header_value(s->headers, name);

	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

static const char *
plist_str(plist_t dict, const char *key)
{
	plist_t v = plist_dict_get_item(dict, key);

	assert_non_null(v);
	assert_int_equal(plist_get_node_type(v), PLIST_STRING);
	return plist_get_string_ptr(v, NULL);
}

static void
set_answer(th_srv *s, int status, const char *body)
{
	s->status = status;
	s->ctype = "application/json";
	s->body = body;
	s->body_len = strlen(body);
}

/* The request: PUT, encoded id in the path, basic auth, the plist. */
static void
test_nanomdm_push(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	plist_t pl = NULL, cmd, pay;
	const char *data;
	uint64_t dlen = 0;
	char *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	set_answer(&s, 200,
		   "{\"status\":{\"" ENR_ID "\":{\"push_result\":\"p-1\"}},"
		   "\"no_push\":false,"
		   "\"command_uuid\":\"0c0ffee0-1111-4222-8333-444455556666\","
		   "\"request_type\":\"InstallProfile\"}");
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_NANOMDM;
	c.url = th_url_for(&s, "/"); /* a trailing slash is not doubled */
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);
	p.enrollment_id = ENR_ID;
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	mdm_free(m); /* the push holds its own copies */
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 200, queued");
	assert_null(g.uuid); /* NanoMDM keeps our UUID */

	assert_string_equal(s.method, "PUT");
	assert_string_equal(s.target, "/v1/enqueue/" ENR_PCT);
	assert_header(&s, "Content-Type", "application/xml");
	want = basic_for("nanomdm");
	assert_header(&s, "Authorization", want);
	free(want);

	plist_from_xml(s.req_body, (uint32_t)s.req_body_len, &pl);
	assert_non_null(pl);
	assert_int_equal(plist_get_node_type(pl), PLIST_DICT);
	assert_string_equal(plist_str(pl, "CommandUUID"),
			    "0c0ffee0-1111-4222-8333-444455556666");
	cmd = plist_dict_get_item(pl, "Command");
	assert_non_null(cmd);
	assert_int_equal(plist_get_node_type(cmd), PLIST_DICT);
	assert_string_equal(plist_str(cmd, "RequestType"), "InstallProfile");
	pay = plist_dict_get_item(cmd, "Payload");
	assert_non_null(pay);
	assert_int_equal(plist_get_node_type(pay), PLIST_DATA);
	data = plist_get_data_ptr(pay, &dlen);
	assert_int_equal(dlen, PROFILE_LEN);
	assert_memory_equal(data, profile, PROFILE_LEN);
	plist_free(pl);

	/* no enrollment id: the host's */
	p.enrollment_id = NULL;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(s.target, "/v1/enqueue/"
				      "6f1c1b2a-0000-4000-8000-00000000beef");
	mdm_free(m);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 2);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* Push n-th through m; the result must be ok/detail. */
static void
push_expect(uv_loop_t *loop, mdm *m, const mdm_push *p, res *g, int n,
	    int ok, const char *detail)
{
	assert_int_equal(mdm_push_start(m, p, res_cb, g), 0);
	assert_true(th_run_until(loop, &g->n, n, 5000));
	assert_int_equal(g->ok, ok);
	assert_string_equal(g->detail, detail);
}

/* Command errors fail, push errors alone do not. */
static void
test_nanomdm_answers(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_NANOMDM;
	c.url = th_url_for(&s, "/nano");
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);
	p.enrollment_id = "E1";

	set_answer(&s, 500,
		   "{\"status\":{\"E1\":{}},\"command_error\":"
		   "\"enqueue: database is locked\"}");
	push_expect(&loop, m, &p, &g, 1, 0,
		    "nanomdm: command error: enqueue: database is locked");
	assert_string_equal(s.target, "/nano/v1/enqueue/E1");

	/* a command error for our enrollment alone, in a 207 */
	set_answer(&s, 207,
		   "{\"status\":{\"E1\":{\"command_error\":\"no such id\"},"
		   "\"E2\":{}}}");
	push_expect(&loop, m, &p, &g, 2, 0,
		    "nanomdm: command error: no such id");

	/* a push error alone: queued, the device gets it at check-in */
	set_answer(&s, 207,
		   "{\"status\":{\"E1\":{\"push_error\":\"apns: "
		   "BadDeviceToken\"}},\"command_uuid\":\"x\"}");
	push_expect(&loop, m, &p, &g, 3, 1,
		    "queued, push failed: apns: BadDeviceToken");
	assert_non_null(strstr(g.detail, "push failed"));

	/* NanoMDM says 500 when its only push failed: still queued */
	set_answer(&s, 500, "{\"push_error\":\"no push info\"}");
	push_expect(&loop, m, &p, &g, 4, 1, "queued, push failed: no push info");

	/* another enrollment's errors are not ours */
	set_answer(&s, 200,
		   "{\"status\":{\"E1\":{},\"E9\":{\"command_error\":\"x\"}}}");
	push_expect(&loop, m, &p, &g, 5, 1, "http 200, queued");

	set_answer(&s, 401, "Unauthorized\n");
	push_expect(&loop, m, &p, &g, 6, 0, "nanomdm: http 401: Unauthorized");

	set_answer(&s, 500, "");
	push_expect(&loop, m, &p, &g, 7, 0, "nanomdm: http 500");

	/* one shared client: the connection was reused */
	assert_int_equal(s.requests, 7);
	assert_int_equal(s.accepts, 1);

	mdm_free(m);
	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* ---- micromdm --------------------------------------------------------- */

static void
test_micromdm_push(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	json_t *j;
	unsigned char *dec;
	size_t declen;
	const char *v;
	char *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	set_answer(&s, 201,
		   "{\"payload\":{\"command_uuid\":"
		   "\"9a8b7c6d-0000-4000-8000-000000000001\","
		   "\"command\":{\"request_type\":\"InstallProfile\"}}}");
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_MICROMDM;
	c.url = th_url_for(&s, "");
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);
	p.enrollment_id = "564DF4AE-96B5-72BF-02C4-6B8B94BA5BF4";
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	mdm_free(m);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 201");
	assert_non_null(g.uuid);
	assert_string_equal(g.uuid, "9a8b7c6d-0000-4000-8000-000000000001");

	assert_string_equal(s.method, "POST");
	assert_string_equal(s.target, "/v1/commands");
	assert_header(&s, "Content-Type", "application/json");
	want = basic_for("micromdm");
	assert_header(&s, "Authorization", want);
	free(want);

	j = json_loadb(s.req_body, s.req_body_len, 0, NULL);
	assert_non_null(j);
	assert_json_str(j, "udid", "564DF4AE-96B5-72BF-02C4-6B8B94BA5BF4");
	assert_json_str(j, "request_type", "InstallProfile");
	v = json_string_value(json_object_get(j, "payload"));
	assert_non_null(v);
	assert_null(strpbrk(v, "-_"));
	assert_int_equal(strlen(v) % 4, 0);
	assert_int_equal(rn_base64_decode(v, strlen(v), &dec, &declen), 0);
	assert_int_equal(declen, PROFILE_LEN);
	assert_memory_equal(dec, profile, PROFILE_LEN);
	free(dec);
	json_decref(j);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

static void
test_micromdm_answers(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	json_t *j;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_MICROMDM;
	c.url = th_url_for(&s, "/mdm/");
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	push_fill(&p);

	set_answer(&s, 400, "bad request: unknown udid\nmore\n");
	push_expect(&loop, m, &p, &g, 1, 0,
		    "micromdm: http 400: bad request: unknown udid");
	assert_null(g.uuid);
	assert_string_equal(s.target, "/mdm/v1/commands");
	/* udid defaults to the host */
	j = json_loadb(s.req_body, s.req_body_len, 0, NULL);
	assert_non_null(j);
	assert_json_str(j, "udid", "6f1c1b2a-0000-4000-8000-00000000beef");
	json_decref(j);

	/* only 201 is a created command */
	set_answer(&s, 200, "{}");
	push_expect(&loop, m, &p, &g, 2, 0, "micromdm: http 200: {}");

	/* 201 without a usable UUID: accepted, none passed back */
	set_answer(&s, 201, "{\"payload\":{\"command_uuid\":\"a b\"}}");
	push_expect(&loop, m, &p, &g, 3, 1, "http 201");
	assert_null(g.uuid);

	set_answer(&s, 401, "");
	push_expect(&loop, m, &p, &g, 4, 0, "micromdm: http 401");

	mdm_free(m);
	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* The command-API drivers share the webhook's transport wording. */
static void
test_command_api_transport_errors(void **state)
{
	static const int drivers[] = {CFG_MDM_NANOMDM, CFG_MDM_MICROMDM};
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_push p;
	th_srv s;
	res g = {0};
	int port, i;

	uv_loop_init(&loop);
	port = th_closed_port(&loop);
	assert_int_equal(net_http_new(&loop, &h), 0);
	push_fill(&p);
	c.api_key = API_KEY;
	c.timeout = 1;
	c.url = rn_asprintf("http://127.0.0.1:%d", port);
	for (i = 0; i < 2; i++) {
		c.driver = drivers[i];
		assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
		assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
		assert_true(th_run_until(&loop, &g.n, i + 1, 5000));
		assert_int_equal(g.ok, 0);
		assert_true(strncmp(g.detail, "connect error: ", 15) == 0);
		mdm_free(m);
	}
	free(c.url);

	th_srv_start(&loop, &s);
	s.respond = 0;
	c.url = th_url_for(&s, "");
	c.driver = CFG_MDM_NANOMDM;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	assert_int_equal(mdm_push_start(m, &p, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 3, 5000));
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "timed out after 1s");
	mdm_free(m);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* ---- driver selection ------------------------------------------------- */

static void
test_new_and_names(void **state)
{
	char *argv[] = {"true", NULL};
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m = (mdm *)&c;

	uv_loop_init(&loop);
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.url = "http://127.0.0.1:1/";
	/* nanomdm and micromdm need a URL, an API key and a client */
	c.driver = CFG_MDM_NANOMDM;
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	assert_null(m);
	c.driver = CFG_MDM_MICROMDM;
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	c.api_key = "";
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	c.api_key = API_KEY;
	assert_int_equal(mdm_new(&loop, NULL, &c, &m), RN_EINVAL);
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	mdm_free(m);
	c.driver = CFG_MDM_NANOMDM;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	mdm_free(m);
	c.url = NULL;
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	c.url = "http://127.0.0.1:1/";
	c.api_key = NULL;
	/* exec needs a command, webhook a URL and a client */
	c.driver = CFG_MDM_EXEC;
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	c.command = argv;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	mdm_free(m);
	c.driver = CFG_MDM_WEBHOOK;
	assert_int_equal(mdm_new(&loop, NULL, &c, &m), RN_EINVAL);
	c.api_key = "a\r\nX-Evil: 1";
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	c.api_key = NULL;
	c.url = NULL;
	assert_int_equal(mdm_new(&loop, h, &c, &m), RN_EINVAL);
	mdm_free(NULL);

	assert_string_equal(mdm_driver_name(CFG_MDM_EXEC), "exec");
	assert_string_equal(mdm_driver_name(CFG_MDM_WEBHOOK), "webhook");
	assert_string_equal(mdm_driver_name(CFG_MDM_NANOMDM), "nanomdm");
	assert_string_equal(mdm_driver_name(CFG_MDM_MICROMDM), "micromdm");

	net_http_free(h);
	th_drain_and_close(&loop);
}

/* ---- commands (CertificateList) ---------------------------------------- */

/* nanomdm: the same PUT, the plist without a Payload. */
static void
test_command_nanomdm(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_command cmdc;
	th_srv s;
	res g = {0};
	plist_t pl = NULL, cmd;
	char *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	set_answer(&s, 200, "{\"status\":{\"" ENR_ID "\":{}}}");
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_NANOMDM;
	c.url = th_url_for(&s, "/");
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	memset(&cmdc, 0, sizeof(cmdc));
	cmdc.host_uuid = "6f1c1b2a-0000-4000-8000-00000000beef";
	cmdc.enrollment_id = ENR_ID;
	cmdc.request_type = "CertificateList";
	cmdc.command_uuid = "11111111-2222-4333-8444-555555555555";
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), 0);
	mdm_free(m); /* the command holds its own copies */
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 200, queued");
	assert_null(g.uuid);
	assert_string_equal(s.method, "PUT");
	assert_string_equal(s.target, "/v1/enqueue/" ENR_PCT);
	assert_header(&s, "Content-Type", "application/xml");
	want = basic_for("nanomdm");
	assert_header(&s, "Authorization", want);
	free(want);
	plist_from_xml(s.req_body, (uint32_t)s.req_body_len, &pl);
	assert_non_null(pl);
	assert_string_equal(plist_str(pl, "CommandUUID"),
			    "11111111-2222-4333-8444-555555555555");
	cmd = plist_dict_get_item(pl, "Command");
	assert_non_null(cmd);
	assert_int_equal(plist_get_node_type(cmd), PLIST_DICT);
	assert_string_equal(plist_str(cmd, "RequestType"), "CertificateList");
	assert_null(plist_dict_get_item(cmd, "Payload"));
	assert_int_equal(plist_dict_get_size(cmd), 1);
	plist_free(pl);

	/* no enrollment id: the host's; a failure is reported */
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	cmdc.enrollment_id = NULL;
	set_answer(&s, 401, "Unauthorized\n");
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), 0);
	assert_true(th_run_until(&loop, &g.n, 2, 5000));
	assert_int_equal(g.ok, 0);
	assert_string_equal(g.detail, "nanomdm: http 401: Unauthorized");
	assert_string_equal(s.target, "/v1/enqueue/"
				      "6f1c1b2a-0000-4000-8000-00000000beef");
	/* no command UUID: refused before any I/O */
	cmdc.command_uuid = NULL;
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), RN_EINVAL);
	mdm_free(m);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	assert_int_equal(g.n, 2);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* micromdm: POST /v1/commands {"udid","request_type"}, no payload. */
static void
test_command_micromdm(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_command cmdc;
	th_srv s;
	res g = {0};
	json_t *j;
	char *want;

	uv_loop_init(&loop);
	th_srv_start(&loop, &s);
	set_answer(&s, 201,
		   "{\"payload\":{\"command_uuid\":"
		   "\"9a8b7c6d-0000-4000-8000-000000000002\"}}");
	assert_int_equal(net_http_new(&loop, &h), 0);
	c.driver = CFG_MDM_MICROMDM;
	c.url = th_url_for(&s, "");
	c.api_key = API_KEY;
	c.timeout = 10;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	memset(&cmdc, 0, sizeof(cmdc));
	cmdc.host_uuid = "564DF4AE-96B5-72BF-02C4-6B8B94BA5BF4";
	cmdc.request_type = "CertificateList";
	cmdc.command_uuid = "ignored-by-micromdm";
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), 0);
	mdm_free(m);
	assert_true(th_run_until(&loop, &g.n, 1, 5000));
	assert_int_equal(g.ok, 1);
	assert_string_equal(g.detail, "http 201");
	assert_non_null(g.uuid);
	assert_string_equal(g.uuid, "9a8b7c6d-0000-4000-8000-000000000002");
	assert_string_equal(s.method, "POST");
	assert_string_equal(s.target, "/v1/commands");
	assert_header(&s, "Content-Type", "application/json");
	want = basic_for("micromdm");
	assert_header(&s, "Authorization", want);
	free(want);
	j = json_loadb(s.req_body, s.req_body_len, 0, NULL);
	assert_non_null(j);
	assert_json_str(j, "udid", "564DF4AE-96B5-72BF-02C4-6B8B94BA5BF4");
	assert_json_str(j, "request_type", "CertificateList");
	assert_null(json_object_get(j, "payload"));
	assert_int_equal(json_object_size(j), 2);
	json_decref(j);

	net_http_free(h);
	th_srv_stop(&s);
	th_drain_and_close(&loop);
	free(c.url);
	free(g.detail);
	free(g.uuid);
}

/* exec and webhook have no command channel: RN_EINVAL, no callback. */
static void
test_command_no_channel(void **state)
{
	cfg_mdm c = {0};
	uv_loop_t loop;
	net_http *h;
	mdm *m;
	mdm_command cmdc;
	res g = {0};
	char *command[] = {"/bin/true", NULL};

	uv_loop_init(&loop);
	assert_int_equal(net_http_new(&loop, &h), 0);
	memset(&cmdc, 0, sizeof(cmdc));
	cmdc.host_uuid = "H1";
	cmdc.request_type = "CertificateList";
	cmdc.command_uuid = "U1";
	c.driver = CFG_MDM_EXEC;
	c.command = command;
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), RN_EINVAL);
	mdm_free(m);
	memset(&c, 0, sizeof(c));
	c.driver = CFG_MDM_WEBHOOK;
	c.url = "http://127.0.0.1:9/hook";
	assert_int_equal(mdm_new(&loop, h, &c, &m), 0);
	assert_int_equal(mdm_command_start(m, &cmdc, res_cb, &g), RN_EINVAL);
	assert_int_equal(mdm_command_start(NULL, &cmdc, res_cb, &g),
			 RN_EINVAL);
	mdm_free(m);
	assert_int_equal(g.n, 0);
	net_http_free(h);
	th_drain_and_close(&loop);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exec_stdin_and_env),
		cmocka_unit_test(test_exec_failures),
		cmocka_unit_test(test_exec_timeout),
		cmocka_unit_test(test_exec_missing_program),
		cmocka_unit_test(test_webhook_push),
		cmocka_unit_test(test_webhook_body_json),
		cmocka_unit_test(test_webhook_statuses),
		cmocka_unit_test(test_webhook_transport_errors),
		cmocka_unit_test(test_nanomdm_push),
		cmocka_unit_test(test_nanomdm_answers),
		cmocka_unit_test(test_micromdm_push),
		cmocka_unit_test(test_micromdm_answers),
		cmocka_unit_test(test_command_api_transport_errors),
		cmocka_unit_test(test_new_and_names),
		cmocka_unit_test(test_command_nanomdm),
		cmocka_unit_test(test_command_micromdm),
		cmocka_unit_test(test_command_no_channel),
	};

	signal(SIGPIPE, SIG_IGN);
	setenv("no_proxy", "127.0.0.1", 1);
	setenv("NO_PROXY", "127.0.0.1", 1);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
