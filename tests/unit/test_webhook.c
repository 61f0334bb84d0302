/*
 * mdm/webhook: NanoMDM / MicroMDM webhook bodies and their signatures.
 *
 * Every body is built here: the device plist with libplist (XML for
 * check-ins, binary for command results, as devices send both), base64 with
 * rn_base64, the JSON with jansson, and the certificates of a
 * CertificateList with OpenSSL. Each test checks the exact fields, or the
 * exact error and that the event was left empty.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/x509.h>
#include <plist/plist.h>

#include "common/common.h"
#include "mdm/webhook.h"

#define UDID "0000FE00-1C2A3B4C5D6E7F80"
#define CMD "9f7c5e4a-1b2c-4d3e-8f90-a1b2c3d4e5f6"

/* ---- builders ----------------------------------------------------------- */

/* Base64 of a plist (XML or binary); consumes p. */
static char *
plist_b64(plist_t p, int binary)
{
	char *raw = NULL, *b64;
	uint32_t len = 0;

	if (binary)
		plist_to_bin(p, &raw, &len);
	else
		plist_to_xml(p, &raw, &len);
	assert_non_null(raw);
	b64 = rn_base64(raw, len);
	if (binary)
		plist_to_bin_free(raw);
	else
		plist_to_xml_free(raw);
	plist_free(p);
	assert_non_null(b64);
	return b64;
}

/*
 * A webhook body. kind is "checkin_event" or "acknowledge_event"; inner
 * gets udid and raw_payload unless it already has them. Takes inner and
 * raw_b64 (malloc'd or NULL).
 */
static char *
body_make(const char *topic, const char *created, const char *kind,
	  json_t *inner, const char *raw_b64)
{
	json_t *root = json_object();
	char *s;

	json_object_set_new(root, "topic", json_string(topic));
	json_object_set_new(root, "event_id", json_string("ev-0001"));
	if (created)
		json_object_set_new(root, "created_at", json_string(created));
	if (json_object_get(inner, "udid") == NULL)
		json_object_set_new(inner, "udid", json_string(UDID));
	if (raw_b64 && json_object_get(inner, "raw_payload") == NULL)
		json_object_set_new(inner, "raw_payload", json_string(raw_b64));
	json_object_set_new(root, kind, inner);
	s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	free((char *)raw_b64);
	assert_non_null(s);
	return s;
}

static plist_t
checkin_plist(const char *mt, const char *serial)
{
	plist_t p = plist_new_dict();

	plist_dict_set_item(p, "MessageType", plist_new_string(mt));
	plist_dict_set_item(p, "UDID", plist_new_string(UDID));
	if (serial)
		plist_dict_set_item(p, "SerialNumber", plist_new_string(serial));
	return p;
}

static plist_t
ack_plist(const char *status, const char *cmd)
{
	plist_t p = plist_new_dict();

	plist_dict_set_item(p, "Status", plist_new_string(status));
	plist_dict_set_item(p, "UDID", plist_new_string(UDID));
	if (cmd)
		plist_dict_set_item(p, "CommandUUID", plist_new_string(cmd));
	return p;
}

/* Parse a checkin body built from p; the event must parse. */
static void
parse_ok(char *body, mdm_wh_event *ev)
{
	char *err = NULL;
	int rc = mdm_wh_parse(body, strlen(body), ev, &err);

	if (rc)
		fail_msg("parse failed: %d %s", rc, err ? err : "(no message)");
	assert_null(err);
	free(body);
}

/* Parse body expecting rc and exactly msg (or a prefix when prefix). */
static void
parse_bad(char *body, size_t len, int want_rc, const char *msg, int prefix)
{
	mdm_wh_event ev, zero;
	char *err = NULL;
	int rc;

	memset(&zero, 0, sizeof(zero));
	memset(&ev, 0xa5, sizeof(ev));
	rc = mdm_wh_parse(body, len, &ev, &err);
	assert_int_equal(rc, want_rc);
	assert_non_null(err);
	if (prefix)
		assert_memory_equal(err, msg, strlen(msg));
	else
		assert_string_equal(err, msg);
	assert_memory_equal(&ev, &zero, sizeof(ev));
	free(err);
	free(body);
}

/* One self-signed P-256 certificate as DER; *len set. */
static unsigned char *
make_der(const char *cn, int *len)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
	X509 *x = X509_new();
	X509_NAME *name;
	unsigned char *der = NULL;

	assert_non_null(key);
	assert_non_null(x);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 42);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 86400);
	name = X509_get_subject_name(x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
				   (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(x, name);
	X509_set_pubkey(x, key);
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	*len = i2d_X509(x, &der);
	assert_true(*len > 0);
	X509_free(x);
	EVP_PKEY_free(key);
	return der;
}

/* ---- check-in events ---------------------------------------------------- */

static void
test_authenticate(void **state)
{
	mdm_wh_event ev;
	struct tm tm = { .tm_year = 124, .tm_mon = 4, .tm_mday = 1, .tm_hour = 12 };
	json_t *in = json_object();

	json_object_set_new(in, "url_params", json_pack("{s:s}", "group", "lab"));
	parse_ok(body_make("mdm.Authenticate", "2024-05-01T12:00:00Z",
			   "checkin_event", in,
			   plist_b64(checkin_plist("Authenticate", "C02XK1ABJGH5"), 0)),
		 &ev);
	assert_int_equal(ev.topic, MDM_WH_AUTHENTICATE);
	assert_string_equal(ev.topic_text, "mdm.Authenticate");
	assert_string_equal(ev.event_id, "ev-0001");
	assert_int_equal(ev.created_at, (int64_t)timegm(&tm));
	assert_int_equal(ev.kind, MDM_WH_KIND_CHECKIN);
	assert_string_equal(ev.udid, UDID);
	assert_null(ev.enrollment_id);
	assert_string_equal(ev.message_type, "Authenticate");
	assert_string_equal(ev.serial_number, "C02XK1ABJGH5");
	assert_null(ev.command_uuid);
	assert_null(ev.certs);
	mdm_wh_event_release(&ev);
	assert_null(ev.udid);
	mdm_wh_event_release(&ev); /* twice is harmless */
}

static void
test_token_update(void **state)
{
	mdm_wh_event ev;
	struct tm tm = { .tm_year = 124, .tm_mon = 4, .tm_mday = 1, .tm_hour = 12 };
	json_t *in = json_pack("{s:s}", "enrollment_id", "user-enr-7");

	/* offset and fraction: 14:00:00.123+02:00 is 12:00:00Z */
	parse_ok(body_make("mdm.TokenUpdate", "2024-05-01T14:00:00.123+02:00",
			   "checkin_event", in,
			   plist_b64(checkin_plist("TokenUpdate", NULL), 1)),
		 &ev);
	assert_int_equal(ev.topic, MDM_WH_TOKEN_UPDATE);
	assert_int_equal(ev.created_at, (int64_t)timegm(&tm));
	assert_string_equal(ev.enrollment_id, "user-enr-7");
	assert_string_equal(ev.message_type, "TokenUpdate");
	assert_null(ev.serial_number);
	mdm_wh_event_release(&ev);
}

static void
test_checkout(void **state)
{
	mdm_wh_event ev;

	/* a created_at that is not RFC 3339 is 0, not an error */
	parse_ok(body_make("mdm.CheckOut", "yesterday", "checkin_event",
			   json_object(),
			   plist_b64(checkin_plist("CheckOut", "SER1"), 0)),
		 &ev);
	assert_int_equal(ev.topic, MDM_WH_CHECKOUT);
	assert_int_equal(ev.kind, MDM_WH_KIND_CHECKIN);
	assert_int_equal(ev.created_at, 0);
	assert_string_equal(ev.message_type, "CheckOut");
	assert_string_equal(ev.serial_number, "SER1");
	mdm_wh_event_release(&ev);
}

/* ---- command results ---------------------------------------------------- */

static void
test_acknowledged(void **state)
{
	mdm_wh_event ev;
	plist_t p = ack_plist("Acknowledged", CMD);
	json_t *in = json_pack("{s:s, s:s}", "status", "Acknowledged",
			       "command_uuid", CMD);

	plist_dict_set_item(p, "RequestType", plist_new_string("InstallProfile"));
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event", in,
			   plist_b64(p, 1)),
		 &ev);
	assert_int_equal(ev.topic, MDM_WH_CONNECT);
	assert_int_equal(ev.kind, MDM_WH_KIND_ACK);
	assert_int_equal(ev.created_at, 0);
	assert_int_equal(ev.status, MDM_WH_STATUS_ACKNOWLEDGED);
	assert_string_equal(ev.status_text, "Acknowledged");
	assert_string_equal(ev.command_uuid, CMD);
	assert_string_equal(ev.request_type, "InstallProfile");
	assert_null(ev.error_text);
	assert_false(ev.has_cert_list);
	assert_null(ev.message_type);
	mdm_wh_event_release(&ev);
}

static plist_t
chain_entry(const char *dom, uint64_t code, const char *key, const char *desc)
{
	plist_t e = plist_new_dict();

	plist_dict_set_item(e, "ErrorDomain", plist_new_string(dom));
	plist_dict_set_item(e, "ErrorCode", plist_new_uint(code));
	plist_dict_set_item(e, key, plist_new_string(desc));
	return e;
}

static void
test_error_chain(void **state)
{
	mdm_wh_event ev;
	plist_t p = ack_plist("Error", CMD), chain = plist_new_array();
	plist_t e1 = chain_entry("MCProfileErrorDomain", 1009,
				 "LocalizedDescription",
				 "The profile \xe2\x80\x9cWi-Fi\xe2\x80\x9d is invalid.");

	/* LocalizedDescription wins over USEnglishDescription */
	plist_dict_set_item(e1, "USEnglishDescription", plist_new_string("english"));
	plist_array_append_item(chain, e1);
	plist_array_append_item(chain,
				chain_entry("MCInstallationErrorDomain", 4001,
					    "USEnglishDescription",
					    "Profile installation\nfailed."));
	plist_dict_set_item(p, "ErrorChain", chain);
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_pack("{s:s, s:s}", "status", "Error",
				     "command_uuid", CMD),
			   plist_b64(p, 0)),
		 &ev);
	assert_int_equal(ev.status, MDM_WH_STATUS_ERROR);
	assert_string_equal(ev.command_uuid, CMD);
	assert_string_equal(ev.error_text,
			    "MCProfileErrorDomain 1009: The profile \xe2\x80\x9cWi-Fi"
			    "\xe2\x80\x9d is invalid.; MCInstallationErrorDomain "
			    "4001: Profile installation failed.");
	mdm_wh_event_release(&ev);
}

static void
test_error_text_capped(void **state)
{
	mdm_wh_event ev;
	plist_t p = ack_plist("Error", CMD), chain = plist_new_array();
	char big[700];
	int i;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	for (i = 0; i < 5; i++)
		plist_array_append_item(chain, chain_entry("D", (uint64_t)i,
							   "LocalizedDescription", big));
	plist_dict_set_item(p, "ErrorChain", chain);
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_object(), plist_b64(p, 1)),
		 &ev);
	assert_int_equal(strlen(ev.error_text), MDM_WH_MAX_ERROR_TEXT - 1);
	assert_string_equal(ev.error_text + MDM_WH_MAX_ERROR_TEXT - 4, "...");
	assert_memory_equal(ev.error_text, "D 0: xxx", 8);
	mdm_wh_event_release(&ev);
}

static void
test_not_now(void **state)
{
	mdm_wh_event ev;

	/* status and command UUID only in the device's plist */
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_pack("{s:s}", "enrollment_id", "E1"),
			   plist_b64(ack_plist("NotNow", CMD), 1)),
		 &ev);
	assert_int_equal(ev.status, MDM_WH_STATUS_NOT_NOW);
	assert_string_equal(ev.status_text, "NotNow");
	assert_string_equal(ev.command_uuid, CMD);
	assert_string_equal(ev.enrollment_id, "E1");
	assert_null(ev.error_text);
	mdm_wh_event_release(&ev);

	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_pack("{s:s}", "status", "Idle"),
			   plist_b64(ack_plist("Idle", NULL), 1)),
		 &ev);
	assert_int_equal(ev.status, MDM_WH_STATUS_IDLE);
	assert_null(ev.command_uuid);
	mdm_wh_event_release(&ev);
}

static plist_t
cert_entry(const unsigned char *der, int len, const char *cn, int ident)
{
	plist_t e = plist_new_dict();

	plist_dict_set_item(e, "Data", plist_new_data((const char *)der, len));
	plist_dict_set_item(e, "CommonName", plist_new_string(cn));
	plist_dict_set_item(e, "IsIdentity", plist_new_bool(ident));
	return e;
}

static void
test_certificate_list(void **state)
{
	mdm_wh_event ev;
	plist_t p = ack_plist("Acknowledged", CMD), list = plist_new_array();
	unsigned char *d1, *d2;
	int l1, l2;

	d1 = make_der("device-identity", &l1);
	d2 = make_der("Root CA", &l2);
	plist_array_append_item(list, cert_entry(d1, l1, "device-identity", 1));
	plist_array_append_item(list, cert_entry(d2, l2, "Root CA", 0));
	plist_dict_set_item(p, "CertificateList", list);
	plist_dict_set_item(p, "RequestType", plist_new_string("CertificateList"));
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_pack("{s:s}", "command_uuid", CMD),
			   plist_b64(p, 1)),
		 &ev);
	assert_true(ev.has_cert_list);
	assert_string_equal(ev.request_type, "CertificateList");
	assert_int_equal(ev.ncerts, 2);
	assert_int_equal(ev.certs[0].len, l1);
	assert_memory_equal(ev.certs[0].der, d1, l1);
	assert_string_equal(ev.certs[0].common_name, "device-identity");
	assert_int_equal(ev.certs[0].is_identity, 1);
	assert_int_equal(ev.certs[1].len, l2);
	assert_memory_equal(ev.certs[1].der, d2, l2);
	assert_string_equal(ev.certs[1].common_name, "Root CA");
	assert_int_equal(ev.certs[1].is_identity, 0);
	mdm_wh_event_release(&ev);
	OPENSSL_free(d1);
	OPENSSL_free(d2);

	/* an empty list is still a list */
	p = ack_plist("Acknowledged", CMD);
	plist_dict_set_item(p, "CertificateList", plist_new_array());
	parse_ok(body_make("mdm.Connect", NULL, "acknowledge_event",
			   json_object(), plist_b64(p, 0)),
		 &ev);
	assert_true(ev.has_cert_list);
	assert_int_equal(ev.ncerts, 0);
	mdm_wh_event_release(&ev);
}

/* ---- signatures --------------------------------------------------------- */

static void
test_verify(void **state)
{
	static const char key[] = "webhook-secret";
	static const char body[] = "{\"topic\":\"mdm.Connect\"}";
	unsigned char mac[32];
	unsigned int maclen = sizeof(mac);
	char sig[64], bad[64];

	assert_non_null(HMAC(EVP_sha256(), key, (int)strlen(key),
			     (const unsigned char *)body, strlen(body), mac, &maclen));
	assert_int_equal(EVP_EncodeBlock((unsigned char *)sig, mac, 32), 44);

	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), sig), 0);
	/* one changed body byte, another key, a flipped signature bit */
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body) - 1, sig),
			 RN_EPROTO);
	assert_int_equal(mdm_wh_verify("other", 5, body, strlen(body), sig),
			 RN_EPROTO);
	strcpy(bad, sig);
	bad[5] = bad[5] == 'A' ? 'B' : 'A';
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), bad),
			 RN_EPROTO);
	/* truncated to a valid base64 prefix, not base64, empty, missing */
	snprintf(bad, sizeof(bad), "%.40s", sig);
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), bad),
			 RN_EPROTO);
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), "!!!!"),
			 RN_EPROTO);
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), ""),
			 RN_EPROTO);
	assert_int_equal(mdm_wh_verify(key, strlen(key), body, strlen(body), NULL),
			 RN_EPROTO);
	/* the hex form (what rn_hmac_sha256_hex gives) is not the header */
	{
		char hex[65];
		assert_int_equal(rn_hmac_sha256_hex(key, strlen(key), body,
						    strlen(body), hex), 0);
		assert_int_equal(mdm_wh_verify(key, strlen(key), body,
					       strlen(body), hex), RN_EPROTO);
	}
	assert_int_equal(mdm_wh_verify("", 0, body, strlen(body), sig), RN_EINVAL);
}

/* ---- malformed bodies --------------------------------------------------- */

static char *
dup(const char *s)
{
	char *p = strdup(s);
	assert_non_null(p);
	return p;
}

/* NanoMDM sends "event_id": "": the body's hash stands in for it. */
static void
test_event_id_derived(void **state)
{
	char *a, *b, *p, hex[65], want[80];
	mdm_wh_event ea, eb;
	char *err = NULL;

	a = body_make("mdm.Authenticate", "2026-11-23T10:00:00Z",
		      "checkin_event", json_object(),
		      plist_b64(checkin_plist("Authenticate", "SN1"), 0));
	p = strstr(a, "\"ev-0001\"");
	assert_non_null(p);
	memmove(p + 1, p + 8, strlen(p + 8) + 1); /* -> "" */
	assert_non_null(strstr(a, "\"event_id\":\"\""));
	assert_int_equal(mdm_wh_parse(a, strlen(a), &ea, &err), 0);
	rn_sha256_hex(a, strlen(a), hex);
	snprintf(want, sizeof(want), "sha256:%s", hex);
	assert_string_equal(ea.event_id, want);
	/* another event (another time) gets another ID */
	b = strdup(a);
	assert_non_null(b);
	p = strstr(b, "10:00:00Z");
	assert_non_null(p);
	p[1] = '1';
	assert_int_equal(mdm_wh_parse(b, strlen(b), &eb, &err), 0);
	assert_string_not_equal(ea.event_id, eb.event_id);
	mdm_wh_event_release(&ea);
	mdm_wh_event_release(&eb);
	free(a);
	free(b);
}

static void
test_malformed(void **state)
{
	char *b;
	plist_t p, list;

	b = dup("{\"topic\": \"mdm.Connect\", ");
	parse_bad(b, strlen(b), RN_EINVAL, "body: not valid JSON at line", 1);
	b = dup("[1, 2]");
	parse_bad(b, strlen(b), RN_EINVAL, "body: must be a JSON object", 0);

	b = dup("{\"topic\":\"mdm.Authenticate\",\"event_id\":7}");
	parse_bad(b, strlen(b), RN_EINVAL, "event_id: must be a string", 0);
	b = dup("{\"event_id\":\"e\"}");
	parse_bad(b, strlen(b), RN_EINVAL, "topic: missing", 0);
	b = dup("{\"topic\":\"mdm.Connect\",\"event_id\":\"e\"}");
	parse_bad(b, strlen(b), RN_EINVAL,
		  "body: neither checkin_event nor acknowledge_event", 0);

	/* udid with bad characters, and too long */
	b = body_make("mdm.Authenticate", NULL, "checkin_event",
		      json_pack("{s:s}", "udid", "abc/../def"),
		      plist_b64(checkin_plist("Authenticate", NULL), 0));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.udid: must be 1-64 letters, digits or '-'", 0);
	b = body_make("mdm.Authenticate", NULL, "checkin_event",
		      json_pack("{s:s}", "udid",
				"0123456789012345678901234567890123456789"
				"01234567890123456789012345"),
		      plist_b64(checkin_plist("Authenticate", NULL), 0));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.udid: longer than 64 bytes", 0);

	/* raw_payload not base64; "Q=Q=" is padding in the middle */
	b = body_make("mdm.Connect", NULL, "acknowledge_event",
		      json_pack("{s:s}", "raw_payload", "PD94bWw*"), NULL);
	parse_bad(b, strlen(b), RN_EINVAL,
		  "acknowledge_event.raw_payload: not valid base64", 0);
	b = body_make("mdm.Authenticate", NULL, "checkin_event",
		      json_pack("{s:s}", "raw_payload", "Q=Q="), NULL);
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.raw_payload: not valid base64", 0);
	b = body_make("mdm.Authenticate", NULL, "checkin_event",
		      json_pack("{s:i}", "raw_payload", 5), NULL);
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.raw_payload: must be a string", 0);

	/* raw_payload decodes but is not a plist, or not a dictionary */
	b = body_make("mdm.Authenticate", NULL, "checkin_event", json_object(),
		      strdup("aGVsbG8sIHdvcmxkIQ=="));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.raw_payload: not a property list", 0);
	p = plist_new_array();
	plist_array_append_item(p, plist_new_string("x"));
	b = body_make("mdm.Authenticate", NULL, "checkin_event", json_object(),
		      plist_b64(p, 0));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.raw_payload: not a dictionary", 0);

	/* wrong types inside */
	p = checkin_plist("Authenticate", NULL);
	plist_dict_set_item(p, "SerialNumber", plist_new_uint(5));
	b = body_make("mdm.Authenticate", NULL, "checkin_event", json_object(),
		      plist_b64(p, 1));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "checkin_event.raw_payload.SerialNumber: must be a string", 0);
	p = ack_plist("Error", CMD);
	list = plist_new_array();
	plist_array_append_item(list, plist_new_string("boom"));
	plist_dict_set_item(p, "ErrorChain", list);
	b = body_make("mdm.Connect", NULL, "acknowledge_event", json_object(),
		      plist_b64(p, 0));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "acknowledge_event.raw_payload.ErrorChain[0]: must be a dictionary", 0);

	/* CertificateList item whose Data is a string */
	p = ack_plist("Acknowledged", CMD);
	list = plist_new_array();
	plist_array_append_item(list, cert_entry((const unsigned char *)"\x30\x00",
						 2, "ok", 0));
	plist_array_append_item(list, plist_new_dict());
	plist_dict_set_item(plist_array_get_item(list, 1), "Data",
			    plist_new_string("MIIB..."));
	plist_dict_set_item(p, "CertificateList", list);
	b = body_make("mdm.Connect", NULL, "acknowledge_event", json_object(),
		      plist_b64(p, 1));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "acknowledge_event.raw_payload.CertificateList[1].Data: must be data",
		  0);

	/* topic and event kind disagree */
	b = body_make("mdm.Connect", NULL, "checkin_event", json_object(),
		      plist_b64(checkin_plist("Authenticate", NULL), 0));
	parse_bad(b, strlen(b), RN_EINVAL,
		  "topic: 'mdm.Connect' needs acknowledge_event", 0);

	/* over the size cap, whatever it holds */
	b = malloc(MDM_WH_MAX_BODY + 1);
	assert_non_null(b);
	memset(b, ' ', MDM_WH_MAX_BODY + 1);
	parse_bad(b, MDM_WH_MAX_BODY + 1, RN_ETOOBIG, "body: larger than", 1);
}

/* Every proper prefix of a good body is rejected cleanly (and ASan-clean). */
static void
test_truncations(void **state)
{
	plist_t p = ack_plist("Acknowledged", CMD), list = plist_new_array();
	unsigned char *d;
	int l;
	char *body, *err;
	size_t n, i;
	mdm_wh_event ev;

	d = make_der("x", &l);
	plist_array_append_item(list, cert_entry(d, l, "x", 1));
	plist_dict_set_item(p, "CertificateList", list);
	body = body_make("mdm.Connect", "2024-01-01T00:00:00Z", "acknowledge_event",
			 json_object(), plist_b64(p, 1));
	n = strlen(body);
	for (i = 0; i < n; i++) {
		char *copy = malloc(i ? i : 1);
		assert_non_null(copy);
		memcpy(copy, body, i);
		err = NULL;
		assert_int_equal(mdm_wh_parse(copy, i, &ev, &err), RN_EINVAL);
		assert_non_null(err);
		assert_null(ev.udid);
		free(err);
		free(copy);
	}
	assert_int_equal(mdm_wh_parse(body, n, &ev, NULL), 0);
	assert_int_equal(ev.ncerts, 1);
	assert_memory_equal(ev.certs[0].der, d, l);
	mdm_wh_event_release(&ev);
	free(body);
	OPENSSL_free(d);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_authenticate),
		cmocka_unit_test(test_token_update),
		cmocka_unit_test(test_checkout),
		cmocka_unit_test(test_acknowledged),
		cmocka_unit_test(test_error_chain),
		cmocka_unit_test(test_error_text_capped),
		cmocka_unit_test(test_not_now),
		cmocka_unit_test(test_certificate_list),
		cmocka_unit_test(test_verify),
		cmocka_unit_test(test_malformed),
		cmocka_unit_test(test_event_id_derived),
		cmocka_unit_test(test_truncations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
