/*
 * The SCEP proxy request: "SEGMENT?QUERY", where SEGMENT is the raw
 * {id} of /mdm/scep/proxy/{id} and QUERY its query string.
 *
 *  - scep_proxy_id_parse on the segment; an accepted identifier must
 *    match its documented alphabets and agree with net_httpd_pct_decode,
 *    the server's own path decoder, on what the segment decodes to;
 *  - the query as the proxy sees it: libmicrohttpd splits it at '&' and
 *    the first '=' (with renewd's unescape callback, which leaves the
 *    text alone), net_httpd's query_decode turns '+' into ' ' and decodes
 *    with net_httpd_pct_decode (repeated here: it is static), and http.c
 *    takes `operation` and re-encodes `message` for the CA with
 *    rn_buf_add_pct, which must decode back to the same bytes.
 */
#include "tests/fuzz/fuzz.h"

#include <ctype.h>

#include "net/httpd.h"
#include "scep/scep.h"

static int
in_set(const char *s, size_t min, size_t max, const char *extra)
{
	size_t n = strlen(s), i;

	if (n < min || n > max)
		return 0;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr(extra, s[i]))
			return 0;
	return 1;
}

static void
check_id(const char *segment)
{
	scep_proxy_id id, before;
	char dec[SCEP_ID_RAW_MAX + 1], joined[4 * 130];
	int rc, n;

	memset(&id, 0x5a, sizeof(id));
	before = id;
	rc = scep_proxy_id_parse(segment, &id);
	if (rc != RN_OK) {
		FUZZ_CHECK(rc == RN_EINVAL);
		FUZZ_CHECK(memcmp(&id, &before, sizeof(id)) == 0);
		return;
	}
	FUZZ_CHECK(in_set(id.host, 1, 128, "._-"));
	FUZZ_CHECK(in_set(id.profile, 1, 128, "._-"));
	FUZZ_CHECK(in_set(id.ca, 1, 64, "_"));
	FUZZ_CHECK(in_set(id.token, 16, 128, "_-"));
	n = net_httpd_pct_decode(segment, dec, sizeof(dec));
	FUZZ_CHECK(n >= 0);
	snprintf(joined, sizeof(joined), "%s,%s,%s,%s", id.host, id.profile,
		 id.ca, id.token);
	FUZZ_CHECK(strcmp(dec, joined) == 0);
}

/* net_httpd's query_decode: '+' is a space, then %HH. */
static char *
query_decode(const char *s, size_t n)
{
	char *tmp = malloc(n + 1), *out = malloc(n + 1);
	size_t i;

	if (tmp == NULL || out == NULL)
		abort();
	for (i = 0; i < n; i++)
		tmp[i] = s[i] == '+' ? ' ' : s[i];
	tmp[n] = '\0';
	if (net_httpd_pct_decode(tmp, out, n + 1) < 0) {
		free(out);
		out = NULL;
	}
	free(tmp);
	return out;
}

/* http.c: the message as it goes upstream, and back. */
static void
check_message(const char *msg)
{
	rn_buf url = RN_BUF_INIT;
	const char *p;
	char *back;
	size_t i;

	for (p = msg; *p; p++) {
		char one[2] = {*p == ' ' ? '+' : *p, '\0'};
		FUZZ_CHECK(rn_buf_add_pct(&url, one) == RN_OK);
	}
	for (i = 0; i < url.len; i++)
		FUZZ_CHECK(isalnum((unsigned char)url.data[i]) ||
			   strchr("-._~%", url.data[i]));
	back = malloc(url.len + 1);
	if (back == NULL)
		abort();
	FUZZ_CHECK(net_httpd_pct_decode(url.len ? url.data : "", back,
					url.len + 1) >= 0);
	for (i = 0; msg[i]; i++)
		FUZZ_CHECK(back[i] == (msg[i] == ' ' ? '+' : msg[i]));
	FUZZ_CHECK(back[i] == '\0');
	free(back);
	rn_buf_release(&url);
}

static void
check_query(const char *q)
{
	int have_op = 0, have_msg = 0;

	while (*q) {
		size_t len = strcspn(q, "&"), klen;
		const char *eq = memchr(q, '=', len);
		char *k, *v;

		klen = eq ? (size_t)(eq - q) : len;
		k = query_decode(q, klen);
		v = eq ? query_decode(eq + 1, len - klen - 1)
		       : query_decode("", 0);
		if (k && v) {
			if (!have_op && strcmp(k, "operation") == 0) {
				have_op = 1;
				(void)(strcmp(v, "PKIOperation") == 0 ||
				       strcmp(v, "GetCACaps") == 0 ||
				       strcmp(v, "GetCACert") == 0);
			} else if (!have_msg && strcmp(k, "message") == 0) {
				have_msg = 1;
				check_message(v);
			}
		}
		free(k);
		free(v);
		q += len;
		if (*q == '&')
			q++;
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_cstr(data, size), *q;

	q = strchr(s, '?');
	if (q != NULL)
		*q++ = '\0';
	check_id(s);
	if (q != NULL)
		check_query(q);
	free(s);
	return 0;
}
