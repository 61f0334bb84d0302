/*
 * renewal: configuration bundle (YAML + templates), certificate import and
 * matching by renewal ID, and profile rendering for a job.
 */
#define _GNU_SOURCE
#include "renewal.h"
#include "common/metrics.h"
#include "notifiers/alert.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "scheduler/policy.h"

/* ---- configuration bundle --------------------------------------------- */

int
renewal_conf_load(const char *path, rn_conf **out, rn_errlist *errs)
{
	rn_conf *c;
	const char **names = NULL;
	size_t i, j, nerr_before = errs->n;
	int rc;

	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return RN_ENOMEM;
	rc = cfg_load(path, &c->cfg, errs);
	if (rc) {
		free(c);
		return rc;
	}
	c->profiles = calloc(c->cfg->nprofiles ? c->cfg->nprofiles : 1,
			     sizeof(*c->profiles));
	names = calloc(c->cfg->ncas ? c->cfg->ncas : 1, sizeof(*names));
	if (c->profiles == NULL || names == NULL) {
		free(names);
		renewal_conf_free(c);
		return RN_ENOMEM;
	}
	for (i = 0; i < c->cfg->ncas; i++)
		names[i] = c->cfg->cas[i].name;
	c->nprofiles = c->cfg->nprofiles;
	/*
	 * A template that does not load is a configuration error, reported
	 * at the line of its `file:` key so the operator sees both places.
	 */
	for (i = 0; i < c->cfg->nprofiles; i++) {
		const cfg_profile *p = &c->cfg->profiles[i];
		rn_errlist perr;

		rn_errlist_init(&perr);
		if (prof_template_load(p->file, p->uuid, names, c->cfg->ncas,
				       &c->profiles[i], &perr) != RN_OK) {
			for (j = 0; j < perr.n; j++)
				rn_errlist_addf(errs, "%s:%d:%d: profile: %s",
						path, p->line, p->col,
						perr.msgs[j]);
			if (perr.n == 0)
				rn_errlist_addf(errs, "%s:%d:%d: profile '%s' "
						"cannot be loaded", path,
						p->line, p->col, p->file);
		}
		rn_errlist_release(&perr);
	}
	for (i = 0; i < c->nprofiles; i++)
		for (j = 0; j < i; j++)
			if (c->profiles[i] && c->profiles[j] &&
			    strcmp(c->profiles[i]->uuid,
				   c->profiles[j]->uuid) == 0)
				rn_errlist_addf(
				    errs, "%s:%d:%d: profile '%s' has the "
				    "same uuid '%s' as '%s'", path,
				    c->cfg->profiles[i].line,
				    c->cfg->profiles[i].col,
				    c->cfg->profiles[i].file,
				    c->profiles[i]->uuid,
				    c->cfg->profiles[j].file);
	free(names);
	if (errs->n > nerr_before) {
		renewal_conf_free(c);
		return RN_ECONFIG;
	}
	*out = c;
	return RN_OK;
}

void
renewal_conf_free(rn_conf *c)
{
	size_t i;

	if (c == NULL)
		return;
	for (i = 0; i < c->nprofiles; i++)
		prof_template_free(c->profiles[i]);
	free(c->profiles);
	cfg_free(c->cfg);
	free(c);
}

const prof_template *
renewal_conf_profile(const rn_conf *c, const char *uuid)
{
	size_t i;

	for (i = 0; i < c->nprofiles; i++)
		if (c->profiles[i] && strcmp(c->profiles[i]->uuid, uuid) == 0)
			return c->profiles[i];
	return NULL;
}

const cfg_policy *
renewal_conf_policy(const rn_conf *c, const char *ca, const char *profile_uuid)
{
	const prof_template *t = renewal_conf_profile(c, profile_uuid);

	return cfg_policy_match(c->cfg, ca, profile_uuid,
				t ? t->identifier : NULL);
}

int
renewal_conf_sync(store *s, const rn_conf *c, int64_t now)
{
	size_t i;
	int rc = store_begin(s);

	for (i = 0; rc == RN_OK && i < c->nprofiles; i++) {
		const prof_template *t = c->profiles[i];
		store_profile p;

		memset(&p, 0, sizeof(p));
		p.uuid = t->uuid;
		p.identifier = t->identifier;
		p.name = t->display_name;
		p.ca_name = t->ca_name;
		p.sha256 = (char *)t->sha256;
		p.source_path = t->path;
		p.template = t->text;
		p.template_len = t->len;
		rc = store_profile_upsert(s, &p, now);
	}
	if (rc == RN_OK)
		return store_commit(s);
	store_rollback(s);
	return rc;
}

/* ---- certificates ----------------------------------------------------- */

static int64_t
asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	memset(&tm, 0, sizeof(tm));
	if (ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

/* The first "renewd-<uuid>" inside s, copied to out (44 chars + NUL). */
static int
find_renewal_id(const char *s, char out[45])
{
	const char *p = s;
	int i;

	while ((p = strstr(p, "renewd-")) != NULL) {
		const char *u = p + 7;
		for (i = 0; i < 36; i++) {
			char ch = u[i];
			if (i == 8 || i == 13 || i == 18 || i == 23) {
				if (ch != '-')
					break;
			} else if (!isxdigit((unsigned char)ch)) {
				break;
			}
		}
		if (i == 36) {
			memcpy(out, p, 43);
			out[43] = '\0';
			for (i = 7; i < 43; i++)
				out[i] = (char)tolower((unsigned char)out[i]);
			return 1;
		}
		p += 7;
	}
	return 0;
}

static char *
name_oneline(X509_NAME *n)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data, *s = NULL;
	long len;

	if (b == NULL)
		return NULL;
	if (X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		len = BIO_get_mem_data(b, &data);
		s = rn_strndup(data, (size_t)len);
	}
	BIO_free(b);
	return s;
}

int
renewal_cert_parse(const void *data, size_t len, store_cert *out, char **err)
{
	X509 *x = NULL;
	X509_NAME *subj;
	BIGNUM *bn = NULL;
	unsigned char *der = NULL;
	char *hexs = NULL, rid[45];
	int derlen, i, rc = RN_EINVAL;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (len > 16 && memmem(data, len, "-----BEGIN", 10) != NULL) {
		BIO *b = BIO_new_mem_buf(data, (int)len);
		if (b)
			x = PEM_read_bio_X509(b, NULL, NULL, NULL);
		BIO_free(b);
		if (x == NULL) {
			*err = rn_strdup("PEM data holds no readable "
					 "CERTIFICATE block");
			goto out;
		}
	} else {
		const unsigned char *p = data;
		x = d2i_X509(NULL, &p, (long)len);
		if (x == NULL || p != (const unsigned char *)data + len) {
			*err = rn_strdup("not a PEM or DER X.509 certificate");
			goto out;
		}
	}
	bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
	hexs = bn ? BN_bn2hex(bn) : NULL;
	out->serial = rn_strdup(hexs ? hexs : "");
	out->subject = name_oneline(X509_get_subject_name(x));
	out->issuer = name_oneline(X509_get_issuer_name(x));
	out->not_valid_before = asn1_time_unix(X509_get0_notBefore(x));
	out->not_valid_after = asn1_time_unix(X509_get0_notAfter(x));
	if (out->not_valid_after <= out->not_valid_before) {
		*err = rn_strdup("certificate validity is empty or unreadable");
		goto out;
	}
	derlen = i2d_X509(x, &der);
	if (derlen <= 0) {
		*err = rn_strdup("cannot encode certificate");
		goto out;
	}
	out->sha256 = malloc(65);
	if (out->sha256)
		rn_sha256_hex(der, (size_t)derlen, out->sha256);
	/* The renewal ID may sit in any CN or OU entry. */
	subj = X509_get_subject_name(x);
	for (i = 0; i < X509_NAME_entry_count(subj) && !out->renewal_id; i++) {
		X509_NAME_ENTRY *e = X509_NAME_get_entry(subj, i);
		int nid = OBJ_obj2nid(X509_NAME_ENTRY_get_object(e));
		unsigned char *u = NULL;
		if (nid != NID_commonName && nid != NID_organizationalUnitName)
			continue;
		if (ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(e)) < 0)
			continue;
		if (find_renewal_id((char *)u, rid))
			out->renewal_id = rn_strdup(rid);
		OPENSSL_free(u);
	}
	if (out->serial && out->subject && out->issuer && out->sha256)
		rc = RN_OK;
	else
		*err = rn_strdup("out of memory");
out:
	if (rc)
		store_cert_release(out);
	OPENSSL_free(der);
	OPENSSL_free(hexs);
	BN_free(bn);
	X509_free(x);
	ERR_clear_error();
	return rc;
}

int
renewal_cert_place(store *s, const rn_conf *c, store_cert *cert,
		   const char *host, const char *profile, const char *ca,
		   int64_t now, int *dup)
{
	const cfg_policy *pol = renewal_conf_policy(c, ca, profile);
	notif_subject x;
	store_job job;
	int64_t job_id = 0;
	int rc;

	free(cert->host_uuid);
	free(cert->profile_uuid);
	free(cert->ca_name);
	free(cert->policy);
	cert->host_uuid = rn_strdup(host);
	cert->profile_uuid = rn_strdup(profile);
	cert->ca_name = rn_strdup(ca);
	cert->policy = rn_strdup(pol->name);
	if (!cert->host_uuid || !cert->profile_uuid || !cert->ca_name ||
	    !cert->policy)
		return RN_ENOMEM;
	cert->renew_at = sched_renew_at(pol, cert->not_valid_before,
					cert->not_valid_after, host, profile);
	/* A renewal ID ties the certificate to exactly one job; a job of
	 * another host or profile is never verified by it. */
	if (cert->renewal_id &&
	    store_job_by_renewal_id(s, cert->renewal_id, &job) == RN_OK) {
		if (strcmp(job.host_uuid, host) == 0 &&
		    strcmp(job.profile_uuid, profile) == 0 &&
		    strcmp(job.ca_name, ca) == 0)
			job_id = job.id;
		store_job_release(&job);
	}
	rc = store_cert_install(s, cert, job_id, now, dup);
	if (rc || *dup)
		return rc;
	/* alerts resolved (and renewal.verified) in the same transaction */
	memset(&x, 0, sizeof(x));
	x.host = host;
	x.profile = profile;
	x.ca = ca;
	x.job = cert->job_id;
	x.renewal_id = cert->renewal_id;
	x.not_valid_after = cert->not_valid_after;
	rc = notif_cert_replaced(s, &x, now);
	if (rc == RN_OK && cert->job_id)
		rc = notif_renewal_verified(s, &x, now);
	/* Counted when written: a caller's later rollback (a store error)
	 * would leave one verified too many. In renewctl the count stays in
	 * its own process, unseen: /metrics counts what the daemon did. */
	if (rc == RN_OK && cert->job_id)
		metrics_counter_add("renewd_job_outcomes_total", 1, "result",
				    "verified", NULL);
	return rc;
}

int
renewal_cert_import(store *s, const rn_conf *c, const char *host,
		    const char *serial, const char *profile, const char *ca, const void *data,
		    size_t len, int64_t now, renewal_import *out, char **err)
{
	const prof_template *t = renewal_conf_profile(c, profile);
	int rc;

	memset(out, 0, sizeof(*out));
	*err = NULL;
	if (cfg_ca_find(c->cfg, ca) == NULL) {
		*err = rn_asprintf("certificate authority '%s' is not in the "
				   "configuration", ca);
		return RN_ENOTFOUND;
	}
	if (t == NULL) {
		*err = rn_asprintf("profile '%s' is not in the configuration",
				   profile);
		return RN_ENOTFOUND;
	}
	rc = renewal_cert_parse(data, len, &out->cert, err);
	if (rc)
		return rc;
	rc = store_begin(s);
	if (rc)
		goto fail;
	rc = store_host_upsert(s, host, serial, now);
	if (rc == RN_OK)
		rc = store_host_profile_add(s, host, profile);
	if (rc == RN_OK)
		rc = renewal_cert_place(s, c, &out->cert, host, profile, ca,
					now, &out->dup);
	if (rc == RN_OK)
		rc = store_commit(s);
	if (rc) {
		store_rollback(s);
		goto fail;
	}
	out->verified_job = out->dup ? 0 : out->cert.job_id;
	return RN_OK;
fail:
	*err = rn_asprintf("cannot store certificate: %s (%s)",
			   rn_strerror(rc), store_errmsg(s));
	store_cert_release(&out->cert);
	return rc;
}

/* ---- rendering -------------------------------------------------------- */

typedef struct render_ctx {
	store *s;
	const rn_conf *c;
	const char *host_uuid, *profile_uuid, *renewal_id;
	int64_t job_id;
	int preview; /* mask the challenge, mint no token */
	const store_host *host; /* the caller's, or own */
	store_host own;
	int64_t now;
} render_ctx;

/* <public_url>/mdm/scep/proxy/<host>%2C<profile>%2C<CA>%2C<token> */
static void
proxy_url(rn_buf *val, const render_ctx *r, const cfg_ca *ca,
	  const char *token)
{
	rn_buf_adds(val, r->c->cfg->http.public_url);
	rn_buf_adds(val, "/mdm/scep/proxy/");
	rn_buf_add_pct(val, r->host_uuid);
	rn_buf_adds(val, "%2C");
	rn_buf_add_pct(val, r->profile_uuid);
	rn_buf_adds(val, "%2C");
	rn_buf_add_pct(val, ca->name);
	rn_buf_adds(val, "%2C");
	rn_buf_adds(val, token);
}

/* A fresh one-time token for the proxy URL; only its key is stored. */
static int
mint_token(render_ctx *r, const cfg_ca *ca, rn_buf *val)
{
	char tok[RN_TOKEN_LEN + 1], key[RN_TOKEN_KEY_LEN + 1];
	int rc;

	if (r->preview) {
		proxy_url(val, r, ca, "PREVIEW-TOKEN");
		return RN_OK;
	}
	rc = rn_token_new(tok);
	if (rc)
		return rc;
	rn_token_key(tok, key);
	rc = store_token_insert(r->s, key, r->host_uuid, r->profile_uuid,
				ca->name, r->job_id, r->now + ca->token_ttl,
				r->now);
	if (rc == RN_OK)
		proxy_url(val, r, ca, tok);
	explicit_bzero(tok, sizeof(tok));
	return rc;
}

static int
render_var(void *arg, const char *name, rn_buf *val)
{
	render_ctx *r = arg;
	const cfg_ca *ca;

	if (strcmp(name, "SCEP_RENEWAL_ID") == 0)
		return rn_buf_adds(val, r->renewal_id);
	if (strcmp(name, "HOST_UUID") == 0)
		return rn_buf_adds(val, r->host_uuid);
	if (strcmp(name, "HOST_SERIAL_NUMBER") == 0)
		return rn_buf_adds(val, r->host->serial_number
					    ? r->host->serial_number : "");
	if (strncmp(name, "CUSTOM_SCEP_CHALLENGE_", 22) == 0) {
		ca = cfg_ca_find(r->c->cfg, name + 22);
		if (ca == NULL)
			return RN_ENOTFOUND;
		return rn_buf_adds(val, r->preview ? "********" : ca->challenge);
	}
	if (strncmp(name, "CUSTOM_SCEP_PROXY_URL_", 22) == 0) {
		ca = cfg_ca_find(r->c->cfg, name + 22);
		if (ca == NULL)
			return RN_ENOTFOUND;
		return mint_token(r, ca, val);
	}
	return RN_ENOTFOUND;
}

/* The render both the job and the preview use. */
static int
render(render_ctx *r, rn_buf *out, char **err)
{
	const prof_template *t = renewal_conf_profile(r->c, r->profile_uuid);
	int rc;

	*err = NULL;
	if (t == NULL) {
		*err = rn_asprintf("profile '%s' is not in the configuration",
				   r->profile_uuid);
		return RN_ENOTFOUND;
	}
	if (r->host == NULL) {
		if (store_host_get(r->s, r->host_uuid, &r->own) != RN_OK)
			memset(&r->own, 0, sizeof(r->own));
		r->host = &r->own;
	}
	rc = prof_render(t->text, t->len, render_var, r, out, err);
	if (rc && *err == NULL)
		*err = rn_asprintf("cannot render profile: %s",
				   rn_strerror(rc));
	store_host_release(&r->own);
	return rc;
}

int
renewal_render(store *s, const rn_conf *c, const store_job *j,
	       const store_host *host, int64_t now, rn_buf *out, char **err)
{
	render_ctx r;

	memset(&r, 0, sizeof(r));
	r.s = s;
	r.c = c;
	r.host_uuid = j->host_uuid;
	r.host = host;
	r.profile_uuid = j->profile_uuid;
	r.renewal_id = j->renewal_id;
	r.job_id = j->id;
	r.now = now;
	return render(&r, out, err);
}

int
renewal_render_preview(store *s, const rn_conf *c, const char *host,
		       const char *profile, const char *renewal_id,
		       rn_buf *out, char **err)
{
	render_ctx r;

	memset(&r, 0, sizeof(r));
	r.s = s;
	r.c = c;
	r.host_uuid = host;
	r.profile_uuid = profile;
	r.renewal_id = renewal_id;
	r.preview = 1;
	r.now = rn_now();
	return render(&r, out, err);
}
