/*
 * policy: `tenantctl policy check [DIR]` and `tenantctl policy test [DIR]` (CONTRACT.md §10).
 *
 * check loads every policy file of DIR (default: $TENANTD_POLICIES, else `policies`) the way the
 * server does and reports the first error with file and line. test also runs every case of
 * the *.json files in DIR/tests and prints "N passed, M failed". Neither needs a database or configuration.
 *
 * A test file is an array of cases, or an object whose "cases" member is one. A case is
 *   {"name"?: "...", "principal": {"roles": [...], "custom_roles"?: [{name, permissions, inherits}]},
 *    "action": "orders:update" (or "resource": "orders", "action": "update"),
 *    "expect": "allow" | "deny" | "allow_own"}
 * or, to test that nobody grants what they do not hold,
 *   {"principal": {...}, "grant": "members:manage", "expect": "allow" | "deny"}.
 */
#ifndef TENANTD_CLI_POLICY_H
#define TENANTD_CLI_POLICY_H

/* Runs the policy command; argv[0..argc) are the words after "policy" (a leading "policy" word is
 * skipped too): "check [DIR]", "test [DIR] [--verbose]" or "--help". Returns 0 ok, 1 failure
 * (bad policy, a failing or malformed test case), 2 usage error. */
int policy_command(int argc, char **argv);

#endif
