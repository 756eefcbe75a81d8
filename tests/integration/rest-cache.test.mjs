// rest-cache.test.mjs — reads stay fresh and private across two tenantd instances (issue 5 items 4
// and 7).
//
// Two instances share Postgres and Redis. A read on instance 2, a write on instance 1, and the next
// read on instance 2 already shows the write (its old ETag answers 200, not 304) — for PATCH, POST
// and DELETE. The same query by two tenants never answers with the other's rows or a 304 for the
// other's ETag, on either instance; a viewer reads what an admin reads. In a fresh tenant, an API
// key whose custom role reads only its own rows (orders:read:own) never gets the owner's cached
// answer, nor the owner its, whichever asks first. A query is admitted to the cache on its second
// sighting (its first read goes to Postgres only: /metrics tenantd_rest_read_cache_total counts
// first, miss and hit), so the isolation tests read each query twice before another caller asks.
// Rows carry a per-run marker and are removed at the end; the fresh tenant is dropped.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { after, before, test } from 'node:test';

import { labelledValues, startTenantd } from '../lib/harness.mjs';
import { FIXTURE, call, freshAccount, login, uniq } from '../lib/auth.mjs';

const RUN = `cache-${uniq()}`;
const Q = `orders?title=like.${encodeURIComponent(`${RUN}*`)}&order=id`;
const REP = { prefer: 'return=representation' };

let one;
let two;
const tok = {};
let fresh; // the tenant signed up by the role test

const rest = (td, method, path, who, body, headers = {}) => call(td, method, `/rest/v1/${path}`, body, { token: tok[who], headers });

const cacheCounts = (td) => labelledValues(td, 'tenantd_rest_read_cache_total', 'result', ['first', 'miss', 'hit']);

// Reads a query twice on td (the second read admits it and stores the answer); returns the second.
async function warm(td, path, who, headers = {}) {
  const a = await rest(td, 'GET', path, who, undefined, headers);
  assert.ok([200, 304].includes(a.status), a.body);
  return rest(td, 'GET', path, who, undefined, headers);
}

before(async () => {
  [one, two] = await Promise.all([startTenantd(), startTenantd()]);
  await Promise.all([one.waitReady(), two.waitReady()]);
  for (const [who, f] of [['admin', FIXTURE.acme.admin], ['viewer', FIXTURE.acme.viewer], ['globex', FIXTURE.globex.admin]]) {
    tok[who] = (await login(one, f)).access_token;
  }
});

after(async () => {
  if (!one) return;
  await rest(one, 'DELETE', Q, 'admin');
  await rest(one, 'DELETE', Q, 'globex');
  if (fresh && process.env.TENANTCTL_BIN) {
    try {
      execFileSync(process.env.TENANTCTL_BIN, ['tenant', 'drop', fresh, '--yes'], { stdio: 'ignore', timeout: 20000 });
    } catch {
      // a leftover tenant of the dev database harms no other test
    }
  }
});

test('a query is cached from its second read: first goes to Postgres, second stores, third hits', async () => {
  const ins = await rest(one, 'POST', 'orders', 'admin', { title: `admit-${RUN}`, position: 7 }, REP);
  assert.equal(ins.status, 201, ins.body);
  const q = `orders?title=eq.${encodeURIComponent(`admit-${RUN}`)}&select=id,position`; // outside Q's rows
  const reads = [];
  const deltas = [];
  for (let i = 0; i < 3; i++) {
    const before = await cacheCounts(two);
    reads.push(await rest(two, 'GET', q, 'admin'));
    const now = await cacheCounts(two);
    deltas.push({ first: now.first - before.first, miss: now.miss - before.miss, hit: now.hit - before.hit });
  }
  assert.deepEqual(deltas, [{ first: 1, miss: 0, hit: 0 }, { first: 0, miss: 1, hit: 0 }, { first: 0, miss: 0, hit: 1 }]);
  for (const r of reads) {
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(r.json, [{ id: ins.json[0].id, position: 7 }]);
    assert.equal(r.headers.etag, reads[0].headers.etag, 'the same ETag from Postgres and from the cache');
    assert.equal(r.headers['content-range'], '0-0/*');
  }
  // a write makes the stored entry stale: the next read misses (not a first sighting) and sees it
  const patched = await rest(one, 'PATCH', `orders?id=eq.${ins.json[0].id}`, 'admin', { position: 8 });
  assert.ok([200, 204].includes(patched.status), patched.body);
  const before = await cacheCounts(two);
  const after4 = await rest(two, 'GET', q, 'admin');
  const now = await cacheCounts(two);
  assert.deepEqual(after4.json, [{ id: ins.json[0].id, position: 8 }]);
  assert.equal(now.miss - before.miss, 1, 'a stale entry is a miss');
  assert.equal(now.hit - before.hit, 0);
  assert.equal((await rest(one, 'DELETE', `orders?id=eq.${ins.json[0].id}`, 'admin')).status, 204);
});

test('a write on one instance is visible to the next read on the other', async () => {
  const ins = await rest(one, 'POST', 'orders', 'admin', { title: `${RUN}-a`, position: 1 }, REP);
  assert.equal(ins.status, 201, ins.body);
  const id = ins.json[0].id;

  let read = await warm(two, Q, 'admin'); // stored in the cache: the writes below must still show
  assert.equal(read.status, 200);
  assert.deepEqual(read.json.map((r) => r.id), [id]);
  let etag = read.headers.etag;
  assert.equal((await rest(two, 'GET', Q, 'admin', undefined, { 'if-none-match': etag })).status, 304);

  for (const [what, write] of [
    ['PATCH', () => rest(one, 'PATCH', `orders?id=eq.${id}`, 'admin', { position: 2 })],
    ['POST', () => rest(one, 'POST', 'orders', 'admin', { title: `${RUN}-b`, position: 3 })],
    ['DELETE', () => rest(one, 'DELETE', `orders?id=eq.${id}`, 'admin')],
  ]) {
    const w = await write();
    assert.ok([200, 201, 204].includes(w.status), `${what}: ${w.body}`);
    const direct = await rest(one, 'GET', Q, 'admin');
    read = await rest(two, 'GET', Q, 'admin', undefined, { 'if-none-match': etag });
    assert.equal(read.status, 200, `${what}: the other instance answers 200 with the new rows, not 304`);
    assert.deepEqual(read.json, direct.json, `${what}: both instances agree`);
    assert.notEqual(read.headers.etag, etag);
    etag = read.headers.etag;
  }
});

test('a counted read gets a new ETag when only the count changes', async () => {
  const tag = `${RUN}-count`;
  const q = `orders?title=like.${encodeURIComponent(`${tag}*`)}&order=position&limit=1`;
  const counted = { prefer: 'count=exact' };
  const a = await rest(one, 'POST', 'orders', 'admin', { title: `${tag}-a`, position: 1 }, REP);
  assert.equal(a.status, 201, a.body);
  const first = await rest(two, 'GET', q, 'admin', undefined, counted);
  assert.equal(first.status, 200, first.body);
  assert.equal(first.headers['content-range'], '0-0/1');
  assert.equal((await rest(two, 'GET', q, 'admin', undefined, { ...counted, 'if-none-match': first.headers.etag })).status, 304);
  const b = await rest(one, 'POST', 'orders', 'admin', { title: `${tag}-b`, position: 2 }, REP);
  assert.equal(b.status, 201, b.body);
  const again = await rest(two, 'GET', q, 'admin', undefined, { ...counted, 'if-none-match': first.headers.etag });
  assert.equal(again.status, 200, 'same first row, new count: not a 304');
  assert.equal(again.headers['content-range'], '0-0/2');
  assert.deepEqual(again.json, first.json);
  assert.notEqual(again.headers.etag, first.headers.etag);
});

test('the same query by another tenant or another role never gets foreign rows or a foreign 304', async () => {
  const a = await rest(one, 'POST', 'orders', 'admin', { title: `${RUN}-acme`, position: 1 }, REP);
  assert.equal(a.status, 201, a.body);
  const g = await rest(one, 'POST', 'orders', 'globex', { title: `${RUN}-globex`, position: 1 }, REP);
  assert.equal(g.status, 201, g.body);
  for (const td of [one, two, one]) {
    const acme = await warm(td, Q, 'admin'); // acme's answer is in the cache before globex asks
    const globex = await rest(td, 'GET', Q, 'globex', undefined, { 'if-none-match': acme.headers.etag });
    assert.equal(globex.status, 200);
    assert.ok(globex.json.every((r) => r.title === `${RUN}-globex`), JSON.stringify(globex.json));
    assert.ok(acme.json.every((r) => r.title !== `${RUN}-globex`), JSON.stringify(acme.json));
    const viewer = await rest(td, 'GET', Q, 'viewer');
    assert.deepEqual(viewer.json, acme.json, 'a viewer reads what the admin reads');
  }
});

test('a role that reads only its own rows never shares cached answers with one that reads all', async () => {
  const acct = await freshAccount(one, 'cache');
  fresh = acct.tenant.slug;
  tok.fresh = acct.res.access_token;
  const role = await call(one, 'POST', '/v1/admin/roles', { name: 'ownreader', permissions: ['orders:read:own'], inherits: [] }, { token: tok.fresh });
  assert.equal(role.status, 201, role.body);
  for (const [name, roles] of [['own', ['ownreader']], ['all', ['viewer']]]) {
    const key = await call(one, 'POST', '/v1/admin/api-keys', { name, roles }, { token: tok.fresh });
    assert.equal(key.status, 201, key.body);
    tok[name] = key.json.key;
  }
  const ins = await rest(one, 'POST', 'orders', 'fresh', [1, 2, 3].map((i) => ({ title: `${RUN}-f${i}` })), REP);
  assert.equal(ins.status, 201, ins.body);
  const all = ins.json.map((r) => r.id).sort();
  const ids = (res) => res.json.map((r) => r.id).sort();
  // the owner first, then the own-reader, on both instances; then a new query in the other order
  for (const [q, order] of [[Q, ['fresh', 'own', 'all']], [`${Q}&limit=50`, ['own', 'fresh', 'all']], [`${Q}&limit=51`, ['own', 'all', 'fresh']]]) {
    for (const td of [one, two]) {
      let prev = null; // the last 200: its ETag and the rows it held
      for (const who of order) {
        const want = who === 'own' ? [] : all;
        // each caller's answer is in the cache (second read) before the next caller asks
        const res = await warm(td, q, who, prev ? { 'if-none-match': prev.etag } : {});
        const where = `${who} on instance ${td === one ? 1 : 2}: ${q}`;
        if (prev && prev.want !== want) assert.equal(res.status, 200, `${where}: no 304 for another role's ETag`);
        if (res.status === 304) continue; // the same representation as the previous caller's
        assert.equal(res.status, 200, `${where}: ${res.body}`);
        assert.deepEqual(ids(res), want, where);
        prev = { etag: res.headers.etag, want };
      }
    }
  }
});
