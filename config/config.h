/*
 * config: the YAML configuration file (schema in docs/ARCHITECTURE.md and
 * renewd.yaml(5)) loaded with libyaml into typed structs.
 *
 * Invariants:
 *  - cfg_load() either returns a complete, validated cfg or no cfg at all
 *    plus every error found, each "FILE:LINE:COL: what is wrong" (1-based
 *    line and column);
 *  - unknown keys, wrong types, bad durations, missing required keys and
 *    unreadable secret files/unset secret env vars are errors;
 *  - secrets (CA challenges, MDM API key, HMAC keys, tokens) are resolved
 *    at load time from `*_env` or `*_file` and never appear in messages;
 *  - relative paths are kept as written (relative to the working directory).
 */
#ifndef RN_CONFIG_H
#define RN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "common/common.h"

typedef struct cfg_daemon {
	char *database;	      /* default "var/renewd.db" */
	char *control_socket; /* default "var/renewd.sock" */
	int64_t scan_interval; /* default 5m */
	int max_in_flight;     /* default 64, 1..100000 */
	int log_level;	       /* RN_LOG_*, default info */
	int log_format;	       /* RN_LOGFMT_*, default logfmt */
} cfg_daemon;

typedef struct cfg_http {
	char *listen;	     /* "127.0.0.1:8180" (default) */
	char *public_url;    /* default "http://" + listen; no trailing '/' */
	char *api_token;     /* secret from api_token_file, or NULL */
	char *webhook_hmac_key; /* secret from webhook_hmac_key_file, or NULL */
} cfg_http;

typedef struct cfg_ca {
	char *name;	 /* [A-Za-z0-9_]+, unique */
	char *url;	 /* http:// or https:// */
	char *challenge; /* secret, from challenge_env or challenge_file */
	int64_t token_ttl; /* default 7d */
	int64_t timeout;   /* default 30s */
	int64_t cache_ttl; /* proxy's GetCACaps/GetCACert cache; 60s, 0 off */
	char *ca_file;	   /* PEM CAs trusted for its https, or NULL */
	int line, col;	   /* where it was defined, for later messages */
} cfg_ca;

typedef struct cfg_profile {
	char *file; /* path of the .mobileconfig template */
	char *uuid; /* from `uuid:`, else NULL: the loader of the template
		     * fills it in from the top-level PayloadUUID */
	int line, col; /* of the `file:` value, for messages about the file */
} cfg_profile;

typedef struct cfg_assignment {
	char *profile; /* glob over profile uuid or identifier */
} cfg_assignment;

typedef struct cfg_policy {
	char *name;
	char *match_ca;	     /* glob, default "*" */
	char *match_profile; /* glob over profile uuid or identifier, default "*" */
	int64_t renew_before;	 /* seconds; 0 when renew_at_percent is used */
	double renew_at_percent; /* 0 when renew_before is used; (0,100) */
	double short_lived_fraction; /* default 0.5, (0,1) */
	int64_t smear;		     /* default 0 */
	int max_attempts;	     /* default 8, >= 1 */
	int64_t backoff_initial;     /* default 5m */
	int64_t backoff_max;	     /* default 12h, >= initial */
	int64_t verify_timeout;	     /* default 72h */
	int rate_limit;		     /* renewals per rate_period; 0 = none */
	int64_t rate_period;	     /* seconds of "600/m" -> 60 */
	int64_t deadlines[8];	     /* default {7d, 1d}, descending */
	int ndeadlines;
} cfg_policy;

enum { CFG_MDM_EXEC, CFG_MDM_WEBHOOK, CFG_MDM_NANOMDM, CFG_MDM_MICROMDM };

typedef struct cfg_mdm {
	int driver;	/* CFG_MDM_* */
	char **command; /* exec: argv, NULL-terminated; NULL otherwise */
	size_t ncommand;
	char *url;     /* webhook / nanomdm / micromdm */
	char *api_key; /* secret: api_key_env / api_key_file; webhook: bearer */
	char *hmac_key; /* secret: hmac_key_env / hmac_key_file (webhook) */
	int64_t timeout; /* default 30s */
	char *ca_file;	 /* PEM CAs trusted for its https, or NULL */
} cfg_mdm;

enum { CFG_NOTIF_WEBHOOK, CFG_NOTIF_EXEC, CFG_NOTIF_SMTP, CFG_NOTIF_SYSLOG };

typedef struct cfg_notifier {
	char *name;
	int driver; /* CFG_NOTIF_* */
	char *url;
	char *format; /* "json" | "slack" */
	char **command;
	size_t ncommand;
	char *token;	/* secret: token_env / token_file */
	char *hmac_key; /* secret: hmac_key_env / hmac_key_file */
	int starttls;
	char *username; /* secret-ish: username_env / username_file */
	char *password; /* secret: password_env / password_file */
	char *from;
	char **to;
	size_t nto;
	char **events;
	size_t nevents;
	int64_t timeout; /* default 30s */
	char *ca_file;	 /* PEM CAs trusted for its TLS, or NULL */
} cfg_notifier;

typedef struct cfg {
	char *path; /* the file it was loaded from */
	cfg_daemon daemon;
	cfg_http http;
	cfg_ca *cas;
	size_t ncas;
	cfg_profile *profiles;
	size_t nprofiles;
	cfg_assignment *assignments;
	size_t nassignments;
	cfg_policy *policies;
	size_t npolicies;
	cfg_mdm mdm;
	cfg_notifier *notifiers;
	size_t nnotifiers;
} cfg;

/*
 * Load and validate `path`. On success *out is a new cfg (cfg_free it) and
 * 0 is returned. On failure RN_ECONFIG is returned, *out is NULL and every
 * error is appended to errs (never only the first one).
 */
int cfg_load(const char *path, cfg **out, rn_errlist *errs);
void cfg_free(cfg *c);

const cfg_ca *cfg_ca_find(const cfg *c, const char *name);

/*
 * The first policy whose match globs accept (ca, profile uuid or profile
 * identifier), or the built-in default policy when none does.
 */
const cfg_policy *cfg_policy_match(const cfg *c, const char *ca,
				   const char *profile_uuid,
				   const char *profile_identifier);
/* The built-in defaults documented in renewd.yaml(5). */
const cfg_policy *cfg_policy_default(void);

#endif
