/*
 * profiles: variable rendering and template checking.
 *
 * Render tests feed text through a table-driven lookup that records the
 * names it is asked for. Load tests write templates into a private temp
 * directory and check either the loaded identity or the exact list of
 * messages, each naming the file, the payload and the field.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <plist/plist.h>

#include "common/common.h"
#include "profiles/profiles.h"

static char tmpdir[PATH_MAX];

static const char *const cas[] = { "Test_SCEP", "Other_CA" };
#define NCAS (sizeof(cas) / sizeof(cas[0]))

/* ---- allocations freed after each test -------------------------------- */

static char *garbage[256];
static size_t ngarbage;

static char *
keep(char *p)
{
	assert_non_null(p);
	assert_true(ngarbage < sizeof(garbage) / sizeof(garbage[0]));
	garbage[ngarbage++] = p;
	return p;
}

static int
gc(void **state)
{
	while (ngarbage > 0)
		free(garbage[--ngarbage]);
	return 0;
}

/* ---- rendering -------------------------------------------------------- */

typedef struct lookup {
	const char *const *pairs; /* name, value, ..., NULL */
	int fail_with;		  /* when set, returned for every name */
	int calls;
	rn_buf names;		  /* every name asked for, each with a ',' */
} lookup;

static int
lookup_fn(void *ctx, const char *name, rn_buf *val)
{
	lookup *l = ctx;
	size_t i;

	l->calls++;
	assert_int_equal(rn_buf_adds(&l->names, name), 0);
	assert_int_equal(rn_buf_adds(&l->names, ","), 0);
	if (l->fail_with)
		return l->fail_with;
	for (i = 0; l->pairs != NULL && l->pairs[i] != NULL; i += 2) {
		if (strcmp(l->pairs[i], name) == 0)
			return rn_buf_adds(val, l->pairs[i + 1]);
	}
	return RN_ENOTFOUND;
}

static const char *const vals[] = {
	"HOST_UUID", "U-1",
	"HOST_SERIAL_NUMBER", "C02XYZ",
	"A", "x",
	"B", "y",
	NULL,
};

/* Render text into out (which may hold something already). */
static int
render(const char *text, lookup *l, rn_buf *out, char **err)
{
	return prof_render(text, strlen(text), lookup_fn, l, out, err);
}

/* Render text, expect success and exactly `want` as the output. */
static void
expect_render(const char *text, const char *want, const char *want_names)
{
	lookup l = { vals, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	char *err = (char *)0x1;

	assert_int_equal(render(text, &l, &out, &err), 0);
	assert_null(err);
	assert_non_null(out.data);
	assert_string_equal(out.data, want);
	assert_int_equal(out.len, strlen(want));
	assert_string_equal(l.names.data ? l.names.data : "", want_names);
	rn_buf_release(&out);
	rn_buf_release(&l.names);
}

/* Render text, expect rc and errmsg, and the output left as it was. */
static void
expect_render_fail(const char *text, int fail_with, int want_rc,
		   const char *want_err, int want_calls)
{
	lookup l = { vals, fail_with, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	char *err = NULL;

	assert_int_equal(rn_buf_adds(&out, "pre:"), 0);
	assert_int_equal(render(text, &l, &out, &err), want_rc);
	if (want_err != NULL) {
		assert_non_null(err);
		assert_string_equal(err, want_err);
	}
	assert_int_equal(l.calls, want_calls);
	assert_int_equal(out.len, 4);
	assert_string_equal(out.data, "pre:");
	free(err);
	rn_buf_release(&out);
	rn_buf_release(&l.names);
}

static void
test_render_both_forms_and_prefixes(void **state)
{
	expect_render("a=$FLEET_VAR_HOST_UUID b=${FLEET_VAR_HOST_UUID} "
		      "c=$RENEWD_VAR_HOST_SERIAL_NUMBER "
		      "d=${RENEWD_VAR_HOST_SERIAL_NUMBER}.",
		      "a=U-1 b=U-1 c=C02XYZ d=C02XYZ.",
		      "HOST_UUID,HOST_UUID,HOST_SERIAL_NUMBER,"
		      "HOST_SERIAL_NUMBER,");
}

static void
test_render_adjacent(void **state)
{
	expect_render("$FLEET_VAR_A${RENEWD_VAR_B}$RENEWD_VAR_A${FLEET_VAR_B}",
		      "xyxy", "A,B,A,B,");
	expect_render("<string>${FLEET_VAR_A}_${FLEET_VAR_B}</string>",
		      "<string>x_y</string>", "A,B,");
	expect_render("$FLEET_VAR_A", "x", "A,");
	expect_render("", "", "");
}

static void
test_render_greedy_name(void **state)
{
	/* $NAME takes every name character; braces end the name */
	expect_render("${FLEET_VAR_HOST_UUID}_suffix", "U-1_suffix",
		      "HOST_UUID,");
	expect_render("$FLEET_VAR_HOST_UUID-x $FLEET_VAR_A.", "U-1-x x.",
		      "HOST_UUID,A,");
	expect_render_fail("$FLEET_VAR_HOST_UUID_suffix", 0, RN_ENOTFOUND,
			   "unknown variable 'FLEET_VAR_HOST_UUID_suffix'", 1);
}

static void
test_render_callback_gets_stripped_name(void **state)
{
	lookup l = { vals, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	char *err = NULL;

	assert_int_equal(render("${RENEWD_VAR_HOST_UUID} $FLEET_VAR_"
				"HOST_SERIAL_NUMBER",
				&l, &out, &err),
			 0);
	assert_int_equal(l.calls, 2);
	assert_string_equal(l.names.data, "HOST_UUID,HOST_SERIAL_NUMBER,");
	assert_string_equal(out.data, "U-1 C02XYZ");
	rn_buf_release(&out);
	rn_buf_release(&l.names);
}

static void
test_render_escapes_values(void **state)
{
	static const char *const special[] = {
		"V", "<a&b>\"c'", "PLAIN", "no specials here", NULL,
	};
	lookup l = { special, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	char *err = NULL;

	assert_int_equal(render("<string>$FLEET_VAR_V|${FLEET_VAR_PLAIN}"
				"</string>",
				&l, &out, &err),
			 0);
	assert_string_equal(out.data, "<string>&lt;a&amp;b&gt;&quot;c&apos;|"
				      "no specials here</string>");
	/* the template text itself is not escaped, only values */
	rn_buf_reset(&out);
	assert_int_equal(render("a & b $FLEET_VAR_PLAIN <c>", &l, &out, &err),
			 0);
	assert_string_equal(out.data, "a & b no specials here <c>");
	rn_buf_release(&out);
	rn_buf_release(&l.names);
}

static void
test_render_escapes_long_value(void **state)
{
	const char *pairs[3] = { "LONG", NULL, NULL };
	lookup l = { pairs, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT, want = RN_BUF_INIT;
	char *val, *err = NULL;
	size_t i;

	/* longer than any stack scratch: 3000 bytes with an '&' every 10 */
	val = keep(malloc(3001));
	for (i = 0; i < 3000; i++)
		val[i] = i % 10 == 9 ? '&' : (char)('a' + i % 10);
	val[3000] = '\0';
	pairs[1] = val;
	assert_int_equal(rn_buf_adds(&want, "["), 0);
	for (i = 0; i < 3000; i++) {
		if (val[i] == '&')
			assert_int_equal(rn_buf_adds(&want, "&amp;"), 0);
		else
			assert_int_equal(rn_buf_add(&want, &val[i], 1), 0);
	}
	assert_int_equal(rn_buf_adds(&want, "]"), 0);
	assert_int_equal(render("[${FLEET_VAR_LONG}]", &l, &out, &err), 0);
	assert_int_equal(out.len, 3000 + 300 * 4 + 2);
	assert_string_equal(out.data, want.data);
	rn_buf_release(&out);
	rn_buf_release(&want);
	rn_buf_release(&l.names);
}

static void
test_xml_escape(void **state)
{
	rn_buf out = RN_BUF_INIT;

	assert_int_equal(rn_buf_adds(&out, "<x>"), 0);
	assert_int_equal(prof_xml_escape(&out, "<&>\"'"), 0);
	assert_string_equal(out.data, "<x>&lt;&amp;&gt;&quot;&apos;");
	rn_buf_reset(&out);
	assert_int_equal(prof_xml_escape(&out, "Tom's \"Mac\" & <iPad>"), 0);
	assert_string_equal(out.data,
			    "Tom&apos;s &quot;Mac&quot; &amp; &lt;iPad&gt;");
	rn_buf_reset(&out);
	assert_int_equal(prof_xml_escape(&out, "plain $5"), 0);
	assert_string_equal(out.data, "plain $5");
	assert_int_equal(out.len, 8);
	rn_buf_release(&out);
}

static void
test_render_unknown_variable(void **state)
{
	expect_render_fail("x $FLEET_VAR_NOPE y", 0, RN_ENOTFOUND,
			   "unknown variable 'FLEET_VAR_NOPE'", 1);
	expect_render_fail("$FLEET_VAR_A ${RENEWD_VAR_NOPE}", 0, RN_ENOTFOUND,
			   "unknown variable 'RENEWD_VAR_NOPE'", 2);
	/* a prefix with no name is no value at all: refused, not kept */
	expect_render_fail("x $FLEET_VAR_ y", 0, RN_ENOTFOUND,
			   "unknown variable 'FLEET_VAR_'", 0);
	expect_render_fail("${RENEWD_VAR_}", 0, RN_ENOTFOUND,
			   "unknown variable 'RENEWD_VAR_'", 0);
}

static void
test_render_callback_error_aborts(void **state)
{
	expect_render_fail("a $FLEET_VAR_A b $FLEET_VAR_B", RN_EIO, RN_EIO,
			   "cannot render variable 'FLEET_VAR_A': "
			   "input/output error",
			   1);
	/* errmsg may be NULL */
	{
		lookup l = { vals, 0, 0, RN_BUF_INIT };
		rn_buf out = RN_BUF_INIT;

		assert_int_equal(prof_render("$FLEET_VAR_NOPE", 15, lookup_fn,
					     &l, &out, NULL),
				 RN_ENOTFOUND);
		assert_int_equal(out.len, 0);
		rn_buf_release(&out);
		rn_buf_release(&l.names);
	}
}

static void
test_render_unterminated(void **state)
{
	expect_render_fail("a ${FLEET_VAR_HOST_UUID", 0, RN_EINVAL,
			   "unterminated variable '${FLEET_VAR_HOST_UUID'", 0);
	expect_render_fail("${RENEWD_VAR_A x}", 0, RN_EINVAL,
			   "unterminated variable '${RENEWD_VAR_A'", 0);
	expect_render_fail("$FLEET_VAR_A ${FLEET_VAR_B", 0, RN_EINVAL,
			   "unterminated variable '${FLEET_VAR_B'", 1);
}

static void
test_render_other_dollars_pass_through(void **state)
{
	const char *text = "cost $5, $HOME, ${foo}, $$, $fleet_var_a, "
			   "${FLEET_VAR, $FLEET_VA, $RENEWD_VAR, ${, end $";

	expect_render(text, text, "");
	/* a lone `$` right before a variable */
	expect_render("$$FLEET_VAR_A $${FLEET_VAR_B}", "$x $y", "A,B,");
}

static void
test_render_length_not_nul(void **state)
{
	lookup l = { vals, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	char *err = NULL;

	/* only len bytes are rendered: the variable is cut to its prefix */
	assert_int_equal(prof_render("ab$FLEET_VAR_A", 13, lookup_fn, &l,
				     &out, &err),
			 RN_ENOTFOUND);
	assert_string_equal(err, "unknown variable 'FLEET_VAR_'");
	free(err);
	err = NULL;
	assert_int_equal(prof_render("ab$FLEET_VAR_Axyz", 14, lookup_fn, &l,
				     &out, &err),
			 0);
	assert_string_equal(out.data, "abx");
	rn_buf_release(&out);
	rn_buf_release(&l.names);
}

static void
test_var_known(void **state)
{
	assert_true(prof_var_known("SCEP_RENEWAL_ID", cas, NCAS));
	assert_true(prof_var_known("HOST_UUID", cas, NCAS));
	assert_true(prof_var_known("HOST_SERIAL_NUMBER", cas, NCAS));
	assert_true(prof_var_known("CUSTOM_SCEP_CHALLENGE_Test_SCEP", cas,
				   NCAS));
	assert_true(prof_var_known("CUSTOM_SCEP_PROXY_URL_Other_CA", cas,
				   NCAS));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_test_scep", cas,
				    NCAS));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_Ghost", cas, NCAS));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_", cas, NCAS));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_Test_SCEPX", cas,
				    NCAS));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_Test", cas, NCAS));
	assert_true(prof_var_known("CUSTOM_SCEP_PROXY_URL_Test_SCEP", cas, 1));
	assert_false(prof_var_known("CUSTOM_SCEP_PROXY_URL_Other_CA", cas, 1));
	assert_false(prof_var_known("CUSTOM_SCEP_CHALLENGE_Test_SCEP", NULL,
				    0));
	assert_false(prof_var_known("host_uuid", cas, NCAS));
	assert_false(prof_var_known("HOST_UUID_X", cas, NCAS));
	assert_false(prof_var_known("FLEET_VAR_HOST_UUID", cas, NCAS));
	assert_false(prof_var_known("", cas, NCAS));
	assert_false(prof_var_known(NULL, cas, NCAS));
}

/* ---- template files --------------------------------------------------- */

#define TOP_ID "com.example.test"
#define TOP_UUID "0B1A3D0C-5E2F-4C47-9D2B-6F1E9A7C3B21"
#define SCEP_ID "com.example.test.scep"
#define CH_OK "$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_Test_SCEP"
#define URL_OK "${FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP}"

static const char *
path_of(const char *name)
{
	return keep(rn_asprintf("%s/%s", tmpdir, name));
}

static void
write_bytes(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

/* One RDN per pair: subject("O", "Example", "CN", "x", NULL). */
static const char *
subject(const char *type, ...)
{
	rn_buf b = RN_BUF_INIT;
	const char *t = type, *v;
	va_list ap;

	assert_int_equal(rn_buf_adds(&b, "<array>"), 0);
	va_start(ap, type);
	while (t != NULL) {
		v = va_arg(ap, const char *);
		assert_int_equal(rn_buf_addf(&b,
					     "<array><array><string>%s</string>"
					     "<string>%s</string></array>"
					     "</array>\n",
					     t, v),
				 0);
		t = va_arg(ap, const char *);
	}
	va_end(ap);
	assert_int_equal(rn_buf_adds(&b, "</array>"), 0);
	return keep(rn_buf_detach(&b, NULL));
}

static const char *
subject_ok(void)
{
	return subject("O", "Example", "OU", "$FLEET_VAR_SCEP_RENEWAL_ID",
		       "CN", "WIFI $FLEET_VAR_HOST_SERIAL_NUMBER", NULL);
}

/* A SCEP payload; a NULL challenge or url leaves that key out. */
static const char *
scep(const char *ident, const char *challenge, const char *url,
     const char *subj)
{
	return keep(rn_asprintf(
		"<dict>\n"
		"<key>PayloadContent</key>\n<dict>\n"
		"%s%s%s"
		"<key>Key Type</key><string>RSA</string>\n"
		"<key>Key Usage</key><integer>5</integer>\n"
		"<key>Keysize</key><integer>2048</integer>\n"
		"<key>Subject</key>\n%s\n"
		"%s%s%s"
		"</dict>\n"
		"%s%s%s"
		"<key>PayloadType</key><string>com.apple.security.scep</string>\n"
		"<key>PayloadUUID</key><string>7C3E1F52-4A0B-4F8E-8D6A-2B9C5E7F1A03</string>\n"
		"<key>PayloadVersion</key><integer>1</integer>\n"
		"</dict>\n",
		challenge ? "<key>Challenge</key><string>" : "",
		challenge ? challenge : "", challenge ? "</string>\n" : "",
		subj,
		url ? "<key>URL</key><string>" : "", url ? url : "",
		url ? "</string>\n" : "",
		ident ? "<key>PayloadIdentifier</key><string>" : "",
		ident ? ident : "", ident ? "</string>\n" : ""));
}

static const char *
scep_ok(void)
{
	return scep(SCEP_ID, CH_OK, URL_OK, subject_ok());
}

static const char *
wifi(const char *ident, const char *ssid)
{
	return keep(rn_asprintf(
		"<dict>\n"
		"<key>SSID_STR</key><string>%s</string>\n"
		"<key>EncryptionType</key><string>WPA2</string>\n"
		"<key>PayloadCertificateUUID</key>"
		"<string>7C3E1F52-4A0B-4F8E-8D6A-2B9C5E7F1A03</string>\n"
		"<key>PayloadIdentifier</key><string>%s</string>\n"
		"<key>PayloadType</key><string>com.apple.wifi.managed</string>\n"
		"<key>PayloadUUID</key><string>5D2A8E71-0C4B-4E39-A6F2-9B1D3C7E8F40</string>\n"
		"<key>PayloadVersion</key><integer>1</integer>\n"
		"</dict>\n",
		ssid, ident));
}

/*
 * A whole profile. `head` is put right after <dict> (extra top-level
 * keys), then the NULL-terminated payloads.
 */
static const char *
profile_with(const char *head, const char *first, ...)
{
	rn_buf b = RN_BUF_INIT;
	const char *p = first;
	va_list ap;

	assert_int_equal(rn_buf_addf(&b,
				     "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
				     "<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" "
				     "\"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n"
				     "<plist version=\"1.0\">\n<dict>\n%s"
				     "<key>PayloadContent</key>\n<array>\n",
				     head),
			 0);
	va_start(ap, first);
	while (p != NULL) {
		assert_int_equal(rn_buf_adds(&b, p), 0);
		p = va_arg(ap, const char *);
	}
	va_end(ap);
	assert_int_equal(rn_buf_adds(&b,
				     "</array>\n"
				     "<key>PayloadDisplayName</key><string>Test profile</string>\n"
				     "<key>PayloadType</key><string>Configuration</string>\n"
				     "<key>PayloadVersion</key><integer>1</integer>\n"
				     "</dict>\n</plist>\n"),
			 0);
	return keep(rn_buf_detach(&b, NULL));
}

#define IDENTITY                                                        \
	"<key>PayloadIdentifier</key><string>" TOP_ID "</string>\n"      \
	"<key>PayloadUUID</key><string>" TOP_UUID "</string>\n"

/* Write text to name in the temp dir and load it with the test CAs. */
static int
load_text(const char *name, const char *text, const char *uuid,
	  prof_template **t, rn_errlist *errs)
{
	const char *path = path_of(name);

	write_bytes(path, text, strlen(text));
	rn_errlist_init(errs);
	return prof_template_load(path, uuid, cas, NCAS, t, errs);
}

static void
dump(const rn_errlist *errs)
{
	size_t i;

	for (i = 0; i < errs->n; i++)
		print_message("  got: %s\n", errs->msgs[i]);
}

/*
 * Load path, expect it to fail, and compare every message with the
 * NULL-terminated list of what follows the path (": payload ..." or
 * ":LINE: ..."), in order.
 */
static void
expect_errors_at(const char *path, ...)
{
	rn_errlist errs;
	prof_template *t = (prof_template *)0x1;
	const char *want;
	va_list ap;
	size_t i = 0;
	int rc;

	rn_errlist_init(&errs);
	rc = prof_template_load(path, NULL, cas, NCAS, &t, &errs);
	if (rc != RN_EINVAL)
		dump(&errs);
	assert_int_equal(rc, RN_EINVAL);
	assert_null(t);
	va_start(ap, path);
	while ((want = va_arg(ap, const char *)) != NULL) {
		char *full = rn_asprintf("%s%s", path, want);
		if (i >= errs.n || strcmp(errs.msgs[i], full) != 0)
			dump(&errs);
		assert_true(i < errs.n);
		assert_string_equal(errs.msgs[i], full);
		free(full);
		i++;
	}
	va_end(ap);
	if (i != errs.n)
		dump(&errs);
	assert_int_equal(errs.n, i);
	rn_errlist_release(&errs);
}

#define expect_errors(name, text, ...)                                  \
	do {                                                            \
		const char *p_ = path_of(name);                         \
		write_bytes(p_, (text), strlen(text));                  \
		expect_errors_at(p_, __VA_ARGS__);                      \
	} while (0)

static void
test_load_valid(void **state)
{
	const char *text = profile_with(IDENTITY, scep_ok(),
					wifi("com.example.test.wifi", "Corp"),
					NULL);
	prof_template *t = NULL;
	rn_errlist errs;
	char sha[65];

	assert_int_equal(load_text("ok.mobileconfig", text, NULL, &t, &errs),
			 0);
	assert_int_equal(errs.n, 0);
	assert_non_null(t);
	assert_string_equal(t->path, path_of("ok.mobileconfig"));
	assert_string_equal(t->uuid, TOP_UUID);
	assert_string_equal(t->identifier, TOP_ID);
	assert_string_equal(t->display_name, "Test profile");
	assert_string_equal(t->ca_name, "Test_SCEP");
	assert_int_equal(t->len, strlen(text));
	assert_memory_equal(t->text, text, t->len);
	rn_sha256_hex(text, strlen(text), sha);
	assert_string_equal(t->sha256, sha);
	prof_template_free(t);
	prof_template_free(NULL);
}

static void
test_load_uuid_override(void **state)
{
	const char *text = profile_with(IDENTITY, scep_ok(), NULL);
	prof_template *t = NULL;
	rn_errlist errs;

	assert_int_equal(load_text("ov.mobileconfig", text,
				   "a3c0e6f2-1111-4222-8333-944455556666", &t,
				   &errs),
			 0);
	assert_string_equal(t->uuid, "a3c0e6f2-1111-4222-8333-944455556666");
	assert_string_equal(t->identifier, TOP_ID);
	prof_template_free(t);
}

static void
test_load_accepts_variants(void **state)
{
	prof_template *t = NULL;
	rn_errlist errs;
	const char *text;

	/* RENEWD_VAR_ prefix, braces on the challenge, OIDs for CN/OU,
	 * renewal ID in the CN, the other configured CA, no display name */
	text = keep(rn_asprintf(
		"<plist version=\"1.0\"><dict>" IDENTITY
		"<key>PayloadContent</key><array>%s</array></dict></plist>",
		scep("s", "${RENEWD_VAR_CUSTOM_SCEP_CHALLENGE_Other_CA}",
		     "$RENEWD_VAR_CUSTOM_SCEP_PROXY_URL_Other_CA",
		     subject("2.5.4.11", "Devices", "2.5.4.3",
			     "${RENEWD_VAR_SCEP_RENEWAL_ID}", NULL))));
	assert_int_equal(load_text("v1.mobileconfig", text, NULL, &t, &errs),
			 0);
	assert_string_equal(t->ca_name, "Other_CA");
	assert_null(t->display_name);
	prof_template_free(t);

	/* renewal ID in an OU given by OID, several RDNs with a CN */
	text = profile_with(IDENTITY,
			    scep(SCEP_ID, CH_OK, URL_OK,
				 subject("CN", "host", "2.5.4.11",
					 "$FLEET_VAR_SCEP_RENEWAL_ID", "CN",
					 "second", NULL)),
			    NULL);
	assert_int_equal(load_text("v2.mobileconfig", text, NULL, &t, &errs),
			 0);
	assert_string_equal(t->ca_name, "Test_SCEP");
	prof_template_free(t);
}

static void
test_load_binary_plist(void **state)
{
	const char *xml = profile_with(IDENTITY, scep_ok(), NULL);
	const char *path = path_of("bin.mobileconfig");
	plist_t root = NULL;
	char *bin = NULL, sha[65];
	uint32_t blen = 0;
	prof_template *t = NULL;
	rn_errlist errs;

	plist_from_memory(xml, (uint32_t)strlen(xml), &root);
	assert_non_null(root);
	plist_to_bin(root, &bin, &blen);
	plist_free(root);
	assert_non_null(bin);
	assert_memory_equal(bin, "bplist00", 8);
	write_bytes(path, bin, blen);
	plist_to_bin_free(bin);

	rn_errlist_init(&errs);
	assert_int_equal(prof_template_load(path, NULL, cas, NCAS, &t, &errs),
			 0);
	assert_string_equal(t->uuid, TOP_UUID);
	assert_string_equal(t->ca_name, "Test_SCEP");
	/* the text to render is XML, with the variables in it */
	assert_int_equal(strncmp(t->text, "<?xml", 5), 0);
	assert_int_equal(t->len, strlen(t->text));
	assert_non_null(strstr(t->text, CH_OK));
	rn_sha256_hex(t->text, t->len, sha);
	assert_string_equal(t->sha256, sha);
	prof_template_free(t);
}

static void
test_load_two_scep_payloads(void **state)
{
	expect_errors("two.mobileconfig",
		      profile_with(IDENTITY, scep_ok(),
				   wifi("com.example.test.wifi", "Corp"),
				   scep("com.example.test.scep2", CH_OK,
					URL_OK, subject_ok()),
				   scep(NULL, CH_OK, URL_OK, subject_ok()),
				   NULL),
		      ": payload 'com.example.test.scep2': field "
		      "'PayloadType': more than one payload of type "
		      "'com.apple.security.scep' (the first is "
		      "'com.example.test.scep')",
		      ": payload 'PayloadContent[3]': field 'PayloadType': "
		      "more than one payload of type "
		      "'com.apple.security.scep' (the first is "
		      "'com.example.test.scep')",
		      NULL);
}

static void
test_load_no_scep_payload(void **state)
{
	expect_errors("none.mobileconfig",
		      profile_with(IDENTITY,
				   wifi("com.example.test.wifi", "Corp"), NULL),
		      ": payload 'com.example.test': field 'PayloadContent': "
		      "no payload of type 'com.apple.security.scep'",
		      NULL);
	expect_errors("empty.mobileconfig", profile_with(IDENTITY, NULL),
		      ": payload 'com.example.test': field 'PayloadContent': "
		      "no payload of type 'com.apple.security.scep'",
		      NULL);
}

static void
test_load_unconfigured_ca(void **state)
{
	/* said once per field, not again as an unknown variable */
	expect_errors("ghost.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID,
					"$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_Ghost",
					"$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Ghost",
					subject_ok()),
				   NULL),
		      ": payload 'com.example.test.scep': field 'Challenge': "
		      "certificate authority 'Ghost' is not configured",
		      ": payload 'com.example.test.scep': field 'URL': "
		      "certificate authority 'Ghost' is not configured",
		      NULL);
}

static void
test_load_challenge_and_url_differ(void **state)
{
	expect_errors("mix.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK,
					"$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Other_CA",
					subject_ok()),
				   NULL),
		      ": payload 'com.example.test.scep': field 'URL': names "
		      "certificate authority 'Other_CA' but 'Challenge' names "
		      "'Test_SCEP'",
		      NULL);
}

static void
test_load_challenge_and_url_exact(void **state)
{
	const char *ch =
		": payload 'com.example.test.scep': field 'Challenge': must "
		"be exactly '$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_<CA>' or "
		"'${FLEET_VAR_CUSTOM_SCEP_CHALLENGE_<CA>}' naming a "
		"configured certificate authority";
	const char *url =
		": payload 'com.example.test.scep': field 'URL': must be "
		"exactly '$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_<CA>' or "
		"'${FLEET_VAR_CUSTOM_SCEP_PROXY_URL_<CA>}' naming a "
		"configured certificate authority";

	/* text around the variable, a literal, the wrong variable */
	expect_errors("x1.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, "x" CH_OK,
					"https://ca.example.com/scep",
					subject_ok()),
				   NULL),
		      ch, url, NULL);
	expect_errors("x2.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID,
					"$FLEET_VAR_CUSTOM_SCEP_PROXY_URL_Test_SCEP",
					URL_OK "/", subject_ok()),
				   NULL),
		      ch, url, NULL);
	/* missing keys */
	expect_errors("x3.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, NULL, NULL, subject_ok()),
				   NULL),
		      ch, url, NULL);
}

static void
test_load_renewal_id_in_cn_and_ou(void **state)
{
	expect_errors("both.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					subject("OU",
						"$FLEET_VAR_SCEP_RENEWAL_ID",
						"CN",
						"x ${RENEWD_VAR_SCEP_RENEWAL_ID}",
						NULL)),
				   NULL),
		      ": payload 'com.example.test.scep': field 'Subject': "
		      "'$FLEET_VAR_SCEP_RENEWAL_ID' is in both CN and OU; use "
		      "only one of them",
		      NULL);
	/* same with OIDs */
	expect_errors("both2.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					subject("2.5.4.3",
						"$FLEET_VAR_SCEP_RENEWAL_ID",
						"2.5.4.11",
						"$FLEET_VAR_SCEP_RENEWAL_ID",
						NULL)),
				   NULL),
		      ": payload 'com.example.test.scep': field 'Subject': "
		      "'$FLEET_VAR_SCEP_RENEWAL_ID' is in both CN and OU; use "
		      "only one of them",
		      NULL);
}

static void
test_load_renewal_id_absent(void **state)
{
	const char *msg = ": payload 'com.example.test.scep': field "
			  "'Subject': '$FLEET_VAR_SCEP_RENEWAL_ID' must be "
			  "in a CN or OU value";

	expect_errors("absent.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					subject("CN", "plain", "OU", "Devices",
						NULL)),
				   NULL),
		      msg, NULL);
	/* in another attribute does not count */
	expect_errors("absent2.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					subject("O",
						"$FLEET_VAR_SCEP_RENEWAL_ID",
						"CN", "x", NULL)),
				   NULL),
		      msg, NULL);
	/* nor does a lookalike name */
	expect_errors("absent3.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					subject("CN", "$SCEP_RENEWAL_ID",
						NULL)),
				   NULL),
		      msg, NULL);
}

static void
test_load_subject_malformed(void **state)
{
	expect_errors("subj.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					"<array><array><array><string>CN</string>"
					"<string>$FLEET_VAR_SCEP_RENEWAL_ID</string>"
					"</array></array><array><string>OU"
					"</string></array></array>"),
				   NULL),
		      ": payload 'com.example.test.scep': field 'Subject': "
		      "RDN 2 must be an array of [type, value] string pairs",
		      NULL);
	expect_errors("subj2.mobileconfig",
		      profile_with(IDENTITY,
				   scep(SCEP_ID, CH_OK, URL_OK,
					"<string>CN=x</string>"),
				   NULL),
		      ": payload 'com.example.test.scep': field 'Subject': "
		      "must be an array of RDNs",
		      NULL);
}

static void
test_load_unknown_variable(void **state)
{
	const char *text, *at;
	char *line;
	size_t n = 1;

	text = profile_with(IDENTITY "<!-- ${RENEWD_VAR_IN_COMMENT} -->\n"
				     "<key>PayloadDescription</key>"
				     "<string>for $FLEET_VAR_HOST_UUID "
				     "$FLEET_VAR_TOP_NOPE</string>\n",
			    scep_ok(),
			    wifi("com.example.test.wifi",
				 "Corp $FLEET_VAR_NOPE ${FLEET_VAR_OPEN"),
			    NULL);
	at = strstr(text, "<!--");
	assert_non_null(at);
	for (const char *p = text; p < at; p++)
		n += *p == '\n';
	line = keep(rn_asprintf(":%zu: unknown variable "
				"'RENEWD_VAR_IN_COMMENT'",
				n));
	expect_errors("unknown.mobileconfig", text,
		      ": payload 'com.example.test.wifi': field 'SSID_STR': "
		      "unknown variable 'FLEET_VAR_NOPE'",
		      ": payload 'com.example.test.wifi': field 'SSID_STR': "
		      "unterminated variable '${FLEET_VAR_OPEN'",
		      ": payload 'com.example.test': field "
		      "'PayloadDescription': unknown variable "
		      "'FLEET_VAR_TOP_NOPE'",
		      line, NULL);
}

static void
test_load_not_a_plist(void **state)
{
	expect_errors("junk.mobileconfig", "this is not a plist\n",
		      ": not a property list", NULL);
	expect_errors("zero.mobileconfig", "", ": not a property list", NULL);
	expect_errors("array.mobileconfig",
		      "<plist version=\"1.0\"><array><string>x</string>"
		      "</array></plist>",
		      ": top level must be a dictionary", NULL);
}

static void
test_load_missing_identity(void **state)
{
	expect_errors("noid.mobileconfig",
		      profile_with("<key>PayloadUUID</key><string></string>\n",
				   scep_ok(), NULL),
		      ": field 'PayloadIdentifier': must be a non-empty string",
		      ": field 'PayloadUUID': must be a non-empty string",
		      NULL);
	expect_errors("nouuid.mobileconfig",
		      profile_with("<key>PayloadIdentifier</key>"
				   "<string>" TOP_ID "</string>\n",
				   scep_ok(), NULL),
		      ": payload 'com.example.test': field 'PayloadUUID': "
		      "must be a non-empty string",
		      NULL);
	/* a configured uuid does not excuse the profile from having one */
	{
		prof_template *t = (prof_template *)0x1;
		rn_errlist errs;

		assert_int_equal(
			load_text("nouuid2.mobileconfig",
				  profile_with("<key>PayloadIdentifier</key>"
					       "<string>" TOP_ID "</string>\n",
					       scep_ok(), NULL),
				  "a3c0e6f2-1111-4222-8333-944455556666", &t,
				  &errs),
			RN_EINVAL);
		assert_null(t);
		assert_int_equal(errs.n, 1);
		rn_errlist_release(&errs);
	}
}

static void
test_load_missing_file(void **state)
{
	expect_errors_at(path_of("does-not-exist.mobileconfig"),
			 ": cannot read: no such file or directory", NULL);
}

static void
test_load_size_cap(void **state)
{
	const char *base = profile_with(IDENTITY, scep_ok(), NULL);
	size_t blen = strlen(base);
	char *big = keep(malloc(PROF_MAX_SIZE + 2));
	const char *path = path_of("big.mobileconfig");
	prof_template *t = NULL;
	rn_errlist errs;

	/* exactly the cap: the profile and then spaces, which XML allows */
	memcpy(big, base, blen);
	memset(big + blen, ' ', PROF_MAX_SIZE - blen);
	write_bytes(path, big, PROF_MAX_SIZE);
	rn_errlist_init(&errs);
	assert_int_equal(prof_template_load(path, NULL, cas, NCAS, &t, &errs),
			 0);
	assert_int_equal(t->len, PROF_MAX_SIZE);
	prof_template_free(t);

	/* one byte more */
	big[PROF_MAX_SIZE] = ' ';
	write_bytes(path, big, PROF_MAX_SIZE + 1);
	expect_errors_at(path, ": larger than 1048576 bytes", NULL);
}

static void
test_load_collects_everything(void **state)
{
	const char *path = path_of("many.mobileconfig");
	const char *text = profile_with(
		IDENTITY,
		scep(SCEP_ID, "$FLEET_VAR_CUSTOM_SCEP_CHALLENGE_Ghost", URL_OK,
		     subject("CN", "plain", NULL)),
		wifi("com.example.test.wifi", "$FLEET_VAR_NOPE"), NULL);
	prof_template *t = (prof_template *)0x1;
	rn_errlist errs;

	/* problems are appended after what the list already holds */
	write_bytes(path, text, strlen(text));
	rn_errlist_init(&errs);
	rn_errlist_addf(&errs, "renewd.yaml:3:5: earlier problem");
	assert_int_equal(prof_template_load(path, NULL, cas, NCAS, &t, &errs),
			 RN_EINVAL);
	assert_null(t);
	if (errs.n != 4)
		dump(&errs);
	assert_int_equal(errs.n, 4);
	assert_string_equal(errs.msgs[0], "renewd.yaml:3:5: earlier problem");
	assert_string_equal(errs.msgs[1],
			    keep(rn_asprintf("%s: payload "
					     "'com.example.test.scep': field "
					     "'Challenge': certificate "
					     "authority 'Ghost' is not "
					     "configured",
					     path)));
	assert_string_equal(errs.msgs[2],
			    keep(rn_asprintf("%s: payload "
					     "'com.example.test.scep': field "
					     "'Subject': "
					     "'$FLEET_VAR_SCEP_RENEWAL_ID' "
					     "must be in a CN or OU value",
					     path)));
	assert_string_equal(errs.msgs[3],
			    keep(rn_asprintf("%s: payload "
					     "'com.example.test.wifi': field "
					     "'SSID_STR': unknown variable "
					     "'FLEET_VAR_NOPE'",
					     path)));
	rn_errlist_release(&errs);

	/* errs may be NULL: the result is the same */
	t = (prof_template *)0x1;
	assert_int_equal(prof_template_load(path, NULL, cas, NCAS, &t, NULL),
			 RN_EINVAL);
	assert_null(t);
}

/*
 * The shipped sample loads cleanly, and rendering it with awkward values
 * gives a plist whose CN holds exactly those values.
 */
static void
test_contrib_sample(void **state)
{
	static const char *const one_ca[] = { "Test_SCEP" };
	static const char *const sample_vals[] = {
		"CUSTOM_SCEP_CHALLENGE_Test_SCEP", "s3cr&t",
		"CUSTOM_SCEP_PROXY_URL_Test_SCEP",
		"http://127.0.0.1:8180/mdm/scep/proxy/h%2Cp%2CTest_SCEP%2Ct",
		"HOST_SERIAL_NUMBER", "C02<X>",
		"SCEP_RENEWAL_ID", "renewd-8f1c\"'",
		NULL,
	};
	const char *src = getenv("RENEWD_SRC");
	lookup l = { sample_vals, 0, 0, RN_BUF_INIT };
	rn_buf out = RN_BUF_INIT;
	prof_template *t = NULL;
	rn_errlist errs;
	plist_t root = NULL, node;
	char *path, *err = NULL;
	const char *s;

	if (src == NULL || *src == '\0') {
		skip();
		return;
	}
	path = keep(rn_asprintf("%s/contrib/profiles/wifi-scep.mobileconfig",
				src));
	rn_errlist_init(&errs);
	if (prof_template_load(path, NULL, one_ca, 1, &t, &errs) != 0)
		dump(&errs);
	assert_non_null(t);
	assert_int_equal(errs.n, 0);
	assert_string_equal(t->ca_name, "Test_SCEP");
	assert_string_equal(t->identifier, "com.example.renewd.wifi");
	assert_string_equal(t->uuid, "D5CE0366-BF0E-4141-9C60-A4900355618A");
	assert_non_null(t->display_name);

	assert_int_equal(prof_render(t->text, t->len, lookup_fn, &l, &out,
				     &err),
			 0);
	assert_null(strstr(out.data, "FLEET_VAR_"));
	plist_from_memory(out.data, (uint32_t)out.len, &root);
	assert_non_null(root);
	node = plist_access_path(root, 7, "PayloadContent", 0,
				 "PayloadContent", "Subject", 2, 0, 1);
	assert_non_null(node);
	s = plist_get_string_ptr(node, NULL);
	assert_string_equal(s, "C02<X> WIFI renewd-8f1c\"'");
	node = plist_access_path(root, 3, "PayloadContent", 0,
				 "PayloadContent");
	assert_string_equal(plist_get_string_ptr(
				    plist_dict_get_item(node, "Challenge"), NULL),
			    "s3cr&t");
	plist_free(root);
	rn_buf_release(&out);
	rn_buf_release(&l.names);
	prof_template_free(t);

	/* with no CAs configured it is refused */
	rn_errlist_init(&errs);
	t = (prof_template *)0x1;
	assert_int_equal(prof_template_load(path, NULL, NULL, 0, &t, &errs),
			 RN_EINVAL);
	assert_null(t);
	assert_int_equal(errs.n, 2);
	rn_errlist_release(&errs);
}

/*
 * A binary plist string may hold a NUL byte; its XML form would end the
 * text early (the loader once kept the full length of a shorter copy and
 * read past it, found by fuzz_profile). Such a template is refused.
 */
static void
test_load_nul_in_binary_string(void **state)
{
	static const char *const one_ca[] = { "Test_SCEP" };
	const char *src = getenv("RENEWD_SRC");
	prof_template *t = (prof_template *)0x1;
	rn_errlist errs;
	char *path;

	if (src == NULL || *src == '\0') {
		skip();
		return;
	}
	path = keep(rn_asprintf("%s/tests/fuzz/corpus/profile/"
				"regress-nul-in-binary-string.mobileconfig",
				src));
	rn_errlist_init(&errs);
	assert_int_equal(prof_template_load(path, NULL, one_ca, 1, &t, &errs),
			 RN_EINVAL);
	assert_null(t);
	assert_int_equal(errs.n, 1);
	assert_non_null(strstr(errs.msgs[0], "holds a NUL byte"));
	rn_errlist_release(&errs);
}

/* ---- setup ------------------------------------------------------------ */

static int
rm_entry(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int
setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "%s/rn-prof-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown(void **state)
{
	return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

#define T(f) cmocka_unit_test_teardown(f, gc)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_render_both_forms_and_prefixes),
		T(test_render_adjacent),
		T(test_render_greedy_name),
		T(test_render_callback_gets_stripped_name),
		T(test_render_escapes_values),
		T(test_render_escapes_long_value),
		T(test_xml_escape),
		T(test_render_unknown_variable),
		T(test_render_callback_error_aborts),
		T(test_render_unterminated),
		T(test_render_other_dollars_pass_through),
		T(test_render_length_not_nul),
		T(test_var_known),
		T(test_load_valid),
		T(test_load_uuid_override),
		T(test_load_accepts_variants),
		T(test_load_binary_plist),
		T(test_load_two_scep_payloads),
		T(test_load_no_scep_payload),
		T(test_load_unconfigured_ca),
		T(test_load_challenge_and_url_differ),
		T(test_load_challenge_and_url_exact),
		T(test_load_renewal_id_in_cn_and_ou),
		T(test_load_renewal_id_absent),
		T(test_load_subject_malformed),
		T(test_load_unknown_variable),
		T(test_load_not_a_plist),
		T(test_load_missing_identity),
		T(test_load_missing_file),
		T(test_load_size_cap),
		T(test_load_collects_everything),
		T(test_contrib_sample),
		T(test_load_nul_in_binary_string),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
