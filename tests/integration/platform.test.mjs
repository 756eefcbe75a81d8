// platform.test.mjs — the platform admin API (/v1/platform/tenants, CONTRACT.md §6): only a
// platform admin's token (the pseudo-tenant "platform") reaches it; tenant roles never do, not even
// when a membership row names platform_admin; create, list, rename, suspend (seen by the tenant's
// users within a second), resume and drop (the tenant's tokens stop working).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { startTenantd, sleep } from '../lib/harness.mjs';
import { call, login, freshAccount, uniq } from '../lib/auth.mjs';

const PLATFORM = { email: 'platform@tenantd.test', password: 'platform-dev-pass' };
let td;
let platformToken;

function psqlOwner(sql, params = []) {
  return execFileSync('psql', [process.env.DATABASE_OWNER_URL, '-XAtq', '-v', 'ON_ERROR_STOP=1', ...params.flatMap((p, i) => ['-v', `p${i}=${p}`]), '-c', sql], {
    encoding: 'utf8',
  }).trim();
}

before(async () => {
  td = await startTenantd();
  const res = await login(td, PLATFORM);
  assert.equal(res.tenant.slug, 'platform');
  assert.deepEqual(res.roles, ['platform_admin']);
  platformToken = res.access_token;
});

after(async () => {
  await td?.stop();
});

test('a platform admin lists tenants, paginated', async () => {
  const res = await call(td, 'GET', '/v1/platform/tenants?limit=1', undefined, { token: platformToken });
  assert.equal(res.status, 200, res.body);
  assert.equal(res.json.length, 1);
  const all = await call(td, 'GET', '/v1/platform/tenants?limit=1000', undefined, { token: platformToken });
  const slugs = all.json.map((t) => t.slug);
  assert.ok(slugs.includes('acme') && slugs.includes('globex'), slugs.join(','));
});

test('tenant users, even owners and a membership naming platform_admin, get 403', async () => {
  const owner = await login(td, { email: 'owner@acme.test', password: 'acme-owner-pass' });
  const res = await call(td, 'GET', '/v1/platform/tenants', undefined, { token: owner.access_token });
  assert.equal(res.status, 403);
  const acct = await freshAccount(td, 'plat');
  psqlOwner(`UPDATE tenantd.memberships SET roles = ARRAY['owner','platform_admin'] WHERE user_id = '${acct.res.user.id}'`);
  const again = await login(td, acct.who);
  assert.ok(again.roles.includes('platform_admin'));
  const denied = await call(td, 'POST', '/v1/platform/tenants', { slug: `x-${uniq()}`, name: 'nope' }, { token: again.access_token });
  assert.equal(denied.status, 403, denied.body);
  const me = await call(td, 'GET', '/v1/auth/me', undefined, { token: again.access_token });
  assert.ok(!me.json.permissions.some((p) => p.startsWith('platform')), JSON.stringify(me.json.permissions));
});

test('a platform token reaches no tenant data', async () => {
  const res = await call(td, 'GET', '/rest/v1/orders', undefined, { token: platformToken });
  assert.equal(res.status, 403);
});

test('create, rename, suspend, resume and drop a tenant', async () => {
  const slug = `plat-${uniq()}`;
  const created = await call(td, 'POST', '/v1/platform/tenants', { slug, name: 'Platform test' }, { token: platformToken });
  assert.equal(created.status, 201, created.body);
  assert.equal(created.json.slug, slug);
  assert.equal(created.json.status, 'active');
  const dup = await call(td, 'POST', '/v1/platform/tenants', { slug, name: 'again' }, { token: platformToken });
  assert.equal(dup.status, 409);
  const bad = await call(td, 'POST', '/v1/platform/tenants', { slug: 'Bad Slug', name: 'x' }, { token: platformToken });
  assert.equal(bad.status, 422);
  const reserved = await call(td, 'POST', '/v1/platform/tenants', { slug: 'platform', name: 'x' }, { token: platformToken });
  assert.equal(reserved.status, 422);

  const renamed = await call(td, 'PATCH', `/v1/platform/tenants/${slug}`, { name: 'Renamed' }, { token: platformToken });
  assert.equal(renamed.status, 200, renamed.body);
  assert.equal(renamed.json.name, 'Renamed');
  const badStatus = await call(td, 'PATCH', `/v1/platform/tenants/${slug}`, { status: 'gone' }, { token: platformToken });
  assert.equal(badStatus.status, 422);
  const missing = await call(td, 'PATCH', `/v1/platform/tenants/nosuch-${uniq()}`, { name: 'x' }, { token: platformToken });
  assert.equal(missing.status, 404);

  // a user of an existing tenant: suspension is seen within a second, resumption too
  const acct = await freshAccount(td, 'susp');
  const token = acct.res.access_token;
  assert.equal((await call(td, 'GET', '/rest/v1/orders?limit=1', undefined, { token })).status, 200);
  const suspended = await call(td, 'PATCH', `/v1/platform/tenants/${acct.tenant.slug}`, { status: 'suspended' }, { token: platformToken });
  assert.equal(suspended.json.status, 'suspended');
  await sleep(1000);
  assert.equal((await call(td, 'GET', '/rest/v1/orders?limit=1', undefined, { token })).status, 403);
  await call(td, 'PATCH', `/v1/platform/tenants/${acct.tenant.slug}`, { status: 'active' }, { token: platformToken });
  await sleep(1000);
  assert.equal((await call(td, 'GET', '/rest/v1/orders?limit=1', undefined, { token })).status, 200);

  const dropped = await call(td, 'DELETE', `/v1/platform/tenants/${acct.tenant.slug}`, undefined, { token: platformToken });
  assert.equal(dropped.status, 204);
  await sleep(1000);
  const after = await call(td, 'GET', '/rest/v1/orders?limit=1', undefined, { token });
  assert.equal(after.status, 401, after.body);
  assert.equal((await call(td, 'DELETE', `/v1/platform/tenants/${acct.tenant.slug}`, undefined, { token: platformToken })).status, 404);
  assert.equal((await call(td, 'DELETE', `/v1/platform/tenants/${slug}`, undefined, { token: platformToken })).status, 204);
});
