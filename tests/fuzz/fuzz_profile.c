/*
 * The .mobileconfig templates: prof_template_load (libplist parse and
 * every validation) on the input as a file, then prof_render of what
 * loaded, and prof_render of the raw input. A template that loaded names
 * only known variables, so rendering it must succeed.
 */
#include "tests/fuzz/fuzz.h"

#include "profiles/profiles.h"

static const char *const cas[] = {"Test_SCEP", "Other_CA"};
#define NCAS (sizeof(cas) / sizeof(cas[0]))

/* Values with every character the renderer has to escape; a long one
 * takes the renderer's heap path. */
static int
var(void *ctx, const char *name, rn_buf *val)
{
	int i, rc = 0;

	(void)ctx;
	if (!prof_var_known(name, cas, NCAS))
		return RN_ENOTFOUND;
	if (strcmp(name, "HOST_SERIAL_NUMBER") == 0) {
		for (i = 0; i < 100 && rc == 0; i++)
			rc = rn_buf_adds(val, "C02<&>\"'");
		return rc;
	}
	if (strcmp(name, "SCEP_RENEWAL_ID") == 0)
		return rn_buf_adds(val, "renewd-0f8fad5b-d9cb-469f-a165-"
					"70867728950e");
	if (strncmp(name, "CUSTOM_SCEP_PROXY_URL_", 22) == 0)
		return rn_buf_adds(val, "https://renewd.example/mdm/scep/proxy/"
					"h%2Cp%2Cc%2Ctoken?a=1&b=2");
	return rn_buf_adds(val, "<v a=\"1\" b='2'>&amp;$FLEET_VAR_X</v>");
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	prof_template *t = NULL;
	rn_errlist errs;
	rn_buf out = RN_BUF_INIT;
	char *errmsg = NULL;
	int rc;

	rn_errlist_init(&errs);
	rc = prof_template_load(path, NULL, cas, NCAS, &t, &errs);
	if (rc == RN_OK) {
		FUZZ_CHECK(t != NULL && errs.n == 0);
		FUZZ_CHECK(t->uuid && t->identifier && t->text);
		FUZZ_CHECK(strlen(t->sha256) == 64);
		rc = prof_render(t->text, t->len, var, NULL, &out, &errmsg);
		if (rc != RN_OK)
			fprintf(stderr, "render of a loaded template: %s\n",
				errmsg ? errmsg : rn_strerror(rc));
		FUZZ_CHECK(rc == RN_OK);
		prof_template_free(t);
	} else {
		FUZZ_CHECK(t == NULL);
		FUZZ_CHECK(rc == RN_ENOMEM || errs.n > 0);
	}
	rn_errlist_release(&errs);
	rn_buf_release(&out);
	free(errmsg);
	errmsg = NULL;

	/* The renderer alone, on any text. */
	rn_buf_init(&out, 0);
	rc = prof_render((const char *)data, size, var, NULL, &out, &errmsg);
	FUZZ_CHECK(rc != RN_ENOTFOUND || errmsg != NULL);
	rn_buf_release(&out);
	free(errmsg);
	return 0;
}
