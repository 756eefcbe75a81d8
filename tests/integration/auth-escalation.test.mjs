// auth-escalation.test.mjs — privilege escalation attempts (issue 4 items 4, 6 and 7; CONTRACT.md
// §4–6): nobody grants what they do not hold, built-in role names cannot be taken, and a role
// change or member removal takes effect on every instance within 1 s.
//
// Everything happens in a fresh tenant of this file: its owner signs up, then invites an admin and
// members (POST /v1/admin/invitations + accept), so the shared fixtures are never changed.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { sleep, startTenantd } from '../lib/harness.mjs';
import { assertProblem, call, decodeJwt, freshAccount, me, uniq } from '../lib/auth.mjs';

let tdA;
let tdB;
let owner;   // {token, id}
let admin;   // {token, id}

before(async () => {
  [tdA, tdB] = await Promise.all([startTenantd(), startTenantd()]);
  const acc = await freshAccount(tdA, 'esc');
  owner = { token: acc.res.access_token, id: acc.res.user.id };
  admin = await invite(['admin']);
});
// both instances are killed by the harness when the file ends

// Invites a new user with roles into the owner's tenant and accepts; returns {token, refresh, id, email}.
async function invite(roles) {
  const email = `inv-${uniq()}@auth-tests.example`;
  const inv = await call(tdA, 'POST', '/v1/admin/invitations', { email, roles }, { token: owner.token });
  assert.equal(inv.status, 201, `invitation: ${inv.body}`);
  const acc = await call(tdA, 'POST', `/v1/invitations/${encodeURIComponent(inv.json.token)}/accept`, { password: `pw-${uniq()}-${uniq()}` });
  assert.equal(acc.status, 200, `accept: ${acc.body}`);
  assert.deepEqual(acc.json.roles, roles);
  return { token: acc.json.access_token, refresh: acc.json.refresh_token, id: acc.json.user.id, email };
}

// Polls until check(token) holds on both instances (each asked twice: two threads); elapsed ms or null.
async function onEveryInstance(check, limitMs) {
  const start = Date.now();
  while (Date.now() - start <= limitMs) {
    const results = await Promise.all([tdA, tdB, tdA, tdB].map((td) => check(td)));
    if (results.every(Boolean)) return Date.now() - start;
    await sleep(20);
  }
  return null;
}

async function warm(token) {
  for (let i = 0; i < 4; i++) for (const td of [tdA, tdB]) assert.equal((await me(td, token)).status, 200);
}

describe('nobody grants what they do not hold', () => {
  test('an admin cannot make itself or anyone owner', async () => {
    const self = await call(tdA, 'PATCH', `/v1/admin/members/${admin.id}`, { roles: ['owner'] }, { token: admin.token });
    assertProblem(self, 403, 'admin → owner (itself)');
    const member = await invite(['member']);
    const other = await call(tdA, 'PATCH', `/v1/admin/members/${member.id}`, { roles: ['owner'] }, { token: admin.token });
    assertProblem(other, 403, 'admin makes a member owner');
    const inv = await call(tdA, 'POST', '/v1/admin/invitations', { email: `x-${uniq()}@auth-tests.example`, roles: ['owner'] }, { token: admin.token });
    assertProblem(inv, 403, 'admin invites an owner');
    const me1 = await me(tdA, admin.token);
    assert.deepEqual(me1.json.roles, ['admin'], 'still admin');
  });

  test('an admin cannot touch the owner', async () => {
    assertProblem(await call(tdA, 'PATCH', `/v1/admin/members/${owner.id}`, { roles: ['viewer'] }, { token: admin.token }), 403, 'admin demotes the owner');
    assertProblem(await call(tdA, 'DELETE', `/v1/admin/members/${owner.id}`, undefined, { token: admin.token }), 403, 'admin removes the owner');
    assert.equal((await me(tdA, owner.token)).status, 200, 'the owner is unharmed');
  });

  test('custom roles: no rights beyond the creator\'s, no platform rights, no built-in names', async () => {
    for (const permissions of [['tenant:delete'], ['tenant:manage'], ['tenant:*'], ['*:*'], ['platform:*'], ['members:manage', 'tenant:delete']]) {
      const res = await call(tdA, 'POST', '/v1/admin/roles', { name: `r-${uniq()}`, permissions, inherits: [] }, { token: admin.token });
      assertProblem(res, 403, `admin creates a role with ${permissions}`);
    }
    const inheritsOwner = await call(tdA, 'POST', '/v1/admin/roles', { name: `r-${uniq()}`, permissions: [], inherits: ['owner'] }, { token: admin.token });
    assertProblem(inheritsOwner, 403, 'admin creates a role inheriting owner');
    const platform = await call(tdA, 'POST', '/v1/admin/roles', { name: `r-${uniq()}`, permissions: [], inherits: ['platform_admin'] }, { token: owner.token });
    assert.ok([403, 422].includes(platform.status), `owner creates a role inheriting platform_admin: ${platform.status} ${platform.body}`);
    for (const name of ['owner', 'admin', 'member', 'viewer', 'platform_admin']) {
      const res = await call(tdA, 'POST', '/v1/admin/roles', { name, permissions: ['orders:read'], inherits: [] }, { token: owner.token });
      assert.ok([403, 409, 422].includes(res.status), `a custom role named ${name}: ${res.status} ${res.body}`);
    }
    // control: a role within the admin's own rights is accepted
    const ok = await call(tdA, 'POST', '/v1/admin/roles', { name: `r-${uniq()}`, permissions: ['orders:read'], inherits: [] }, { token: admin.token });
    assert.equal(ok.status, 201, ok.body);
  });

  test('custom roles cannot be used as a detour', async () => {
    // an admin's own harmless role cannot be widened afterwards
    const name = `r-${uniq()}`;
    assert.equal((await call(tdA, 'POST', '/v1/admin/roles', { name, permissions: ['orders:read'], inherits: [] }, { token: admin.token })).status, 201);
    const widened = await call(tdA, 'PATCH', `/v1/admin/roles/${name}`, { permissions: ['orders:read', 'tenant:delete'], inherits: [] }, { token: admin.token });
    assertProblem(widened, 403, 'admin widens a role with tenant:delete');
    const same = await call(tdA, 'PATCH', `/v1/admin/roles/${name}`, { permissions: ['orders:read', 'orders:create'], inherits: [] }, { token: admin.token });
    assert.equal(same.status, 200, `control: a change within the admin's rights: ${same.body}`);
    const viaInherit = await call(tdA, 'PATCH', `/v1/admin/roles/${name}`, { permissions: ['orders:read'], inherits: ['owner'] }, { token: admin.token });
    assertProblem(viaInherit, 403, 'admin makes a role inherit owner');
    // a role the owner made with rights the admin lacks can be neither taken nor handed out by the admin
    const big = `big-${uniq()}`;
    const made = await call(tdA, 'POST', '/v1/admin/roles', { name: big, permissions: ['tenant:delete'], inherits: [] }, { token: owner.token });
    assert.equal(made.status, 201, made.body);
    assertProblem(await call(tdA, 'PATCH', `/v1/admin/members/${admin.id}`, { roles: ['admin', big] }, { token: admin.token }), 403, 'admin takes a bigger custom role');
    const inv = await call(tdA, 'POST', '/v1/admin/invitations', { email: `x-${uniq()}@auth-tests.example`, roles: [big] }, { token: admin.token });
    assertProblem(inv, 403, 'admin invites with a bigger custom role');
    const key = await call(tdA, 'POST', '/v1/admin/api-keys', { name: `k-${uniq()}`, roles: [big] }, { token: admin.token });
    assertProblem(key, 403, 'admin creates a key with a bigger custom role');
    const wraps = await call(tdA, 'POST', '/v1/admin/roles', { name: `r-${uniq()}`, permissions: [], inherits: [big] }, { token: admin.token });
    assertProblem(wraps, 403, 'admin creates a role inheriting a bigger custom role');
  });

  test('API keys: no roles beyond the creator\'s', async () => {
    const res = await call(tdA, 'POST', '/v1/admin/api-keys', { name: `k-${uniq()}`, roles: ['owner'] }, { token: admin.token });
    assertProblem(res, 403, 'admin creates an owner key');
    const platform = await call(tdA, 'POST', '/v1/admin/api-keys', { name: `k-${uniq()}`, roles: ['platform_admin'] }, { token: owner.token });
    assert.ok([403, 422].includes(platform.status), `owner creates a platform_admin key: ${platform.status} ${platform.body}`);
  });

  test('a member of this tenant is nobody in another: switch and x-tenant are refused', async () => {
    const sw = await call(tdA, 'POST', '/v1/auth/switch', { tenant: 'acme' }, { token: admin.token });
    assertProblem(sw, 403, 'switch into acme');
    const cross = await call(tdA, 'GET', '/v1/admin/members', undefined, { token: admin.token, headers: { 'x-tenant': 'acme' } });
    assertProblem(cross, 403, 'x-tenant: acme');
  });
});

describe('rights changes take effect on every instance within 1 s', () => {
  test('demoting a member to viewer: its old token can no longer create', async () => {
    const member = await invite(['member']);
    await warm(member.token);
    const before = await me(tdB, member.token);
    assert.ok(before.json.permissions.includes('*:create'), 'a member creates');
    const res = await call(tdA, 'PATCH', `/v1/admin/members/${member.id}`, { roles: ['viewer'] }, { token: owner.token });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.roles, ['viewer']);
    const elapsed = await onEveryInstance(async (td) => {
      const r = await me(td, member.token);
      return r.status === 401 || (r.status === 200 && !r.json.permissions.includes('*:create'));
    }, 1000);
    assert.notEqual(elapsed, null, 'the old token still carries member rights somewhere 1 s after the demotion');
    // a refresh gives the new roles, never the old ones
    const refreshed = await call(tdB, 'POST', '/v1/auth/refresh', { refresh_token: member.refresh });
    if (refreshed.status === 200) assert.deepEqual(decodeJwt(refreshed.json.access_token).payload.roles, ['viewer']);
    else assert.equal(refreshed.status, 401, refreshed.body);
  });

  test('removing a member: its token stops working on every instance within 1 s', async () => {
    const member = await invite(['member']);
    await warm(member.token);
    const res = await call(tdA, 'DELETE', `/v1/admin/members/${member.id}`, undefined, { token: owner.token });
    assert.equal(res.status, 204, res.body);
    const elapsed = await onEveryInstance(async (td) => [401, 403].includes((await me(td, member.token)).status), 1000);
    assert.notEqual(elapsed, null, 'the removed member\'s token still works somewhere 1 s after the removal');
    const refreshed = await call(tdB, 'POST', '/v1/auth/refresh', { refresh_token: member.refresh });
    assert.ok([401, 403].includes(refreshed.status), `refresh after removal: ${refreshed.status} ${refreshed.body}`);
  });
});
