/*
 * router: linear matching over the route table (see router.h). Tables are small (tens of routes)
 * and matching is a segment-by-segment compare without allocation.
 */
#include "http/router.h"

#include <stdio.h>
#include <string.h>

int router_validate(const router_route_t *routes, size_t count, char *err, size_t errlen)
{
    for (size_t i = 0; i < count; i++) {
        const router_route_t *r = &routes[i];
        if (r->method == NULL || r->pattern == NULL || r->pattern[0] != '/' || r->handler == NULL) {
            snprintf(err, errlen, "route %zu (%s): incomplete entry", i, r->pattern ? r->pattern : "?");
            return -1;
        }
        /* every {name} closed within its segment, and no more of them than params can hold */
        size_t nparams = 0;
        for (const char *c = strchr(r->pattern, '{'); c != NULL; c = strchr(c + 1, '{')) {
            size_t seg = strcspn(c, "/");
            const char *close = memchr(c, '}', seg);
            if (close == NULL || close == c + 1 || ++nparams > ROUTER_MAX_PARAMS) {
                snprintf(err, errlen, "route %s %s: a {name} is empty, unclosed or one too many (max %d)", r->method, r->pattern,
                         ROUTER_MAX_PARAMS);
                return -1;
            }
        }
        if (r->permission == NULL || r->permission[0] == '\0') {
            snprintf(err, errlen, "route %s %s declares no permission", r->method, r->pattern);
            return -1;
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(routes[j].method, r->method) == 0 && strcmp(routes[j].pattern, r->pattern) == 0) {
                snprintf(err, errlen, "route %s %s is declared twice", r->method, r->pattern);
                return -1;
            }
        }
    }
    return 0;
}

bool router_path_matches(const char *pattern, const char *path, size_t len, router_params_t *params)
{
    const char *p = pattern, *s = path, *end = path + len;
    if (params != NULL)
        params->count = 0;
    while (*p != '\0' && s < end) {
        if (*p == '{') {
            const char *close = strchr(p, '}');
            if (close == NULL)
                return false;
            const char *seg_end = memchr(s, '/', (size_t)(end - s));
            if (seg_end == NULL)
                seg_end = end;
            if (seg_end == s)
                return false;
            if (params != NULL) {
                if (params->count == ROUTER_MAX_PARAMS)
                    return false;
                params->items[params->count].name = p + 1;
                params->items[params->count].name_len = (size_t)(close - p - 1);
                params->items[params->count].value = s;
                params->items[params->count].value_len = (size_t)(seg_end - s);
                params->count++;
            }
            p = close + 1;
            s = seg_end;
        } else {
            if (*p != *s)
                return false;
            p++;
            s++;
        }
    }
    return *p == '\0' && s == end;
}

static bool method_is(const char *m, const char *method, size_t len)
{
    return strlen(m) == len && memcmp(m, method, len) == 0;
}

static void allow_add(char *allow, size_t cap, const char *m)
{
    /* skip a method already listed: compare whole entries, not substrings ("GET" in "GETALL") */
    size_t mlen = strlen(m);
    for (const char *e = allow; *e != '\0';) {
        size_t elen = strcspn(e, ",");
        if (elen == mlen && memcmp(e, m, mlen) == 0)
            return;
        e += elen;
        e += strspn(e, ", ");
    }
    size_t used = strlen(allow);
    snprintf(allow + used, cap - used, "%s%s", used ? ", " : "", m);
}

router_result_t router_find(const router_route_t *routes, size_t count, const char *method, size_t method_len, const char *path,
                            size_t path_len, size_t *index, router_params_t *params, char *allow, size_t allow_cap)
{
    bool path_known = false;
    if (allow_cap > 0)
        allow[0] = '\0';
    bool is_head = method_is("HEAD", method, method_len);
    for (size_t i = 0; i < count; i++) {
        if (!router_path_matches(routes[i].pattern, path, path_len, NULL))
            continue;
        path_known = true;
        if (method_is(routes[i].method, method, method_len) || (is_head && strcmp(routes[i].method, "GET") == 0)) {
            *index = i;
            router_path_matches(routes[i].pattern, path, path_len, params);
            return ROUTER_MATCH;
        }
        if (allow_cap > 0) {
            allow_add(allow, allow_cap, routes[i].method);
            if (strcmp(routes[i].method, "GET") == 0)
                allow_add(allow, allow_cap, "HEAD");
        }
    }
    return path_known ? ROUTER_WRONG_METHOD : ROUTER_NO_PATH;
}
