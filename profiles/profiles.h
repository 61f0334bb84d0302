/*
 * profiles: the admin's .mobileconfig templates. Loading parses the plist
 * with libplist (XML or binary) to check it and learn its identity;
 * rendering substitutes variables in the template text.
 *
 * Variables: `$NAME` and `${NAME}` where NAME starts with FLEET_VAR_ or
 * RENEWD_VAR_ (the two prefixes are equivalent) followed by [A-Za-z0-9_]+.
 * Any other `$` is left as it is. Values are XML-escaped (& < > " ').
 *
 * Invariants:
 *  - a prof_template always holds a parsed, valid plist dictionary with a
 *    PayloadUUID (or the uuid given by the configuration);
 *  - rendering never leaves a variable in place: an unknown one fails the
 *    whole render with a message naming it.
 */
#ifndef RN_PROFILES_H
#define RN_PROFILES_H

#include <stddef.h>

#include "common/common.h"

#define PROF_MAX_SIZE (1024 * 1024) /* templates larger than 1 MiB are refused */

typedef struct prof_template {
	char *path;
	char *uuid;	    /* configured uuid, else top-level PayloadUUID */
	char *identifier;   /* top-level PayloadIdentifier */
	char *display_name; /* top-level PayloadDisplayName, or NULL */
	char *ca_name;	    /* CA named by the SCEP payload's Challenge/URL
			     * variables, or NULL when it has none */
	char *text;	    /* the template as read (XML) */
	size_t len;
	char sha256[65];    /* hex SHA-256 of text */
} prof_template;

/*
 * Read and check a template. `uuid` overrides the PayloadUUID when not NULL.
 * ca_names lists the configured CA names. Every problem found is appended
 * to errs as "FILE: payload 'X': field 'Y': what is wrong" (or "FILE: ..."
 * for file-level problems) and RN_EINVAL is returned; *out is then NULL.
 *
 * Checks: the file is readable and <= PROF_MAX_SIZE; it parses as a plist
 * dictionary; it has PayloadUUID/PayloadIdentifier; exactly one payload of
 * PayloadType com.apple.security.scep in PayloadContent; that payload's
 * PayloadContent.Challenge is exactly the CUSTOM_SCEP_CHALLENGE_<CA>
 * variable and URL exactly the CUSTOM_SCEP_PROXY_URL_<CA> variable of one
 * and the same configured CA; the SCEP_RENEWAL_ID variable appears in the
 * Subject's CN or OU values and not in both; every variable in the text is
 * known (prof_var_known).
 */
int prof_template_load(const char *path, const char *uuid,
		       const char *const *ca_names, size_t nca,
		       prof_template **out, rn_errlist *errs);
void prof_template_free(prof_template *t);

/* Is NAME (without prefix) a variable we can render, given these CAs? */
int prof_var_known(const char *name, const char *const *ca_names, size_t nca);

/*
 * Variable lookup for rendering: `name` is without its prefix, e.g.
 * "SCEP_RENEWAL_ID" or "CUSTOM_SCEP_CHALLENGE_Test_SCEP". Append the raw
 * (unescaped) value to `val` and return 0, or return RN_ENOTFOUND for an
 * unknown variable or another negative code to abort the render.
 */
typedef int (*prof_var_fn)(void *ctx, const char *name, rn_buf *val);

/*
 * Render template text into `out` (appended). On failure returns the
 * error and, for RN_ENOTFOUND, sets *errmsg (malloc'd) to
 * "unknown variable 'FLEET_VAR_X'" naming the variable as written
 * (with its prefix).
 */
int prof_render(const char *text, size_t len, prof_var_fn fn, void *ctx,
		rn_buf *out, char **errmsg);

/* Append s XML-escaped to out. */
int prof_xml_escape(rn_buf *out, const char *s);

#endif
