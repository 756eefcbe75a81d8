// auth-sessions.test.mjs — refresh rotation and reuse detection, logout, the sessions list and
// revocation, and revocations seen by a second instance sharing Postgres and Redis (CONTRACT.md §4).
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before, describe, test } from 'node:test';

import { sleep, startTenantd } from '../lib/harness.mjs';
import {
  FIXTURE, assert401, assertProblem, assertTokenResponse, call, decodeJwt, freshAccount, login, me,
} from '../lib/auth.mjs';

let td;
let tdB;

before(async () => {
  [td, tdB] = await Promise.all([startTenantd(), startTenantd()]);
});
// both instances are killed by the harness when the file ends

const refresh = (server, token) => call(server, 'POST', '/v1/auth/refresh', { refresh_token: token });
const logout = (server, token) => call(server, 'POST', '/v1/auth/logout', undefined, { token });
const sessions = (server, token) => call(server, 'GET', '/v1/auth/sessions', undefined, { token });
const revoke = (server, token, id) => call(server, 'DELETE', `/v1/auth/sessions/${id}`, undefined, { token });
const sidOf = (accessToken) => decodeJwt(accessToken).payload.sid;

// Polls `fn` until it returns true; resolves the elapsed milliseconds, or null after limitMs.
async function until(fn, limitMs) {
  const start = Date.now();
  while (Date.now() - start <= limitMs) {
    if (await fn()) return Date.now() - start;
    await sleep(20);
  }
  return null;
}

describe('refresh', () => {
  test('rotation: a new pair for the same session; the old refresh token is spent', async () => {
    const first = await login(td, FIXTURE.acme.viewer);
    const res = await refresh(td, first.refresh_token);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    assertTokenResponse(res.json, { email: FIXTURE.acme.viewer.email, slug: 'acme', roles: ['viewer'] });
    assert.notEqual(res.json.refresh_token, first.refresh_token);
    assert.equal(sidOf(res.json.access_token), sidOf(first.access_token), 'same session');
    assert.equal((await me(td, res.json.access_token)).status, 200);
    // the new one rotates again
    const third = await refresh(td, res.json.refresh_token);
    assert.equal(third.status, 200, third.body);
    assert.equal((await me(td, third.json.access_token)).status, 200);
  });

  test('reusing a spent refresh token → 401 and the whole session is revoked', async () => {
    const first = await login(td, FIXTURE.acme.member);
    const second = await refresh(td, first.refresh_token);
    assert.equal(second.status, 200, second.body);
    // warm both instances' token caches with the session's newest access token
    for (let i = 0; i < 4; i++) {
      assert.equal((await me(td, second.json.access_token)).status, 200);
      assert.equal((await me(tdB, second.json.access_token)).status, 200);
    }
    const replay = await refresh(td, first.refresh_token);
    assertProblem(replay, 401, 'replayed refresh token');
    assert.equal(replay.json.access_token, undefined);
    // the family is gone: the newest refresh token and every access token of the session
    assertProblem(await refresh(td, second.json.refresh_token), 401, 'the newest refresh token after the replay');
    for (let i = 0; i < 4; i++) {
      assert401(await me(td, second.json.access_token), `newest access token after the replay (#${i})`);
      assert401(await me(td, first.access_token), `first access token after the replay (#${i})`);
    }
    const onB = await until(async () => (await me(tdB, second.json.access_token)).status === 401, 1000);
    assert.notEqual(onB, null, 'instance B refuses the session within 1 s');
    // another session of the same user is untouched
    const other = await login(td, FIXTURE.acme.member);
    assert.equal((await me(td, other.access_token)).status, 200);
  });

  test('two concurrent refreshes with the same token: at most one succeeds', async () => {
    for (let round = 0; round < 5; round++) {
      const first = await login(td, FIXTURE.acme.viewer);
      const results = await Promise.all([refresh(td, first.refresh_token), refresh(round % 2 ? tdB : td, first.refresh_token)]);
      const ok = results.filter((r) => r.status === 200);
      assert.ok(ok.length <= 1, `round ${round}: ${results.map((r) => r.status).join(', ')}`);
      for (const r of results) assert.ok([200, 401].includes(r.status), `round ${round}: status ${r.status}: ${r.body}`);
      // whatever happened, the spent token never works again
      assertProblem(await refresh(td, first.refresh_token), 401, `round ${round}: the spent token afterwards`);
    }
  });

  test('garbage refresh tokens → 401; wrong body → 400/415', async () => {
    const real = await login(td, FIXTURE.acme.viewer);
    const sid = sidOf(real.access_token);
    const bad = ['', 'x', real.access_token, `rt_${sid}.`, `rt_${sid}.${'A'.repeat(43)}`, `rt_${'0'.repeat(32)}.${'A'.repeat(43)}`,
      `${real.refresh_token}x`, real.refresh_token.slice(0, -1), real.refresh_token.toUpperCase(), `rt_${sid}.../../x`,
      'r'.repeat(5000)];
    for (const token of bad) assertProblem(await refresh(td, token), 401, `refresh_token ${JSON.stringify(token).slice(0, 50)}`);
    assertProblem(await call(td, 'POST', '/v1/auth/refresh', { refresh_token: 42 }), 401, 'a number');
    assertProblem(await call(td, 'POST', '/v1/auth/refresh', {}), 401, 'no refresh_token');
    assertProblem(await call(td, 'POST', '/v1/auth/refresh', undefined, { raw: '{"refresh_token":' }), 400, 'malformed JSON');
    assertProblem(await call(td, 'POST', '/v1/auth/refresh', undefined, { raw: 'refresh_token=x', contentType: 'application/x-www-form-urlencoded' }), 415, 'form body');
    // none of it harmed the real session
    assert.equal((await refresh(td, real.refresh_token)).status, 200);
  });
});

describe('logout', () => {
  test('204; the access token stops working at once and the refresh token is revoked', async () => {
    for (let round = 0; round < 5; round++) {
      const tokens = await login(td, FIXTURE.acme.viewer);
      for (let i = 0; i < 4; i++) assert.equal((await me(td, tokens.access_token)).status, 200); // cached on every thread
      const out = await logout(td, tokens.access_token);
      assert.equal(out.status, 204, out.body);
      assert.equal(out.body, '');
      for (let i = 0; i < 4; i++) assert401(await me(td, tokens.access_token), `round ${round}: /me right after logout (#${i})`);
      assertProblem(await refresh(td, tokens.refresh_token), 401, `round ${round}: refresh after logout`);
      assert401(await logout(td, tokens.access_token), `round ${round}: a second logout`);
    }
  });

  test('a logout on instance A is enforced by instance B within 1 s', async () => {
    for (let round = 0; round < 3; round++) {
      const tokens = await login(td, FIXTURE.acme.member);
      for (let i = 0; i < 4; i++) assert.equal((await me(tdB, tokens.access_token)).status, 200, 'B accepts the token (and caches it)');
      assert.equal((await logout(td, tokens.access_token)).status, 204);
      const elapsed = await until(async () => (await me(tdB, tokens.access_token)).status === 401, 1000);
      assert.notEqual(elapsed, null, `round ${round}: B still accepts the token 1 s after the logout on A`);
      for (let i = 0; i < 4; i++) assert401(await me(tdB, tokens.access_token), `round ${round}: B afterwards (#${i})`);
      assertProblem(await refresh(tdB, tokens.refresh_token), 401, 'refresh on B');
    }
  });

  test('a logout ends only its own session', async () => {
    const a = await login(td, FIXTURE.acme.admin);
    const b = await login(td, FIXTURE.acme.admin);
    assert.equal((await logout(td, a.access_token)).status, 204);
    assert.equal((await me(td, b.access_token)).status, 200);
    assert.equal((await refresh(td, b.refresh_token)).status, 200);
  });
});

describe('sessions', () => {
  test('the list shows the user\'s sessions with the current one marked', async () => {
    const acc = await freshAccount(td, 'sess');
    const second = await call(td, 'POST', '/v1/auth/login', { email: acc.email, password: acc.password }, { headers: { 'user-agent': 'auth-tests/1.0' } });
    assert.equal(second.status, 200, second.body);
    const res = await sessions(td, second.json.access_token);
    assert.equal(res.status, 200, res.body);
    assert.ok(Array.isArray(res.json.items), 'items');
    const ids = res.json.items.map((s) => s.id).sort();
    assert.deepEqual(ids, [sidOf(acc.res.access_token), sidOf(second.json.access_token)].sort(), 'exactly the two sessions');
    for (const s of res.json.items) {
      assert.equal(typeof s.id, 'string');
      assert.equal(s.tenant_id, acc.res.tenant.id);
      assert.ok(Number.isInteger(s.created_at) && Math.abs(s.created_at - Date.now() / 1000) < 120, `created_at ${s.created_at}`);
      assert.ok(Number.isInteger(s.last_used_at) && s.last_used_at >= s.created_at, `last_used_at ${s.last_used_at}`);
      assert.equal(typeof s.ip, 'string');
      assert.equal(typeof s.user_agent, 'string');
      assert.equal(s.current, s.id === sidOf(second.json.access_token), `current of ${s.id}`);
      assert.equal(s.refresh_token, undefined, 'no secrets in the list');
    }
    const current = res.json.items.find((s) => s.current);
    assert.equal(current.user_agent, 'auth-tests/1.0');
    assert.equal(current.ip, '127.0.0.1');
  });

  test('revoking one of one\'s sessions: 204, its tokens stop working, a second time → 404', async () => {
    const acc = await freshAccount(td, 'rev');
    const other = await login(td, acc.who);
    for (let i = 0; i < 4; i++) assert.equal((await me(tdB, other.access_token)).status, 200);
    const target = sidOf(other.access_token);
    const res = await revoke(td, acc.res.access_token, target);
    assert.equal(res.status, 204, res.body);
    for (let i = 0; i < 4; i++) assert401(await me(td, other.access_token), `revoked session's token (#${i})`);
    const onB = await until(async () => (await me(tdB, other.access_token)).status === 401, 1000);
    assert.notEqual(onB, null, 'instance B refuses the revoked session within 1 s');
    assertProblem(await refresh(td, other.refresh_token), 401, 'revoked session\'s refresh token');
    assertProblem(await revoke(td, acc.res.access_token, target), 404, 'revoking it again');
    const list = await sessions(td, acc.res.access_token);
    assert.deepEqual(list.json.items.map((s) => s.id), [sidOf(acc.res.access_token)]);
    assert.equal((await me(td, acc.res.access_token)).status, 200, 'the caller\'s own session lives on');
  });

  test('another user\'s session id → 404 and that session lives on', async () => {
    const mine = await freshAccount(td, 'mine');
    const victim = await login(td, FIXTURE.acme.viewer);
    const victimSid = sidOf(victim.access_token);
    assertProblem(await revoke(td, mine.res.access_token, victimSid), 404, 'another user\'s session');
    // also not by an owner of the victim's tenant: sessions are per user
    const owner = await login(td, FIXTURE.acme.owner);
    assertProblem(await revoke(td, owner.access_token, victimSid), 404, 'the tenant owner revoking a member\'s session');
    assert.equal((await me(td, victim.access_token)).status, 200);
    assert.equal((await refresh(td, victim.refresh_token)).status, 200);
    const theirs = await sessions(td, mine.res.access_token);
    assert.ok(!theirs.json.items.some((s) => s.id === victimSid), 'not listed for another user');
  });

  test('malformed or unknown ids → 404', async () => {
    const tokens = await login(td, FIXTURE.acme.viewer);
    for (const id of [crypto.randomBytes(16).toString('hex'), 'x', 'A'.repeat(32), `${'a'.repeat(31)}g`, 'a'.repeat(33), '%2e%2e', '*']) {
      assertProblem(await revoke(td, tokens.access_token, id), 404, `id ${id}`);
    }
    assert.equal((await me(td, tokens.access_token)).status, 200);
    assert401(await revoke(td, undefined, sidOf(tokens.access_token)), 'no token');
  });
});
