// tenantctl.test.mjs — the operator CLI against a real Postgres (issue 3, CONTRACT.md §3 and §10).
//
// The file creates its own throwaway databases through PG_ADMIN_URL (owned by the role of
// DATABASE_OWNER_URL, CONNECT granted to the role of DATABASE_URL) and points tenantctl at them,
// so the dev database is never touched; at the end it drops them and the tenant roles they
// created (roles are cluster-global). Migration edits, failures and slow migrations are played in
// temporary copies of migrations/ selected with TENANTD_MIGRATIONS. Assertions read the catalog
// with psql. Every tenantctl run is also checked for sanitizer reports (./dev test runs the ASan
// build).
import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = process.env.TENANTD_ROOT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function requireEnv(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run through ./dev test, or eval "$(./dev env)" first`);
  return v;
}

const TENANTCTL = process.env.TENANTCTL_BIN || path.join(ROOT, 'build/tenantctl');
const PSQL = fs.existsSync(path.join(process.env.PGBIN || '/usr/lib/postgresql/15/bin', 'psql'))
  ? path.join(process.env.PGBIN || '/usr/lib/postgresql/15/bin', 'psql')
  : 'psql';
const SANITIZER = [/ERROR: AddressSanitizer/, /ERROR: LeakSanitizer/, /runtime error:/];

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

function withDb(url, db) {
  const u = new URL(url);
  u.pathname = `/${db}`;
  return u.toString();
}

function userOf(url) {
  return decodeURIComponent(new URL(url).username);
}

// Runs one SQL text with psql; returns rows as arrays of strings (unaligned, tab-separated).
function sql(url, text) {
  const out = execFileSync(PSQL, ['-X', '-q', '-A', '-t', '-F', '\t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', text],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.split('\n').filter((l) => l !== '').map((l) => l.split('\t'));
}

function sqlValue(url, text) {
  const rows = sql(url, text);
  return rows.length ? rows[0][0] : undefined;
}

// Like sql() but returns the error text instead of throwing ('' on success).
function sqlError(url, text) {
  const r = spawnSync(PSQL, ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', text], { encoding: 'utf8' });
  return r.status === 0 ? '' : r.stderr;
}

const lit = (s) => `'${String(s).replaceAll("'", "''")}'`;

function describeRun(r) {
  return `exit ${r.status}${r.signal ? ` signal ${r.signal}` : ''}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`;
}

function checkSanitizer(r) {
  for (const re of SANITIZER) assert.ok(!re.test(r.stderr), `sanitizer report:\n${r.stderr}`);
}

// A database and the environment that points tenantctl at it.
class Db {
  constructor(name) {
    this.name = name;
    this.admin = withDb(requireEnv('PG_ADMIN_URL'), name);
    this.owner = withDb(requireEnv('DATABASE_OWNER_URL'), name);
    this.app = withDb(requireEnv('DATABASE_URL'), name);
    this.env = {
      ...process.env,
      DATABASE_URL: this.app,
      DATABASE_OWNER_URL: this.owner,
      TENANTD_MIGRATIONS: path.join(ROOT, 'migrations'),
      ASAN_OPTIONS: process.env.ASAN_OPTIONS || 'detect_leaks=0',
    };
  }

  // Runs tenantctl synchronously; extra env entries override.
  ctl(args, { env = {}, input } = {}) {
    const r = spawnSync(TENANTCTL, args, {
      cwd: ROOT, env: { ...this.env, ...env }, encoding: 'utf8', input, timeout: 120000,
    });
    if (r.error) throw r.error;
    checkSanitizer(r);
    return r;
  }

  // Runs tenantctl and asserts exit 0; returns the run.
  ok(args, opts) {
    const r = this.ctl(args, opts);
    assert.equal(r.status, 0, `tenantctl ${args.join(' ')}: ${describeRun(r)}`);
    return r;
  }

  // Starts tenantctl in the background; resolves {status, signal, stdout, stderr} on exit.
  spawn(args, { env = {} } = {}) {
    const child = spawn(TENANTCTL, args, { cwd: ROOT, env: { ...this.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c) => { stdout += c; });
    child.stderr.on('data', (c) => { stderr += c; });
    child.done = new Promise((resolve) => child.on('exit', (status, signal) => resolve({ status, signal, stdout, stderr })));
    return child;
  }

  q(text) { return sql(this.owner, text); }

  v(text) { return sqlValue(this.owner, text); }

  schemaOf(slug) { return this.v(`SELECT schema_name FROM tenantd.tenants WHERE slug = ${lit(slug)}`); }
}

const RUN_ID = `${process.pid}_${Date.now().toString(36)}`;
const databases = [];

// Creates a fresh database for tenantctl (owner: the DATABASE_OWNER_URL role).
function createDb(label) {
  const name = `tenantctl_test_${label}_${RUN_ID}`;
  const adminUrl = requireEnv('PG_ADMIN_URL');
  const owner = userOf(requireEnv('DATABASE_OWNER_URL'));
  const app = userOf(requireEnv('DATABASE_URL'));
  sql(adminUrl, `CREATE DATABASE "${name}" OWNER "${owner}"`);
  databases.push(name);
  const db = new Db(name);
  sql(db.admin, `REVOKE ALL ON DATABASE "${name}" FROM PUBLIC; GRANT CONNECT ON DATABASE "${name}" TO "${app}", "${owner}";` +
    ' REVOKE ALL ON SCHEMA public FROM PUBLIC');
  return db;
}

// Drops roles in one psql session, each statement on its own (one failure does not stop the rest).
function dropRoles(roles) {
  if (!roles.length) return;
  spawnSync(PSQL, ['-X', '-q', '-d', requireEnv('PG_ADMIN_URL')], {
    input: roles.map((role) => `DROP ROLE IF EXISTS "${role}";\n`).join(''), encoding: 'utf8',
  });
}

// Drops the test databases and every tenant role whose schema lived in them.
function dropDatabases() {
  const adminUrl = requireEnv('PG_ADMIN_URL');
  for (const name of databases.splice(0)) {
    const url = withDb(adminUrl, name);
    let roles = [];
    try {
      roles = sql(url, "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'" +
        " UNION SELECT schema_name FROM tenantd.tenants").map((r) => r[0]);
    } catch {
      try {
        roles = sql(url, "SELECT nspname FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'").map((r) => r[0]);
      } catch { /* database unreachable */ }
    }
    sql(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    dropRoles(roles);
  }
}

// A temporary copy of migrations/ (control + tenant) to edit freely.
function copyMigrations() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-migrations-'));
  fs.cpSync(path.join(ROOT, 'migrations'), dir, { recursive: true });
  tempDirs.push(dir);
  return dir;
}
const tempDirs = [];

function addTenantMigration(dir, file, body) {
  fs.writeFileSync(path.join(dir, 'tenant', file), body);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function countAppliedEverywhere(db, version) {
  return Number(db.v(`SELECT count(*) FROM tenantd.tenants t JOIN tenantd.schema_migrations m
    ON m.schema_name = t.schema_name AND m.version = ${version}`));
}

after(() => {
  dropDatabases();
  for (const d of tempDirs) fs.rmSync(d, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Usage
// ---------------------------------------------------------------------------------------------

describe('tenantctl usage', () => {
  test('--help on every command exits 0 and prints usage; bad usage exits 2', () => {
    const db = new Db('postgres');
    const commands = [['migrate'], ['status'], ['migration', 'new'], ['tenant'], ['tenant', 'create'], ['tenant', 'list'],
      ['tenant', 'suspend'], ['tenant', 'resume'], ['tenant', 'drop'], ['tenant', 'export'], ['tenant', 'import'],
      ['seed'], ['schema', 'dump'], ['user', 'create'], ['backup'], ['restore']];
    for (const c of commands) {
      const r = db.ctl([...c, '--help']);
      assert.equal(r.status, 0, `${c.join(' ')} --help: ${describeRun(r)}`);
      assert.match(r.stdout, /usage: tenantctl/, `${c.join(' ')} --help prints usage`);
    }
    assert.equal(db.ctl(['--help']).status, 0);
    for (const bad of [[], ['frobnicate'], ['migrate', '--bogus'], ['migrate', '--jobs', '0'], ['migrate', '--jobs', 'x'],
      ['tenant', 'create'], ['tenant', 'create', 'acme'], ['tenant', 'nope'], ['migration', 'new', 'Bad-Name']]) {
      const r = db.ctl(bad);
      assert.equal(r.status, 2, `tenantctl ${bad.join(' ')} should be a usage error: ${describeRun(r)}`);
      assert.ok(r.stderr.length > 0, 'a usage error says something on stderr');
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The main database: migrate, tenants, isolation, lifecycle
// ---------------------------------------------------------------------------------------------

describe('tenantctl on a fresh database', () => {
  let db;
  before(() => { db = createDb('main'); });

  test('migrate from empty creates the control schema; a second run is a no-op', () => {
    const r = db.ok(['migrate']);
    assert.match(r.stdout, /applied 0001_control\.sql/);
    for (const t of ['tenants', 'users', 'memberships', 'roles', 'invitations', 'api_keys', 'audit_log',
      'schema_migrations', 'tenant_migrations', 'settings']) {
      assert.equal(db.v(`SELECT to_regclass('tenantd.${t}') IS NOT NULL`), 't', `tenantd.${t} exists`);
    }
    const ledger = db.q("SELECT version, length(checksum), duration_ms >= 0 FROM tenantd.schema_migrations WHERE schema_name = 'tenantd'");
    assert.ok(ledger.length >= 1);
    assert.deepEqual(ledger[0], ['1', '64', 't']);
    const again = db.ok(['migrate']);
    assert.match(again.stdout, /nothing to migrate/);
    assert.equal(db.v("SELECT value FROM tenantd.settings WHERE key = 'app_role'"), userOf(db.app));
  });

  test('the server role is not superuser, has no BYPASSRLS, is NOINHERIT and owns nothing', () => {
    const app = userOf(db.app);
    assert.deepEqual(db.q(`SELECT rolsuper, rolbypassrls, rolinherit FROM pg_roles WHERE rolname = ${lit(app)}`)[0], ['f', 'f', 'f']);
    const owned = db.v(`SELECT (SELECT count(*) FROM pg_class WHERE relowner = ${lit(app)}::regrole)
      + (SELECT count(*) FROM pg_namespace WHERE nspowner = ${lit(app)}::regrole)
      + (SELECT count(*) FROM pg_proc WHERE proowner = ${lit(app)}::regrole)`);
    assert.equal(owned, '0');
    assert.match(sqlError(db.app, 'CREATE TABLE tenantd.x (a int)'), /permission denied/);
    assert.match(sqlError(db.app, "UPDATE tenantd.audit_log SET action = 'x'"), /permission denied/);
    assert.match(sqlError(db.app, 'DELETE FROM tenantd.audit_log'), /permission denied/);
    assert.equal(sqlError(db.app, "INSERT INTO tenantd.audit_log (action) VALUES ('test')"), '');
    assert.match(sqlError(db.app, 'DELETE FROM tenantd.schema_migrations'), /permission denied/);
  });

  test('tenant create makes row, schema and NOLOGIN role t_<uuid hex>; list shows the version', () => {
    const r = db.ok(['tenant', 'create', 'acme', '--name', 'Acme', '--owner-email', 'Boss@Acme.test']);
    assert.match(r.stdout, /created tenant acme/);
    db.ok(['tenant', 'create', 'globex', '--name', 'Globex']);
    const schema = db.schemaOf('acme');
    const id = db.v("SELECT replace(id::text, '-', '') FROM tenantd.tenants WHERE slug = 'acme'");
    assert.equal(schema, `t_${id}`);
    assert.equal(db.v(`SELECT count(*) FROM pg_namespace WHERE nspname = ${lit(schema)}`), '1');
    assert.deepEqual(db.q(`SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ${lit(schema)}`)[0], ['f', 'f']);
    assert.equal(db.v(`SELECT to_regclass(${lit(`${schema}.orders`)}) IS NOT NULL`), 't');
    assert.deepEqual(db.q(`SELECT u.email, m.roles FROM tenantd.memberships m JOIN tenantd.users u ON u.id = m.user_id
      JOIN tenantd.tenants t ON t.id = m.tenant_id WHERE t.slug = 'acme'`), [['boss@acme.test', '{owner}']]);
    const list = db.ok(['tenant', 'list']).stdout.split('\n').filter(Boolean).map((l) => l.split('\t'));
    const tenantVersion = String(fs.readdirSync(path.join(ROOT, 'migrations/tenant')).filter((f) => f.endsWith('.sql')).length);
    assert.deepEqual(list[0], ['slug', 'status', 'version', 'schema', 'name']);
    assert.deepEqual(list.slice(1).map((row) => row.slice(0, 3)), [['acme', 'active', tenantVersion], ['globex', 'active', tenantVersion]]);
    const dup = db.ctl(['tenant', 'create', 'acme', '--name', 'Again']);
    assert.equal(dup.status, 1, describeRun(dup));
    assert.match(dup.stderr, /already exists/);
  });

  test('slugs: maximum length and hyphens work, near-identical long slugs get distinct schemas, invalid ones are refused', () => {
    const long1 = `${'a'.repeat(62)}b`;
    const long2 = `${'a'.repeat(62)}c`;
    assert.equal(long1.length, 63);
    for (const slug of [long1, long2, 'a-b--c-', 'x1']) db.ok(['tenant', 'create', slug, '--name', `Tenant ${slug}`]);
    const s1 = db.schemaOf(long1);
    const s2 = db.schemaOf(long2);
    assert.notEqual(s1, s2);
    for (const s of [s1, s2]) {
      assert.match(s, /^t_[0-9a-f]{32}$/);
      assert.equal(db.v(`SELECT count(*) FROM pg_namespace WHERE nspname = ${lit(s)}`), '1');
    }
    const before = db.v('SELECT count(*) FROM tenantd.tenants');
    for (const bad of [`${'a'.repeat(64)}`, 'a', 'A', 'Acme', '1abc', '-abc', 'ab_c', 'ab c', 'ab.c', 'abc;drop', 'é-abc', '']) {
      const r = db.ctl(['tenant', 'create', bad, '--name', 'Bad']);
      assert.equal(r.status, 2, `slug ${JSON.stringify(bad)}: ${describeRun(r)}`);
      assert.match(r.stderr, /slug/i, 'the message says the slug is the problem');
    }
    assert.equal(db.v('SELECT count(*) FROM tenantd.tenants'), before, 'nothing was created');
  });

  test("while SET ROLE to tenant A's role the server role cannot read tenant B; without SET ROLE it reads nothing", () => {
    const a = db.schemaOf('acme');
    const b = db.schemaOf('globex');
    db.q(`INSERT INTO ${a}.orders (title) VALUES ('acme order'); INSERT INTO ${b}.orders (title) VALUES ('globex secret')`);
    assert.deepEqual(sql(db.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT title FROM ${a}.orders; COMMIT`), [['acme order']]);
    assert.match(sqlError(db.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT title FROM ${b}.orders`), /permission denied/);
    assert.match(sqlError(db.app, `BEGIN; SET LOCAL ROLE ${a}; INSERT INTO ${b}.orders (title) VALUES ('x')`), /permission denied/);
    assert.match(sqlError(db.app, `SELECT title FROM ${a}.orders`), /permission denied/);
    assert.match(sqlError(db.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT * FROM tenantd.tenants`), /permission denied/);
    // The PostgREST-style pattern the server uses: role and search_path local to the transaction.
    assert.deepEqual(sql(db.app, `BEGIN; SELECT set_config('role', ${lit(a)}, true), set_config('search_path', ${lit(a)}, true);` +
      ' SELECT title FROM orders; COMMIT').slice(-1), [['acme order']]);
  });

  test('suspend and resume change the status; an unknown slug is exit 1', () => {
    db.ok(['tenant', 'suspend', 'globex']);
    assert.equal(db.v("SELECT status FROM tenantd.tenants WHERE slug = 'globex'"), 'suspended');
    db.ok(['tenant', 'resume', 'globex']);
    assert.equal(db.v("SELECT status FROM tenantd.tenants WHERE slug = 'globex'"), 'active');
    const r = db.ctl(['tenant', 'suspend', 'no-such-tenant']);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stderr, /no tenant/);
  });

  test('a status change is announced with NOTIFY tenantd_tenants, which the server role can LISTEN to', async () => {
    const listener = spawn(PSQL, ['-X', '-q', '-d', db.app], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    listener.stdout.on('data', (c) => { out += c; });
    listener.stderr.on('data', (c) => { out += c; });
    const exited = new Promise((resolve) => listener.on('exit', resolve));
    listener.stdin.write('LISTEN tenantd_tenants;\nSELECT 1;\n');
    await sleep(300);
    db.ok(['tenant', 'suspend', 'globex']);
    db.ok(['tenant', 'resume', 'globex']);
    listener.stdin.write('SELECT 2;\n\\q\n');
    await exited;
    const payloads = [...out.matchAll(/payload "(\{.*?\})" received/g)].map((m) => JSON.parse(m[1]));
    assert.deepEqual(payloads.map((p) => [p.op, p.slug, p.status]), [['update', 'globex', 'suspended'], ['update', 'globex', 'active']],
      `psql output: ${out}`);
    assert.equal(payloads[0].id, db.v("SELECT id FROM tenantd.tenants WHERE slug = 'globex'"));
  });

  test('a changed server role is noticed by migrate and granted everything again', () => {
    db.q("UPDATE tenantd.settings SET value = 'someone_else' WHERE key = 'app_role'");
    const st = db.ok(['status']);
    assert.match(st.stdout, /grants: /);
    const r = db.ok(['migrate']);
    assert.doesNotMatch(r.stdout, /nothing to migrate/);
    assert.equal(db.v("SELECT value FROM tenantd.settings WHERE key = 'app_role'"), userOf(db.app));
    assert.match(db.ok(['migrate']).stdout, /nothing to migrate/);
  });

  test('export then import restores the data exactly', () => {
    const a = db.schemaOf('acme');
    db.q(`INSERT INTO ${a}.orders (title, status, position, owner_id, created_at) VALUES
      ('Ünïcødé "quotes" \\ backslash', 'in_progress', -5, gen_random_uuid(), '2020-02-29 23:59:59.123456+00'),
      (E'line\\nbreak\\ttab', 'done', 2147483647, NULL, now());
      INSERT INTO ${a}.notifications (user_id, kind, payload, read_at) VALUES
      (gen_random_uuid(), 'mention', '{"n": 1.10, "big": 12345678901234567890, "f": 0.1, "a": [null, true], "s": "\\u00e9"}', NULL),
      (gen_random_uuid(), 'k', '{}', now())`);
    const digest = () => db.v(`SELECT md5(coalesce((SELECT string_agg(x::text, '|' ORDER BY x::text) FROM ${db.schemaOf('acme')}.orders x), '')
      || coalesce((SELECT string_agg(y::text, '|' ORDER BY y::text) FROM ${db.schemaOf('acme')}.notifications y), ''))`);
    const before = digest();
    const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-export-')), 'acme.jsonl');
    tempDirs.push(path.dirname(file));
    db.ok(['tenant', 'suspend', 'acme']);
    db.ok(['tenant', 'export', 'acme', '--out', file]);
    const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(JSON.parse(lines[0]).format, 'tenantd-export');
    assert.equal(lines.length, 1 + 3 + 2);
    const refused = db.ctl(['tenant', 'import', file]);
    assert.equal(refused.status, 1, 'importing over an existing tenant is refused');
    db.ok(['tenant', 'drop', 'acme', '--yes']);
    assert.equal(db.schemaOf('acme'), undefined);
    const r = db.ok(['tenant', 'import', file]);
    assert.match(r.stdout, /5 rows/);
    assert.notEqual(db.schemaOf('acme'), a, 'a new schema');
    assert.equal(digest(), before, 'every row and value is back');
    assert.equal(db.v("SELECT status FROM tenantd.tenants WHERE slug = 'acme'"), 'suspended');
    const again = path.join(path.dirname(file), 'again.jsonl');
    db.ok(['tenant', 'export', 'acme', '--out', again]);
    assert.equal(fs.readFileSync(again, 'utf8'), fs.readFileSync(file, 'utf8'), 'a second export is identical');
    db.ok(['tenant', 'resume', 'acme']);
    // Import under another slug, and a broken file changes nothing.
    db.ok(['tenant', 'import', file, '--slug', 'acme-copy']);
    assert.equal(db.v(`SELECT count(*) FROM ${db.schemaOf('acme-copy')}.orders`), '3');
    const broken = path.join(path.dirname(file), 'broken.jsonl');
    fs.writeFileSync(broken, `${lines[0]}\n{"table":"orders","row":{"id":"not-a-uuid"}}\n`);
    const count = db.v('SELECT count(*) FROM tenantd.tenants');
    const bad = db.ctl(['tenant', 'import', broken, '--slug', 'broken-import']);
    assert.equal(bad.status, 1, describeRun(bad));
    assert.equal(db.v('SELECT count(*) FROM tenantd.tenants'), count);
  });

  test('drop asks for --yes without a terminal, then removes row, schema, role and ledger', () => {
    db.ok(['tenant', 'create', 'doomed', '--name', 'Doomed']);
    const s = db.schemaOf('doomed');
    const r = db.ctl(['tenant', 'drop', 'doomed']);
    assert.equal(r.status, 2, describeRun(r));
    assert.match(r.stderr, /--yes/);
    assert.equal(db.schemaOf('doomed'), s, 'still there');
    db.ok(['tenant', 'drop', 'doomed', '--yes']);
    assert.equal(db.schemaOf('doomed'), undefined);
    assert.equal(db.v(`SELECT count(*) FROM pg_namespace WHERE nspname = ${lit(s)}`), '0');
    assert.equal(db.v(`SELECT count(*) FROM pg_roles WHERE rolname = ${lit(s)}`), '0');
    assert.equal(db.v(`SELECT count(*) FROM tenantd.schema_migrations WHERE schema_name = ${lit(s)}`), '0');
    assert.equal(db.ctl(['tenant', 'drop', 'doomed', '--yes']).status, 1);
  });

  test('seed loads fixtures idempotently with argon2id hashes', () => {
    db.ok(['seed', 'fixtures']);
    const snapshot = () => db.q(`SELECT t.slug, u.email, m.roles::text, u.password_hash, u.is_platform_admin
      FROM tenantd.memberships m JOIN tenantd.users u ON u.id = m.user_id JOIN tenantd.tenants t ON t.id = m.tenant_id
      ORDER BY 1, 2`);
    const first = snapshot();
    const firstOrders = db.v(`SELECT count(*) FROM ${db.schemaOf('globex')}.orders`);
    db.ok(['seed']);
    assert.deepEqual(snapshot(), first, 'a second seed changes nothing');
    assert.equal(db.v(`SELECT count(*) FROM ${db.schemaOf('globex')}.orders`), firstOrders);
    for (const tenant of ['acme', 'globex']) {
      const roles = first.filter((r) => r[0] === tenant).map((r) => r[2]);
      for (const role of ['owner', 'admin', 'member', 'viewer']) assert.ok(roles.includes(`{${role}}`), `${tenant} has a ${role}`);
    }
    const fixture = JSON.parse(fs.readFileSync(path.join(ROOT, 'fixtures/tenants.json'), 'utf8'));
    const withPassword = new Set([...fixture.users, ...fixture.tenants.flatMap((t) => t.members)]
      .filter((u) => u.password).map((u) => u.email));
    const hashed = db.q('SELECT email, password_hash FROM tenantd.users WHERE password_hash IS NOT NULL');
    assert.equal(hashed.length, withPassword.size);
    for (const [email, hash] of hashed) {
      assert.ok(withPassword.has(email), `${email} has a password only if the fixture gives one`);
      assert.match(hash, /^\$argon2id\$/);
    }
    assert.equal(db.v("SELECT is_platform_admin FROM tenantd.users WHERE email = 'platform@tenantd.test'"), 't');
    const badDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-fixtures-'));
    tempDirs.push(badDir);
    fs.writeFileSync(path.join(badDir, 'tenants.json'), JSON.stringify({ tenants: [{ slug: 'Bad Slug', name: 'x' }] }));
    const r = db.ctl(['seed', badDir]);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stderr, /slug/);
  });

  test('user create reads the password from stdin, hashes it and sets the membership roles', () => {
    const r = db.ok(['user', 'create', '--email', 'Ops@Globex.test', '--tenant', 'globex', '--role', 'admin,member'],
      { input: 'correct horse battery staple\n' });
    assert.match(r.stdout, /ops@globex\.test/);
    assert.ok(!r.stdout.includes('staple') && !r.stderr.includes('staple'), 'the password is never printed');
    const [[roles, hash]] = db.q(`SELECT m.roles, u.password_hash FROM tenantd.users u JOIN tenantd.memberships m ON m.user_id = u.id
      JOIN tenantd.tenants t ON t.id = m.tenant_id WHERE u.email = 'ops@globex.test' AND t.slug = 'globex'`);
    assert.equal(roles, '{admin,member}');
    assert.match(hash, /^\$argon2id\$/);
    for (const [args, input, status] of [
      [['--email', 'x@globex.test', '--tenant', 'globex', '--role', 'member'], '', 2],
      [['--email', 'x@globex.test', '--tenant', 'globex', '--role', 'member'], `${'p'.repeat(4097)}\n`, 2],
      [['--email', 'not-an-email', '--tenant', 'globex', '--role', 'member'], 'pw\n', 2],
      [['--email', 'x@globex.test', '--tenant', 'globex', '--role', 'Admin'], 'pw\n', 2],
      [['--email', 'x@globex.test', '--tenant', 'no-such', '--role', 'member'], 'pw\n', 1]]) {
      const bad = db.ctl(['user', 'create', ...args], { input });
      assert.equal(bad.status, status, describeRun(bad));
    }
    assert.equal(db.v("SELECT count(*) FROM tenantd.users WHERE email = 'x@globex.test'"), '0');
  });

  test('backup, then restore into a new database of a cluster without the tenant roles', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-backup-'));
    tempDirs.push(dir);
    const file = path.join(dir, 'all.dump');
    const r = db.ok(['backup', '--out', file]);
    assert.match(r.stdout, /wrote/);
    assert.ok(fs.statSync(file).size > 0);
    assert.ok(!fs.existsSync(`${file}.tmp`));
    const digest = (d) => d.q('SELECT slug, schema_name FROM tenantd.tenants ORDER BY slug').map(([slug, schema]) =>
      [slug, sqlValue(d.owner, `SELECT md5(coalesce(string_agg(x::text, '|' ORDER BY x::text), '')) FROM ${schema}.orders x`)]);
    const before = { t: db.q('SELECT slug, status, name FROM tenantd.tenants ORDER BY slug'),
      u: db.q('SELECT email, coalesce(password_hash, \'\'), is_platform_admin FROM tenantd.users ORDER BY email'), d: digest(db) };
    const roles = db.q('SELECT schema_name FROM tenantd.tenants').map((x) => x[0]);
    // The old database and its roles go away, as on a new cluster.
    sql(requireEnv('PG_ADMIN_URL'), `DROP DATABASE "${db.name}" WITH (FORCE)`);
    dropRoles(roles);
    assert.equal(sqlValue(requireEnv('PG_ADMIN_URL'), `SELECT count(*) FROM pg_roles WHERE rolname IN (${roles.map(lit).join(', ')})`), '0');
    const fresh = createDb('restored');
    const rr = fresh.ok(['restore', file]);
    assert.match(rr.stdout, new RegExp(`${before.t.length} tenants`));
    assert.deepEqual(fresh.q('SELECT slug, status, name FROM tenantd.tenants ORDER BY slug'), before.t);
    assert.deepEqual(fresh.q('SELECT email, coalesce(password_hash, \'\'), is_platform_admin FROM tenantd.users ORDER BY email'), before.u);
    assert.deepEqual(digest(fresh), before.d);
    const a = fresh.schemaOf('acme');
    const g = fresh.schemaOf('globex');
    assert.equal(sqlError(fresh.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT count(*) FROM ${a}.orders`), '');
    assert.match(sqlError(fresh.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT count(*) FROM ${g}.orders`), /permission denied/);
    assert.match(sqlError(fresh.app, `SELECT count(*) FROM ${a}.orders`), /permission denied/);
    assert.equal(fresh.v("SELECT has_function_privilege('public', 'tenantd.create_tenant(text, text)', 'EXECUTE')"), 'f',
      'PUBLIC may not execute create_tenant after a restore');
    assert.equal(fresh.v(`SELECT has_function_privilege(${lit(userOf(fresh.app))}, 'tenantd.create_tenant(text, text)', 'EXECUTE')`), 't');
    assert.match(fresh.ok(['migrate']).stdout, /nothing to migrate/);
    db = fresh;
    const again = fresh.ctl(['restore', file]);
    assert.equal(again.status, 1, describeRun(again));
    assert.match(again.stderr, /empty database/);
  });

  test('the committed schema/*.sql equals a fresh schema dump (drift check)', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-dump-'));
    tempDirs.push(out);
    db.ok(['schema', 'dump', '--out', out]);
    for (const f of ['control.sql', 'tenant.sql']) {
      const fresh = fs.readFileSync(path.join(out, f), 'utf8');
      const committed = fs.readFileSync(path.join(ROOT, 'schema', f), 'utf8');
      assert.equal(committed, fresh, `schema/${f} is stale: run \`tenantctl schema dump\` and commit it`);
    }
    assert.match(fs.readFileSync(path.join(out, 'tenant.sql'), 'utf8'), /CREATE TABLE orders \(/);
    assert.equal(db.v("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'tenantd_schema_dump%'"), '0', 'scratch schemas are gone');
  });
});

// ---------------------------------------------------------------------------------------------
// Migrations over many tenants: edits, failures, kill -9, concurrency
// ---------------------------------------------------------------------------------------------

describe('tenantctl migrate over many tenants', () => {
  let db;
  let dir;
  const TENANTS = 30;
  before(() => {
    db = createDb('many');
    dir = copyMigrations();
    db.env.TENANTD_MIGRATIONS = dir;
    db.ok(['migrate']);
    for (let i = 1; i <= TENANTS; i++) db.ok(['tenant', 'create', `t${String(i).padStart(3, '0')}`, '--name', `Tenant ${i}`]);
  });

  test('a no-op migrate is one query for all tenants, not one per tenant', async () => {
    const xacts = () => Number(sqlValue(db.admin, `SELECT pg_stat_force_next_flush(); SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()`));
    const before = xacts();
    const r = db.ok(['migrate']);
    assert.match(r.stdout, /nothing to migrate/);
    await sleep(300);
    const delta = xacts() - before;
    assert.ok(delta < 10, `a no-op migrate over ${TENANTS} tenants ran ${delta} transactions`);
  });

  test('migration new creates the next file; migrate --jobs applies it everywhere with its checksum', () => {
    const r = db.ok(['migration', 'new', 'add_priority']);
    const file = r.stdout.trim();
    assert.match(path.basename(file), /^0002_add_priority\.sql$/);
    fs.appendFileSync(file, 'ALTER TABLE orders ADD COLUMN priority integer NOT NULL DEFAULT 0;\n');
    assert.match(db.ok(['status']).stdout, /pending 0002_add_priority\.sql/);
    const dry = db.ok(['migrate', '--dry-run']);
    assert.match(dry.stdout, /would apply 0002_add_priority\.sql/);
    assert.equal(countAppliedEverywhere(db, 2), 0, 'dry run changed nothing');
    db.ok(['migrate', '--jobs', '4']);
    assert.equal(countAppliedEverywhere(db, 2), TENANTS);
    const sha = execFileSync('sha256sum', [file], { encoding: 'utf8' }).split(' ')[0];
    assert.equal(db.v(`SELECT count(DISTINCT checksum) || ':' || min(checksum) FROM tenantd.schema_migrations WHERE version = 2 AND schema_name <> 'tenantd'`), `1:${sha}`);
    assert.equal(db.v(`SELECT count(*) FROM information_schema.columns WHERE column_name = 'priority' AND table_name = 'orders'
      AND table_schema ~ '^t_'`), String(TENANTS));
    // A tenant created now gets 0002 too (the released set).
    db.ok(['tenant', 'create', 'late', '--name', 'Late']);
    assert.equal(db.v(`SELECT max(version) FROM tenantd.schema_migrations WHERE schema_name = ${lit(db.schemaOf('late'))}`), '2');
    db.ok(['tenant', 'drop', 'late', '--yes']);
  });

  test('an edited applied migration stops migrate with an error naming the file and the schema', () => {
    const file = path.join(dir, 'tenant', '0002_add_priority.sql');
    const original = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, `${original}-- an innocent-looking edit\n`);
    addTenantMigration(dir, '0003_never.sql', 'CREATE TABLE never_applied (id int);\n');
    try {
      const r = db.ctl(['migrate']);
      assert.equal(r.status, 1, describeRun(r));
      assert.match(r.stderr, /0002_add_priority\.sql was edited/);
      assert.match(r.stderr, /schema t_[0-9a-f]{32} \(tenant t0\d\d\)/);
      assert.equal(countAppliedEverywhere(db, 3), 0, 'nothing was applied');
      assert.match(db.ok(['status']).stdout, /edited/);
      const c = db.ctl(['tenant', 'create', 'edited', '--name', 'E']);
      assert.equal(c.status, 1, 'tenant create refuses an edited set too');
      assert.equal(db.schemaOf('edited'), undefined);
    } finally {
      fs.writeFileSync(file, original);
      fs.rmSync(path.join(dir, 'tenant', '0003_never.sql'));
    }
    assert.match(db.ok(['migrate']).stdout, /nothing to migrate/);
  });

  test('one failing tenant is reported, the others are migrated, exit 1 with a summary', () => {
    const victim = db.schemaOf('t007');
    db.q(`ALTER TABLE ${victim}.orders ADD COLUMN tag text`);
    addTenantMigration(dir, '0003_add_tag.sql', 'ALTER TABLE orders ADD COLUMN tag text;\n');
    const r = db.ctl(['migrate', '--jobs', '3']);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stdout, /1 failed/);
    assert.match(r.stderr, /tenant t007 .*failed: 0003_add_tag\.sql: column "tag" .* already exists/);
    assert.equal(countAppliedEverywhere(db, 3), TENANTS - 1);
    assert.equal(db.v(`SELECT count(*) FROM tenantd.schema_migrations WHERE schema_name = ${lit(victim)} AND version = 3`), '0');
    // Repair the tenant by hand; the rerun converges.
    db.q(`ALTER TABLE ${victim}.orders DROP COLUMN tag`);
    db.ok(['migrate']);
    assert.equal(countAppliedEverywhere(db, 3), TENANTS);
  });

  test('tenant create is atomic: a failing migration leaves no row, schema, role or released file', () => {
    const roles = db.v("SELECT count(*) FROM pg_roles WHERE rolname ~ '^t_[0-9a-f]{32}$'");
    const schemas = db.v("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^t_'");
    addTenantMigration(dir, '0004_broken.sql', 'CREATE TABLE ok_part (id int);\nSELECT 1 / 0;\n');
    try {
      const r = db.ctl(['tenant', 'create', 'atomic', '--name', 'Atomic', '--owner-email', 'atomic@example.test']);
      assert.equal(r.status, 1, describeRun(r));
      assert.match(r.stderr, /division by zero/);
      assert.equal(db.schemaOf('atomic'), undefined);
      assert.equal(db.v("SELECT count(*) FROM pg_roles WHERE rolname ~ '^t_[0-9a-f]{32}$'"), roles);
      assert.equal(db.v("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^t_'"), schemas);
      assert.equal(db.v('SELECT count(*) FROM tenantd.tenant_migrations WHERE version = 4'), '0');
      assert.equal(db.v("SELECT count(*) FROM tenantd.users WHERE email = 'atomic@example.test'"), '0');
    } finally {
      fs.rmSync(path.join(dir, 'tenant', '0004_broken.sql'));
    }
  });

  test('kill -9 in the middle of a migration run, then a rerun converges', async () => {
    addTenantMigration(dir, '0004_slow.sql', "SELECT pg_sleep(0.1);\nCREATE TABLE slow_marker (id int);\n");
    const child = db.spawn(['migrate', '--jobs', '2']);
    await sleep(600);
    child.kill('SIGKILL');
    const killed = await child.done;
    assert.equal(killed.signal, 'SIGKILL', `tenantctl should still have been running: ${describeRun(killed)}`);
    const partial = countAppliedEverywhere(db, 4);
    assert.ok(partial < TENANTS, `the run was cut short (${partial} of ${TENANTS} applied)`);
    const r = db.ok(['migrate', '--jobs', '4']);
    assert.match(r.stdout, /0 failed/);
    assert.equal(countAppliedEverywhere(db, 4), TENANTS);
    // Every schema has the table exactly where the ledger says so.
    assert.equal(db.v(`SELECT count(*) FROM tenantd.tenants t WHERE to_regclass(quote_ident(t.schema_name) || '.slow_marker') IS NULL`), '0');
    assert.match(db.ok(['migrate']).stdout, /nothing to migrate/);
  });

  test('two concurrent migrates are serialized by the advisory lock and apply each migration once', async () => {
    addTenantMigration(dir, '0005_concurrent.sql', "SELECT pg_sleep(0.05);\nALTER TABLE orders ADD COLUMN c5 int;\n");
    const a = db.spawn(['migrate', '--jobs', '2']);
    const b = db.spawn(['migrate', '--jobs', '2']);
    const [ra, rb] = await Promise.all([a.done, b.done]);
    assert.equal(ra.status, 0, describeRun(ra));
    assert.equal(rb.status, 0, describeRun(rb));
    assert.equal(countAppliedEverywhere(db, 5), TENANTS);
    const outputs = ra.stdout + rb.stdout;
    assert.match(outputs, /nothing to migrate/, 'the second run found the work done');
    assert.match(ra.stderr + rb.stderr, /waiting/, 'one run waited for the other');
  });

  test('migrate --tenant touches only that tenant; an unknown slug is exit 1', () => {
    addTenantMigration(dir, '0006_one.sql', 'CREATE TABLE one_only (id int);\n');
    db.ok(['migrate', '--tenant', 't001']);
    assert.equal(countAppliedEverywhere(db, 6), 1);
    assert.equal(db.v(`SELECT count(*) FROM tenantd.schema_migrations WHERE version = 6 AND schema_name = ${lit(db.schemaOf('t001'))}`), '1');
    const r = db.ctl(['migrate', '--tenant', 'nobody']);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stderr, /no tenant/);
    db.ok(['migrate']);
    assert.equal(countAppliedEverywhere(db, 6), TENANTS);
    // Tables added by later migrations are the tenant role's too (default privileges).
    for (const slug of ['t001', 't030']) {
      const s = db.schemaOf(slug);
      assert.deepEqual(sql(db.app, `BEGIN; SELECT set_config('role', ${lit(s)}, true), set_config('search_path', ${lit(s)}, true);` +
        ' INSERT INTO one_only VALUES (1); SELECT count(*) FROM one_only; SELECT count(*) FROM slow_marker; COMMIT').slice(-2), [['1'], ['0']]);
    }
  });

  test('on a terminal migrate draws a progress bar (done/total, failures, rate, ETA)', () => {
    addTenantMigration(dir, '0008_tty.sql', 'CREATE TABLE tty_check (id int);\n');
    const quote = (a) => `'${a.replaceAll("'", "'\\''")}'`;
    const r = spawnSync('script', ['-qec', [TENANTCTL, 'migrate', '--jobs', '2'].map(quote).join(' '), '/dev/null'], {
      cwd: ROOT, env: db.env, encoding: 'utf8', timeout: 60000, stdio: ['pipe', 'pipe', 'pipe'], input: '',
    });
    assert.equal(r.status, 0, describeRun(r));
    checkSanitizer(r);
    assert.match(r.stdout, new RegExp(`tenants \\[#+\\] ${TENANTS}/${TENANTS}  failed 0  \\d+/s  ETA 0s`), r.stdout);
    assert.doesNotMatch(r.stdout, /applied 0008_tty\.sql/, 'no per-tenant lines on a terminal');
    assert.equal(countAppliedEverywhere(db, 8), TENANTS);
  });

  test('migrating as another role (here the superuser) grants the tenant roles explicitly', () => {
    addTenantMigration(dir, '0007_by_admin.sql', 'CREATE TABLE by_admin (id serial PRIMARY KEY, v text);\n');
    db.ok(['migrate', '--jobs', '2'], { env: { DATABASE_OWNER_URL: db.admin } });
    assert.equal(countAppliedEverywhere(db, 7), TENANTS);
    const s = db.schemaOf('t015');
    assert.deepEqual(sql(db.app, `BEGIN; SELECT set_config('role', ${lit(s)}, true), set_config('search_path', ${lit(s)}, true);` +
      " INSERT INTO by_admin (v) VALUES ('x') RETURNING id; COMMIT").slice(-1), [['1']]);
  });
});

// ---------------------------------------------------------------------------------------------
// Batched creation: tenant create --from-file
// ---------------------------------------------------------------------------------------------

describe('tenantctl tenant create --from-file', () => {
  let db;
  let dir;
  let listDir;
  // Roles are cluster-wide (other databases have tenants too); the suites run one at a time.
  const tenantRoles = () => db.v("SELECT count(*) FROM pg_roles WHERE rolname ~ '^t_[0-9a-f]{32}$'");
  const schemas = () => db.v("SELECT count(*) FROM pg_namespace WHERE nspname ~ '^t_[0-9a-f]{32}$'");
  const writeList = (name, text) => {
    const file = path.join(listDir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const latest = () => String(Math.max(...fs.readdirSync(path.join(dir, 'tenant')).filter((f) => f.endsWith('.sql'))
    .map((f) => Number(f.slice(0, 4)))));
  const versionOf = (slug) => db.v(`SELECT max(version) FROM tenantd.schema_migrations WHERE schema_name = ${lit(db.schemaOf(slug))}`);

  before(() => {
    db = createDb('batch');
    dir = copyMigrations();
    db.env.TENANTD_MIGRATIONS = dir;
    addTenantMigration(dir, '0002_batch_extra.sql', 'CREATE TABLE batch_extra (id serial PRIMARY KEY, note text);\n');
    db.ok(['migrate']);
    listDir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantctl-batch-'));
    tempDirs.push(listDir);
  });

  test('creates every listed tenant over --jobs connections, at the latest version, isolated like single-created ones', () => {
    const lines = ['# slug<TAB>name<TAB>owner', ''];
    for (let i = 1; i <= 12; i++) lines.push(`b${String(i).padStart(2, '0')}\tBatch ${i}${i % 3 === 0 ? `\tOwner${i}@Batch.test` : ''}`);
    lines.push('b13\tShared owner one\tshared@batch.test', 'b14\tShared owner two\tshared@batch.test');
    const file = writeList('ok.tsv', `${lines.join('\n')}\n`);
    const timings = path.join(listDir, 'ok.times');
    const r = db.ok(['tenant', 'create', '--from-file', file, '--jobs', '3', '--timings', timings]);
    assert.match(r.stdout, /created 14 tenants in [\d.]+ s \([\d.]+\/s, 3 jobs\); 0 failed; per tenant p50 [\d.]+ ms, p99 [\d.]+ ms/);
    assert.equal((r.stdout.match(/^created tenant b\d\d \(id [0-9a-f-]{36}, schema t_[0-9a-f]{32}\)/gm) || []).length, 14);
    const rows = fs.readFileSync(timings, 'utf8').trim().split('\n').map((l) => l.split('\t'));
    assert.equal(rows.length, 14);
    for (const [line, slug, ms, result] of rows) {
      assert.match(line, /^\d+$/);
      assert.match(slug, /^b\d\d$/);
      assert.ok(Number(ms) > 0);
      assert.equal(result, 'ok');
    }
    assert.equal(rows.find((x) => x[1] === 'b01')[0], '3', 'timings name the line of the file');
    // Every tenant: row, NOLOGIN role and schema t_<uuid hex>, every migration, the server's role a member.
    const slugs = db.q("SELECT slug, schema_name, replace(id::text, '-', '') FROM tenantd.tenants WHERE slug ~ '^b\\d\\d$' ORDER BY slug");
    assert.equal(slugs.length, 14);
    for (const [slug, schema, hex] of slugs) {
      assert.equal(schema, `t_${hex}`);
      assert.deepEqual(db.q(`SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = ${lit(schema)}`)[0], ['f', 'f']);
      assert.equal(versionOf(slug), latest(), `${slug} is at the latest tenant migration`);
      assert.equal(db.v(`SELECT to_regclass(${lit(`${schema}.batch_extra`)}) IS NOT NULL`), 't');
    }
    assert.deepEqual(db.q(`SELECT t.slug, u.email, m.roles FROM tenantd.memberships m JOIN tenantd.users u ON u.id = m.user_id
      JOIN tenantd.tenants t ON t.id = m.tenant_id WHERE t.slug ~ '^b\\d\\d$' ORDER BY 1`),
    [['b03', 'owner3@batch.test', '{owner}'], ['b06', 'owner6@batch.test', '{owner}'], ['b09', 'owner9@batch.test', '{owner}'],
      ['b12', 'owner12@batch.test', '{owner}'], ['b13', 'shared@batch.test', '{owner}'], ['b14', 'shared@batch.test', '{owner}']]);
    // Isolation, as for `tenant create SLUG` (see the main suite).
    const a = db.schemaOf('b01');
    const b = db.schemaOf('b02');
    db.q(`INSERT INTO ${b}.orders (title) VALUES ('b02 secret')`);
    assert.deepEqual(sql(db.app, `BEGIN; SELECT set_config('role', ${lit(a)}, true), set_config('search_path', ${lit(a)}, true);` +
      " INSERT INTO orders (title) VALUES ('b01 order') RETURNING title; COMMIT").slice(-1), [['b01 order']]);
    // A table with a sequence from the second migration: the rights come from the default privileges.
    assert.deepEqual(sql(db.app, `BEGIN; SELECT set_config('role', ${lit(a)}, true), set_config('search_path', ${lit(a)}, true);` +
      " INSERT INTO batch_extra (note) VALUES ('x') RETURNING id; UPDATE batch_extra SET note = 'y'; DELETE FROM batch_extra; COMMIT").slice(-1), [['1']]);
    assert.deepEqual(db.q(`SELECT c.relname, c.relacl::text FROM pg_class c WHERE c.relnamespace = ${lit(a)}::regnamespace
      AND c.relkind IN ('r', 'S') ORDER BY 1`).map(([rel, acl]) => [rel, acl.includes(`${a}=`)]),
    [['batch_extra', true], ['batch_extra_id_seq', true], ['notifications', true], ['orders', true]]);
    assert.match(sqlError(db.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT title FROM ${b}.orders`), /permission denied/);
    assert.match(sqlError(db.app, `BEGIN; SET LOCAL ROLE ${a}; SELECT * FROM tenantd.tenants`), /permission denied/);
    assert.match(sqlError(db.app, `SELECT title FROM ${a}.orders`), /permission denied/);
  });

  test('bad lines are reported with their line numbers and skipped; nothing of them remains; the others are created', () => {
    db.ok(['tenant', 'create', 'taken', '--name', 'Taken']);
    const before = { tenants: db.v('SELECT count(*) FROM tenantd.tenants'), schemas: schemas(), roles: tenantRoles() };
    const file = writeList('bad.tsv', [
      'c-one\tC One', // 1
      'Bad-Slug\tUpper case', // 2
      'c-two\tC Two\tboss@c.test', // 3
      'c-one\tRepeated', // 4
      'taken\tExists already', // 5
      'c-three', // 6
      'c-four\tC Four\tnot-an-email', // 7
      `c-five\t${'n'.repeat(201)}`, // 8
      'c-six\tC Six\tx@c.test\textra', // 9
      'c-seven\tC Seven\r', // 10
    ].join('\n'));
    const r = db.ctl(['tenant', 'create', '--from-file', file, '--jobs', '2']);
    assert.equal(r.status, 1, describeRun(r));
    assert.match(r.stdout, /created 3 tenants .*; 7 failed/);
    const at = (n, re) => assert.match(r.stderr, new RegExp(`bad\\.tsv:${n}: ${re}`), `line ${n} is reported:\n${r.stderr}`);
    at(2, 'invalid slug');
    at(4, "slug 'c-one' is repeated \\(first on line 1\\)");
    at(5, "a tenant with slug 'taken' already exists");
    at(6, 'missing name');
    at(7, 'owner e-mail: invalid e-mail');
    at(8, 'invalid name: the name is too long');
    at(9, 'too many fields');
    assert.doesNotMatch(r.stderr, /bad\.tsv:(1|3|10):/);
    assert.deepEqual(db.q("SELECT slug, name FROM tenantd.tenants WHERE slug LIKE 'c-%' ORDER BY slug"),
      [['c-one', 'C One'], ['c-seven', 'C Seven'], ['c-two', 'C Two']]);
    assert.equal(db.v("SELECT name FROM tenantd.tenants WHERE slug = 'taken'"), 'Taken', 'the existing tenant is untouched');
    assert.equal(db.v("SELECT count(*) FROM tenantd.users WHERE email IN ('not-an-email', 'x@c.test')"), '0');
    assert.equal(db.v('SELECT count(*) FROM tenantd.tenants'), String(Number(before.tenants) + 3));
    assert.equal(schemas(), String(Number(before.schemas) + 3));
    assert.equal(tenantRoles(), String(Number(before.roles) + 3));
  });

  test('a tenant failing inside the database leaves no row, role, schema, ledger or owner behind; the others go on', () => {
    // A trigger makes the ledger insert of one tenant fail: after its role, schema and migrations exist.
    db.q(`CREATE FUNCTION tenantd.test_fail_one() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.schema_name = (SELECT schema_name FROM tenantd.tenants WHERE slug = 'd-boom') THEN
        RAISE EXCEPTION 'test: d-boom must fail'; END IF; RETURN NEW; END $$;
      CREATE TRIGGER test_fail_one BEFORE INSERT ON tenantd.schema_migrations FOR EACH ROW EXECUTE FUNCTION tenantd.test_fail_one()`);
    try {
      const before = { schemas: schemas(), roles: tenantRoles(), ledger: db.v('SELECT count(*) FROM tenantd.schema_migrations') };
      const lines = [];
      for (let i = 1; i <= 6; i++) lines.push(`d-${i}\tD ${i}`);
      lines.splice(3, 0, 'd-boom\tBoom\tboom@d.test');
      const file = writeList('boom.tsv', lines.join('\n'));
      const r = db.ctl(['tenant', 'create', '--from-file', file, '--jobs', '3']);
      assert.equal(r.status, 1, describeRun(r));
      assert.match(r.stderr, /boom\.tsv:4: test: d-boom must fail/);
      assert.match(r.stdout, /created 6 tenants .*; 1 failed/);
      assert.equal(db.schemaOf('d-boom'), undefined);
      assert.equal(db.v("SELECT count(*) FROM tenantd.tenants WHERE slug LIKE 'd-%'"), '6');
      assert.equal(schemas(), String(Number(before.schemas) + 6), 'no schema of d-boom');
      assert.equal(tenantRoles(), String(Number(before.roles) + 6), 'no role of d-boom');
      assert.equal(db.v('SELECT count(*) FROM tenantd.schema_migrations'), String(Number(before.ledger) + 6 * Number(latest())));
      assert.equal(db.v("SELECT count(*) FROM tenantd.users WHERE email = 'boom@d.test'"), '0');
    } finally {
      db.q('DROP TRIGGER test_fail_one ON tenantd.schema_migrations; DROP FUNCTION tenantd.test_fail_one()');
    }
  });

  test("'-' reads the list from stdin; --jobs 1 works; --dry-run creates nothing", () => {
    const input = '# from stdin\r\ne-one\tE One\r\ne-two\tE Two\tE@E.test\r\n\r\n';
    const dry = db.ctl(['tenant', 'create', '--from-file', '-', '--dry-run'], { input });
    assert.equal(dry.status, 0, describeRun(dry));
    assert.match(dry.stdout, /would create 2 tenants; 0 lines refused/);
    assert.equal(db.schemaOf('e-one'), undefined);
    const r = db.ok(['tenant', 'create', '--from-file', '-', '--jobs', '1'], { input });
    assert.match(r.stdout, /created 2 tenants .*1 jobs\); 0 failed/);
    assert.equal(versionOf('e-two'), latest());
    assert.equal(db.v("SELECT u.email FROM tenantd.memberships m JOIN tenantd.users u ON u.id = m.user_id JOIN tenantd.tenants t ON t.id = m.tenant_id WHERE t.slug = 'e-two'"), 'e@e.test');
    const again = db.ctl(['tenant', 'create', '--from-file', '-', '--dry-run'], { input });
    assert.equal(again.status, 1, describeRun(again));
    assert.match(again.stderr, /stdin:2: a tenant with slug 'e-one' already exists/);
  });

  test('usage errors exit 2 and change nothing; an unreadable file exits 1', () => {
    const count = db.v('SELECT count(*) FROM tenantd.tenants');
    const file = writeList('one.tsv', 'f-one\tF One\n');
    for (const args of [['--from-file', file, '--jobs', '0'], ['--from-file', file, '--jobs', 'x'], ['f-two', '--from-file', file],
      ['--from-file', file, '--name', 'X'], ['--from-file', writeList('empty.tsv', '# nothing\n\n')], ['--from-file', '']]) {
      const r = db.ctl(['tenant', 'create', ...args]);
      assert.equal(r.status, 2, `tenant create ${args.join(' ')}: ${describeRun(r)}`);
      assert.ok(r.stderr.length > 0);
    }
    const missing = db.ctl(['tenant', 'create', '--from-file', path.join(listDir, 'no-such.tsv')]);
    assert.equal(missing.status, 1, describeRun(missing));
    assert.match(missing.stderr, /cannot open/);
    assert.equal(db.v('SELECT count(*) FROM tenantd.tenants'), count);
    const help = db.ok(['tenant', 'create', '--from-file', '-', '--help']);
    assert.match(help.stdout, /usage: tenantctl tenant create --from-file FILE/);
  });

  test('an unreleased migration is released with the first tenant; a broken one fails every tenant and is not released', () => {
    addTenantMigration(dir, '0003_batch_new.sql', 'CREATE TABLE batch_new (id int);\n');
    const r = db.ok(['tenant', 'create', '--from-file', writeList('new.tsv', 'g-one\tG One\ng-two\tG Two\ng-three\tG Three\n'), '--jobs', '2']);
    assert.match(r.stdout, /created 3 tenants/);
    for (const slug of ['g-one', 'g-two', 'g-three']) assert.equal(versionOf(slug), '3');
    assert.equal(db.v('SELECT count(*) FROM tenantd.tenant_migrations WHERE version = 3'), '1');
    db.ok(['migrate']);
    const before = { schemas: schemas(), roles: tenantRoles() };
    addTenantMigration(dir, '0004_batch_broken.sql', 'CREATE TABLE half (id int);\nSELECT 1 / 0;\n');
    try {
      const bad = db.ctl(['tenant', 'create', '--from-file', writeList('broken.tsv', 'h-one\tH One\nh-two\tH Two\n'), '--jobs', '2']);
      assert.equal(bad.status, 1, describeRun(bad));
      assert.match(bad.stderr, /broken\.tsv:1: .*division by zero/);
      assert.match(bad.stderr, /broken\.tsv:2: .*division by zero/);
      assert.equal(db.v("SELECT count(*) FROM tenantd.tenants WHERE slug LIKE 'h-%'"), '0');
      assert.equal(db.v('SELECT count(*) FROM tenantd.tenant_migrations WHERE version = 4'), '0');
      assert.equal(schemas(), before.schemas);
      assert.equal(tenantRoles(), before.roles);
    } finally {
      fs.rmSync(path.join(dir, 'tenant', '0004_batch_broken.sql'));
    }
  });
});
