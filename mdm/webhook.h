/*
 * mdm/webhook: parse and authenticate the JSON events that NanoMDM and
 * MicroMDM POST to /webhook/mdm.
 *
 * A body is one JSON object:
 *   {"topic": "mdm.Authenticate", "event_id": "...", "created_at": "RFC 3339",
 *    "checkin_event":     {"udid", "enrollment_id"?, "url_params"?,
 *                          "raw_payload": base64 plist}}
 * or, for command results (topic "mdm.Connect"),
 *    "acknowledge_event": {"udid", "enrollment_id"?, "status",
 *                          "command_uuid", "raw_payload": base64 plist}
 * raw_payload is the device's own check-in or command-result plist.
 *
 * The body is outside input: the parser accepts any bytes and either fills
 * an event or returns an error with a message naming the field, never a
 * partial event. Messages never echo input values.
 *
 * Invariants of a filled mdm_wh_event:
 *  - exactly one of checkin / acknowledge data is meaningful, told by kind;
 *  - topic MDM_WH_AUTHENTICATE, _TOKEN_UPDATE and _CHECKOUT always come with
 *    kind MDM_WH_KIND_CHECKIN, MDM_WH_CONNECT with MDM_WH_KIND_ACK;
 *  - every char * is NUL-terminated, malloc'd and owned by the event;
 *    optional ones are NULL when absent or empty, never "";
 *  - udid matches [A-Za-z0-9-]{1,64}; event_id is 1-128 bytes without
 *    control characters, or, when the body has none or an empty one (as
 *    NanoMDM sends), "sha256:<hex of the body>", so a redelivery is
 *    still recognised;
 *  - certs is non-NULL only with has_cert_list, ncerts <= MDM_WH_MAX_CERTS,
 *    each der non-empty and at most MDM_WH_MAX_CERT_LEN bytes.
 */
#ifndef RN_MDM_WEBHOOK_H
#define RN_MDM_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#define MDM_WH_MAX_BODY (4u * 1024 * 1024) /* larger bodies: RN_ETOOBIG */
#define MDM_WH_MAX_ID 128		   /* event_id, topic, command UUID */
#define MDM_WH_MAX_CERTS 1000		   /* CertificateList entries */
#define MDM_WH_MAX_CERT_LEN (64u * 1024)   /* one certificate's DER */
#define MDM_WH_MAX_ERROR_TEXT 1024	   /* error_text, NUL included */

typedef enum mdm_wh_topic {
	MDM_WH_AUTHENTICATE, /* "mdm.Authenticate" */
	MDM_WH_TOKEN_UPDATE, /* "mdm.TokenUpdate" */
	MDM_WH_CHECKOUT,     /* "mdm.CheckOut" */
	MDM_WH_CONNECT,	     /* "mdm.Connect": a command result */
	MDM_WH_OTHER,	     /* anything else; see topic_text */
} mdm_wh_topic;

typedef enum mdm_wh_kind {
	MDM_WH_KIND_CHECKIN, /* body had checkin_event */
	MDM_WH_KIND_ACK,     /* body had acknowledge_event */
} mdm_wh_kind;

typedef enum mdm_wh_status {
	MDM_WH_STATUS_ACKNOWLEDGED,
	MDM_WH_STATUS_ERROR,
	MDM_WH_STATUS_COMMAND_FORMAT_ERROR,
	MDM_WH_STATUS_NOT_NOW,
	MDM_WH_STATUS_IDLE,
	MDM_WH_STATUS_OTHER, /* see status_text */
} mdm_wh_status;

/* One entry of a CertificateList command result. */
typedef struct mdm_wh_cert {
	unsigned char *der; /* the certificate as the device sent it */
	size_t len;
	char *common_name; /* or NULL */
	int is_identity;   /* IsIdentity, 0 when absent */
} mdm_wh_cert;

typedef struct mdm_wh_event {
	mdm_wh_topic topic;
	char *topic_text; /* e.g. "mdm.Authenticate" */
	char *event_id;
	int64_t created_at; /* Unix seconds; 0 when absent or unparsable */
	mdm_wh_kind kind;
	char *udid;
	char *enrollment_id; /* or NULL */

	/* kind == MDM_WH_KIND_CHECKIN, from raw_payload */
	char *message_type;  /* MessageType, always set */
	char *serial_number; /* SerialNumber, or NULL */

	/* kind == MDM_WH_KIND_ACK */
	mdm_wh_status status;
	char *status_text;  /* "Acknowledged", "Error", ... */
	char *command_uuid; /* JSON command_uuid, else CommandUUID; NULL for
			       Idle */
	char *request_type; /* RequestType when the device sent it, or NULL */
	/*
	 * ErrorChain as "domain code: description; ..." where description is
	 * LocalizedDescription, else USEnglishDescription; control characters
	 * become spaces; cut to MDM_WH_MAX_ERROR_TEXT - 1 bytes ending in
	 * "...". NULL when there is no ErrorChain.
	 */
	char *error_text;
	int has_cert_list; /* the result carried a CertificateList */
	mdm_wh_cert *certs;
	size_t ncerts;
} mdm_wh_event;

/*
 * Check the X-Hmac-Signature header: the standard base64 of the raw
 * HMAC-SHA256 of the body under key, compared in constant time.
 * Returns 0 when it matches, RN_EPROTO when it does not or signature_b64 is
 * NULL or not base64, RN_EINVAL for an empty key (an empty secret would
 * authenticate anyone), RN_ECRYPTO when OpenSSL fails.
 */
int mdm_wh_verify(const void *key, size_t keylen, const void *body, size_t len,
		  const char *signature_b64);

/*
 * Parse one webhook body into ev (caller-owned, need not be initialised).
 * Returns 0 and fills ev, or an error and leaves ev zeroed:
 *   RN_EINVAL  malformed body (bad JSON, missing or wrongly typed field,
 *              bad base64, raw_payload not a plist dictionary, ...);
 *   RN_ETOOBIG body over MDM_WH_MAX_BODY, too many or too large certs;
 *   RN_ENOMEM.
 * On error and err != NULL, *err is a malloc'd message such as
 * "acknowledge_event.raw_payload: not valid base64" (NULL only on
 * RN_ENOMEM); the caller frees it.
 */
int mdm_wh_parse(const void *body, size_t len, mdm_wh_event *ev, char **err);

/* Free what ev holds and zero it; safe on a zeroed or released event. */
void mdm_wh_event_release(mdm_wh_event *ev);

#endif
