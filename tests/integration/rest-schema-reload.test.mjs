// rest-schema-reload.test.mjs — a migration reaches running servers without a restart or SIGHUP
// (issue 5 item 2: metadata "refreshed after migrations").
//
// A throwaway database (owner: the DATABASE_OWNER_URL role) gets the migrations, one tenant and a
// viewer through tenantctl; two tenantd instances serve it, sharing the stack's Redis. A new tenant
// migration (a table `notes`) is added in a temporary copy of migrations/ and applied with
// `tenantctl migrate`, which announces it on the Redis channel tenantd:schema: both instances then
// serve /rest/v1/notes (404 before), and a new column of orders is accepted in select=. The
// database, its tenant role and the copy are removed at the end.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { requireEnv, startTenantd, waitFor } from '../lib/harness.mjs';
import { call, login } from '../lib/auth.mjs';

const ROOT = process.env.TENANTD_ROOT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const TENANTCTL = process.env.TENANTCTL_BIN || path.join(ROOT, 'build/tenantctl');
const PGBIN = process.env.PGBIN || '/usr/lib/postgresql/15/bin';
const PSQL = fs.existsSync(path.join(PGBIN, 'psql')) ? path.join(PGBIN, 'psql') : 'psql';
const NAME = `reload_test_${process.pid}_${Date.now().toString(36)}`;
const SLUG = `reload-${process.pid}`;
const VIEWER = { email: `viewer@${SLUG}.test`, password: 'reload-viewer-pass' };

const withDb = (url, db) => { const u = new URL(url); u.pathname = `/${db}`; return u.toString(); };
const userOf = (url) => decodeURIComponent(new URL(url).username);
const psql = (url, text) => {
  const r = spawnSync(PSQL, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', text], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
};

let migrations;
let env;
let servers = [];
let created = false;

function ctl(args, input) {
  const r = spawnSync(TENANTCTL, args, { cwd: ROOT, env, input, encoding: 'utf8', timeout: 120000 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `tenantctl ${args.join(' ')}: exit ${r.status}\n${r.stdout}\n${r.stderr}`);
  assert.ok(!/AddressSanitizer|runtime error:/.test(r.stderr), r.stderr);
  return r;
}

before(async () => {
  const admin = requireEnv('PG_ADMIN_URL');
  const owner = userOf(requireEnv('DATABASE_OWNER_URL'));
  const app = userOf(requireEnv('DATABASE_URL'));
  psql(admin, `CREATE DATABASE "${NAME}" OWNER "${owner}"`);
  created = true;
  psql(withDb(admin, NAME), `GRANT CONNECT ON DATABASE "${NAME}" TO "${app}"`);
  migrations = fs.mkdtempSync(path.join(os.tmpdir(), 'reload-migrations-'));
  fs.cpSync(path.join(ROOT, 'migrations'), migrations, { recursive: true });
  env = {
    ...process.env,
    DATABASE_URL: withDb(requireEnv('DATABASE_URL'), NAME),
    DATABASE_OWNER_URL: withDb(requireEnv('DATABASE_OWNER_URL'), NAME),
    TENANTD_MIGRATIONS: migrations,
    ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=0',
  };
  ctl(['migrate']);
  ctl(['tenant', 'create', SLUG, '--name', 'Reload probe']);
  ctl(['user', 'create', '--email', VIEWER.email, '--tenant', SLUG, '--role', 'viewer'], `${VIEWER.password}\n`);
  servers = await Promise.all([0, 1].map(() => startTenantd({ DATABASE_URL: env.DATABASE_URL })));
  await Promise.all(servers.map((td) => td.waitReady()));
});

after(async () => {
  await Promise.all(servers.map((td) => td.stop()));
  if (created) {
    const admin = requireEnv('PG_ADMIN_URL');
    let roles = '';
    try {
      roles = psql(withDb(admin, NAME), "SELECT string_agg(quote_ident(schema_name), ',') FROM tenantd.tenants");
    } catch { /* nothing created */ }
    psql(admin, `DROP DATABASE IF EXISTS "${NAME}" WITH (FORCE)`);
    if (roles) psql(admin, `DROP ROLE IF EXISTS ${roles}`);
  }
  if (migrations) fs.rmSync(migrations, { recursive: true, force: true });
});

test('tenantctl migrate announces the change and every instance serves the new table', async () => {
  const tokens = [];
  for (const td of servers) tokens.push((await login(td, VIEWER)).access_token);
  for (const [i, td] of servers.entries()) {
    const res = await call(td, 'GET', '/rest/v1/notes', undefined, { token: tokens[i] });
    assert.equal(res.status, 404, `no notes table yet: ${res.body}`);
    const col = await call(td, 'GET', '/rest/v1/orders?select=id,reload_flag', undefined, { token: tokens[i] });
    assert.equal(col.status, 400, `no reload_flag column yet: ${col.body}`);
  }
  const files = fs.readdirSync(path.join(migrations, 'tenant')).filter((f) => /^\d{4}_.*\.sql$/.test(f)).sort();
  const next = String(Number(files.at(-1).slice(0, 4)) + 1).padStart(4, '0');
  fs.writeFileSync(path.join(migrations, 'tenant', `${next}_reload_probe.sql`),
    '-- reload probe\nCREATE TABLE notes (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), body text NOT NULL,\n' +
    '  owner_id uuid, created_at timestamptz NOT NULL DEFAULT now());\n' +
    'ALTER TABLE orders ADD COLUMN reload_flag boolean NOT NULL DEFAULT false;\n');
  const run = ctl(['migrate']);
  const told = /told running servers to reload \((\d+) workers listening\)/.exec(run.stdout);
  assert.ok(told, `tenantctl says it told the servers:\n${run.stdout}\n${run.stderr}`);
  assert.ok(Number(told[1]) >= 2, `at least both instances listened: ${told[0]}`);
  for (const [i, td] of servers.entries()) {
    await waitFor(async () => (await call(td, 'GET', '/rest/v1/notes', undefined, { token: tokens[i] })).status === 200,
      { timeoutMs: 5000, intervalMs: 100, message: `instance ${i} serves /rest/v1/notes` });
    const col = await call(td, 'GET', '/rest/v1/orders?select=id,reload_flag', undefined, { token: tokens[i] });
    assert.equal(col.status, 200, `instance ${i} knows the new column: ${col.body}`);
  }
});
