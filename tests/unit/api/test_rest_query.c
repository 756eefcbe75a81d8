/*
 * Unit tests of api/rest_query: restq_parse over a hand-built orders table — every operator, not.,
 * or/and trees and their depth limit, quoting in in-lists and logic values, percent-encoding,
 * select/order/limit/offset, parameter numbering, the exact SQL text and parameters of a few
 * queries, and the errors (unknown columns named, malformed syntax).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/rest_query.h"

static restq_column_t cols[] = {
    {"id", "\"id\"", "uuid", true, true, true},
    {"title", "\"title\"", "text", false, true, false},
    {"status", "\"status\"", "text", false, true, true},
    {"position", "\"position\"", "integer", false, true, true},
    {"owner_id", "\"owner_id\"", "uuid", false, false, false},
    {"assignee_id", "\"assignee_id\"", "uuid", false, false, false},
    {"created_at", "\"created_at\"", "timestamp with time zone", false, true, true},
    {"urgent", "\"urgent\"", "boolean", false, false, false},
};
static const restq_table_t table = {"orders", "\"orders\"", cols, sizeof(cols) / sizeof(cols[0]), 0, 4};

static char err[200];

/* Parses q; asserts success. */
static restq_request_t ok(const char *q)
{
    restq_request_t r;
    err[0] = '\0';
    int rc = restq_parse(q, strlen(q), &table, &r, err, sizeof(err));
    if (rc != 0)
        fail_msg("restq_parse(%s) failed: %s", q, err);
    return r;
}

/* Parses q; asserts failure with an error containing want. */
static void bad(const char *q, const char *want)
{
    restq_request_t r;
    err[0] = '\0';
    int rc = restq_parse(q, strlen(q), &table, &r, err, sizeof(err));
    if (rc == 0)
        fail_msg("restq_parse(%s) succeeded with WHERE %s", q, r.where.sql);
    if (strstr(err, want) == NULL)
        fail_msg("restq_parse(%s): error \"%s\" lacks \"%s\"", q, err, want);
    restq_request_t zero;
    memset(&zero, 0, sizeof(zero));
    assert_memory_equal(&r, &zero, sizeof(r));
}

/* Asserts the WHERE text and its parameters (NULL-terminated list). */
static void where_is(const char *q, const char *sql, ...)
{
    restq_request_t r = ok(q);
    assert_string_equal(r.where.sql, sql);
    va_list ap;
    va_start(ap, sql);
    int n = 0;
    for (const char *p = va_arg(ap, const char *); p != NULL; p = va_arg(ap, const char *), n++) {
        if (n >= r.where.nparams)
            fail_msg("%s: fewer parameters than expected (%d)", q, r.where.nparams);
        assert_non_null(r.where.params[n]);
        assert_string_equal(r.where.params[n], p);
    }
    va_end(ap);
    assert_int_equal(r.where.nparams, n);
    assert_true(r.has_filter);
    restq_request_free(&r);
}

static void test_no_query(void **state)
{
    (void)state;
    restq_request_t r = ok("");
    assert_string_equal(r.where.sql, "TRUE");
    assert_false(r.has_filter);
    assert_null(r.select_list);
    assert_null(r.order_by);
    assert_int_equal(r.limit, RESTQ_DEFAULT_LIMIT);
    assert_false(r.limit_given);
    assert_int_equal(r.offset, 0);
    assert_int_equal(r.where.nparams, 0);
    restq_request_free(&r);
    r = ok("&&&");
    assert_string_equal(r.where.sql, "TRUE");
    restq_request_free(&r);
}

static void test_comparison_operators(void **state)
{
    (void)state;
    where_is("status=eq.open", "(\"status\" = $1)", "open", NULL);
    where_is("status=neq.open", "(\"status\" <> $1)", "open", NULL);
    where_is("position=gt.3", "(\"position\" > $1)", "3", NULL);
    where_is("position=gte.3", "(\"position\" >= $1)", "3", NULL);
    where_is("position=lt.3", "(\"position\" < $1)", "3", NULL);
    where_is("position=lte.-3", "(\"position\" <= $1)", "-3", NULL);
    /* the value is everything after the first dot after the operator, dots included */
    where_is("title=eq.a.b.c", "(\"title\" = $1)", "a.b.c", NULL);
    where_is("title=eq.", "(\"title\" = $1)", "", NULL);
}

static void test_like_is_in(void **state)
{
    (void)state;
    where_is("title=like.*foo*", "(\"title\"::text LIKE $1)", "%foo%", NULL);
    where_is("title=ilike.A%25b_", "(\"title\"::text ILIKE $1)", "A%b_", NULL);
    where_is("assignee_id=is.null", "(\"assignee_id\" IS NULL)", NULL);
    where_is("assignee_id=is.NULL", "(\"assignee_id\" IS NULL)", NULL);
    where_is("urgent=is.true", "(\"urgent\" IS TRUE)", NULL);
    where_is("urgent=is.false", "(\"urgent\" IS FALSE)", NULL);
    where_is("urgent=is.unknown", "(\"urgent\" IS UNKNOWN)", NULL);
    where_is("urgent=is.null", "(\"urgent\" IS NULL)", NULL);
    /* IS TRUE on a text or integer column is a Postgres type error (was a 500): refused here */
    bad("title=is.true", "need a boolean column, title is not");
    bad("position=is.false", "need a boolean column, position is not");
    bad("or=(title.is.unknown)", "need a boolean column");
    bad("title=is.maybe", "is. takes null, true, false or unknown");
    where_is("position=in.(1,2,3)", "(\"position\" IN ($1, $2, $3))", "1", "2", "3", NULL);
    where_is("position=in.(7)", "(\"position\" IN ($1))", "7", NULL);
    where_is("position=in.()", "(FALSE)", NULL);
    bad("position=in.1,2", "in. takes a parenthesised list");
    bad("position=in.(1,2", "in. takes a parenthesised list");
}

static void test_not(void **state)
{
    (void)state;
    where_is("status=not.eq.done", "(NOT (\"status\" = $1))", "done", NULL);
    where_is("assignee_id=not.is.null", "(NOT (\"assignee_id\" IS NULL))", NULL);
    where_is("position=not.in.(1,2)", "(NOT (\"position\" IN ($1, $2)))", "1", "2", NULL);
    where_is("title=not.like.x*", "(NOT (\"title\"::text LIKE $1))", "x%", NULL);
}

static void test_in_list_quoting(void **state)
{
    (void)state;
    /* in.("a,b","c\"d",e,"f\\g") — quotes protect commas and parentheses, \" and \\ escape */
    where_is("title=in.(%22a,b%22,%22c%5C%22d%22,e,%22f%5C%5Cg%22,%22(x)%22)", "(\"title\" IN ($1, $2, $3, $4, $5))", "a,b",
             "c\"d", "e", "f\\g", "(x)", NULL);
    where_is("title=in.(%22%22,x)", "(\"title\" IN ($1, $2))", "", "x", NULL);
    bad("title=in.(%22abc)", "unterminated quote");
    bad("title=in.(%22a%22b)", "malformed in.() list");
}

static void test_logic_trees(void **state)
{
    (void)state;
    where_is("or=(status.eq.open,and(position.gt.1,position.lt.5))",
             "((\"status\" = $1) OR (((\"position\" > $2) AND (\"position\" < $3))))", "open", "1", "5", NULL);
    where_is("and=(status.eq.open,position.gt.1)", "((\"status\" = $1) AND (\"position\" > $2))", "open", "1", NULL);
    where_is("not.or=(status.eq.open,status.eq.done)", "NOT ((\"status\" = $1) OR (\"status\" = $2))", "open", "done", NULL);
    where_is("not.and=(status.eq.open,position.gt.1)", "NOT ((\"status\" = $1) AND (\"position\" > $2))", "open", "1", NULL);
    where_is("or=(status.not.eq.open,not.and(position.gt.1,title.is.null))",
             "((NOT (\"status\" = $1)) OR (NOT ((\"position\" > $2) AND (\"title\" IS NULL))))", "open", "1", NULL);
    /* in-lists keep their parentheses, quoted values their commas and parentheses */
    where_is("or=(position.in.(1,2),title.eq.%22a,b)%22,title.like.*x*)",
             "((\"position\" IN ($1, $2)) OR (\"title\" = $3) OR (\"title\"::text LIKE $4))", "1", "2", "a,b)", "%x%", NULL);
    where_is("or=(title.in.(%22a)%22,b),status.eq.x)", "((\"title\" IN ($1, $2)) OR (\"status\" = $3))", "a)", "b", "x", NULL);
    where_is("or=(title.eq.%22q%5C%22uote%22)", "((\"title\" = $1))", "q\"uote", NULL);
    bad("or=(status.eq.open", "parenthesised list");
    bad("or=status.eq.open", "parenthesised list");
    bad("or=()", "malformed condition");
    bad("or=(status.eq.open)x", "parenthesised list");
    bad("or=(status.eq.%22a%22junk)", "unexpected text");
    bad("or=(and(status.eq.open)", "missing )");
    bad("or=(status)", "malformed condition");
    bad("or=(status.eq)", "a condition needs operator.value");
    bad("or=(status.foo.x)", "unknown operator foo");
}

/* or=( + (depth-1) nested and(/or( + a condition + closing parentheses */
static char *nested(int depth)
{
    size_t cap = (size_t)depth * 8 + 64;
    char *q = malloc(cap);
    strcpy(q, "or=(");
    for (int i = 1; i < depth; i++)
        strcat(q, i % 2 ? "and(" : "or(");
    strcat(q, "position.eq.1");
    for (int i = 0; i < depth; i++)
        strcat(q, ")");
    return q;
}

static void test_depth_limit(void **state)
{
    (void)state;
    char *q = nested(RESTQ_MAX_DEPTH);
    restq_request_t r = ok(q);
    assert_int_equal(r.where.nparams, 1);
    restq_request_free(&r);
    free(q);
    q = nested(RESTQ_MAX_DEPTH + 1);
    bad(q, "at most 16 deep");
    free(q);
    q = nested(200);
    bad(q, "at most 16 deep");
    free(q);
}

static void test_param_numbering(void **state)
{
    (void)state;
    where_is("status=eq.open&or=(position.lt.1,position.gt.9)&title=in.(a,b)&assignee_id=is.null&id=neq.x",
             "(\"status\" = $1) AND ((\"position\" < $2) OR (\"position\" > $3)) AND (\"title\" IN ($4, $5)) AND "
             "(\"assignee_id\" IS NULL) AND (\"id\" <> $6)",
             "open", "1", "9", "a", "b", "x", NULL);
    /* a column filtered twice is two conditions */
    where_is("position=gt.1&position=lt.5", "(\"position\" > $1) AND (\"position\" < $2)", "1", "5", NULL);
}

static void test_values_are_parameters(void **state)
{
    (void)state;
    /* nothing of a value reaches the SQL text */
    where_is("title=eq.x%27%20OR%201%3D1%3B--", "(\"title\" = $1)", "x' OR 1=1;--", NULL);
    where_is("title=eq.%22%29%3B%20DROP%20TABLE%20orders%3B--", "(\"title\" = $1)", "\"); DROP TABLE orders;--", NULL);
    where_is("title=eq.a+b%2Bc", "(\"title\" = $1)", "a b+c", NULL);
    where_is("title=eq.%C3%A9%E2%82%AC", "(\"title\" = $1)", "\xc3\xa9\xe2\x82\xac", NULL);
    where_is("ti%74le=eq.x", "(\"title\" = $1)", "x", NULL);
}

static void test_unknown_columns(void **state)
{
    (void)state;
    bad("nosuch=eq.1", "unknown column nosuch");
    bad("select=id,nosuch", "unknown column nosuch in select");
    bad("order=nosuch.desc", "unknown column nosuch in order");
    bad("or=(title.eq.x,nosuch.eq.1)", "unknown column nosuch");
    bad("title%3Bdrop%20table%20orders=eq.1", "unknown column title;drop table orders");
    bad("Title=eq.1", "unknown column Title");
    bad("%22title%22=eq.1", "unknown column \"title\"");
    /* a decoded NUL does not turn a key into a reserved word or a known column */
    /* a NUL in a key or value is refused before it is looked at (it would truncate a bound value) */
    bad("select%00x=id", "bad percent-encoding");
    bad("title%00=eq.x", "bad percent-encoding");
    bad("title=eq.a%00b", "bad percent-encoding");
    bad("or=(title.eq.a%00b)", "bad percent-encoding");
}

static void test_malformed(void **state)
{
    (void)state;
    bad("title", "query parameter without a value");
    bad("title=eq", "a filter needs operator.value");
    bad("title=foo.x", "unknown operator foo");
    bad("title=not.foo.x", "unknown operator foo");
    bad("title=EQ.x", "unknown operator EQ");
    bad("title=eq.%zz", "bad percent-encoding");
    bad("title=eq.%4", "bad percent-encoding");
    bad("title=eq.%", "bad percent-encoding");
    bad("ti%7=eq.x", "bad percent-encoding");
}

static void test_select(void **state)
{
    (void)state;
    restq_request_t r = ok("select=id,title");
    assert_string_equal(r.select_list, "\"id\", \"title\"");
    assert_false(r.has_filter);
    restq_request_free(&r);
    r = ok("select=*");
    assert_null(r.select_list);
    restq_request_free(&r);
    r = ok("select=title,*");
    assert_null(r.select_list);
    restq_request_free(&r);
    /* the later select= wins (and the earlier one is not leaked) */
    r = ok("select=id&select=status,position");
    assert_string_equal(r.select_list, "\"status\", \"position\"");
    restq_request_free(&r);
    r = ok("select=id&select=*");
    assert_null(r.select_list);
    restq_request_free(&r);
    bad("select=", "empty column in select");
    bad("select=id,,title", "empty column in select");
    bad("select=id,", "empty column in select");
    bad("select=id,count(*)", "unknown column count(*) in select");
    bad("select=id:title", "unknown column id:title in select");
}

static void test_order(void **state)
{
    (void)state;
    restq_request_t r = ok("order=position.desc.nullslast,title,created_at.asc,assignee_id.nullsfirst");
    assert_string_equal(r.order_by, "\"position\" DESC NULLS LAST, \"title\", \"created_at\" ASC, \"assignee_id\" NULLS FIRST");
    restq_request_free(&r);
    r = ok("order=title&order=status.desc");
    assert_string_equal(r.order_by, "\"status\" DESC");
    restq_request_free(&r);
    bad("order=title.up", "unknown order modifier up");
    bad("order=title.", "unknown order modifier");
    bad("order=", "unknown column");
    bad("order=title,", "unknown column");
    bad("order=title.asc.desc", "misplaced order modifier desc");
    bad("order=title.nullsfirst.nullslast", "misplaced order modifier nullslast");
    bad("order=title.nullsfirst.asc", "misplaced order modifier asc");
    bad("order=title;drop%20table%20orders", "unknown column title;drop table orders in order");
}

static void test_limit_offset(void **state)
{
    (void)state;
    restq_request_t r = ok("limit=20&offset=40");
    assert_int_equal(r.limit, 20);
    assert_true(r.limit_given);
    assert_int_equal(r.offset, 40);
    assert_false(r.has_filter);
    restq_request_free(&r);
    r = ok("limit=5000");
    assert_int_equal(r.limit, RESTQ_MAX_LIMIT);
    restq_request_free(&r);
    r = ok("limit=0");
    assert_int_equal(r.limit, 0);
    restq_request_free(&r);
    r = ok("limit=999999999&offset=999999999");
    assert_int_equal(r.limit, RESTQ_MAX_LIMIT);
    assert_int_equal(r.offset, 999999999);
    restq_request_free(&r);
    bad("limit=-1", "limit must be a whole number");
    bad("limit=1e3", "limit must be a whole number");
    bad("limit=", "limit must be a whole number");
    bad("limit=1%3Bdrop", "limit must be a whole number");
    bad("offset=1234567890", "offset must be a whole number");
    bad("offset=%2B1", "offset must be a whole number");
}

static void test_param_cap(void **state)
{
    (void)state;
    /* RESTQ_MAX_PARAMS values in one in-list pass, one more fails; the same inside or=(…) */
    size_t cap = 24 * (RESTQ_MAX_PARAMS + 2) + 64;
    char *q = malloc(cap);
    for (int extra = 0; extra <= 1; extra++) {
        strcpy(q, "position=in.(");
        size_t len = strlen(q);
        for (int i = 0; i < RESTQ_MAX_PARAMS + extra; i++)
            len += (size_t)snprintf(q + len, cap - len, "%s%d", i ? "," : "", i);
        strcpy(q + len, ")");
        if (extra == 0) {
            restq_request_t r = ok(q);
            assert_int_equal(r.where.nparams, RESTQ_MAX_PARAMS);
            assert_string_equal(r.where.params[RESTQ_MAX_PARAMS - 1], "1999");
            restq_request_free(&r);
        } else {
            bad(q, "too many values");
        }
    }
    strcpy(q, "or=(");
    size_t len = strlen(q);
    for (int i = 0; i < RESTQ_MAX_PARAMS + 1; i++)
        len += (size_t)snprintf(q + len, cap - len, "%sposition.eq.%d", i ? "," : "", i);
    strcpy(q + len, ")");
    bad(q, "too many values");
    free(q);
}

static void test_err_truncated_safely(void **state)
{
    (void)state;
    /* a long culprit is cut in the message, and a small buffer is never overrun */
    char q[600];
    memset(q, 'x', 500);
    strcpy(q + 500, "=eq.1");
    restq_request_t r;
    char small[16];
    memset(small, '#', sizeof(small));
    assert_int_equal(restq_parse(q, strlen(q), &table, &r, small, 12), -1);
    assert_int_equal(strlen(small), 11);
    assert_int_equal(small[12], '#');
    bad(q, "unknown column xxxx");
    assert_true(strlen(err) < 120);
}

static void test_url_decode(void **state)
{
    (void)state;
    char out[16];
    assert_int_equal(restq_url_decode("a%20b+c", 7, out, sizeof(out)), 5);
    assert_string_equal(out, "a b c");
    assert_int_equal(restq_url_decode("%41%4a%4A", 9, out, sizeof(out)), 3);
    assert_string_equal(out, "AJJ");
    assert_int_equal(restq_url_decode("%4", 2, out, sizeof(out)), -1);
    assert_int_equal(restq_url_decode("%g0", 3, out, sizeof(out)), -1);
    assert_int_equal(restq_url_decode("a%00b", 5, out, sizeof(out)), -1); /* NUL would truncate a bound value */
    assert_int_equal(restq_url_decode("abcdef", 6, out, 4), -1); /* would not fit */
    assert_int_equal(restq_url_decode("", 0, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_column_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(restq_column(&table, "title", 5), &cols[1]);
    assert_ptr_equal(restq_column(&table, "titlex", 5), &cols[1]);
    assert_null(restq_column(&table, "titl", 4));
    assert_null(restq_column(&table, "", 0));
}

/* Range header values: a-b, a-, items=; malformed ones set nothing. */
static void test_parse_range(void **state)
{
    (void)state;
    long off = -7, lim = -7;
#define RANGE(v) restq_parse_range((v), strlen(v), &off, &lim)
    assert_true(RANGE("0-9"));
    assert_int_equal(off, 0);
    assert_int_equal(lim, 10);
    assert_true(RANGE("items=5-5"));
    assert_int_equal(off, 5);
    assert_int_equal(lim, 1);
    lim = -7;
    assert_true(RANGE("42-"));
    assert_int_equal(off, 42);
    assert_int_equal(lim, -7); /* open-ended: the limit is left alone */
    assert_true(RANGE("999999999999999-999999999999999"));
    assert_int_equal(lim, 1);
    const char *bad[] = {"", "-", "-3", "5-1", "a-b", "1-2x", "+1-2", " 1-2", "1 -2", "1--2", "items=", "items=-",
                         "0-9999999999999999", "9999999999999999-", "0-99999999999999999999", "1-2-3", "items=1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        off = lim = -7;
        assert_false(RANGE(bad[i]));
        assert_int_equal(off, -7);
        assert_int_equal(lim, -7);
    }
    /* the length bounds the parse: a value cut before its end */
    assert_true(restq_parse_range("3-4junk", 3, &off, &lim));
    assert_int_equal(off, 3);
    assert_int_equal(lim, 2); /* "3-4junk" cut to its first 3 bytes: "3-4" */
#undef RANGE
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_query),
        cmocka_unit_test(test_comparison_operators),
        cmocka_unit_test(test_like_is_in),
        cmocka_unit_test(test_not),
        cmocka_unit_test(test_in_list_quoting),
        cmocka_unit_test(test_logic_trees),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_param_numbering),
        cmocka_unit_test(test_values_are_parameters),
        cmocka_unit_test(test_unknown_columns),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_limit_offset),
        cmocka_unit_test(test_param_cap),
        cmocka_unit_test(test_err_truncated_safely),
        cmocka_unit_test(test_url_decode),
        cmocka_unit_test(test_column_lookup),
        cmocka_unit_test(test_parse_range),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
