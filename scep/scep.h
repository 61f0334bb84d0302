/*
 * scep: the pieces of the SCEP proxy (RFC 8894) that understand SCEP.
 *
 *  - scep_proxy_id_parse: the `{id}` of /mdm/scep/proxy/{id}, a
 *    percent-encoded "host,profile,CA,token", checked field by field;
 *  - scep_certrep_parse: the signed attributes of the CertRep a CA returns
 *    for PKIOperation (pkiStatus, failInfo, ...). Only the outer CMS
 *    SignedData is read: nothing is decrypted and no signature is checked,
 *    because the proxy never holds a private key; the device checks it;
 *  - scep_cacert_parse / scep_ca_check: GetCACaps and GetCACert against a
 *    configured CA, asynchronously on the loop through net_http, for the
 *    health check and `renewctl ca check`.
 *
 * Invariants:
 *  - parsers take arbitrary bytes (they are fuzz targets) and either fill
 *    *out completely and return 0, or return a negative rn_err and leave
 *    *out untouched;
 *  - every text field is a fixed array, NUL-terminated, truncated safely
 *    (never in the middle of a UTF-8 sequence); control characters from
 *    the peer are replaced by '?', so fields can be logged as they are;
 *  - scep_ca_check follows net.h: an error return never calls back, a 0
 *    return calls back exactly once, from the loop.
 */
#ifndef RN_SCEP_H
#define RN_SCEP_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "config/config.h"
#include "net/net.h"

/* ---- proxy identifier ------------------------------------------------- */

#define SCEP_ID_RAW_MAX 512 /* decoded bytes */

typedef struct scep_proxy_id {
	char host[129];	   /* [A-Za-z0-9._-]{1,128} */
	char profile[129]; /* [A-Za-z0-9._-]{1,128} */
	char ca[65];	   /* [A-Za-z0-9_]{1,64} */
	char token[129];   /* base64url [A-Za-z0-9_-]{16,128}; a secret */
} scep_proxy_id;

/*
 * Parse the path segment after /mdm/scep/proxy/ exactly as received
 * (percent-encoded; "%2C" and "%2c" both mean ','). Decoding happens once:
 * a double-encoded "%252C" decodes to "%2C", which is not a valid field.
 * RN_EINVAL for a malformed escape, a decoded NUL, more than
 * SCEP_ID_RAW_MAX decoded bytes, other than 4 fields, an empty field or a
 * field outside its alphabet or length.
 */
int scep_proxy_id_parse(const char *raw_segment, scep_proxy_id *out);

/* ---- CertRep ---------------------------------------------------------- */

/* pkiStatus values (RFC 8894 3.2.1.3); UNKNOWN for any other value. */
enum scep_status {
	SCEP_UNKNOWN = -1,
	SCEP_SUCCESS = 0,
	SCEP_FAILURE = 2,
	SCEP_PENDING = 3,
};

/* failInfo values (RFC 8894 3.2.1.4). */
enum scep_failinfo {
	SCEP_FAIL_NONE = -1,	/* attribute absent */
	SCEP_FAIL_BAD_ALG = 0,
	SCEP_FAIL_BAD_MESSAGE_CHECK = 1,
	SCEP_FAIL_BAD_REQUEST = 2,
	SCEP_FAIL_BAD_TIME = 3,
	SCEP_FAIL_BAD_CERT_ID = 4,
	SCEP_FAIL_UNKNOWN = 5,	/* present but not one of the above */
};

/* messageType values seen by the proxy (RFC 8894 3.2.1.2). */
enum {
	SCEP_MSG_CERTREP = 3,
	SCEP_MSG_RENEWALREQ = 17,
	SCEP_MSG_PKCSREQ = 19,
};

typedef struct scep_certrep {
	int message_type;	 /* numeric messageType, -1 when absent/bad */
	int status;		 /* enum scep_status */
	int fail_info;		 /* enum scep_failinfo */
	char fail_info_text[256]; /* failInfoText, "" when absent */
	char transaction_id[129]; /* transactionID, "" when absent */
} scep_certrep;

/*
 * Read messageType, pkiStatus, failInfo, failInfoText and transactionID
 * from the signed attributes of the first SignerInfo of a DER CMS
 * SignedData. RN_EINVAL when the bytes are not a CMS SignedData, there is
 * no SignerInfo or no pkiStatus attribute.
 */
int scep_certrep_parse(const void *der, size_t len, scep_certrep *out);

/* "badAlg", "badMessageCheck", "badRequest", "badTime", "badCertId";
 * "none" for SCEP_FAIL_NONE and "unknown" for anything else. */
const char *scep_failinfo_name(int fail_info);
/* "SUCCESS", "FAILURE", "PENDING" or "UNKNOWN". */
const char *scep_status_name(int status);

/* ---- CA check --------------------------------------------------------- */

typedef struct scep_ca_info {
	int ok;			/* both operations answered and parsed */
	char error[256];	/* when !ok: "GetCACert: http 500", ... */
	char capabilities[512]; /* GetCACaps lines, trimmed, joined by ',' */
	char ca_subject[512];	/* RFC 2253, one line */
	char sha256[65];	/* lowercase hex of the CA certificate DER */
	int64_t not_before;	/* Unix seconds */
	int64_t not_after;
	char content_type[128]; /* of the GetCACert answer */
	int ncerts;		/* certificates in the GetCACert answer */
} scep_ca_info;

/*
 * Parse a GetCACert answer into the certificate fields of *out (subject,
 * sha256, validity, content_type, ncerts; ok and error are not touched).
 * "application/x-x509-ca-cert" is one DER certificate;
 * "application/x-x509-ca-ra-cert" a degenerate PKCS#7/CMS SignedData
 * whose certificate with basicConstraints CA:TRUE is the CA (else the
 * first). Any other or no content type: tried as both, in that order.
 * Parameters after ';' in the content type are ignored.
 * RN_EINVAL when no certificate can be read.
 */
int scep_cacert_parse(const void *body, size_t len, const char *content_type,
		      scep_ca_info *out);

typedef void (*scep_ca_check_cb)(void *arg, const scep_ca_info *info);

/*
 * GET <ca->url>?operation=GetCACaps, then ?operation=GetCACert, each with
 * a timeout of ca->timeout seconds and a 1 MiB response cap. info->ok is
 * set when both succeed; otherwise info->error says which step failed and
 * how ("GetCACaps: connect error: ...", "GetCACert: http 500",
 * "GetCACert: unparsable certificate", "... timeout"). info is valid
 * during the callback only. Returns RN_EINVAL for a bad argument and
 * RN_ENOMEM, and then never calls cb.
 */
int scep_ca_check(net_http *http, const cfg_ca *ca, scep_ca_check_cb cb,
		  void *arg);

#endif
