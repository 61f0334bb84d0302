/*
 * The control socket's request: bytes as they arrive on the unix socket.
 * Like on_read in daemon/control.c, a request is the bytes up to the first
 * '\n' (here: or the end of the input), at most 64 KiB of them, read by C
 * up to the first NUL; ctl_request_parse then either names a command or
 * gives the text of the error reply.
 */
#include "tests/fuzz/fuzz.h"

#include "daemon/control.h"

#define CTL_MAX_REQUEST (64 * 1024) /* as in control.c */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nl = memchr(data, '\n', size);
	const char *why = (const char *)1;
	ctl_cmd cmd = (ctl_cmd)-1;
	char *line;
	int rc;

	if (nl != NULL)
		size = (size_t)(nl - data);
	if (size > CTL_MAX_REQUEST)
		return 0; /* "request too large" before any parsing */
	line = fuzz_cstr(data, size);
	rc = ctl_request_parse(line, &cmd, &why);
	if (rc == RN_OK) {
		FUZZ_CHECK(why == NULL);
		FUZZ_CHECK(cmd == CTL_CMD_TRIGGER || cmd == CTL_CMD_STATUS ||
			   cmd == CTL_CMD_WAKE);
	} else {
		FUZZ_CHECK(rc == RN_EINVAL && why != NULL);
		FUZZ_CHECK(strncmp(why, "bad request", 11) == 0 ||
			   strcmp(why, "unsupported protocol version") == 0 ||
			   strcmp(why, "unknown command") == 0);
	}
	free(line);
	return 0;
}
