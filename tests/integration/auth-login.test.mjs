// auth-login.test.mjs — POST /v1/auth/login, GET /v1/auth/me, POST /v1/auth/switch and the public
// key set (CONTRACT.md §4–5): tenant choice, uniform credential failures, the per-account failure
// limit, effective permissions per default role, switching tenants, and a JWKS without private parts.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { before, describe, test } from 'node:test';

import { startTenantd } from '../lib/harness.mjs';
import {
  ACCESS_TTL_S, FIXTURE, ROLES, assert401, assertProblem, assertTokenResponse, call, decodeJwt, defaultPolicy, expandRole,
  fetchJwks, freshAccount, login, loginRaw, me, uniq,
} from '../lib/auth.mjs';

let td;

before(async () => {
  td = await startTenantd();
});
// tenantd is killed by the harness when the file ends (its graceful stop is server-shutdown's topic).

describe('login', () => {
  test('a user with one membership logs in without naming the tenant', async () => {
    const res = await loginRaw(td, FIXTURE.acme.member.email, FIXTURE.acme.member.password);
    assert.equal(res.status, 200, res.body);
    assert.equal(res.headers['cache-control'], 'no-store');
    assertTokenResponse(res.json, { email: FIXTURE.acme.member.email, slug: 'acme', roles: ['member'] });
    const { payload } = decodeJwt(res.json.access_token);
    assert.equal(payload.sub, res.json.user.id);
    assert.equal(payload.tid, res.json.tenant.id);
    assert.deepEqual(payload.roles, ['member']);
    // naming its own tenant works too; the e-mail is case-insensitive
    const named = await login(td, { email: FIXTURE.acme.member.email.toUpperCase(), password: FIXTURE.acme.member.password }, { tenant: 'acme' });
    assert.equal(named.tenant.slug, 'acme');
    assert.equal(named.user.id, res.json.user.id);
  });

  test('a user of several tenants must name one', async () => {
    const res = await loginRaw(td, FIXTURE.multi.email, FIXTURE.multi.password);
    assert.ok([400, 422].includes(res.status), `no tenant → 400/422, got ${res.status}: ${res.body}`);
    assertProblem(res, res.status);
    assert.equal(res.json.access_token, undefined);
    const acme = await login(td, FIXTURE.multi, { tenant: 'acme' });
    assertTokenResponse(acme, { slug: 'acme', roles: ['member'] });
    const globex = await login(td, FIXTURE.multi, { tenant: 'globex' });
    assertTokenResponse(globex, { slug: 'globex', roles: ['viewer'] });
    assert.equal(acme.user.id, globex.user.id);
  });

  test('naming a tenant the user does not belong to → 403', async () => {
    for (const tenant of ['globex', `nosuch-${uniq()}`]) {
      const res = await loginRaw(td, FIXTURE.acme.viewer.email, FIXTURE.acme.viewer.password, { tenant });
      assertProblem(res, 403, `tenant ${tenant}`);
      assert.equal(res.json.access_token, undefined);
    }
  });

  test('a wrong password and an unknown e-mail look the same', async () => {
    // a fresh account: failures count toward the per-account limit, and the fixtures are shared
    const acc = await freshAccount(td, 'same');
    const wrong = await loginRaw(td, acc.email, `wrong-${uniq()}`);
    const unknown = await loginRaw(td, `nobody-${uniq()}@auth-tests.example`, 'whatever-password');
    for (const [what, res] of [['wrong password', wrong], ['unknown e-mail', unknown]]) {
      assertProblem(res, 401, what);
      assert.equal(res.json.access_token, undefined);
    }
    const shape = (res) => {
      const { request_id: _, ...rest } = res.json;
      const headers = Object.keys(res.headers).filter((h) => !['date', 'x-request-id', 'content-length'].includes(h)).sort();
      return { body: rest, headers, wwwAuthenticate: res.headers['www-authenticate'], contentType: res.headers['content-type'] };
    };
    assert.deepEqual(shape(unknown), shape(wrong));
    // a 401 carries a challenge (RFC 9110 §15.5.2)
    assert401(wrong, 'wrong password');
    assert401(unknown, 'unknown e-mail');
  });

  test('a wrong password and an unknown e-mail take about the same time', async () => {
    // the unknown e-mail is verified against a dummy hash: no fast path tells accounts apart.
    // Fresh accounts, three attempts each (under the limit of 5); medians of 6 samples each.
    const accounts = [await freshAccount(td, 'time'), await freshAccount(td, 'time')];
    const timed = async (email, password) => {
      const start = process.hrtime.bigint();
      const res = await loginRaw(td, email, password);
      assert.equal(res.status, 401, res.body);
      return Number(process.hrtime.bigint() - start) / 1e6;
    };
    const wrong = [];
    const unknown = [];
    for (let i = 0; i < 6; i++) {
      wrong.push(await timed(accounts[i % 2].email, `wrong-${i}`));
      unknown.push(await timed(`nobody-${uniq()}@auth-tests.example`, `wrong-${i}`));
    }
    const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const [w, u] = [median(wrong), median(unknown)];
    assert.ok(u > w / 2 && u < w * 2, `median ms: wrong password ${w.toFixed(1)}, unknown e-mail ${u.toFixed(1)}`);
  });

  test('bad input → 422 / 415 / 400', async () => {
    assertProblem(await loginRaw(td, 'not-an-email', 'x'), 422, 'bad e-mail');
    assertProblem(await call(td, 'POST', '/v1/auth/login', { email: FIXTURE.acme.viewer.email }), 422, 'no password');
    assertProblem(await loginRaw(td, FIXTURE.acme.viewer.email, 'p'.repeat(4097)), 422, 'password over 4 KiB');
    assertProblem(await loginRaw(td, FIXTURE.acme.viewer.email, FIXTURE.acme.viewer.password, { tenant: 'Not A Slug' }), 422, 'bad tenant');
    assertProblem(await call(td, 'POST', '/v1/auth/login', undefined, { raw: 'email=a', contentType: 'text/plain' }), 415, 'text/plain');
    assertProblem(await call(td, 'POST', '/v1/auth/login', undefined, { raw: '{"email":' }), 400, 'malformed JSON');
  });

  test('5 failed logins of one account → 429 with retry-after, then even the right password gets 429', async () => {
    const acc = await freshAccount(td, 'lock');
    for (let i = 1; i <= 5; i++) {
      assertProblem(await loginRaw(td, acc.email, `wrong-${i}-${uniq()}`), 401, `failure #${i}`);
    }
    for (const [what, password] of [['wrong password', 'wrong-again'], ['right password', acc.password]]) {
      const res = await loginRaw(td, acc.email, password);
      assertProblem(res, 429, what);
      const retryAfter = Number(res.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 900, `${what}: retry-after ${res.headers['retry-after']}`);
      assert.equal(res.json.access_token, undefined);
    }
    // the limit is per account: another account logs in
    await login(td, FIXTURE.acme.viewer);
    // and it holds for unknown e-mails as well (no account enumeration through the limiter)
    const ghost = `ghost-${uniq()}@auth-tests.example`;
    for (let i = 1; i <= 5; i++) assertProblem(await loginRaw(td, ghost, 'whatever'), 401, `ghost failure #${i}`);
    assertProblem(await loginRaw(td, ghost, 'whatever'), 429, 'ghost #6');
  });

  test('parallel guesses do not get around the limit: at most 5 failures are answered 401', async () => {
    const acc = await freshAccount(td, 'burst');
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => loginRaw(td, acc.email, `guess-${i}-${uniq()}`)));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.every((s) => s === 401 || s === 429), `only 401/429: ${statuses}`);
    const guesses = statuses.filter((s) => s === 401).length;
    assert.ok(guesses <= 5, `20 parallel wrong passwords: ${guesses} were checked (401), at most 5 may be`);
    assertProblem(await loginRaw(td, acc.email, acc.password), 429, 'the right password afterwards');
  });

  test('four failures do not lock the account', async () => {
    const acc = await freshAccount(td, 'four');
    for (let i = 1; i <= 4; i++) assertProblem(await loginRaw(td, acc.email, `wrong-${i}`), 401, `failure #${i}`);
    const ok = await loginRaw(td, acc.email, acc.password);
    assert.equal(ok.status, 200, ok.body);
  });
});

describe('me: effective permissions per role', () => {
  test('each default role of acme sees exactly its policy permissions', async () => {
    const policy = defaultPolicy();
    for (const role of ROLES) {
      const tokens = await login(td, FIXTURE.acme[role]);
      const res = await me(td, tokens.access_token);
      assert.equal(res.status, 200, res.body);
      assert.equal(res.json.user.email, FIXTURE.acme[role].email);
      assert.equal(res.json.user.id, tokens.user.id);
      assert.deepEqual(res.json.tenant, tokens.tenant);
      assert.deepEqual(res.json.roles, [role]);
      assert.equal(res.json.session_id, decodeJwt(tokens.access_token).payload.sid);
      // an unconditional grant subsumes its :own variant (policies/roles.json), which is then not listed
      const held = expandRole(policy, role);
      const expected = [...held].filter((p) => !(p.endsWith(':own') && held.has(p.slice(0, -4))));
      assert.deepEqual([...res.json.permissions].sort(), expected.sort(), `${role} permissions`);
      const creates = res.json.permissions.some((p) => /^\*:create\b|^\*:\*/.test(p));
      assert.equal(creates, role !== 'viewer', `${role} holds *:create`);
      assert.ok(!res.json.permissions.some((p) => p.startsWith('platform:')), `${role} holds no platform permission`);
    }
  });

  test('no token → 401 with a Bearer challenge', async () => {
    assert401(await call(td, 'GET', '/v1/auth/me'));
    assert401(await call(td, 'GET', '/v1/auth/me', undefined, { headers: { authorization: 'Basic dXNlcjpwYXNz' } }), 'Basic');
    assert401(await call(td, 'GET', '/v1/auth/me', undefined, { headers: { authorization: 'Bearer' } }), 'empty Bearer');
  });
});

describe('switch', () => {
  test('a member of acme and viewer of globex switches to globex; roles follow', async () => {
    const acme = await login(td, FIXTURE.multi, { tenant: 'acme' });
    const res = await call(td, 'POST', '/v1/auth/switch', { tenant: 'globex' }, { token: acme.access_token });
    assert.equal(res.status, 200, res.body);
    assertTokenResponse(res.json, { slug: 'globex', roles: ['viewer'] });
    assert.equal(res.json.user.id, acme.user.id);
    assert.notEqual(res.json.tenant.id, acme.tenant.id);
    const { payload } = decodeJwt(res.json.access_token);
    assert.equal(payload.tid, res.json.tenant.id);
    assert.deepEqual(payload.roles, ['viewer']);

    const inGlobex = await me(td, res.json.access_token);
    assert.equal(inGlobex.status, 200, inGlobex.body);
    assert.equal(inGlobex.json.tenant.slug, 'globex');
    assert.deepEqual(inGlobex.json.roles, ['viewer']);
    assert.ok(!inGlobex.json.permissions.includes('*:create'), 'viewer in globex cannot create');
    const inAcme = await me(td, acme.access_token);
    assert.equal(inAcme.json.tenant.slug, 'acme');
    assert.ok(inAcme.json.permissions.includes('*:create'), 'member in acme creates');

    // the switched token is a token of globex: naming acme is refused
    const cross = await call(td, 'GET', '/v1/auth/me', undefined, { token: res.json.access_token, headers: { 'x-tenant': 'acme' } });
    assertProblem(cross, 403, 'globex token with x-tenant: acme');
    // and back
    const back = await call(td, 'POST', '/v1/auth/switch', { tenant: 'acme' }, { token: res.json.access_token });
    assert.equal(back.status, 200, back.body);
    assertTokenResponse(back.json, { slug: 'acme', roles: ['member'] });
  });

  test('switching to a tenant the user does not belong to → 403', async () => {
    const viewer = await login(td, FIXTURE.acme.viewer);
    for (const tenant of ['globex', `nosuch-${uniq()}`]) {
      const res = await call(td, 'POST', '/v1/auth/switch', { tenant }, { token: viewer.access_token });
      assertProblem(res, 403, `switch to ${tenant}`);
      assert.equal(res.json.access_token, undefined);
    }
    // the caller's own session is not harmed by the refusal
    assert.equal((await me(td, viewer.access_token)).status, 200);
    assertProblem(await call(td, 'POST', '/v1/auth/switch', { tenant: 'Bad Slug' }, { token: viewer.access_token }), 422, 'bad slug');
    assert401(await call(td, 'POST', '/v1/auth/switch', { tenant: 'acme' }), 'no token');
  });
});

describe('jwks', () => {
  test('public keys only; the access token verifies with the key its kid names', async () => {
    const jwks = await fetchJwks(td);
    assert.ok(Array.isArray(jwks.keys) && jwks.keys.length >= 1, 'keys');
    for (const key of jwks.keys) {
      for (const secret of ['d', 'p', 'q', 'dp', 'dq', 'qi', 'k', 'oth']) {
        assert.ok(!Object.hasOwn(key, secret), `key ${key.kid} carries no "${secret}"`);
      }
      assert.equal(typeof key.kid, 'string');
      assert.equal(key.kty, 'EC');
      assert.equal(key.crv, 'P-256');
    }
    const tokens = await login(td, FIXTURE.acme.viewer);
    const [h, p, s] = tokens.access_token.split('.');
    const { header, payload } = decodeJwt(tokens.access_token);
    assert.equal(header.alg, 'ES256');
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    assert.ok(jwk, `kid ${header.kid} is in the JWKS`);
    const ok = crypto.verify('sha256', Buffer.from(`${h}.${p}`), { key: crypto.createPublicKey({ key: jwk, format: 'jwk' }), dsaEncoding: 'ieee-p1363' }, Buffer.from(s, 'base64url'));
    assert.ok(ok, 'the signature verifies with the published key');
    for (const claim of ['sub', 'tid', 'sid']) assert.equal(typeof payload[claim], 'string', claim);
    assert.equal(payload.iss, 'tenantd');
    assert.equal(payload.aud, 'tenantd');
    assert.equal(payload.exp - payload.iat, ACCESS_TTL_S);
  });
});
