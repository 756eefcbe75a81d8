// tenancy-isolation.test.mjs — pooled connections never carry tenant state past a transaction
// (issue 3 items 4 and 7, CONTRACT.md §3).
//
// tenantd runs with TENANTD_THREADS=1 and TENANTD_DB_POOL_SIZE=1, so every data API request of both
// tenants goes through the same Postgres connection (pipelined: set_config + statement + Sync per
// request). Two fresh tenants (signed up here) each hold only rows this file inserted. Then:
// 50 rounds alternating A and B, each seeing exactly its own rows; requests that fail mid-transaction
// (check violation, bad uuid, half-bad array insert, not-null) followed at once by the other
// tenant's reads and writes, which succeed and see only their own rows; and many requests of both
// tenants in flight at once (HTTP/2 streams and parallel HTTP/1.1 connections, reads, writes and
// failures mixed), and requests aborted by their client mid-flight beside the other tenant's reads:
// no answer ever holds a row of the other tenant. Finally, from psql: the
// login role of DATABASE_URL (tenantd_app) is not superuser, has no BYPASSRLS, owns no schema,
// table or other object, and neither do the roles it can switch to.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { h2connect, h2request, requireEnv, startTenantd } from '../lib/harness.mjs';
import { call, freshAccount, uniq } from '../lib/auth.mjs';

const RUN = uniq();
const ROUNDS = 50;

let td;
const T = {}; // A, B → {token, slug, tag, ids: Set, agent}

function rest(t, method, path, body, headers = {}) {
  return call(td, method, `/rest/v1/${path}`, body, { token: t.token, headers, agent: t.agent });
}

// Asserts that a list of rows holds only rows of tenant t (by title tag and by id).
function onlyOwn(t, rows, what) {
  assert.ok(Array.isArray(rows), `${what}: rows ${JSON.stringify(rows)}`);
  const other = t === T.A ? T.B : T.A;
  for (const r of rows) {
    assert.ok(r.title.startsWith(t.tag), `${what}: row of another tenant: ${JSON.stringify(r)}`);
    assert.ok(!other.ids.has(r.id), `${what}: id of the other tenant: ${r.id}`);
  }
}

// Reads all rows of t (its tenant holds only this file's rows) and checks it is exactly t.ids.
async function seesExactlyOwn(t, what) {
  const res = await rest(t, 'GET', 'orders?order=id&limit=1000');
  assert.equal(res.status, 200, `${what}: ${res.body}`);
  onlyOwn(t, res.json, what);
  assert.deepEqual(res.json.map((r) => r.id).sort(), [...t.ids].sort(), `${what}: exactly its own rows`);
}

function psql(sql) {
  const admin = new URL(requireEnv('PG_ADMIN_URL'));
  admin.pathname = new URL(requireEnv('DATABASE_URL')).pathname;
  return execFileSync('psql', [admin.href, '-AtXq', '-F', '|', '-c', sql], { encoding: 'utf8' }).trim();
}

before(async () => {
  td = await startTenantd({ TENANTD_THREADS: '1', TENANTD_DB_POOL_SIZE: '1' });
  await td.waitReady();
  for (const name of ['A', 'B']) {
    const acct = await freshAccount(td, `iso${name.toLowerCase()}`);
    T[name] = {
      name,
      token: acct.res.access_token,
      slug: acct.tenant.slug,
      tag: `iso${name}-${RUN}-`,
      ids: new Set(),
      agent: new http.Agent({ keepAlive: true, maxSockets: 1 }),
    };
  }
  for (const t of [T.A, T.B]) {
    const rows = Array.from({ length: 5 }, (_, i) => ({ title: `${t.tag}${i}`, position: i }));
    const res = await rest(t, 'POST', 'orders', rows, { prefer: 'return=representation' });
    assert.equal(res.status, 201, res.body);
    for (const r of res.json) t.ids.add(r.id);
  }
});

after(() => {
  for (const t of Object.values(T)) t.agent.destroy();
  // the tenants were made for this file: drop them (schema, role, rows) when tenantctl is at hand
  const ctl = process.env.TENANTCTL_BIN;
  if (!ctl) return;
  for (const t of Object.values(T)) {
    try {
      execFileSync(ctl, ['tenant', 'drop', t.slug, '--yes'], { stdio: 'ignore', timeout: 20000 });
    } catch {
      // left for the dev database's next reset; nothing else depends on it
    }
  }
});

describe('one pooled connection shared by two tenants', () => {
  test('fresh tenants start with only their own rows', async () => {
    await seesExactlyOwn(T.A, 'A');
    await seesExactlyOwn(T.B, 'B');
  });

  test(`${ROUNDS} rounds alternating A and B, each seeing only its own rows`, async () => {
    for (let i = 0; i < ROUNDS; i++) {
      const [first, second] = i % 2 ? [T.B, T.A] : [T.A, T.B];
      await seesExactlyOwn(first, `round ${i} ${first.name}`);
      await seesExactlyOwn(second, `round ${i} ${second.name}`);
      // an id of the other tenant, asked for by id, is never found
      const other = [...second.ids][i % second.ids.size];
      const res = await rest(first, 'GET', `orders?id=eq.${other}`);
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json, [], `round ${i}: ${first.name} by an id of ${second.name}`);
    }
  });

  test('a request failing mid-transaction leaves nothing behind for the other tenant', async () => {
    const failures = [
      (t) => rest(t, 'POST', 'orders', { title: `${t.tag}bad`, status: 'bogus' }), // check violation
      (t) => rest(t, 'GET', 'orders?id=eq.not-a-uuid'), // bad value
      (t) => rest(t, 'PATCH', 'orders?position=eq.x', { title: 'x' }), // bad value in a write
      (t) => rest(t, 'POST', 'orders', [{ title: `${t.tag}half`, status: 'open' }, { title: '', status: 'open' }]), // second row fails
      (t) => rest(t, 'POST', 'orders', { status: 'open' }), // not-null
      (t) => rest(t, 'PATCH', `orders?id=eq.${[...t.ids][0]}`, { position: 2 ** 40 }), // out of range
    ];
    for (let i = 0; i < ROUNDS; i++) {
      const [bad, good] = i % 2 ? [T.B, T.A] : [T.A, T.B];
      const f = await failures[i % failures.length](bad);
      assert.ok([400, 422].includes(f.status), `round ${i}: failing request answered ${f.status} ${f.body}`);
      await seesExactlyOwn(good, `round ${i}: ${good.name} right after ${bad.name} failed`);
      // a write of the other tenant succeeds and lands in its own schema
      const w = await rest(good, 'PATCH', `orders?id=eq.${[...good.ids][i % 5]}`, { position: 100 + i }, { prefer: 'return=representation' });
      assert.equal(w.status, 200, `round ${i}: ${w.body}`);
      assert.equal(w.json.length, 1);
      onlyOwn(good, w.json, `round ${i} write`);
      await seesExactlyOwn(bad, `round ${i}: ${bad.name} after its own failure`);
    }
  });

  test('many requests of both tenants in flight at once never cross', async () => {
    const sessions = { A: await h2connect(td.url), B: await h2connect(td.url) };
    try {
      const jobs = [];
      const inserted = { A: [], B: [] };
      for (let i = 0; i < 240; i++) {
        const t = i % 2 ? T.B : T.A;
        const s = sessions[t.name];
        const headers = { authorization: `Bearer ${t.token}` };
        const kind = Math.floor(i / 2) % 6; // both tenants get every kind
        if (kind === 0 || kind === 1 || kind === 2) {
          jobs.push(h2request(s, '/rest/v1/orders?order=id&limit=1000', { headers }).then((res) => {
            assert.equal(res.status, 200, res.body);
            onlyOwn(t, JSON.parse(res.body), `h2 read ${i}`);
          }));
        } else if (kind === 3) {
          const body = JSON.stringify({ title: `${t.tag}c${i}`, position: i });
          jobs.push(h2request(s, '/rest/v1/orders', { method: 'POST', headers: { ...headers, 'content-type': 'application/json', prefer: 'return=representation' }, body }).then((res) => {
            assert.equal(res.status, 201, res.body);
            const rows = JSON.parse(res.body);
            onlyOwn(t, rows, `h2 insert ${i}`);
            inserted[t.name].push(rows[0].id);
          }));
        } else if (kind === 4) {
          const body = JSON.stringify({ title: `${t.tag}bad${i}`, status: 'bogus' });
          jobs.push(h2request(s, '/rest/v1/orders', { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body }).then((res) => {
            assert.equal(res.status, 422, res.body);
          }));
        } else {
          const other = i % 2 ? T.A : T.B;
          jobs.push(h2request(s, `/rest/v1/orders?or=(id.in.(${[...other.ids].join(',')}),position.lt.1000)&order=id`, { headers }).then((res) => {
            assert.equal(res.status, 200, res.body);
            onlyOwn(t, JSON.parse(res.body), `h2 read by the other's ids ${i}`);
          }));
        }
      }
      // parallel HTTP/1.1 connections on top
      for (let i = 0; i < 60; i++) {
        const t = i % 2 ? T.B : T.A;
        jobs.push(call(td, 'GET', '/rest/v1/orders?order=id&limit=1000', undefined, { token: t.token }).then((res) => {
          assert.equal(res.status, 200, res.body);
          onlyOwn(t, res.json, `h1 read ${i}`);
        }));
      }
      const results = await Promise.allSettled(jobs);
      const failed = results.filter((r) => r.status === 'rejected');
      assert.deepEqual(failed.map((r) => r.reason.message).slice(0, 5), [], `${failed.length} of ${jobs.length} requests failed`);
      for (const t of [T.A, T.B]) for (const id of inserted[t.name]) t.ids.add(id);
      assert.equal(inserted.A.length, 20);
      assert.equal(inserted.B.length, 20);
    } finally {
      sessions.A.close();
      sessions.B.close();
    }
    await seesExactlyOwn(T.A, 'A after the burst');
    await seesExactlyOwn(T.B, 'B after the burst');
  });
});

describe('clients vanishing mid-request', () => {
  test("aborted requests of one tenant never leak into the other's answers", async () => {
    const aborted = [];
    const reads = [];
    for (let i = 0; i < 120; i++) {
      const [gone, stay] = i % 2 ? [T.A, T.B] : [T.B, T.A];
      const ctl = new AbortController();
      const body = i % 3 === 0 ? JSON.stringify({ title: `${gone.tag}gone${i}`, status: i % 2 ? 'bogus' : 'open' }) : undefined;
      aborted.push(fetch(`${td.url}/rest/v1/orders${body ? '' : '?order=id'}`, {
        method: body ? 'POST' : 'GET',
        headers: { authorization: `Bearer ${gone.token}`, 'content-type': 'application/json', prefer: 'return=representation' },
        body,
        signal: ctl.signal,
      }).then((res) => res.text()).catch(() => null));
      setTimeout(() => ctl.abort(), i % 4);
      reads.push(call(td, 'GET', '/rest/v1/orders?order=id&limit=1000', undefined, { token: stay.token }).then((res) => {
        assert.equal(res.status, 200, res.body);
        onlyOwn(stay, res.json, `read ${i} beside an aborted request`);
      }));
    }
    await Promise.all(aborted);
    const results = await Promise.allSettled(reads);
    const failed = results.filter((r) => r.status === 'rejected');
    assert.deepEqual(failed.map((r) => r.reason.message).slice(0, 5), [], `${failed.length} reads failed`);
    // inserts that got through before the abort belong to their own tenant; learn them, then compare exactly
    for (const t of [T.A, T.B]) {
      const res = await rest(t, 'GET', 'orders?order=id&limit=1000');
      assert.equal(res.status, 200, res.body);
      onlyOwn(t, res.json, `${t.name} after the aborts`);
      for (const r of res.json) if (r.title.startsWith(`${t.tag}gone`)) t.ids.add(r.id);
      await seesExactlyOwn(t, `${t.name} after the aborts`);
    }
  });
});

describe('the login role', () => {
  test('is tenantd_app: not superuser, no BYPASSRLS, owns nothing', () => {
    const login = decodeURIComponent(new URL(requireEnv('DATABASE_URL')).username);
    assert.equal(login, 'tenantd_app');
    const [name, superuser, bypass, createrole] = psql(`SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles WHERE rolname = '${login}'`).split('|');
    assert.equal(name, login);
    assert.equal(superuser, 'f', 'not superuser');
    assert.equal(bypass, 'f', 'no BYPASSRLS');
    assert.equal(createrole, 'f', 'no CREATEROLE');
    const owned = psql(`
      WITH r AS (SELECT oid FROM pg_roles WHERE rolname = '${login}')
      SELECT 'schema ' || nspname FROM pg_namespace, r WHERE nspowner = r.oid
      UNION ALL SELECT 'relation ' || relname FROM pg_class, r WHERE relowner = r.oid
      UNION ALL SELECT 'function ' || proname FROM pg_proc, r WHERE proowner = r.oid
      UNION ALL SELECT 'type ' || typname FROM pg_type, r WHERE typowner = r.oid
      UNION ALL SELECT 'database ' || datname FROM pg_database, r WHERE datdba = r.oid`);
    assert.equal(owned, '', `objects owned by ${login}`);
  });

  test('the roles it can become are not privileged and own no table', () => {
    const login = decodeURIComponent(new URL(requireEnv('DATABASE_URL')).username);
    const reach = `WITH RECURSIVE m(oid) AS (
        SELECT roleid FROM pg_auth_members WHERE member = (SELECT oid FROM pg_roles WHERE rolname = '${login}')
        UNION SELECT a.roleid FROM pg_auth_members a JOIN m ON a.member = m.oid)`;
    const privileged = psql(`${reach} SELECT rolname FROM pg_roles WHERE oid IN (SELECT oid FROM m) AND (rolsuper OR rolbypassrls OR rolcreaterole OR rolcreatedb)`);
    assert.equal(privileged, '', 'privileged roles reachable from the login role');
    const owning = psql(`${reach}
      SELECT 'schema ' || nspname FROM pg_namespace WHERE nspowner IN (SELECT oid FROM m)
      UNION ALL SELECT 'relation ' || relname FROM pg_class WHERE relowner IN (SELECT oid FROM m) LIMIT 5`);
    assert.equal(owning, '', 'objects owned by a role the login role can become (it could drop or alter them)');
  });
});
