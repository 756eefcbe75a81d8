// auth-matrix.test.mjs — the route × role matrix (issue 4 items 5 and 7).
//
// `tenantd --routes` lists every route with the permission it declares. MATRIX below names every
// route that exists, with the permission it must declare and the default roles of acme that may
// call it. The test fails when a route has no entry (add one when you add a route), when an entry
// names a route that no longer exists, when a declared permission differs from the entry, when the
// entry disagrees with the effective permissions GET /v1/auth/me reports for a role, or when a call
// gets 401/403 although the role holds the permission (or anything else although it does not).
// Without a token, every non-public route answers 401.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { before, describe, test } from 'node:test';

import { requireEnv, startTenantd } from '../lib/harness.mjs';
import { FIXTURE, ROLES, assert401, call, defaultPolicy, grantsCover, login, me } from '../lib/auth.mjs';

const ALL = ['owner', 'admin', 'member', 'viewer'];
const ADMINS = ['owner', 'admin'];

// "METHOD pattern" → {permission, allow: roles of acme that pass the guard, body?, params?, query?,
// endsSession?: the call ends the caller's session (a fresh login is used for it)}.
// A `{param}` in a permission is the path parameter of that name (the data API's `{table}:read`).
// Calls are made so that a request that passes the guard changes nothing: writes to the data API
// carry an empty array or no filter, which the handler refuses (400) after the guard let them by.
const DATA = { table: 'orders' };
const MATRIX = {
  'GET /healthz': { permission: 'public' },
  'GET /readyz': { permission: 'public' },
  'GET /metrics': { permission: 'public' },
  'GET /openapi.json': { permission: 'public' },
  'GET /.well-known/jwks.json': { permission: 'public' },
  'POST /v1/auth/signup': { permission: 'public' },
  'POST /v1/auth/login': { permission: 'public' },
  'POST /v1/auth/refresh': { permission: 'public' },
  'POST /v1/auth/logout': { permission: 'authenticated', allow: ALL, endsSession: true },
  'POST /v1/auth/switch': { permission: 'authenticated', allow: ALL, body: {} },
  'GET /v1/auth/me': { permission: 'authenticated', allow: ALL },
  'GET /v1/auth/sessions': { permission: 'authenticated', allow: ALL },
  'DELETE /v1/auth/sessions/{id}': { permission: 'authenticated', allow: ALL, params: { id: () => crypto.randomBytes(16).toString('hex') } },
  // tenant admin API (CONTRACT.md §6): ids that name nothing and bodies that fail validation
  'GET /v1/admin/members': { permission: 'members:read', allow: ADMINS },
  'PATCH /v1/admin/members/{user_id}': { permission: 'members:manage', allow: ADMINS, body: {} },
  'DELETE /v1/admin/members/{user_id}': { permission: 'members:manage', allow: ADMINS },
  'POST /v1/admin/invitations': { permission: 'invitations:manage', allow: ADMINS, body: {} },
  'GET /v1/admin/invitations': { permission: 'invitations:manage', allow: ADMINS },
  'DELETE /v1/admin/invitations/{id}': { permission: 'invitations:manage', allow: ADMINS },
  'POST /v1/invitations/{token}/accept': { permission: 'public' },
  'GET /v1/admin/roles': { permission: 'roles:read', allow: ADMINS },
  'POST /v1/admin/roles': { permission: 'roles:manage', allow: ADMINS, body: {} },
  'PATCH /v1/admin/roles/{name}': { permission: 'roles:manage', allow: ADMINS, params: { name: () => `nosuch-${crypto.randomBytes(4).toString('hex')}` }, body: {} },
  'DELETE /v1/admin/roles/{name}': { permission: 'roles:manage', allow: ADMINS, params: { name: () => `nosuch-${crypto.randomBytes(4).toString('hex')}` } },
  'GET /v1/admin/api-keys': { permission: 'api_keys:manage', allow: ADMINS },
  'POST /v1/admin/api-keys': { permission: 'api_keys:manage', allow: ADMINS, body: {} },
  'DELETE /v1/admin/api-keys/{id}': { permission: 'api_keys:manage', allow: ADMINS },
  'GET /v1/admin/audit': { permission: 'audit:read', allow: ADMINS },
  'GET /v1/admin/tenant': { permission: 'tenant:read', allow: ADMINS },
  'PATCH /v1/admin/tenant': { permission: 'tenant:manage', allow: ['owner'], body: {} },
  // platform API (CONTRACT.md §6): no tenant role holds platform rights, not even owner
  'GET /v1/platform/tenants': { permission: 'platform:manage', allow: [] },
  'POST /v1/platform/tenants': { permission: 'platform:manage', allow: [], body: {} },
  'PATCH /v1/platform/tenants/{slug}': { permission: 'platform:manage', allow: [], params: { slug: () => `nosuch-${crypto.randomBytes(4).toString('hex')}` }, body: {} },
  'DELETE /v1/platform/tenants/{slug}': { permission: 'platform:manage', allow: [], params: { slug: () => `nosuch-${crypto.randomBytes(4).toString('hex')}` } },
  // realtime (CONTRACT.md §8): the socket.io transport authenticates inside its own protocol;
  // /v1/events without ?rooms is refused (400) after the guard, so no stream stays open
  'POST /v1/realtime/emit': { permission: 'realtime:emit', allow: ADMINS, body: {} },
  'GET /v1/events': { permission: 'authenticated', allow: ALL },
  'GET /socket.io/': { permission: 'public' },
  'POST /socket.io/': { permission: 'public' },
  'PUT /socket.io/': { permission: 'public' },
  // data API (CONTRACT.md §7)
  'GET /rest/v1/{table}': { permission: '{table}:read', allow: ALL, params: DATA, query: '?limit=1' },
  'POST /rest/v1/{table}': { permission: '{table}:create', allow: ['owner', 'admin', 'member'], params: DATA, body: [] },
  'PATCH /rest/v1/{table}': { permission: '{table}:update', allow: ['owner', 'admin', 'member'], params: DATA, body: { title: 'x' } },
  'DELETE /rest/v1/{table}': { permission: '{table}:delete', allow: ['owner', 'admin', 'member'], params: DATA },
};

let td;
let routes;
const tokens = {};
const permissions = {};

before(async () => {
  const out = execFileSync(requireEnv('TENANTD_BIN'), ['--routes'], { encoding: 'utf8', timeout: 10000 });
  routes = JSON.parse(out);
  td = await startTenantd();
  for (const role of ROLES) {
    tokens[role] = (await login(td, FIXTURE.acme[role])).access_token;
    const res = await me(td, tokens[role]);
    assert.equal(res.status, 200, res.body);
    permissions[role] = res.json.permissions;
  }
});
// tenantd is killed by the harness when the file ends

const keyOf = (r) => `${r.method} ${r.pattern}`;

// The concrete call of a route: {path, permission} with its {params} filled in.
function callFor(route, entry) {
  const values = {};
  const fill = (text) => text.replace(/\{([^}]+)\}/g, (_, name) => {
    if (!Object.hasOwn(values, name)) {
      const v = entry.params?.[name];
      values[name] = typeof v === 'function' ? v() : v ?? crypto.randomUUID();
    }
    return values[name];
  });
  const path = route.pattern.replace(/\{([^}]+)\}/g, (m) => encodeURIComponent(fill(m))) + (entry.query ?? '');
  return { path, permission: fill(route.permission) };
}
const pathFor = (route, entry) => callFor(route, entry).path;

// Whether the role's effective permissions (from /v1/auth/me) grant a concrete permission.
function granted(role, permission) {
  if (permission === 'authenticated') return true;
  return grantsCover(permissions[role], permission, defaultPolicy().admin_resources ?? []);
}

describe('route table', () => {
  test('tenantd --routes lists well-formed routes, each with a permission', () => {
    assert.ok(Array.isArray(routes) && routes.length > 0);
    const seen = new Set();
    for (const r of routes) {
      assert.match(r.method, /^(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS)$/, JSON.stringify(r));
      assert.match(r.pattern, /^\//, JSON.stringify(r));
      assert.match(r.permission, /^(public|authenticated|([a-z0-9_.-]+|\{[a-z_]+\}):[a-z0-9_.-]+)$/, `permission of ${keyOf(r)}: ${r.permission}`);
      for (const [, name] of r.permission.matchAll(/\{([a-z_]+)\}/g)) {
        assert.ok(r.pattern.includes(`{${name}}`), `${keyOf(r)}: permission parameter {${name}} is a path parameter`);
      }
      assert.ok(!seen.has(keyOf(r)), `${keyOf(r)} listed once`);
      seen.add(keyOf(r));
    }
  });

  test('every route has a matrix entry and every entry a route', () => {
    const listed = new Set(routes.map(keyOf));
    const missing = [...listed].filter((k) => !Object.hasOwn(MATRIX, k));
    assert.deepEqual(missing, [], `routes without a matrix entry in ${import.meta.url} — add them`);
    const stale = Object.keys(MATRIX).filter((k) => !listed.has(k));
    assert.deepEqual(stale, [], 'matrix entries for routes that no longer exist');
    for (const r of routes) assert.equal(r.permission, MATRIX[keyOf(r)].permission, `declared permission of ${keyOf(r)}`);
  });

  test('the matrix agrees with the effective permissions of each role', () => {
    for (const r of routes) {
      const entry = MATRIX[keyOf(r)];
      if (!entry || r.permission === 'public') continue;
      const { permission } = callFor(r, entry);
      const expected = ROLES.filter((role) => granted(role, permission));
      assert.deepEqual([...entry.allow].sort(), expected.sort(), `${keyOf(r)} (${permission}): roles granted per /v1/auth/me`);
    }
  });
});

describe('calls', () => {
  test('no token → 401 on every non-public route', async () => {
    for (const r of routes) {
      if (r.permission === 'public') continue;
      const entry = MATRIX[keyOf(r)] ?? {};
      const res = await call(td, r.method, pathFor(r, entry), entry.body);
      assert401(res, `${keyOf(r)} without a token`);
    }
  });

  test('public GET routes answer without a token', async () => {
    for (const r of routes) {
      if (r.permission !== 'public' || r.method !== 'GET') continue;
      const res = await call(td, 'GET', r.pattern);
      assert.ok(![401, 403].includes(res.status), `${keyOf(r)} without a token: ${res.status}`);
    }
  });

  test('each role of acme passes the guard exactly where its permissions grant the route', async () => {
    const failures = [];
    for (const r of routes) {
      if (r.permission === 'public') continue;
      const entry = MATRIX[keyOf(r)] ?? {};
      for (const role of ROLES) {
        const token = entry.endsSession ? (await login(td, FIXTURE.acme[role])).access_token : tokens[role];
        const { path, permission } = callFor(r, entry);
        const res = await call(td, r.method, path, entry.body, { token });
        const passed = ![401, 403].includes(res.status);
        const expected = granted(role, permission);
        if (passed !== expected || passed !== (entry.allow ?? []).includes(role) || res.status >= 500) {
          failures.push(`${r.method} ${path} as ${role}: ${res.status} (${expected ? 'granted' : 'not granted'} ${permission}) ${res.body.slice(0, 160)}`);
        }
        if (!passed && res.status === 401) failures.push(`${keyOf(r)} as ${role}: 401 with a valid token`);
      }
    }
    assert.deepEqual(failures, []);
    // the tokens used above are all still alive (no route call ended a session it should not have)
    for (const role of ROLES) assert.equal((await me(td, tokens[role])).status, 200, `${role} still logged in`);
  });
});

describe('data routes never reach admin resources through a wildcard', () => {
  test('{table} naming an admin resource (members, audit, …) is checked as that resource', async () => {
    const admin = defaultPolicy().admin_resources ?? [];
    assert.ok(admin.length > 0, 'the policy lists admin resources');
    const dataRoutes = routes.filter((r) => r.permission.startsWith('{table}:'));
    const failures = [];
    for (const r of dataRoutes) {
      const entry = MATRIX[keyOf(r)] ?? {};
      for (const table of admin) {
        for (const role of ROLES) {
          const { path, permission } = callFor(r, { ...entry, params: { ...entry.params, table } });
          const res = await call(td, r.method, path, entry.body, { token: tokens[role] });
          const passed = ![401, 403].includes(res.status);
          if (passed !== granted(role, permission) || res.status >= 500) {
            failures.push(`${r.method} ${path} as ${role}: ${res.status} (${granted(role, permission) ? 'granted' : 'not granted'} ${permission})`);
          }
        }
      }
    }
    assert.deepEqual(failures, []);
  });
});
