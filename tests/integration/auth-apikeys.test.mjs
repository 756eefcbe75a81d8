// auth-apikeys.test.mjs — API keys as credentials (CONTRACT.md §6, issue 4 item 3): a `tdk_…` key
// presented as a Bearer token acts with its own roles in its own tenant; forged, revoked and
// expired keys → 401; revocation reaches every instance within 1 s. Keys live in a fresh tenant
// of this file.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { sleep, startTenantd } from '../lib/harness.mjs';
import { assert401, assertProblem, call, freshAccount, login, uniq, FIXTURE } from '../lib/auth.mjs';

let tdA;
let tdB;
let owner;

before(async () => {
  [tdA, tdB] = await Promise.all([startTenantd(), startTenantd()]);
  const acc = await freshAccount(tdA, 'keys');
  owner = { token: acc.res.access_token, slug: acc.tenant.slug };
});
// both instances are killed by the harness when the file ends

async function newKey(roles, extra = {}) {
  const res = await call(tdA, 'POST', '/v1/admin/api-keys', { name: `k-${uniq()}`, roles, ...extra }, { token: owner.token });
  assert.equal(res.status, 201, res.body);
  assert.match(res.json.key, /^tdk_/);
  assert.equal(res.headers['cache-control'], 'no-store');
  return res.json;
}

const asKey = (td, key, method, path, body, headers) => call(td, method, path, body, { token: key, headers });

describe('API keys', () => {
  test('shown once, listed without the secret', async () => {
    const k = await newKey(['viewer']);
    assert.equal(typeof k.id, 'string');
    assert.equal(typeof k.prefix, 'string');
    assert.ok(k.key.includes(k.prefix), 'the key carries its prefix');
    const list = await call(tdA, 'GET', '/v1/admin/api-keys', undefined, { token: owner.token });
    assert.equal(list.status, 200, list.body);
    const items = Array.isArray(list.json) ? list.json : list.json.items;
    const listed = items.find((i) => i.id === k.id);
    assert.ok(listed, 'the key is listed');
    assert.ok(!JSON.stringify(listed).includes(k.key.slice(-20)), 'the list does not carry the secret');
    assert.equal(listed.key, undefined);
  });

  test('a key acts with its own roles in its own tenant', async () => {
    const viewer = await newKey(['viewer']);
    const read = await asKey(tdA, viewer.key, 'GET', '/rest/v1/orders?limit=1');
    assert.ok(![401, 403].includes(read.status) && read.status < 500, `viewer key reads: ${read.status} ${read.body}`);
    assertProblem(await asKey(tdA, viewer.key, 'POST', '/rest/v1/orders', []), 403, 'viewer key creates');
    assertProblem(await asKey(tdA, viewer.key, 'GET', '/v1/admin/members'), 403, 'viewer key lists members');
    assertProblem(await asKey(tdA, viewer.key, 'GET', '/v1/admin/members', undefined, { 'x-tenant': 'acme' }), 403, 'viewer key with x-tenant: acme');
    const admin = await newKey(['admin']);
    const members = await asKey(tdB, admin.key, 'GET', '/v1/admin/members');
    assert.equal(members.status, 200, members.body);
    assertProblem(await asKey(tdB, admin.key, 'PATCH', '/v1/admin/tenant', { name: 'renamed by a key' }), 403, 'admin key renames the tenant');
    const me = await asKey(tdA, viewer.key, 'GET', '/v1/auth/me');
    assert.ok(me.status < 500, `GET /v1/auth/me with an API key must not be a server error: ${me.status} ${me.body}`);
  });

  test('forged keys → 401', async () => {
    const k = await newKey(['viewer']);
    const secret = k.key.slice(k.key.lastIndexOf('_') + 1);
    const flip = (s) => s.slice(0, -1) + (s.endsWith('A') ? 'B' : 'A');
    const forged = {
      'wrong secret': k.key.slice(0, k.key.length - secret.length) + flip(secret),
      'truncated secret': k.key.slice(0, -1),
      'extended secret': `${k.key}A`,
      'no secret': k.key.slice(0, k.key.length - secret.length),
      'unknown prefix': `tdk_00000000_${secret}`,
      // (a prefix of digits only is its own upper case: then this variant is skipped below)
      'upper-case prefix': k.key.replace(k.prefix, k.prefix.toUpperCase()),
      'tdk_ alone': 'tdk_',
      'garbage': 'tdk_zzzzzzzz_zzzz',
      'very long': `${k.key}${'A'.repeat(5000)}`,
    };
    for (const [what, key] of Object.entries(forged)) {
      if (key === k.key) continue;
      assert401(await asKey(tdA, key, 'GET', '/rest/v1/orders?limit=1'), what);
    }
    // the real one still works
    assert.equal((await asKey(tdA, k.key, 'GET', '/v1/admin/api-keys')).status, 403);
  });

  test('a revoked key stops working on every instance within 1 s', async () => {
    const k = await newKey(['viewer']);
    for (let i = 0; i < 4; i++) {
      for (const td of [tdA, tdB]) assert.equal((await asKey(td, k.key, 'GET', '/rest/v1/orders?limit=1')).status, 200);
    }
    const del = await call(tdA, 'DELETE', `/v1/admin/api-keys/${k.id}`, undefined, { token: owner.token });
    assert.equal(del.status, 204, del.body);
    const start = Date.now();
    let refusedEverywhere = false;
    while (!refusedEverywhere && Date.now() - start <= 1000) {
      const results = await Promise.all([tdA, tdB, tdA, tdB].map((td) => asKey(td, k.key, 'GET', '/rest/v1/orders?limit=1')));
      refusedEverywhere = results.every((r) => r.status === 401);
      if (!refusedEverywhere) await sleep(20);
    }
    assert.ok(refusedEverywhere, 'the revoked key still works somewhere 1 s after the revocation');
  });

  test('an expired key → 401, also when it was used (and cached) just before', async () => {
    const expiresAt = new Date(Date.now() + 3000);
    const k = await newKey(['viewer'], { expires_at: expiresAt.toISOString() });
    for (let i = 0; i < 4; i++) {
      for (const td of [tdA, tdB]) assert.equal((await asKey(td, k.key, 'GET', '/rest/v1/orders?limit=1')).status, 200, 'before expiry');
    }
    await sleep(expiresAt.getTime() - Date.now() + 500);
    for (let i = 0; i < 4; i++) {
      for (const td of [tdA, tdB]) assert401(await asKey(td, k.key, 'GET', '/rest/v1/orders?limit=1'), `after expiry (#${i})`);
    }
    const past = await call(tdA, 'POST', '/v1/admin/api-keys', { name: `k-${uniq()}`, roles: ['viewer'], expires_at: '2000-01-01T00:00:00Z' }, { token: owner.token });
    if (past.status === 201) assert401(await asKey(tdA, past.json.key, 'GET', '/rest/v1/orders?limit=1'), 'a key created already expired');
    else assertProblem(past, 422, 'a key expiring in the past');
  });

  test('a key of another tenant does not open this one', async () => {
    const k = await newKey(['admin']);
    const acmeOwner = await login(tdA, FIXTURE.acme.owner);
    // the key's tenant is fixed: naming acme is refused, and acme's members are never listed
    const res = await asKey(tdA, k.key, 'GET', '/v1/admin/members', undefined, { 'x-tenant': 'acme' });
    assertProblem(res, 403, 'x-tenant: acme');
    const mine = await asKey(tdA, k.key, 'GET', '/v1/admin/members');
    assert.ok(!mine.body.includes('@acme.test'), 'no acme member in the key tenant\'s list');
    assert.equal((await call(tdA, 'GET', '/v1/auth/me', undefined, { token: acmeOwner.access_token })).json.tenant.slug, 'acme');
  });
});
