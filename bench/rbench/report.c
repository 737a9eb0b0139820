/* Output of ringraft-bench (report.h). Latencies are recorded in nanoseconds and printed in
 * microseconds; percentiles are the histogram's (within 1% of the exact value). */
#include "bench/rbench/report.h"

#include <string.h>

#include "bench/rbench/workload.h"

static const double quantiles[] = {0.5, 0.9, 0.99, 0.999, 0.9999};
static const char *const quantile_names[] = {"p50", "p90", "p99", "p99.9", "p99.99"};
#define QUANTILE_COUNT (sizeof(quantiles) / sizeof(quantiles[0]))

static double us(uint64_t ns)
{
    return (double)ns / 1000.0;
}

static uint64_t ok_total(const struct rb_stats *s)
{
    return stats_ok_total(s);
}

static double rps(const struct rb_result *r, uint64_t n)
{
    return r->elapsed_s > 0.0 ? (double)n / r->elapsed_s : 0.0;
}

static double cpu_cores(const struct rb_result *r)
{
    return r->cpu_wall_s > 0.0 ? (r->cpu_user_s + r->cpu_sys_s) / r->cpu_wall_s : 0.0;
}

static const char *mode_name(const struct rb_opts *o)
{
    return o->rate > 0.0 ? "open" : "closed";
}

/* ---- table ---------------------------------------------------------------------------- */

static void table_row(FILE *f, const char *name, const struct histogram *h, double rate)
{
    fprintf(f, "%-8s %10llu %11.1f", name, (unsigned long long)h->count, rate);
    for (size_t i = 0; i < QUANTILE_COUNT; i++) {
        fprintf(f, " %9.1f", us(histogram_quantile(h, quantiles[i])));
    }
    fprintf(f, " %9.1f %9.1f\n", us(h->count ? h->max : 0), histogram_mean(h) / 1000.0);
}

static void table_header(FILE *f)
{
    fprintf(f, "%-8s %10s %11s", "op", "replies", "req/s");
    for (size_t i = 0; i < QUANTILE_COUNT; i++) {
        fprintf(f, " %9s", quantile_names[i]);
    }
    fprintf(f, " %9s %9s   (latency in us)\n", "max", "mean");
}

static void table_errors(FILE *f, const struct rb_stats *s)
{
    if (s->errors.kinds == 0) {
        fprintf(f, "errors: none\n");
        return;
    }
    fprintf(f, "errors: %llu:", (unsigned long long)errors_total(&s->errors));
    for (uint32_t i = 0; i < s->errors.kinds; i++) {
        fprintf(f, " %s %llu", s->errors.name[i], (unsigned long long)s->errors.count[i]);
    }
    fprintf(f, "\n");
}

static void report_table(FILE *f, const struct rb_result *r)
{
    const struct rb_opts *o = r->opts;
    const struct rb_stats *s = r->stats;
    fprintf(f, "ringraft-bench: %s, %s, %s loop, %u clients, pipeline %u, %u thread%s%s\n",
            r->target, o->mix, mode_name(o), o->clients, o->pipeline, o->threads,
            o->threads == 1 ? "" : "s", o->first_reply ? ", latency of a batch's first reply" : "");
    fprintf(f, "measured %.2f s (after %.1f s warm-up): %llu replies, %.1f req/s\n", r->elapsed_s,
            o->warmup_s, (unsigned long long)ok_total(s), rps(r, ok_total(s)));
    table_header(f);
    int ops = 0;
    for (int op = 0; op < RB_OP_COUNT; op++) {
        if (s->latency[op].count > 0) {
            table_row(f, workload_op_name((enum rb_op)op), &s->latency[op], rps(r, s->ok[op]));
            ops++;
        }
    }
    if (ops != 1) {
        table_row(f, "all", r->all, rps(r, ok_total(s)));
    }
    table_errors(f, s);
    if (o->rate > 0.0) {
        const struct histogram *l = &s->lateness;
        fprintf(f,
                "open loop: target %.0f req/s, sent %.0f req/s; lateness (us) p50 %.1f p99 %.1f "
                "p99.9 %.1f max %.1f; due but never sent %llu\n",
                o->rate, rps(r, s->sent), us(histogram_quantile(l, 0.5)),
                us(histogram_quantile(l, 0.99)), us(histogram_quantile(l, 0.999)),
                us(l->count ? l->max : 0), (unsigned long long)s->unsent);
    }
    fprintf(f,
            "generator: %.2f cores (user %.2f s, system %.2f s over %.2f s); redirects %llu, "
            "retries %llu, connection failures %llu\n",
            cpu_cores(r), r->cpu_user_s, r->cpu_sys_s, r->cpu_wall_s,
            (unsigned long long)s->redirects, (unsigned long long)s->retries,
            (unsigned long long)s->conn_failures);
}

/* ---- JSON ----------------------------------------------------------------------------- */

static void json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            fprintf(f, "\\%c", c);
        } else if (c < 0x20 || c >= 0x7f) {
            fprintf(f, "\\u%04x", c);
        } else {
            fputc(c, f);
        }
    }
    fputc('"', f);
}

static void json_latency(FILE *f, const struct histogram *h, double rate)
{
    fprintf(f, "{\"count\": %llu, \"rps\": %.1f", (unsigned long long)h->count, rate);
    for (size_t i = 0; i < QUANTILE_COUNT; i++) {
        fprintf(f, ", \"%s\": %.1f", quantile_names[i], us(histogram_quantile(h, quantiles[i])));
    }
    fprintf(f, ", \"max\": %.1f, \"mean\": %.1f}", us(h->count ? h->max : 0),
            histogram_mean(h) / 1000.0);
}

static void json_histogram_text(FILE *f, const struct histogram *h)
{
    static char text[HIST_ENCODED_MAX + 1];
    histogram_encode(h, text, sizeof(text));
    json_string(f, text);
}

static void report_json(FILE *f, const struct rb_result *r)
{
    const struct rb_opts *o = r->opts;
    const struct rb_stats *s = r->stats;
    fprintf(f, "{\"target\": ");
    json_string(f, r->target);
    fprintf(f, ", \"mix\": ");
    json_string(f, o->mix);
    fprintf(f, ", \"dist\": ");
    json_string(f, o->dist);
    fprintf(f,
            ", \"mode\": \"%s\", \"rate\": %.1f, \"clients\": %u, \"threads\": %u, "
            "\"pipeline\": %u, \"keys\": %llu, \"streams\": %llu, \"value_size\": %u, "
            "\"warmup_s\": %.3f, \"elapsed_s\": %.6f,\n",
            mode_name(o), o->rate, o->clients, o->threads, o->pipeline, (unsigned long long)o->keys,
            (unsigned long long)o->streams, o->value_size, o->warmup_s, r->elapsed_s);
    fprintf(f, " \"replies\": %llu, \"rps\": %.1f, \"sent\": %llu,\n",
            (unsigned long long)ok_total(s), rps(r, ok_total(s)), (unsigned long long)s->sent);
    fprintf(f, " \"latency_us\": {\"all\": ");
    json_latency(f, r->all, rps(r, ok_total(s)));
    for (int op = 0; op < RB_OP_COUNT; op++) {
        if (s->latency[op].count > 0) {
            fprintf(f, ",\n   \"%s\": ", workload_op_name((enum rb_op)op));
            json_latency(f, &s->latency[op], rps(r, s->ok[op]));
        }
    }
    fprintf(f, "},\n \"errors_total\": %llu, \"errors\": {",
            (unsigned long long)errors_total(&s->errors));
    for (uint32_t i = 0; i < s->errors.kinds; i++) {
        fprintf(f, "%s", i > 0 ? ", " : "");
        json_string(f, s->errors.name[i]);
        fprintf(f, ": %llu", (unsigned long long)s->errors.count[i]);
    }
    fprintf(f, "},\n \"latency\": \"%s\", \"latency_first_reply_us\": ",
            o->first_reply ? "first-reply" : "per-request");
    json_latency(f, &s->first_reply, rps(r, ok_total(s)));
    fprintf(f, ",\n \"lateness_us\": ");
    json_latency(f, &s->lateness, rps(r, s->sent));
    fprintf(f,
            ", \"unsent\": %llu, \"redirects\": %llu, \"retries\": %llu, "
            "\"connection_failures\": %llu, \"nodes\": %u, \"slot_map_refreshes\": %u,\n",
            (unsigned long long)s->unsent, (unsigned long long)s->redirects,
            (unsigned long long)s->retries, (unsigned long long)s->conn_failures, r->nodes,
            r->refreshes);
    fprintf(f,
            " \"cpu\": {\"user_s\": %.3f, \"sys_s\": %.3f, \"wall_s\": %.3f, \"cores\": %.3f},\n",
            r->cpu_user_s, r->cpu_sys_s, r->cpu_wall_s, cpu_cores(r));
    fprintf(f, " \"histogram\": ");
    json_histogram_text(f, r->all);
    fprintf(f, "}\n");
}

/* ---- CSV ------------------------------------------------------------------------------ */

static void csv_row(FILE *f,
                    const char *name,
                    const struct histogram *h,
                    double rate,
                    uint64_t errors,
                    double cores)
{
    fprintf(f, "%s,%llu,%.1f", name, (unsigned long long)h->count, rate);
    for (size_t i = 0; i < QUANTILE_COUNT; i++) {
        fprintf(f, ",%.1f", us(histogram_quantile(h, quantiles[i])));
    }
    fprintf(f, ",%.1f,%.1f,%llu,%.3f\n", us(h->count ? h->max : 0), histogram_mean(h) / 1000.0,
            (unsigned long long)errors, cores);
}

static void report_csv(FILE *f, const struct rb_result *r)
{
    const struct rb_stats *s = r->stats;
    fprintf(f, "op,replies,rps,p50_us,p90_us,p99_us,p99.9_us,p99.99_us,max_us,mean_us,errors,"
               "cpu_cores\n");
    for (int op = 0; op < RB_OP_COUNT; op++) {
        if (s->latency[op].count > 0) {
            csv_row(f, workload_op_name((enum rb_op)op), &s->latency[op], rps(r, s->ok[op]), 0,
                    cpu_cores(r));
        }
    }
    csv_row(f, "all", r->all, rps(r, ok_total(s)), errors_total(&s->errors), cpu_cores(r));
}

void report_result(FILE *f, const struct rb_result *r, enum rb_format format)
{
    switch (format) {
    case RB_FORMAT_TABLE:
        report_table(f, r);
        break;
    case RB_FORMAT_JSON:
        report_json(f, r);
        break;
    case RB_FORMAT_CSV:
        report_csv(f, r);
        break;
    }
}

void report_histogram(FILE *f, const struct histogram *h, uint32_t files, enum rb_format format)
{
    switch (format) {
    case RB_FORMAT_TABLE:
        fprintf(f, "merged %u histogram%s\n", files, files == 1 ? "" : "s");
        fprintf(f, "%-8s %10s", "op", "replies");
        for (size_t i = 0; i < QUANTILE_COUNT; i++) {
            fprintf(f, " %9s", quantile_names[i]);
        }
        fprintf(f, " %9s %9s   (latency in us)\n%-8s %10llu", "max", "mean", "all",
                (unsigned long long)h->count);
        for (size_t i = 0; i < QUANTILE_COUNT; i++) {
            fprintf(f, " %9.1f", us(histogram_quantile(h, quantiles[i])));
        }
        fprintf(f, " %9.1f %9.1f\n", us(h->count ? h->max : 0), histogram_mean(h) / 1000.0);
        break;
    case RB_FORMAT_JSON:
        fprintf(f, "{\"files\": %u, \"latency_us\": ", files);
        json_latency(f, h, 0.0);
        fprintf(f, ", \"histogram\": ");
        json_histogram_text(f, h);
        fprintf(f, "}\n");
        break;
    case RB_FORMAT_CSV:
        fprintf(f, "op,replies,rps,p50_us,p90_us,p99_us,p99.9_us,p99.99_us,max_us,mean_us,"
                   "errors,cpu_cores\n");
        csv_row(f, "all", h, 0.0, 0, 0.0);
        break;
    }
}

void report_progress(FILE *f,
                     double at_s,
                     const char *phase,
                     double rate,
                     uint64_t total,
                     uint64_t errors,
                     uint64_t inflight,
                     uint64_t late_max_ns,
                     double cores)
{
    fprintf(f,
            "[%6.1fs %-7s] %10.0f req/s  total %llu  errors %llu  in flight %llu  late max "
            "%.3f ms  cpu %.2f\n",
            at_s, phase, rate, (unsigned long long)total, (unsigned long long)errors,
            (unsigned long long)inflight, (double)late_max_ns / 1e6, cores);
    fflush(f);
}
