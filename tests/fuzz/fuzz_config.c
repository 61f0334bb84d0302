/*
 * The YAML configuration loader, cfg_load: the input is the file. It either
 * returns a whole cfg and no error, or no cfg and at least one error, each
 * "FILE:..." naming the file. Secrets named by *_env or *_file are resolved
 * for real (the fuzzer may name any variable or file: that is allowed).
 */
#include "tests/fuzz/fuzz.h"

#include "config/config.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *path = fuzz_file(data, size);
	size_t plen = strlen(path), i;
	rn_errlist errs;
	cfg *c = (cfg *)1;
	int rc;

	rn_errlist_init(&errs);
	rc = cfg_load(path, &c, &errs);
	if (rc == RN_OK) {
		FUZZ_CHECK(c != NULL && errs.n == 0);
		FUZZ_CHECK(c->daemon.database && c->daemon.control_socket);
		FUZZ_CHECK(c->http.listen && c->http.public_url);
		for (i = 0; i < c->ncas; i++)
			FUZZ_CHECK(cfg_ca_find(c, c->cas[i].name) != NULL);
		FUZZ_CHECK(cfg_policy_match(c, "Test_SCEP", "uuid",
					    "com.example") != NULL);
		cfg_free(c);
	} else {
		FUZZ_CHECK(c == NULL && errs.n > 0);
		for (i = 0; i < errs.n; i++)
			FUZZ_CHECK(strncmp(errs.msgs[i], path, plen) == 0);
	}
	rn_errlist_release(&errs);
	return 0;
}
