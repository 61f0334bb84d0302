/*
 * config: renewd.yaml -> typed cfg, and every error with FILE:LINE:COL.
 *
 * Each test writes its YAML into a private temp directory (the process
 * works inside it, so relative secret files resolve there) and checks the
 * typed values or the exact list of messages.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/common.h"
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "config/config.h"

#define DAY 86400

static char tmpdir[PATH_MAX];
static char oldcwd[PATH_MAX];
static char cfgpath[PATH_MAX + 32];

static void
write_file(const char *name, const char *text)
{
	FILE *f = fopen(name, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Write text as renewd.yaml and load it; errs is left for the caller. */
static int
load(const char *text, cfg **out, rn_errlist *errs)
{
	write_file("renewd.yaml", text);
	rn_errlist_init(errs);
	return cfg_load(cfgpath, out, errs);
}

static void
dump(const rn_errlist *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		print_message("  got: %s\n", errs->msgs[i]);
}

/*
 * Load text, expect it to fail, and compare every message with the
 * NULL-terminated list of "LINE:COL: message" suffixes, in order.
 */
static void
expect_errors(const char *text, ...)
{
	rn_errlist errs;
	cfg *c = (cfg *)0x1;
	const char *want;
	char *full;
	va_list ap;
	size_t i = 0;
	int rc;

	rc = load(text, &c, &errs);
	if (rc != RN_ECONFIG)
		dump(&errs);
	assert_int_equal(rc, RN_ECONFIG);
	assert_null(c);
	va_start(ap, text);
	while ((want = va_arg(ap, const char *)) != NULL) {
		if (i >= errs.n) {
			dump(&errs);
			fail_msg("missing error %zu: %s", i, want);
		}
		full = rn_asprintf("%s:%s", cfgpath, want);
		if (strcmp(full, errs.msgs[i]) != 0)
			dump(&errs);
		assert_string_equal(errs.msgs[i], full);
		free(full);
		i++;
	}
	va_end(ap);
	if (errs.n != i)
		dump(&errs);
	assert_int_equal(errs.n, i);
	rn_errlist_release(&errs);
}

static cfg *
expect_ok(const char *text)
{
	rn_errlist errs;
	cfg *c = NULL;
	int rc = load(text, &c, &errs);

	if (rc != 0)
		dump(&errs);
	assert_int_equal(rc, 0);
	assert_int_equal(errs.n, 0);
	assert_non_null(c);
	rn_errlist_release(&errs);
	return c;
}

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/test_config.XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(tmpdir) == NULL || getcwd(oldcwd, sizeof(oldcwd)) == NULL ||
	    chdir(tmpdir) != 0)
		return -1;
	snprintf(cfgpath, sizeof(cfgpath), "%s/renewd.yaml", tmpdir);
	return 0;
}

static int
teardown(void **state)
{
	if (chdir(oldcwd) != 0)
		return -1;
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a complete file -------------------------------------------------- */

static const char full_yaml[] =
	"daemon:\n"
	"  database: db/renewd.db\n"
	"  control_socket: run/renewd.sock\n"
	"  scan_interval: 90s\n"
	"  max_in_flight: 16\n"
	"  log_level: debug\n"
	"  log_format: json\n"
	"http:\n"
	"  listen: \"[::1]:8443\"\n"
	"  public_url: https://renewd.example.com/base/\n"
	"  api_token_file: api-token\n"
	"  webhook_hmac_key_file: hmac\n"
	"certificate_authorities:\n"
	"  - name: Test_SCEP\n"
	"    url: http://127.0.0.1:2016/scep\n"
	"    challenge_env: RENEWD_TEST_CHALLENGE\n"
	"    token_ttl: 2d\n"
	"    timeout: 45s\n"
	"    cache_ttl: 0s\n"
	"  - name: Corp2\n"
	"    url: https://pki.example.com/certsrv/mscep/mscep.dll\n"
	"    challenge_file: challenge\n"
	"profiles:\n"
	"  - file: contrib/profiles/wifi-scep.mobileconfig\n"
	"  - file: vpn.mobileconfig\n"
	"    uuid: 5B1F1B6E-0000-4000-8000-000000000001\n"
	"assignments:\n"
	"  - profile: \"*\"\n"
	"  - profile: com.example.vpn\n"
	"policies:\n"
	"  - name: short\n"
	"    match: { ca: Test_SCEP, profile: \"com.example.*\" }\n"
	"    renew_at_percent: 66.5\n"
	"    short_lived_fraction: 0.25\n"
	"    smear: 24h\n"
	"    max_attempts: 3\n"
	"    backoff: { initial: 1m, max: 2h }\n"
	"    verify_timeout: 48h\n"
	"    rate_limit: 600/m\n"
	"    deadlines: [1d, 14d, 7d]\n"
	"  - name: default\n"
	"    renew_before: 30d\n"
	"mdm:\n"
	"  driver: nanomdm\n"
	"  url: http://127.0.0.1:9000\n"
	"  api_key_env: RENEWD_TEST_MDM_KEY\n"
	"  hmac_key_file: mdm-hmac\n"
	"  timeout: 10s\n"
	"notifiers:\n"
	"  - name: ops\n"
	"    driver: webhook\n"
	"    url: http://127.0.0.1:9100/alerts\n"
	"    format: slack\n"
	"    token_file: token\n"
	"    events: [renewal.failed, certificate.deadline, ca.unhealthy]\n"
	"  - name: mail\n"
	"    driver: smtp\n"
	"    url: smtp://smtp.example.com:587\n"
	"    starttls: true\n"
	"    username_env: RENEWD_TEST_SMTP_USER\n"
	"    password_file: smtp-pass\n"
	"    from: renewd@example.com\n"
	"    to: [pki-oncall@example.com, sec@example.com]\n"
	"    events: [renewal.failed, certificate.expired]\n"
	"  - name: page\n"
	"    driver: exec\n"
	"    command: [/usr/local/bin/page-oncall, --urgent]\n"
	"    events: [\"*\"]\n"
	"    timeout: 5s\n"
	"  - name: log\n"
	"    driver: syslog\n"
	"    events: [host.retired]\n";

static void
test_full_config(void **state)
{
	const cfg_policy *p;
	const cfg_notifier *n;
	cfg *c;

	setenv("RENEWD_TEST_CHALLENGE", "env-challenge", 1);
	setenv("RENEWD_TEST_MDM_KEY", "mdm-key", 1);
	setenv("RENEWD_TEST_SMTP_USER", "smtp-user", 1);
	write_file("api-token", "api-token-value\n");
	write_file("hmac", "http-hmac");
	write_file("challenge", "file-challenge\n");
	write_file("mdm-hmac", "mdm-hmac-value\n");
	write_file("token", "notif-token\n");
	write_file("smtp-pass", "smtp-pass\n");
	c = expect_ok(full_yaml);

	assert_string_equal(c->path, cfgpath);
	assert_string_equal(c->daemon.database, "db/renewd.db");
	assert_string_equal(c->daemon.control_socket, "run/renewd.sock");
	assert_int_equal(c->daemon.scan_interval, 90);
	assert_int_equal(c->daemon.max_in_flight, 16);
	assert_int_equal(c->daemon.log_level, RN_LOG_DEBUG);
	assert_int_equal(c->daemon.log_format, RN_LOGFMT_JSON);

	assert_string_equal(c->http.listen, "[::1]:8443");
	assert_string_equal(c->http.public_url,
			    "https://renewd.example.com/base");
	assert_string_equal(c->http.api_token, "api-token-value");
	assert_string_equal(c->http.webhook_hmac_key, "http-hmac");

	assert_int_equal(c->ncas, 2);
	assert_string_equal(c->cas[0].name, "Test_SCEP");
	assert_string_equal(c->cas[0].url, "http://127.0.0.1:2016/scep");
	assert_string_equal(c->cas[0].challenge, "env-challenge");
	assert_int_equal(c->cas[0].token_ttl, 2 * DAY);
	assert_int_equal(c->cas[0].timeout, 45);
	assert_int_equal(c->cas[0].cache_ttl, 0);
	assert_int_equal(c->cas[0].line, 14);
	assert_int_equal(c->cas[0].col, 5);
	assert_string_equal(c->cas[1].name, "Corp2");
	assert_string_equal(c->cas[1].challenge, "file-challenge");
	assert_int_equal(c->cas[1].token_ttl, 7 * DAY);
	assert_int_equal(c->cas[1].timeout, 30);
	assert_int_equal(c->cas[1].cache_ttl, 60);
	assert_ptr_equal(cfg_ca_find(c, "Corp2"), &c->cas[1]);
	assert_ptr_equal(cfg_ca_find(c, "Test_SCEP"), &c->cas[0]);
	assert_null(cfg_ca_find(c, "test_scep"));

	assert_int_equal(c->nprofiles, 2);
	assert_string_equal(c->profiles[0].file,
			    "contrib/profiles/wifi-scep.mobileconfig");
	assert_null(c->profiles[0].uuid);
	assert_int_equal(c->profiles[0].line, 24);
	assert_int_equal(c->profiles[0].col, 11);
	assert_string_equal(c->profiles[1].file, "vpn.mobileconfig");
	assert_string_equal(c->profiles[1].uuid,
			    "5B1F1B6E-0000-4000-8000-000000000001");
	assert_int_equal(c->profiles[1].line, 25);

	assert_int_equal(c->nassignments, 2);
	assert_string_equal(c->assignments[0].profile, "*");
	assert_string_equal(c->assignments[1].profile, "com.example.vpn");

	assert_int_equal(c->npolicies, 2);
	p = &c->policies[0];
	assert_string_equal(p->name, "short");
	assert_string_equal(p->match_ca, "Test_SCEP");
	assert_string_equal(p->match_profile, "com.example.*");
	assert_int_equal(p->renew_before, 0);
	assert_true(fabs(p->renew_at_percent - 66.5) < 1e-9);
	assert_true(fabs(p->short_lived_fraction - 0.25) < 1e-9);
	assert_int_equal(p->smear, DAY);
	assert_int_equal(p->max_attempts, 3);
	assert_int_equal(p->backoff_initial, 60);
	assert_int_equal(p->backoff_max, 7200);
	assert_int_equal(p->verify_timeout, 48 * 3600);
	assert_int_equal(p->rate_limit, 600);
	assert_int_equal(p->rate_period, 60);
	assert_int_equal(p->ndeadlines, 3);
	assert_int_equal(p->deadlines[0], 14 * DAY);
	assert_int_equal(p->deadlines[1], 7 * DAY);
	assert_int_equal(p->deadlines[2], 1 * DAY);
	/* the second policy only sets renew_before: the rest are defaults */
	p = &c->policies[1];
	assert_string_equal(p->name, "default");
	assert_string_equal(p->match_ca, "*");
	assert_string_equal(p->match_profile, "*");
	assert_int_equal(p->renew_before, 30 * DAY);
	assert_true(p->renew_at_percent == 0);
	assert_true(fabs(p->short_lived_fraction - 0.5) < 1e-9);
	assert_int_equal(p->smear, 0);
	assert_int_equal(p->max_attempts, 8);
	assert_int_equal(p->backoff_initial, 300);
	assert_int_equal(p->backoff_max, 12 * 3600);
	assert_int_equal(p->verify_timeout, 72 * 3600);
	assert_int_equal(p->rate_limit, 0);
	assert_int_equal(p->ndeadlines, 2);
	assert_int_equal(p->deadlines[0], 7 * DAY);
	assert_int_equal(p->deadlines[1], DAY);

	assert_int_equal(c->mdm.driver, CFG_MDM_NANOMDM);
	assert_string_equal(c->mdm.url, "http://127.0.0.1:9000");
	assert_string_equal(c->mdm.api_key, "mdm-key");
	assert_string_equal(c->mdm.hmac_key, "mdm-hmac-value");
	assert_int_equal(c->mdm.timeout, 10);
	assert_null(c->mdm.command);

	assert_int_equal(c->nnotifiers, 4);
	n = &c->notifiers[0];
	assert_string_equal(n->name, "ops");
	assert_int_equal(n->driver, CFG_NOTIF_WEBHOOK);
	assert_string_equal(n->url, "http://127.0.0.1:9100/alerts");
	assert_string_equal(n->format, "slack");
	assert_string_equal(n->token, "notif-token");
	assert_int_equal(n->nevents, 3);
	assert_string_equal(n->events[2], "ca.unhealthy");
	assert_null(n->events[3]);
	assert_int_equal(n->timeout, 30);
	n = &c->notifiers[1];
	assert_int_equal(n->driver, CFG_NOTIF_SMTP);
	assert_string_equal(n->url, "smtp://smtp.example.com:587");
	assert_int_equal(n->starttls, 1);
	assert_string_equal(n->username, "smtp-user");
	assert_string_equal(n->password, "smtp-pass");
	assert_string_equal(n->from, "renewd@example.com");
	assert_int_equal(n->nto, 2);
	assert_string_equal(n->to[1], "sec@example.com");
	assert_string_equal(n->format, "json");
	n = &c->notifiers[2];
	assert_int_equal(n->driver, CFG_NOTIF_EXEC);
	assert_int_equal(n->ncommand, 2);
	assert_string_equal(n->command[0], "/usr/local/bin/page-oncall");
	assert_string_equal(n->command[1], "--urgent");
	assert_null(n->command[2]);
	assert_string_equal(n->events[0], "*");
	assert_int_equal(n->timeout, 5);
	assert_int_equal(c->notifiers[3].driver, CFG_NOTIF_SYSLOG);
	assert_string_equal(c->notifiers[3].events[0], "host.retired");

	cfg_free(c);
	unsetenv("RENEWD_TEST_CHALLENGE");
	unsetenv("RENEWD_TEST_MDM_KEY");
	unsetenv("RENEWD_TEST_SMTP_USER");
}

/* The smallest valid file: only mdm is required; the rest is defaults. */
static void
test_defaults(void **state)
{
	cfg *c = expect_ok("mdm:\n  command: [hooks/push.sh, var/outbox]\n");

	assert_string_equal(c->daemon.database, "var/renewd.db");
	assert_string_equal(c->daemon.control_socket, "var/renewd.sock");
	assert_int_equal(c->daemon.scan_interval, 300);
	assert_int_equal(c->daemon.max_in_flight, 64);
	assert_int_equal(c->daemon.log_level, RN_LOG_INFO);
	assert_int_equal(c->daemon.log_format, RN_LOGFMT_LOGFMT);
	assert_string_equal(c->http.listen, "127.0.0.1:8180");
	assert_string_equal(c->http.public_url, "http://127.0.0.1:8180");
	assert_null(c->http.api_token);
	assert_null(c->http.webhook_hmac_key);
	assert_int_equal(c->ncas, 0);
	assert_int_equal(c->npolicies, 0);
	assert_int_equal(c->nnotifiers, 0);
	assert_int_equal(c->mdm.driver, CFG_MDM_EXEC);
	assert_int_equal(c->mdm.ncommand, 2);
	assert_string_equal(c->mdm.command[0], "hooks/push.sh");
	assert_string_equal(c->mdm.command[1], "var/outbox");
	assert_null(c->mdm.command[2]);
	assert_null(c->mdm.url);
	assert_null(c->mdm.api_key);
	assert_int_equal(c->mdm.timeout, 30);
	/* without policies every lookup falls back to the default */
	assert_ptr_equal(cfg_policy_match(c, "A", "u", "i"),
			 cfg_policy_default());
	cfg_free(c);

	/* public_url follows listen when not given */
	c = expect_ok("http:\n  listen: 0.0.0.0:9999\nmdm:\n  command: [x]\n");
	assert_string_equal(c->http.public_url, "http://0.0.0.0:9999");
	cfg_free(c);
	cfg_free(NULL);
}

/* A self-signed P-256 certificate in PEM, as a ca_file holds. */
static void
write_test_ca_pem(const char *name)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	FILE *f;

	assert_non_null(k);
	assert_non_null(x);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
				   (const unsigned char *)"test CA", -1, -1, 0);
	X509_set_issuer_name(x, X509_get_subject_name(x));
	X509_set_pubkey(x, k);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	f = fopen(name, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	assert_int_equal(fclose(f), 0);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* ca_file: for the CAs, the MDM and the webhook/smtp notifiers; the file
 * is read and must hold a certificate when the config is loaded. */
static void
test_ca_file(void **state)
{
	cfg *c;

	(void)state;
	write_test_ca_pem("ca.pem");
	write_file("notpem.txt", "not a certificate\n");
	write_file("challenge", "c\n");
	c = expect_ok("certificate_authorities:\n"
		      "  - name: A\n"
		      "    url: https://ca.example.com/scep\n"
		      "    challenge_file: challenge\n"
		      "    ca_file: ca.pem\n"
		      "mdm:\n"
		      "  driver: webhook\n"
		      "  url: https://mdm.example.com/push\n"
		      "  ca_file: ca.pem\n"
		      "notifiers:\n"
		      "  - name: w\n"
		      "    driver: webhook\n"
		      "    url: https://hooks.example.com/x\n"
		      "    ca_file: ca.pem\n"
		      "    events: [\"*\"]\n");
	assert_string_equal(c->cas[0].ca_file, "ca.pem");
	assert_string_equal(c->mdm.ca_file, "ca.pem");
	assert_string_equal(c->notifiers[0].ca_file, "ca.pem");
	cfg_free(c);
	c = expect_ok("mdm:\n"
		      "  command: [x]\n");
	assert_null(c->mdm.ca_file);
	cfg_free(c);

	expect_errors("mdm:\n"
		      "  driver: webhook\n"
		      "  url: https://mdm.example.com/push\n"
		      "  ca_file: missing.pem\n"
		      "notifiers:\n"
		      "  - name: e\n"
		      "    driver: exec\n"
		      "    command: [/bin/true]\n"
		      "    ca_file: notpem.txt\n"
		      "    events: [\"*\"]\n"
		      "  - name: w\n"
		      "    driver: webhook\n"
		      "    url: https://hooks.example.com/x\n"
		      "    ca_file: notpem.txt\n"
		      "    events: [\"*\"]\n",
		      "4:12: cannot read 'missing.pem' named by 'ca_file': "
		      "no such file or directory",
		      "9:5: 'notifiers[0].ca_file' does not apply to driver "
		      "'exec'",
		      "14:14: 'notpem.txt' named by 'ca_file' holds no PEM "
		      "certificate",
		      NULL);
}

/* ---- errors, one kind at a time --------------------------------------- */

static void
test_unknown_key(void **state)
{
	expect_errors("daemon:\n"
		      "  scan_intervall: 5m\n"
		      "mdm:\n"
		      "  command: [x]\n"
		      "  comand: [y]\n"
		      "notifer: []\n",
		      "2:3: unknown key 'scan_intervall' in 'daemon'",
		      "5:3: unknown key 'comand' in 'mdm'",
		      "6:1: unknown top-level key 'notifer'", NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  - name: p\n"
		      "    renew_before: 30d\n"
		      "    backoff: { initial: 1m, maximum: 2h }\n",
		      "6:29: unknown key 'maximum' in 'policies[0].backoff'",
		      NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "  timeout: 5s\n"
		      "  timeout: 6s\n",
		      "4:3: duplicate key 'timeout' in 'mdm'", NULL);
}

static void
test_bad_duration(void **state)
{
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  - name: p\n"
		      "    renew_before: 30days\n",
		      "5:19: 'renew_before' must be a duration like 30d", NULL);
	expect_errors("daemon:\n"
		      "  scan_interval: 0s\n"
		      "mdm:\n"
		      "  command: [x]\n"
		      "  timeout: 30\n",
		      "2:18: 'scan_interval' must be at least 1s",
		      "5:12: 'timeout' must be a duration like 30s", NULL);
}

static void
test_wrong_type(void **state)
{
	expect_errors("daemon:\n"
		      "  scan_interval: [5m]\n"
		      "  max_in_flight: {n: 1}\n"
		      "certificate_authorities:\n"
		      "  name: A\n"
		      "mdm:\n"
		      "  command: /bin/push\n",
		      "2:18: 'scan_interval' must be a duration like 5m, "
		      "not a list",
		      "3:18: 'max_in_flight' must be an integer from 1 to "
		      "100000, not a mapping",
		      "5:3: 'certificate_authorities' must be a list, not a "
		      "mapping",
		      "7:12: 'command' must be a non-empty list of strings, "
		      "not a string", NULL);
	/* a setting with no value points at its key */
	expect_errors("daemon:\n"
		      "  database:\n"
		      "mdm: [x]\n",
		      "2:3: 'database' must be a non-empty string",
		      "3:6: 'mdm' must be a mapping, not a list", NULL);
	/* a half-written list entry is one error, not a cascade */
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  -\n"
		      "  - renew\n",
		      "4:4: 'policies[0]' must be a mapping, not empty",
		      "5:5: 'policies[1]' must be a mapping, not a string", NULL);
	expect_errors("- a\n- b\n",
		      "1:1: the configuration must be a mapping of sections "
		      "such as 'daemon' and 'mdm', not a list", NULL);
}

static void
test_missing_required(void **state)
{
	setenv("RENEWD_TEST_CHALLENGE", "c", 1);
	expect_errors("certificate_authorities:\n"
		      "  - name: A\n"
		      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
		      "  - url: http://ca/scep\n"
		      "mdm:\n"
		      "  command: [x]\n",
		      "2:5: 'certificate_authorities[0].url' is required",
		      "4:5: 'certificate_authorities[1].name' is required",
		      "4:5: 'certificate_authorities[1]' needs "
		      "'challenge_env' or 'challenge_file'", NULL);
	unsetenv("RENEWD_TEST_CHALLENGE");
	/* no mdm at all, an empty file included */
	expect_errors("daemon:\n  max_in_flight: 4\n",
		      "1:1: 'mdm' section is required", NULL);
	expect_errors("", "1:1: 'mdm' section is required", NULL);
	/* an empty mdm is the exec driver without a command */
	expect_errors("daemon: {}\nmdm:\n",
		      "2:1: 'mdm.command' is required for driver 'exec'", NULL);
	expect_errors("mdm:\n  driver: micromdm\n",
		      "2:3: 'mdm.url' is required for driver 'micromdm'",
		      "2:3: 'mdm.api_key_env' or 'mdm.api_key_file' is "
		      "required for driver 'micromdm'", NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "notifiers:\n"
		      "  - name: mail\n"
		      "    driver: smtp\n"
		      "    events: [renewal.failed]\n",
		      "4:5: 'notifiers[0].url' is required for driver 'smtp'",
		      "4:5: 'notifiers[0].from' is required for driver 'smtp'",
		      "4:5: 'notifiers[0].to' is required for driver 'smtp'",
		      NULL);
	/* keys the driver does not use are errors, not silently ignored */
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "notifiers:\n"
		      "  - name: page\n"
		      "    driver: exec\n"
		      "    command: [/bin/true]\n"
		      "    url: http://127.0.0.1:1/\n"
		      "    events: [\"*\"]\n"
		      "  - name: log\n"
		      "    driver: syslog\n"
		      "    timeout: 5s\n"
		      "    events: [\"*\"]\n"
		      "  - name: tls\n"
		      "    driver: smtp\n"
		      "    url: smtps://127.0.0.1:465\n"
		      "    starttls: true\n"
		      "    from: a@example.com\n"
		      "    to: [b@example.com]\n"
		      "    events: [\"*\"]\n",
		      "7:5: 'notifiers[0].url' does not apply to driver 'exec'",
		      "11:5: 'notifiers[1].timeout' does not apply to driver "
		      "'syslog'",
		      "16:5: 'notifiers[2].starttls' is for smtp:// URLs; "
		      "smtps:// is TLS from the first byte",
		      NULL);
	/* a password is useless without a username */
	write_file("smtp-pass", "pw\n");
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "notifiers:\n"
		      "  - name: mail\n"
		      "    driver: smtp\n"
		      "    url: smtp://127.0.0.1:25\n"
		      "    from: a@example.com\n"
		      "    to: [b@example.com]\n"
		      "    password_file: smtp-pass\n"
		      "    events: [renewal.failed]\n",
		      "4:5: 'notifiers[0]' sets a password but no "
		      "'username_env' or 'username_file'", NULL);
}

static void
test_ca_name_and_duplicate(void **state)
{
	setenv("RENEWD_TEST_CHALLENGE", "c", 1);
	expect_errors("certificate_authorities:\n"
		      "  - name: Test-SCEP\n"
		      "    url: http://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
		      "  - name: A\n"
		      "    url: http://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
		      "  - name: A\n"
		      "    url: ftp://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
		      "mdm:\n"
		      "  command: [x]\n",
		      "2:11: 'name' must contain only letters, digits and "
		      "underscores, like Test_SCEP",
		      "8:11: duplicate certificate authority 'A', first "
		      "defined at line 5",
		      "9:10: 'url' must be an http:// or https:// url", NULL);
	unsetenv("RENEWD_TEST_CHALLENGE");
}

static void
test_secrets(void **state)
{
	rn_errlist errs;
	cfg *c = NULL;
	size_t i;

	unsetenv("RENEWD_TEST_UNSET");
	setenv("RENEWD_TEST_EMPTY", "", 1);
	setenv("RENEWD_TEST_CHALLENGE", "top-secret-challenge", 1);
	write_file("chal", "file-secret\n");
	expect_errors("certificate_authorities:\n"
		      "  - name: A\n"
		      "    url: http://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_UNSET\n"
		      "  - name: B\n"
		      "    url: http://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_EMPTY\n"
		      "  - name: C\n"
		      "    url: http://ca/scep\n"
		      "    challenge_file: no-such-file\n"
		      "  - name: D\n"
		      "    url: http://ca/scep\n"
		      "    challenge_file: chal\n"
		      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
		      "mdm:\n"
		      "  command: [x]\n",
		      "4:20: environment variable 'RENEWD_TEST_UNSET' named "
		      "by 'challenge_env' is not set",
		      "7:20: environment variable 'RENEWD_TEST_EMPTY' named "
		      "by 'challenge_env' is not set",
		      "10:21: cannot read 'no-such-file' named by "
		      "'challenge_file': no such file or directory",
		      "14:5: only one of 'challenge_env' and 'challenge_file' "
		      "may be set", NULL);

	/* a failing load with secrets present never prints them */
	assert_int_equal(load("certificate_authorities:\n"
			      "  - name: A\n"
			      "    url: http://ca/scep\n"
			      "    challenge_env: RENEWD_TEST_CHALLENGE\n"
			      "mdm:\n"
			      "  command: [x]\n"
			      "  api_key_file: chal\n"
			      "  timeout: never\n",
			      &c, &errs),
			 RN_ECONFIG);
	assert_int_equal(errs.n, 1);
	for (i = 0; i < errs.n; i++) {
		assert_null(strstr(errs.msgs[i], "top-secret"));
		assert_null(strstr(errs.msgs[i], "file-secret"));
	}
	rn_errlist_release(&errs);

	/* an empty secret file is as good as none */
	write_file("empty", "\n");
	expect_errors("http:\n  api_token_file: empty\nmdm:\n  command: [x]\n",
		      "2:19: 'empty' named by 'api_token_file' is empty", NULL);
	unsetenv("RENEWD_TEST_EMPTY");
	unsetenv("RENEWD_TEST_CHALLENGE");
}

static void
test_policy_rules(void **state)
{
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  - name: both\n"
		      "    renew_before: 30d\n"
		      "    renew_at_percent: 66\n"
		      "  - name: neither\n"
		      "    smear: 1h\n",
		      "6:5: only one of 'renew_before' and 'renew_at_percent' "
		      "may be set",
		      "7:5: 'policies[1]' needs 'renew_before' or "
		      "'renew_at_percent'", NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  - name: p\n"
		      "    renew_at_percent: 100\n"
		      "    short_lived_fraction: 1\n"
		      "    max_attempts: 0\n"
		      "    backoff: { initial: 2h, max: 1h }\n"
		      "    rate_limit: 0/m\n"
		      "    deadlines: [8d, 7d, 6d, 5d, 4d, 3d, 2d, 1d, 12h]\n"
		      "  - name: p\n"
		      "    renew_at_percent: 0.5\n"
		      "    rate_limit: 10/d\n"
		      "    deadlines: [1d, soon]\n"
		      "    match: { ca: [A] }\n",
		      "5:23: 'renew_at_percent' must be a number between 0 "
		      "and 100 (exclusive), like 66",
		      "6:27: 'short_lived_fraction' must be a number between "
		      "0 and 1 (exclusive), like 0.5",
		      "7:19: 'max_attempts' must be an integer of at least 1",
		      "8:34: 'backoff.max' must not be less than "
		      "'backoff.initial'",
		      "9:17: 'rate_limit' must be a rate like 600/m (N/s, N/m "
		      "or N/h, N at least 1)",
		      "10:16: 'deadlines' must be a list of 1 to 8 durations "
		      "like [7d, 1d]",
		      "11:11: duplicate policy 'p', first defined at line 4",
		      "13:17: 'rate_limit' must be a rate like 600/m (N/s, N/m "
		      "or N/h, N at least 1)",
		      "14:21: 'deadlines[1]' must be a duration like 7d",
		      "15:18: 'match.ca' must be a non-empty string, not a list",
		      NULL);
}

static void
test_formats(void **state)
{
	cfg *c;

	expect_errors("daemon:\n"
		      "  max_in_flight: 100001\n"
		      "  log_level: verbose\n"
		      "  log_format: text\n"
		      "http:\n"
		      "  listen: localhost\n"
		      "  public_url: ftp://x\n"
		      "mdm:\n"
		      "  driver: carrier-pigeon\n"
		      "notifiers:\n"
		      "  - name: n\n"
		      "    driver: webhook\n"
		      "    url: smtp://x\n"
		      "    format: xml\n"
		      "    starttls: yes\n"
		      "    events: [renewal.failed, renewal.exploded]\n",
		      "2:18: 'max_in_flight' must be an integer from 1 to "
		      "100000",
		      "3:14: 'log_level' must be one of debug, info, warn, "
		      "error",
		      "4:15: 'log_format' must be one of logfmt, json",
		      "6:11: 'listen' must be HOST:PORT with a port from 1 to "
		      "65535, like 127.0.0.1:8180 or [::1]:8180",
		      "7:15: 'public_url' must be an http:// or https:// url",
		      "9:11: 'driver' must be one of exec, webhook, nanomdm, "
		      "micromdm",
		      "13:10: 'url' must be an http:// or https:// url",
		      "14:13: 'format' must be one of json, slack",
		      "15:5: 'notifiers[0].starttls' does not apply to "
		      "driver 'webhook'",
		      "15:15: 'starttls' must be true or false",
		      "16:30: unknown event 'renewal.exploded' in 'events', "
		      "expected one of renewal.verified, renewal.failed, "
		      "certificate.deadline, certificate.expired, "
		      "ca.unhealthy, ca.recovered, mdm.unreachable, "
		      "mdm.recovered, host.retired or *", NULL);
	expect_errors("http:\n  listen: 127.0.0.1:0\nmdm:\n  command: [x]\n",
		      "2:11: 'listen' must be HOST:PORT with a port from 1 to "
		      "65535, like 127.0.0.1:8180 or [::1]:8180", NULL);
	expect_errors("http:\n  listen: \"::1:8180\"\nmdm:\n  command: [x]\n",
		      "2:11: 'listen' must be HOST:PORT with a port from 1 to "
		      "65535, like 127.0.0.1:8180 or [::1]:8180", NULL);
	c = expect_ok("http:\n  listen: host.example:65535\n"
		      "mdm:\n  command: [x]\n");
	assert_string_equal(c->http.listen, "host.example:65535");
	cfg_free(c);
}

/* Three unrelated mistakes in three sections: all three come back. */
static void
test_three_errors(void **state)
{
	expect_errors("daemon:\n"
		      "  log_levl: info\n"
		      "certificate_authorities:\n"
		      "  - name: A\n"
		      "    url: http://ca/scep\n"
		      "    challenge_env: RENEWD_TEST_UNSET\n"
		      "mdm:\n"
		      "  command: [x]\n"
		      "  timeout: 30 s\n",
		      "2:3: unknown key 'log_levl' in 'daemon'",
		      "6:20: environment variable 'RENEWD_TEST_UNSET' named "
		      "by 'challenge_env' is not set",
		      "9:12: 'timeout' must be a duration like 30s", NULL);
}

static void
test_syntax_error(void **state)
{
	/* a flow sequence left open: found where the next key starts */
	expect_errors("daemon:\n"
		      "  database: [unclosed\n"
		      "mdm:\n"
		      "  command: [x]\n",
		      "3:4: yaml syntax error: did not find expected ',' or "
		      "']' (while parsing a flow sequence at 2:13)", NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "   timeout: 5s\n",
		      "3:4: yaml syntax error: did not find expected key "
		      "(while parsing a block mapping at 2:3)", NULL);
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "  url: a: b\n",
		      "3:9: yaml syntax error: mapping values are not allowed "
		      "in this context", NULL);
	/* bytes that are not UTF-8 carry only an offset in libyaml */
	expect_errors("mdm:\n"
		      "  command: [x]\n"
		      "  url: \"\xff\"\n",
		      "3:9: cannot read yaml: invalid leading UTF-8 octet", NULL);
	expect_errors("mdm:\n  command: [x]\n---\ndaemon: {}\n",
		      "4:1: a configuration file holds one yaml document; "
		      "remove everything after the second '---'", NULL);
}

static void
test_missing_file(void **state)
{
	rn_errlist errs;
	cfg *c = (cfg *)0x1;

	rn_errlist_init(&errs);
	assert_int_equal(cfg_load("no/such/renewd.yaml", &c, &errs),
			 RN_ECONFIG);
	assert_null(c);
	assert_int_equal(errs.n, 1);
	assert_string_equal(errs.msgs[0], "cannot open configuration "
			    "'no/such/renewd.yaml': no such file or directory");
	rn_errlist_release(&errs);
}

/* ---- policy lookup ---------------------------------------------------- */

static void
test_policy_match(void **state)
{
	const cfg_policy *d = cfg_policy_default();
	cfg *c;

	c = expect_ok("mdm:\n"
		      "  command: [x]\n"
		      "policies:\n"
		      "  - name: other-ca\n"
		      "    match: { ca: Other }\n"
		      "    renew_before: 10d\n"
		      "  - name: wifi-by-identifier\n"
		      "    match: { ca: \"Test_*\", profile: \"com.example.wifi*\" }\n"
		      "    renew_before: 20d\n"
		      "  - name: by-uuid\n"
		      "    match: { profile: \"1111*\" }\n"
		      "    renew_at_percent: 50\n");

	/* both later policies match; the first one in the file wins */
	assert_string_equal(cfg_policy_match(c, "Test_SCEP", "1111-aaaa",
					     "com.example.wifi.1")->name,
			    "wifi-by-identifier");
	/* the uuid alone selects a policy too */
	assert_string_equal(cfg_policy_match(c, "Test_SCEP", "1111-aaaa",
					     "com.example.vpn")->name,
			    "by-uuid");
	/* the CA glob is checked: a wifi profile on another CA */
	assert_string_equal(cfg_policy_match(c, "Corp", "2222",
					     "com.example.wifi.1")->name,
			    "default");
	assert_string_equal(cfg_policy_match(c, "Other", "2222", "x")->name,
			    "other-ca");
	/* nothing matches: the built-in default */
	assert_ptr_equal(cfg_policy_match(c, "Corp", "2222", "com.example.vpn"),
			 d);
	assert_ptr_equal(cfg_policy_match(NULL, "A", "u", "i"), d);
	cfg_free(c);

	assert_string_equal(d->name, "default");
	assert_string_equal(d->match_ca, "*");
	assert_string_equal(d->match_profile, "*");
	assert_int_equal(d->renew_before, 30 * DAY);
	assert_true(d->renew_at_percent == 0);
	assert_true(fabs(d->short_lived_fraction - 0.5) < 1e-9);
	assert_int_equal(d->smear, 0);
	assert_int_equal(d->max_attempts, 8);
	assert_int_equal(d->backoff_initial, 300);
	assert_int_equal(d->backoff_max, 12 * 3600);
	assert_int_equal(d->verify_timeout, 72 * 3600);
	assert_int_equal(d->rate_limit, 0);
	assert_int_equal(d->ndeadlines, 2);
	assert_int_equal(d->deadlines[0], 7 * DAY);
	assert_int_equal(d->deadlines[1], DAY);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_full_config),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_unknown_key),
		cmocka_unit_test(test_bad_duration),
		cmocka_unit_test(test_wrong_type),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_ca_name_and_duplicate),
		cmocka_unit_test(test_secrets),
		cmocka_unit_test(test_policy_rules),
		cmocka_unit_test(test_formats),
		cmocka_unit_test(test_three_errors),
		cmocka_unit_test(test_syntax_error),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_ca_file),
		cmocka_unit_test(test_policy_match),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
