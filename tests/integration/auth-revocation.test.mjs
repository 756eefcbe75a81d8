// auth-revocation.test.mjs — tenant suspension and deletion as revocations (CONTRACT.md §3–4):
// "a suspended tenant's requests get 403; a deleted one's tokens stop working", enforced by every
// instance within 1 s. The tenant is a fresh one of this test (tenantctl suspend/resume/drop), and
// two instances share Postgres and Redis.
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { before, describe, test } from 'node:test';
import { promisify } from 'node:util';

import { requireEnv, sleep, startTenantd } from '../lib/harness.mjs';
import { assert401, assertProblem, call, freshAccount, loginRaw, me } from '../lib/auth.mjs';

const run = promisify(execFile);
const tenantctl = (...args) => run(requireEnv('TENANTCTL_BIN'), args, { timeout: 30000 });

let tdA;
let tdB;

before(async () => {
  [tdA, tdB] = await Promise.all([startTenantd(), startTenantd()]);
});
// both instances are killed by the harness when the file ends

// Polls until every instance answers `token` with `status`; resolves the elapsed ms or null.
async function allAnswer(token, status, limitMs) {
  const start = Date.now();
  while (Date.now() - start <= limitMs) {
    const results = await Promise.all([tdA, tdB, tdA, tdB].map((td) => me(td, token)));
    if (results.every((r) => r.status === status)) return Date.now() - start;
    await sleep(20);
  }
  return null;
}

// Calls /me a few times on both instances, so both threads of each have the token and tenant cached.
async function warm(token) {
  for (let i = 0; i < 4; i++) {
    for (const td of [tdA, tdB]) assert.equal((await me(td, token)).status, 200);
  }
}

describe('tenant suspension', () => {
  test('suspend: 403 on every instance within 1 s, login and refresh refused; resume restores', async () => {
    const acc = await freshAccount(tdA, 'susp');
    await warm(acc.res.access_token);
    await tenantctl('tenant', 'suspend', acc.tenant.slug);
    const elapsed = await allAnswer(acc.res.access_token, 403, 1000);
    assert.notEqual(elapsed, null, 'every instance answers 403 within 1 s of the suspension');
    assertProblem(await me(tdB, acc.res.access_token), 403, '/me of a suspended tenant');
    assertProblem(await loginRaw(tdA, acc.email, acc.password), 403, 'login into a suspended tenant');
    const refreshed = await call(tdB, 'POST', '/v1/auth/refresh', { refresh_token: acc.res.refresh_token });
    assertProblem(refreshed, 403, 'refresh in a suspended tenant');

    await tenantctl('tenant', 'resume', acc.tenant.slug);
    const back = await allAnswer(acc.res.access_token, 200, 1000);
    assert.notEqual(back, null, 'every instance serves the tenant again within 1 s of the resume');
    const login = await loginRaw(tdA, acc.email, acc.password);
    assert.equal(login.status, 200, login.body);
  });
});

describe('tenantctl tells running servers', () => {
  test('a suspension reaches every worker at once over Redis, not only when the tenant cache expires', async () => {
    const acc = await freshAccount(tdA, 'susp-now');
    await warm(acc.res.access_token); // every thread of both instances has the tenant cached as active
    await tenantctl('tenant', 'suspend', acc.tenant.slug);
    // pub/sub delivery takes milliseconds; the cached entries would otherwise live up to 0.9 s from
    // the warm-up, so every thread of both instances refusing within 0.4 s is the publish at work
    const start = Date.now();
    let results;
    do {
      results = await Promise.all([...Array(16)].flatMap(() => [tdA, tdB]).map((td) => me(td, acc.res.access_token)));
    } while (results.some((r) => r.status !== 403) && Date.now() - start < 400 && (await sleep(20), true));
    assert.deepEqual(results.map((r) => r.status), results.map(() => 403), 'every request soon after the suspension is refused');
    await tenantctl('tenant', 'resume', acc.tenant.slug);
    await sleep(400);
    const back = await Promise.all([tdA, tdB, tdA, tdB].map((td) => me(td, acc.res.access_token)));
    assert.deepEqual(back.map((r) => r.status), [200, 200, 200, 200]);
  });
});

describe('tenant deletion', () => {
  test('drop: the tenant\'s tokens stop working on every instance within 1 s', async () => {
    const acc = await freshAccount(tdA, 'drop');
    await warm(acc.res.access_token);
    await tenantctl('tenant', 'drop', acc.tenant.slug, '--yes');
    const elapsed = await allAnswer(acc.res.access_token, 401, 1000);
    assert.notEqual(elapsed, null, 'every instance answers 401 within 1 s of the drop');
    assert401(await me(tdA, acc.res.access_token), '/me of a dropped tenant');
    const refreshed = await call(tdA, 'POST', '/v1/auth/refresh', { refresh_token: acc.res.refresh_token });
    assert.ok([401, 403].includes(refreshed.status), `refresh in a dropped tenant: ${refreshed.status} ${refreshed.body}`);
    const login = await loginRaw(tdB, acc.email, acc.password);
    assert.notEqual(login.status, 200, `login after the drop: ${login.body}`);
  });
});
