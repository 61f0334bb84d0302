/*
 * metrics: renewd's process-wide Prometheus registry (counters, gauges and
 * one fixed-bucket histogram kind), rendered in the text exposition format
 * 0.0.4 by GET /metrics.
 *
 *   metrics_counter_add("renewd_job_outcomes_total", 1, "result", "pushed",
 *                       NULL);
 *   metrics_gauge_set("renewd_ca_up", 1, "ca", name, NULL);
 *   metrics_observe("renewd_push_duration_seconds", 0.042);
 *
 * Invariants:
 *  - loop thread only: there is no lock. A uv_queue_work callback must
 *    hand its numbers back to the loop (its after_work callback) first;
 *  - every family is declared, with its HELP text and TYPE, in the static
 *    table of metrics.c (the names of docs/metrics and the alert rules);
 *    an unknown name, a call of the wrong kind (counter_add on a gauge),
 *    a negative counter increment, a bad label name, or setting one of
 *    the store aggregates (renewd_certificates*, renewd_jobs,
 *    renewd_notifications_pending: daemon/http.c reads them from the
 *    database per scrape) is a programming error: it is ignored and
 *    logged once (log_warnx);
 *  - labels are key, value C strings, in the same order at every call of
 *    a family, and the list always ends with NULL (also without labels);
 *    a NULL value is the empty string; values are escaped when rendered
 *    (backslash, double quote, newline), so any text is safe;
 *  - bounded: at most METRICS_MAX_SERIES label sets per family and
 *    METRICS_MAX_LABELS pairs per call; a new label set past the cap is
 *    dropped (logged once per family), never the process's memory;
 *  - a family is rendered once it has a series, with # HELP and # TYPE
 *    once before its samples; renewd_scans_total and
 *    renewd_push_duration_seconds (no labels) are rendered as 0 before
 *    their first event, so rate() has a starting point.
 */
#ifndef RN_METRICS_H
#define RN_METRICS_H

#include "common/common.h"

#define METRICS_MAX_SERIES 1000
#define METRICS_MAX_LABELS 8

/* Add v (>= 0) to a counter series. */
void metrics_counter_add(const char *name, double v, ...)
	__attribute__((sentinel));
/* Set a gauge series to v. */
void metrics_gauge_set(const char *name, double v, ...)
	__attribute__((sentinel));
/* Count v into a histogram (buckets 0.005 .. 30 and +Inf; NaN ignored). */
void metrics_observe(const char *name, double v);

/*
 * Append every family that has a series, in table order, to out.
 * Returns 0, or RN_ETOOBIG / RN_ENOMEM from out (then out holds a
 * truncated text that must not be served).
 */
int metrics_render(rn_buf *out);

/*
 * Append the "# HELP" and "# TYPE" lines of a declared family, for
 * samples rendered outside the registry (the store aggregates, computed
 * per scrape). RN_ENOTFOUND for an undeclared name.
 */
int metrics_help_render(rn_buf *out, const char *name);

/* Drop every series of a family (e.g. renewd_ca_up after a reload that
 * removed a CA); it is absent until set again. */
void metrics_family_clear(const char *name);

/* Free everything and forget the "logged once" notes (tests, exit). */
void metrics_reset(void);

#endif
