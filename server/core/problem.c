/*
 * problem: lookups into the PROBLEM_LIST table (see problem.h).
 */
#include "core/problem.h"

static const struct {
    int status;
    const char *title, *slug;
} problem_table[] = {
#define PROBLEM_ROW(name, status, title, slug) {status, title, slug},
    PROBLEM_LIST(PROBLEM_ROW)
#undef PROBLEM_ROW
};

int problem_status(problem_kind_t kind)
{
    return problem_table[kind].status;
}

const char *problem_title(problem_kind_t kind)
{
    return problem_table[kind].title;
}

const char *problem_slug(problem_kind_t kind)
{
    return problem_table[kind].slug;
}

problem_kind_t problem_for_status(int status)
{
    for (int i = 0; i < PROBLEM__COUNT; i++)
        if (problem_table[i].status == status)
            return (problem_kind_t)i;
    return PROBLEM_INTERNAL;
}
