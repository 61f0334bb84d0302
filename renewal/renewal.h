/*
 * renewal: what one job does and the pieces of configuration it needs.
 *
 *  - rn_conf: a loaded configuration with its profile templates, checked
 *    as a whole (a template that does not load is a configuration error
 *    reported at the `file:` line of the YAML);
 *  - certificate import: parse PEM or DER, find the renewal ID in CN/OU,
 *    match it to an open job, install it as the current certificate;
 *  - a renewal attempt: render the profile for a job (fresh SCEP token
 *    when the proxy URL is used) and push it through the MDM driver.
 */
#ifndef RN_RENEWAL_H
#define RN_RENEWAL_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"
#include "config/config.h"
#include "mdm/mdm.h"
#include "profiles/profiles.h"
#include "store/store.h"

typedef struct rn_conf {
	cfg *cfg;
	prof_template **profiles; /* one per cfg->profiles entry, same order */
	size_t nprofiles;
} rn_conf;

/* cfg_load + every profile template; all errors in errs. */
int renewal_conf_load(const char *path, rn_conf **out, rn_errlist *errs);
void renewal_conf_free(rn_conf *c);
const prof_template *renewal_conf_profile(const rn_conf *c,
					  const char *uuid);
const cfg_policy *renewal_conf_policy(const rn_conf *c, const char *ca,
				      const char *profile_uuid);
/* Write the configured profiles into the store (one transaction). */
int renewal_conf_sync(store *s, const rn_conf *c, int64_t now);

/* ---- certificates ----------------------------------------------------- */

/*
 * Parse one certificate, PEM (the first CERTIFICATE block) or DER, into
 * out's serial, subject, issuer, sha256, validity and renewal_id (the
 * first "renewd-<uuid>" found in a CN or OU, else NULL). *err (malloc'd)
 * says what is wrong on failure.
 */
int renewal_cert_parse(const void *data, size_t len, store_cert *out,
		       char **err);

typedef struct renewal_import {
	store_cert cert;      /* as installed; release with store_cert_release */
	int64_t verified_job; /* job moved to verified, 0 if none */
	int dup;	      /* already stored: nothing changed */
} renewal_import;

/*
 * Import a certificate for host x profile x CA: the host is created if
 * needed (with its serial number when `serial` is not NULL, which renders
 * as FLEET_VAR_HOST_SERIAL_NUMBER) and assigned the profile; renew_at comes from the policy; when
 * its renewal ID belongs to an open job of the same triple, that job is
 * verified. One transaction; nothing is written on any error (*err says
 * what and where).
 */
int renewal_cert_import(store *s, const rn_conf *c, const char *host,
			const char *serial, const char *profile, const char *ca, const void *data,
			size_t len, int64_t now, renewal_import *out,
			char **err);

/*
 * The shared core of an import: give a parsed certificate its triple, the
 * policy's renew_at, and install it as the triple's current certificate,
 * verifying the open job of the same triple its renewal ID belongs to.
 * The caller holds the transaction and has created the host. cert->job_id
 * is the verified job afterwards (0 if none).
 */
int renewal_cert_place(store *s, const rn_conf *c, store_cert *cert,
		       const char *host, const char *profile, const char *ca,
		       int64_t now, int *dup);

/* ---- rendering -------------------------------------------------------- */

/*
 * Render the job's profile into out. Mints a one-time SCEP token (stored
 * hashed, TTL of the CA) when the template uses the proxy URL variable.
 * `host` is the job's host row when the caller has it (else NULL: read
 * here). On failure *err (malloc'd) names the problem, e.g. the unknown
 * variable.
 */
int renewal_render(store *s, const rn_conf *c, const store_job *j,
		   const store_host *host, int64_t now, rn_buf *out,
		   char **err);
/*
 * What a device would get, with no side effects (renewctl profile render):
 * the challenge is masked and the proxy URL carries "PREVIEW-TOKEN", so a
 * preview neither shows a secret nor mints a usable token. `s` may be
 * read-only.
 */
int renewal_render_preview(store *s, const rn_conf *c, const char *host,
			   const char *profile, const char *renewal_id,
			   rn_buf *out, char **err);

#endif
