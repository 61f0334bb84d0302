/*
 * Logging: one line per event on stderr, logfmt or JSON, with stable keys.
 * systemd's journal adds its own timestamp, but a timestamp is still
 * printed so logs read the same when redirected to a file.
 */
#define _GNU_SOURCE
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int log_min = RN_LOG_INFO;
static int log_fmt = RN_LOGFMT_LOGFMT;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void
log_setup(int level, int format)
{
	log_min = level;
	log_fmt = format;
}

int
log_level_parse(const char *s)
{
	int i;

	for (i = 0; i < 4; i++)
		if (strcmp(s, level_names[i]) == 0)
			return i;
	return -1;
}

/* Quote a logfmt value when it needs it; JSON-escape for JSON. */
static void
put_value(rn_buf *b, const char *v, int json)
{
	const char *p;
	int quote = json;

	if (!json) {
		if (*v == '\0')
			quote = 1;
		for (p = v; *p && !quote; p++)
			if (*p == ' ' || *p == '"' || *p == '=' ||
			    (unsigned char)*p < 0x20)
				quote = 1;
	}
	if (!quote) {
		rn_buf_adds(b, v);
		return;
	}
	rn_buf_add(b, "\"", 1);
	for (p = v; *p; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '"' || c == '\\') {
			rn_buf_add(b, "\\", 1);
			rn_buf_add(b, p, 1);
		} else if (c == '\n') {
			rn_buf_adds(b, "\\n");
		} else if (c < 0x20) {
			rn_buf_addf(b, "\\u%04x", c);
		} else {
			rn_buf_add(b, p, 1);
		}
	}
	rn_buf_add(b, "\"", 1);
}

static void
put_pair(rn_buf *b, const char *k, const char *v, int *first)
{
	if (log_fmt == RN_LOGFMT_JSON) {
		rn_buf_adds(b, *first ? "{" : ",");
		put_value(b, k, 1);
		rn_buf_add(b, ":", 1);
		put_value(b, v, 1);
	} else {
		if (!*first)
			rn_buf_add(b, " ", 1);
		rn_buf_adds(b, k);
		rn_buf_add(b, "=", 1);
		put_value(b, v, 0);
	}
	*first = 0;
}

static void
emit(int level, const char *msg, va_list kv)
{
	rn_buf b;
	char ts[RN_TIME_LEN];
	const char *k, *v;
	int first = 1;

	if (level < log_min)
		return;
	rn_buf_init(&b, 0);
	rn_time_format((int64_t)time(NULL), ts, sizeof(ts));
	put_pair(&b, "ts", ts, &first);
	put_pair(&b, "level", level_names[level], &first);
	put_pair(&b, "msg", msg, &first);
	while ((k = va_arg(kv, const char *)) != NULL) {
		v = va_arg(kv, const char *);
		if (v != NULL)
			put_pair(&b, k, v, &first);
	}
	if (log_fmt == RN_LOGFMT_JSON)
		rn_buf_add(&b, "}", 1);
	rn_buf_add(&b, "\n", 1);
	if (b.data)
		fwrite(b.data, 1, b.len, stderr);
	fflush(stderr);
	rn_buf_release(&b);
}

void
log_kv(int level, const char *msg, ...)
{
	va_list ap;

	va_start(ap, msg);
	emit(level, msg, ap);
	va_end(ap);
}

static void
emitf(int level, const char *err, const char *fmt, va_list ap)
{
	char *msg = NULL;

	if (level < log_min)
		return;
	if (vasprintf(&msg, fmt, ap) < 0)
		return;
	log_kv(level, msg, "err", err, (char *)NULL);
	free(msg);
}

#define LOGF(name, level, err)                 \
	void name(const char *fmt, ...)        \
	{                                      \
		va_list ap;                    \
		const char *e = (err);         \
		va_start(ap, fmt);             \
		emitf(level, e, fmt, ap);      \
		va_end(ap);                    \
	}

LOGF(log_debug, RN_LOG_DEBUG, NULL)
LOGF(log_info, RN_LOG_INFO, NULL)
LOGF(log_warn, RN_LOG_WARN, strerror(errno))
LOGF(log_warnx, RN_LOG_WARN, NULL)
LOGF(log_errorx, RN_LOG_ERROR, NULL)
