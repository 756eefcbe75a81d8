/*
 * libFuzzer target for router_find over a small fixed table. The input is "METHOD PATH" (split at
 * the first space; no space means a GET of the whole input), passed length-delimited in buffers of
 * exactly that size. Checks: a match names a route whose method fits and whose pattern matches,
 * with captured parameters inside the path, non-empty and free of '/'; a 405 carries a non-empty,
 * terminated allow list not naming the requested method; an unknown path leaves allow empty.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http/router.h"

static void handler(struct http_request *hr)
{
    (void)hr;
}

static const router_route_t routes[] = {
    {"GET", "/", handler, ROUTER_PUBLIC},
    {"GET", "/health", handler, ROUTER_PUBLIC},
    {"GET", "/v1/admin/members", handler, "members:read"},
    {"POST", "/v1/admin/members", handler, "members:write"},
    {"GET", "/v1/admin/members/{user_id}", handler, "members:read"},
    {"DELETE", "/v1/admin/members/{user_id}", handler, "members:write"},
    {"PUT", "/v1/admin/members/{user_id}/roles/{role}", handler, "roles:write"},
    {"GET", "/rest/v1/{table}", handler, "data:read"},
    {"PATCH", "/rest/v1/{table}", handler, "data:write"},
    {"POST", "/a/{b}/{c}/{d}/{e}", handler, "x:y"},
    {"OPTIONS", "/v1/auth/{step}", handler, ROUTER_PUBLIC},
};
#define ROUTES (sizeof(routes) / sizeof(routes[0]))

static int allow_names(const char *allow, const char *m, size_t mlen)
{
    for (const char *e = allow; *e != '\0';) {
        size_t elen = strcspn(e, ",");
        if (elen == mlen && memcmp(e, m, mlen) == 0)
            return 1;
        e += elen;
        e += strspn(e, ", ");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int validated;
    if (!validated) {
        char err[256];
        if (router_validate(routes, ROUTES, err, sizeof(err)) != 0)
            abort();
        validated = 1;
    }
    const uint8_t *sp = memchr(data, ' ', size);
    size_t mlen = sp ? (size_t)(sp - data) : 3;
    size_t plen = sp ? size - mlen - 1 : size;
    /* exact-size copies so any read past the given lengths is caught */
    char *method = malloc(mlen ? mlen : 1), *path = malloc(plen ? plen : 1);
    if (method == NULL || path == NULL)
        abort();
    memcpy(method, sp ? (const char *)data : "GET", mlen);
    memcpy(path, sp ? (const char *)sp + 1 : (const char *)data, plen);

    size_t index = ROUTES;
    router_params_t params;
    char allow[64];
    memset(allow, 'Z', sizeof(allow));
    size_t cap = 1 + size % sizeof(allow); /* small caps exercise truncation */
    router_result_t r = router_find(routes, ROUTES, method, mlen, path, plen, &index, &params, allow, cap);
    if (memchr(allow, '\0', cap) == NULL)
        abort();
    for (size_t i = cap; i < sizeof(allow); i++)
        if (allow[i] != 'Z')
            abort();
    switch (r) {
    case ROUTER_MATCH: {
        if (index >= ROUTES)
            abort();
        const char *rm = routes[index].method;
        int head_get = mlen == 4 && memcmp(method, "HEAD", 4) == 0 && strcmp(rm, "GET") == 0;
        if (!head_get && (strlen(rm) != mlen || memcmp(rm, method, mlen) != 0))
            abort();
        if (!router_path_matches(routes[index].pattern, path, plen, NULL))
            abort();
        if (params.count > ROUTER_MAX_PARAMS)
            abort();
        for (size_t i = 0; i < params.count; i++) {
            const char *v = params.items[i].value;
            size_t vl = params.items[i].value_len;
            if (vl == 0 || v < path || v + vl > path + plen || memchr(v, '/', vl) != NULL)
                abort();
        }
        break;
    }
    case ROUTER_WRONG_METHOD:
        if (memchr(allow, '\0', cap) == NULL)
            abort();
        if (cap > 8 && allow[0] == '\0')
            abort();
        if (cap == sizeof(allow) && allow_names(allow, method, mlen))
            abort();
        break;
    case ROUTER_NO_PATH:
        if (allow[0] != '\0')
            abort();
        for (size_t i = 0; i < ROUTES; i++)
            if (router_path_matches(routes[i].pattern, path, plen, NULL))
                abort();
        break;
    default:
        abort();
    }
    free(method);
    free(path);
    return 0;
}
