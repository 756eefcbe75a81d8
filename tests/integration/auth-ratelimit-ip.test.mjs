// auth-ratelimit-ip.test.mjs — the per-address limits of CONTRACT.md §4 beside the per-account
// one: logins (600 a minute from one address) and refreshes (600 a minute) answer 429 with
// retry-after past the limit, other addresses are not affected, and a refused login does not
// count against the account.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startTenantd, redisCommand } from '../lib/harness.mjs';
import { agentFrom, call, loginRaw, randomLoopback, FIXTURE } from '../lib/auth.mjs';

let td;
const redisPort = Number(new URL(process.env.REDIS_URL).port);
const redis = (args) => redisCommand(redisPort, args);

before(async () => {
  td = await startTenantd();
  await td.waitReady();
});

after(async () => {
  await td?.stop();
});

test('the 601st login from one address within a minute → 429; another address still logs in', async () => {
  const ip = randomLoopback();
  const key = `tenantd:rl:login:ip:${ip}`;
  assert.equal(await redis(['SET', key, '600', 'EX', '60']), '+OK');
  try {
    const who = FIXTURE.acme.viewer;
    const refused = await loginRaw(td, who.email, who.password, {}, { agent: agentFrom(ip) });
    assert.equal(refused.status, 429, refused.body);
    assert.ok(Number(refused.headers['retry-after']) > 0);
    const other = await loginRaw(td, who.email, who.password, {}, { agent: agentFrom(randomLoopback()) });
    assert.equal(other.status, 200, other.body);
  } finally {
    await redis(['DEL', key]);
  }
});

test('the 601st refresh from one address within a minute → 429, and the refresh token stays unspent', async () => {
  const who = FIXTURE.acme.viewer;
  const tokens = (await loginRaw(td, who.email, who.password)).json;
  const ip = randomLoopback();
  const key = `tenantd:rl:refresh:ip:${ip}`;
  assert.equal(await redis(['SET', key, '600', 'EX', '60']), '+OK');
  try {
    const refused = await call(td, 'POST', '/v1/auth/refresh', { refresh_token: tokens.refresh_token }, { agent: agentFrom(ip) });
    assert.equal(refused.status, 429, refused.body);
    const ok = await call(td, 'POST', '/v1/auth/refresh', { refresh_token: tokens.refresh_token }, { agent: agentFrom(randomLoopback()) });
    assert.equal(ok.status, 200, ok.body);
  } finally {
    await redis(['DEL', key]);
  }
});
