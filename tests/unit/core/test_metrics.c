/*
 * Unit tests of core/metrics: metrics_render output is checked line by line against the
 * Prometheus text format 0.0.4 (HELP/TYPE lines, `name{labels} value` samples, one TYPE per
 * family before its samples, families contiguous, no duplicate series, histogram buckets
 * cumulative and ending with +Inf equal to _count), before and after observations, and the
 * recorded values are read back from it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"

#define MAX_SAMPLES 4096
#define MAX_FAMILIES 128

typedef struct {
    char name[128];
    char labels[512]; /* as written between the braces, "" when none */
    double value;
} sample_t;

typedef struct {
    char name[128];
    char type[16];
    bool has_help, closed;
} family_t;

typedef struct {
    sample_t samples[MAX_SAMPLES];
    size_t nsamples;
    family_t families[MAX_FAMILIES];
    size_t nfamilies;
} exposition_t;

static bool name_start(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
}

static bool name_char(char c)
{
    return name_start(c) || (c >= '0' && c <= '9');
}

/* Reads a metric name at *p into out; false when there is none. */
static bool read_name(const char **p, char *out, size_t cap, bool label)
{
    const char *s = *p;
    if (!name_start(*s) || (label && *s == ':'))
        return false;
    size_t n = 0;
    while (name_char(s[n]) && !(label && s[n] == ':'))
        n++;
    if (n >= cap)
        return false;
    memcpy(out, s, n);
    out[n] = '\0';
    *p = s + n;
    return true;
}

static family_t *family_find(exposition_t *e, const char *name)
{
    for (size_t i = 0; i < e->nfamilies; i++)
        if (strcmp(e->families[i].name, name) == 0)
            return &e->families[i];
    return NULL;
}

static family_t *family_get(exposition_t *e, const char *name)
{
    family_t *f = family_find(e, name);
    if (f != NULL)
        return f;
    if (e->nfamilies == MAX_FAMILIES)
        fail_msg("too many metric families");
    f = &e->families[e->nfamilies++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

/* The family a sample belongs to: histogram series map to their base name. */
static family_t *family_of_sample(exposition_t *e, const char *name)
{
    static const char *const suffixes[] = {"_bucket", "_sum", "_count"};
    for (size_t i = 0; i < 3; i++) {
        size_t nl = strlen(name), sl = strlen(suffixes[i]);
        if (nl > sl && strcmp(name + nl - sl, suffixes[i]) == 0) {
            char base[128];
            snprintf(base, sizeof(base), "%.*s", (int)(nl - sl), name);
            family_t *f = family_find(e, base);
            if (f != NULL && strcmp(f->type, "histogram") == 0)
                return f;
        }
    }
    return family_find(e, name);
}

/* Parses a sample value (a Go ParseFloat number, +Inf, -Inf or NaN); the whole token must be used. */
static bool parse_value(const char *tok, double *out)
{
    if (strcmp(tok, "+Inf") == 0) {
        *out = INFINITY;
        return true;
    }
    if (strcmp(tok, "-Inf") == 0) {
        *out = -INFINITY;
        return true;
    }
    if (strcmp(tok, "NaN") == 0) {
        *out = NAN;
        return true;
    }
    if (*tok == '\0' || strpbrk(tok, "xXiInN") != NULL)
        return false;
    char *end;
    *out = strtod(tok, &end);
    return *end == '\0';
}

/* Reports a format violation from the validators below. */
static char bad_buf[1200];
#define BAD(...)                                                                                                                   \
    do {                                                                                                                           \
        snprintf(bad_buf, sizeof(bad_buf), __VA_ARGS__);                                                                           \
        return bad_buf;                                                                                                            \
    } while (0)

/* Parses and validates a whole exposition; returns NULL, or what is wrong with which line. */
static const char *parse_exposition(const char *text, size_t len, exposition_t *e)
{
    memset(e, 0, sizeof(*e));
    if (len == 0 || strlen(text) != len)
        BAD("empty, or a NUL inside");
    if (text[len - 1] != '\n')
        BAD("exposition does not end with a newline");
    family_t *current = NULL;
    const char *line = text;
    int lineno = 0;
    while (line < text + len) {
        const char *nl = strchr(line, '\n');
        char buf[1024];
        size_t ll = (size_t)(nl - line);
        lineno++;
        if (ll >= sizeof(buf))
            BAD("line %d too long", lineno);
        memcpy(buf, line, ll);
        buf[ll] = '\0';
        line = nl + 1;
        if (ll == 0)
            continue;
        if (strchr(buf, '\r') != NULL)
            BAD("line %d has a CR", lineno);
        const char *p = buf;
        char name[128];
        if (strncmp(buf, "# HELP ", 7) == 0 || strncmp(buf, "# TYPE ", 7) == 0) {
            bool help = buf[2] == 'H';
            p = buf + 7;
            if (!read_name(&p, name, sizeof(name), false) || *p != ' ' || p[1] == '\0')
                BAD("line %d: malformed %s line: %s", lineno, help ? "HELP" : "TYPE", buf);
            p++;
            family_t *f = family_get(e, name);
            if (f->closed || (current != NULL && current != f && (f->has_help || f->type[0])))
                BAD("line %d: metadata for %s is not contiguous with its family", lineno, name);
            if (help) {
                if (f->has_help)
                    BAD("line %d: second HELP for %s", lineno, name);
                f->has_help = true;
            } else {
                if (f->type[0])
                    BAD("line %d: second TYPE for %s", lineno, name);
                if (strcmp(p, "counter") && strcmp(p, "gauge") && strcmp(p, "histogram") && strcmp(p, "summary") &&
                    strcmp(p, "untyped"))
                    BAD("line %d: unknown type %s", lineno, p);
                snprintf(f->type, sizeof(f->type), "%s", p);
            }
            if (current != NULL && current != f)
                current->closed = true;
            current = f;
            continue;
        }
        if (buf[0] == '#')
            continue; /* a plain comment */

        if (e->nsamples == MAX_SAMPLES)
            fail_msg("too many samples");
        sample_t *s = &e->samples[e->nsamples];
        if (!read_name(&p, s->name, sizeof(s->name), false))
            BAD("line %d: no metric name: %s", lineno, buf);
        s->labels[0] = '\0';
        if (*p == '{') {
            const char *lstart = ++p;
            char seen[16][64];
            size_t nseen = 0;
            while (*p != '}') {
                char lname[64];
                if (!read_name(&p, lname, sizeof(lname), true) || *p != '=' || p[1] != '"')
                    BAD("line %d: malformed label: %s", lineno, buf);
                for (size_t i = 0; i < nseen; i++)
                    if (strcmp(seen[i], lname) == 0)
                        BAD("line %d: label %s twice", lineno, lname);
                if (nseen < 16)
                    snprintf(seen[nseen++], sizeof(seen[0]), "%s", lname);
                p += 2;
                while (*p != '"') {
                    if (*p == '\0')
                        BAD("line %d: unterminated label value: %s", lineno, buf);
                    if (*p == '\\') {
                        if (p[1] != '\\' && p[1] != '"' && p[1] != 'n')
                            BAD("line %d: bad escape in label value: %s", lineno, buf);
                        p++;
                    }
                    p++;
                }
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    BAD("line %d: expected , or } after a label: %s", lineno, buf);
            }
            snprintf(s->labels, sizeof(s->labels), "%.*s", (int)(p - lstart), lstart);
            p++;
        }
        if (*p != ' ')
            BAD("line %d: expected a space before the value: %s", lineno, buf);
        p++;
        char tok[64];
        const char *sp = strchr(p, ' ');
        size_t tl = sp ? (size_t)(sp - p) : strlen(p);
        if (tl == 0 || tl >= sizeof(tok))
            BAD("line %d: bad value: %s", lineno, buf);
        memcpy(tok, p, tl);
        tok[tl] = '\0';
        if (!parse_value(tok, &s->value))
            BAD("line %d: bad value %s", lineno, tok);
        if (sp != NULL) { /* an optional integer timestamp */
            char *end;
            strtoll(sp + 1, &end, 10);
            if (end == sp + 1 || *end != '\0')
                BAD("line %d: bad timestamp: %s", lineno, buf);
        }

        family_t *f = family_of_sample(e, s->name);
        if (f == NULL || !f->type[0])
            BAD("line %d: sample %s has no TYPE line before it", lineno, s->name);
        if (f->closed || (current != f))
            BAD("line %d: sample %s is not contiguous with its family", lineno, s->name);
        if (strcmp(f->type, "counter") == 0) {
            if (!(s->value >= 0))
                BAD("line %d: counter %s is negative", lineno, s->name);
        }
        if (strcmp(f->type, "histogram") == 0 && strcmp(s->name, f->name) == 0)
            BAD("line %d: histogram %s has a bare sample", lineno, s->name);
        for (size_t i = 0; i < e->nsamples; i++)
            if (strcmp(e->samples[i].name, s->name) == 0 && strcmp(e->samples[i].labels, s->labels) == 0)
                BAD("line %d: series %s{%s} appears twice", lineno, s->name, s->labels);
        e->nsamples++;
    }
    return NULL;
}

/* The value of a series, failing when it is absent. */
static double value_of(const exposition_t *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->nsamples; i++)
        if (strcmp(e->samples[i].name, name) == 0 && strcmp(e->samples[i].labels, labels) == 0)
            return e->samples[i].value;
    fail_msg("no series %s{%s}", name, labels);
    return NAN;
}

static bool has_series(const exposition_t *e, const char *name, const char *labels)
{
    for (size_t i = 0; i < e->nsamples; i++)
        if (strcmp(e->samples[i].name, name) == 0 && strcmp(e->samples[i].labels, labels) == 0)
            return true;
    return false;
}

/* Checks every histogram: buckets in increasing le order, cumulative, last +Inf == _count, _sum present. */
static const char *check_histograms(const exposition_t *e)
{
    for (size_t fi = 0; fi < e->nfamilies; fi++) {
        const family_t *f = &e->families[fi];
        if (strcmp(f->type, "histogram") != 0)
            continue;
        char bucket[160], sum[160], count[160];
        snprintf(bucket, sizeof(bucket), "%s_bucket", f->name);
        snprintf(sum, sizeof(sum), "%s_sum", f->name);
        snprintf(count, sizeof(count), "%s_count", f->name);
        double prev_le = -INFINITY, prev_count = 0, last_le = NAN, last_count = NAN;
        size_t nbuckets = 0;
        for (size_t i = 0; i < e->nsamples; i++) {
            const sample_t *s = &e->samples[i];
            if (strcmp(s->name, bucket) != 0)
                continue;
            if (strncmp(s->labels, "le=\"", 4) != 0 || s->labels[strlen(s->labels) - 1] != '"')
                BAD("%s bucket without an le label: {%s}", f->name, s->labels);
            char le_tok[64];
            snprintf(le_tok, sizeof(le_tok), "%.*s", (int)(strlen(s->labels) - 5), s->labels + 4);
            double le;
            if (!parse_value(le_tok, &le))
                BAD("%s bucket le=%s is not a number", f->name, le_tok);
            if (!(le > prev_le))
                BAD("%s buckets not in increasing le order at le=%s", f->name, le_tok);
            if (s->value < prev_count)
                BAD("%s buckets not cumulative at le=%s (%g < %g)", f->name, le_tok, s->value, prev_count);
            if (s->value != floor(s->value))
                BAD("%s bucket le=%s has a fractional count", f->name, le_tok);
            prev_le = le;
            prev_count = s->value;
            last_le = le;
            last_count = s->value;
            nbuckets++;
        }
        if (nbuckets < 2)
            BAD("%s has %zu buckets", f->name, nbuckets);
        if (!isinf(last_le) || last_le < 0)
            BAD("%s: last bucket is not +Inf", f->name);
        if (!has_series(e, sum, "") || !has_series(e, count, ""))
            BAD("%s lacks _sum or _count", f->name);
        if (value_of(e, count, "") != last_count)
            BAD("%s_count differs from its +Inf bucket", f->name);
        if (!(value_of(e, sum, "") >= 0))
            BAD("%s_sum is negative", f->name);
    }
    return NULL;
}

static exposition_t *render_and_parse(void)
{
    exposition_t *e = malloc(sizeof(*e));
    assert_non_null(e);
    size_t len = 0;
    char *text = metrics_render(&len);
    assert_non_null(text);
    /* the buffer is not NUL-terminated by contract; parse a terminated copy */
    char *copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, text, len);
    copy[len] = '\0';
    free(text);
    const char *why = parse_exposition(copy, len, e);
    if (why == NULL)
        why = check_histograms(e);
    if (why != NULL)
        fail_msg("not valid Prometheus text: %s", why);
    free(copy);
    return e;
}

/* The validator itself refuses what Prometheus would: each text here breaks one rule. */
static void test_validator_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "# TYPE a counter\na_total 1",                                    /* no final newline */
        "a 1\n",                                                         /* no TYPE */
        "# TYPE a gauge\n# TYPE a gauge\na 1\n",                           /* TYPE twice */
        "# TYPE a gauge\n# TYPE a counter\n",                              /* TYPE twice */
        "# TYPE a gauge\na 1\na 2\n",                                     /* duplicate series */
        "# TYPE a gauge\na{x=\"1\"} 1\n# TYPE b gauge\nb 1\na{x=\"2\"} 1\n", /* family split */
        "# TYPE a gauge\na{x=\"1} 1\n",                                   /* unterminated label value */
        "# TYPE a gauge\na{x=1} 1\n",                                     /* unquoted label value */
        "# TYPE a gauge\na{x=\"1\",x=\"2\"} 1\n",                           /* label twice */
        "# TYPE a gauge\na{x=\"\\q\"} 1\n",                               /* bad escape */
        "# TYPE a gauge\na one\n",                                        /* bad value */
        "# TYPE a gauge\na  1\n",                                         /* empty value */
        "# TYPE a gauge\n1a 1\n",                                         /* bad name */
        "# TYPE a widget\na 1\n",                                         /* unknown type */
        "# TYPE a counter\na -1\n",                                       /* negative counter */
        "# HELP a\n# TYPE a gauge\na 1\n",                                 /* HELP without text */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",  /* not cumulative */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 1\nh_sum 1\nh_count 1\n",    /* no +Inf */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",  /* count != +Inf */
        "# TYPE h histogram\nh_bucket{le=\"2\"} 1\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n", /* le order */
        "# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 1\nh_count 1\n",          /* no _sum */
    };
    exposition_t *e = malloc(sizeof(*e));
    assert_non_null(e);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *why = parse_exposition(bad[i], strlen(bad[i]), e);
        if (why == NULL)
            why = check_histograms(e);
        if (why == NULL)
            fail_msg("accepted invalid text #%zu: %s", i, bad[i]);
    }
    const char *good = "# HELP h Latency.\n# TYPE h histogram\nh_bucket{le=\"0.5\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 0.7\n"
                       "h_count 2\n# TYPE g gauge\ng{a=\"x\\\"y\",b=\"\\n\"} -3.5e2\ng NaN 1700000000000\n";
    const char *why = parse_exposition(good, strlen(good), e);
    if (why == NULL)
        why = check_histograms(e);
    if (why != NULL)
        fail_msg("refused valid text: %s", why);
    free(e);
}

/* Runs first, in a fresh process: everything is zero yet well formed. */
static void test_render_before_observations(void **state)
{
    (void)state;
    exposition_t *e = render_and_parse();
    const char *families[] = {"tenantd_http_requests_total", "tenantd_http_request_duration_seconds", "tenantd_db_connections",
                              "tenantd_db_queue_depth", "tenantd_db_queries_in_flight", "tenantd_db_queries_total",
                              "tenantd_redis_connections", "tenantd_redis_up", "tenantd_redis_commands_total",
                              "tenantd_open_connections", "tenantd_http_requests_in_flight",
                              "tenantd_connections_accepted_total"};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        family_t *f = family_find(e, families[i]);
        if (f == NULL || !f->has_help || !f->type[0])
            fail_msg("family %s lacks HELP or TYPE", families[i]);
    }
    assert_string_equal(family_find(e, "tenantd_http_request_duration_seconds")->type, "histogram");
    assert_string_equal(family_find(e, "tenantd_http_requests_total")->type, "counter");
    assert_true(value_of(e, "tenantd_http_request_duration_seconds_count", "") == 0);
    assert_true(value_of(e, "tenantd_http_request_duration_seconds_bucket", "le=\"+Inf\"") == 0);
    assert_true(value_of(e, "tenantd_redis_up", "") == 0);
    free(e);
}

static void test_method_index(void **state)
{
    (void)state;
    int other = metrics_method_index("BREW", 4);
    assert_int_equal(metrics_method_index("GET", 3), 0);
    assert_int_equal(metrics_method_index("HEAD", 4), 1);
    assert_int_not_equal(metrics_method_index("POST", 4), other);
    assert_int_not_equal(metrics_method_index("DELETE", 6), other);
    assert_int_not_equal(metrics_method_index("OPTIONS", 7), other);
    assert_int_equal(metrics_method_index("get", 3), other);
    assert_int_equal(metrics_method_index("GETX", 4), other);
    assert_int_equal(metrics_method_index("GETX", 3), 0);
    assert_int_equal(metrics_method_index("GE", 2), other);
    assert_int_equal(metrics_method_index("", 0), other);
}

static void test_render_after_observations(void **state)
{
    (void)state;
    metrics_register_route(1, "/v1/things/{id}");
    metrics_register_route(2, "/health");
    metrics_register_route(0, "ignored");                 /* index 0 stays "unmatched" */
    metrics_register_route(METRICS_MAX_ROUTES, "ignored"); /* out of range: ignored */
    int get = metrics_method_index("GET", 3), post = metrics_method_index("POST", 4);
    metrics_observe_request(1, get, 200, 0.003);
    metrics_observe_request(1, get, 200, 0.005); /* on a bound: counted in that bucket (le is inclusive) */
    metrics_observe_request(2, post, 418, 0.2);  /* an unlisted status */
    metrics_observe_request(METRICS_ROUTE_UNMATCHED, metrics_method_index("BREW", 4), 404, 20.0);
    metrics_observe_request(-5, 99, 500, 0.0); /* out-of-range route and method are clamped */
    metrics_observe_request(METRICS_MAX_ROUTES, -1, 503, 0.0001);
    metrics_gauge_add(METRICS_GAUGE_DB_UP, 2);
    metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, 5);
    metrics_gauge_add(METRICS_GAUGE_DB_QUEUE, -2);
    metrics_gauge_add(METRICS_GAUGE_REDIS_UP, 2);
    metrics_gauge_add(METRICS_GAUGE_OPEN_CONNS, 1);
    assert_int_equal(metrics_gauge_get(METRICS_GAUGE_DB_QUEUE), 3);
    metrics_count(METRICS_COUNTER_DB_OK);
    metrics_count(METRICS_COUNTER_DB_OK);
    metrics_count(METRICS_COUNTER_DB_TIMEOUT);
    metrics_count(METRICS_COUNTER_REDIS_ERROR);
    metrics_count(METRICS_COUNTER_CONNS_ACCEPTED);

    exposition_t *e = render_and_parse();
    const char *req = "tenantd_http_requests_total";
    assert_true(value_of(e, req, "route=\"/v1/things/{id}\",method=\"GET\",status=\"200\"") == 2);
    assert_true(value_of(e, req, "route=\"/health\",method=\"POST\",status=\"other\"") == 1);
    assert_true(value_of(e, req, "route=\"unmatched\",method=\"OTHER\",status=\"404\"") == 1);
    assert_true(value_of(e, req, "route=\"unmatched\",method=\"OTHER\",status=\"500\"") == 1);
    assert_true(value_of(e, req, "route=\"unmatched\",method=\"OTHER\",status=\"503\"") == 1);
    assert_false(has_series(e, req, "route=\"/health\",method=\"GET\",status=\"200\""));
    for (size_t i = 0; i < e->nsamples; i++)
        if (strstr(e->samples[i].labels, "ignored") != NULL)
            fail_msg("an out-of-range route name was rendered");

    const char *b = "tenantd_http_request_duration_seconds_bucket";
    assert_true(value_of(e, b, "le=\"0.0005\"") == 2);
    assert_true(value_of(e, b, "le=\"0.0025\"") == 2);
    assert_true(value_of(e, b, "le=\"0.005\"") == 4);
    assert_true(value_of(e, b, "le=\"0.1\"") == 4);
    assert_true(value_of(e, b, "le=\"0.25\"") == 5);
    assert_true(value_of(e, b, "le=\"10\"") == 5);
    assert_true(value_of(e, b, "le=\"+Inf\"") == 6);
    assert_true(value_of(e, "tenantd_http_request_duration_seconds_count", "") == 6);
    double sum = value_of(e, "tenantd_http_request_duration_seconds_sum", "");
    assert_true(fabs(sum - 20.2081) < 1e-5);

    assert_true(value_of(e, "tenantd_db_connections", "state=\"up\"") == 2);
    assert_true(value_of(e, "tenantd_db_connections", "state=\"down\"") == 0);
    assert_true(value_of(e, "tenantd_db_queue_depth", "") == 3);
    assert_true(value_of(e, "tenantd_db_queries_total", "result=\"ok\"") == 2);
    assert_true(value_of(e, "tenantd_db_queries_total", "result=\"timeout\"") == 1);
    assert_true(value_of(e, "tenantd_redis_commands_total", "result=\"error\"") == 1);
    assert_true(value_of(e, "tenantd_redis_up", "") == 1);
    assert_true(value_of(e, "tenantd_open_connections", "") == 1);
    assert_true(value_of(e, "tenantd_connections_accepted_total", "") == 1);
    free(e);

    /* one connection down: redis_up drops to 0 */
    metrics_gauge_add(METRICS_GAUGE_REDIS_DOWN, 1);
    e = render_and_parse();
    assert_true(value_of(e, "tenantd_redis_up", "") == 0);
    free(e);
    metrics_gauge_add(METRICS_GAUGE_REDIS_DOWN, -1);
}

/* Many routes, methods and statuses: the output outgrows the initial render buffer and stays valid. */
static void test_render_large(void **state)
{
    (void)state;
    static char names[METRICS_MAX_ROUTES][64];
    static const int statuses[] = {200, 422, 299};
    static const char *const methods[] = {"GET", "DELETE", "TRACE"};
    for (int r = 3; r < METRICS_MAX_ROUTES; r++) {
        snprintf(names[r], sizeof(names[r]), "/v1/generated/route-%03d/{id}", r);
        metrics_register_route(r, names[r]);
        for (size_t m = 0; m < sizeof(methods) / sizeof(methods[0]); m++)
            for (size_t s = 0; s < sizeof(statuses) / sizeof(statuses[0]); s++)
                metrics_observe_request(r, metrics_method_index(methods[m], strlen(methods[m])), statuses[s], 0.01 * (double)s);
    }
    size_t len;
    char *text = metrics_render(&len);
    assert_true(len > 16384);
    free(text);
    exposition_t *e = render_and_parse();
    assert_true(value_of(e, "tenantd_http_requests_total", "route=\"/v1/generated/route-127/{id}\",method=\"OTHER\",status=\"other\"") ==
                1);
    free(e);
}

static void *observer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        metrics_observe_request(1, 0, 204, 0.0001 * (i % 50));
        metrics_count(METRICS_COUNTER_REDIS_OK);
    }
    return NULL;
}

/* Concurrent observations are neither lost nor torn. */
static void test_concurrent_observations(void **state)
{
    (void)state;
    exposition_t *e = render_and_parse();
    double before = value_of(e, "tenantd_http_request_duration_seconds_count", "");
    double ok_before = value_of(e, "tenantd_redis_commands_total", "result=\"ok\"");
    free(e);
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&t[i], NULL, observer, NULL), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    e = render_and_parse();
    assert_true(value_of(e, "tenantd_http_request_duration_seconds_count", "") == before + 80000);
    assert_true(value_of(e, "tenantd_redis_commands_total", "result=\"ok\"") == ok_before + 80000);
    assert_true(value_of(e, "tenantd_http_requests_total", "route=\"/v1/things/{id}\",method=\"GET\",status=\"204\"") == 80000);
    free(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validator_rejects),
        cmocka_unit_test(test_render_before_observations),
        cmocka_unit_test(test_method_index),
        cmocka_unit_test(test_render_after_observations),
        cmocka_unit_test(test_render_large),
        cmocka_unit_test(test_concurrent_observations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
