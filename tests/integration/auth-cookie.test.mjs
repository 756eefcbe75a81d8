// auth-cookie.test.mjs — SPA cookie mode and CORS (CONTRACT.md §4, issue 4 item 3): `__Host-`
// cookies with HttpOnly/Secure/SameSite=Lax/Path=/, the CSRF token on every state-changing
// cookie-authenticated request, the Origin check, and CORS only for TENANTD_CORS_ORIGINS.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { startTenantd } from '../lib/harness.mjs';
import { FIXTURE, assert401, assertProblem, call, decodeJwt } from '../lib/auth.mjs';

const APP = 'https://app.auth-tests.example';
const EVIL = 'https://evil.auth-tests.example';

let td;

before(async () => {
  td = await startTenantd({ TENANTD_CORS_ORIGINS: `${APP},http://localhost:5173` });
});
// tenantd is killed by the harness when the file ends

// Parses set-cookie headers into {name: {value, attrs: {lower-case name: value|true}}}.
function parseSetCookies(res) {
  const raw = res.headers['set-cookie'] ?? [];
  const out = {};
  for (const line of raw) {
    const [pair, ...attrs] = line.split(';').map((s) => s.trim());
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq);
    assert.ok(!Object.hasOwn(out, name), `cookie ${name} set once`);
    out[name] = { value: pair.slice(eq + 1), raw: line, attrs: {} };
    for (const a of attrs) {
      const i = a.indexOf('=');
      out[name].attrs[(i < 0 ? a : a.slice(0, i)).toLowerCase()] = i < 0 ? true : a.slice(i + 1);
    }
  }
  return out;
}

// Logs in in cookie mode; returns {res, cookies, jar (Cookie header value), csrf}.
async function cookieLogin(who = FIXTURE.acme.member, extra = {}) {
  const res = await call(td, 'POST', '/v1/auth/login', { email: who.email, password: who.password, cookie: true, ...extra });
  assert.equal(res.status, 200, res.body);
  const cookies = parseSetCookies(res);
  const jar = Object.entries(cookies).map(([n, c]) => `${n}=${c.value}`).join('; ');
  return { res, cookies, jar, csrf: res.json.csrf_token };
}

const withCookies = (jar, headers = {}) => ({ headers: { cookie: jar, ...headers } });

describe('cookie login', () => {
  test('sets __Host- cookies with the right attributes; the body carries csrf_token and no tokens', async () => {
    const { res, cookies } = await cookieLogin();
    assert.deepEqual(Object.keys(cookies).sort(), ['__Host-access', '__Host-csrf', '__Host-refresh']);
    for (const [name, c] of Object.entries(cookies)) {
      assert.ok(c.value.length > 0, `${name} has a value`);
      assert.equal(c.attrs.secure, true, `${name} Secure: ${c.raw}`);
      assert.equal(c.attrs.path, '/', `${name} Path=/: ${c.raw}`);
      assert.equal(String(c.attrs.samesite).toLowerCase(), 'lax', `${name} SameSite=Lax: ${c.raw}`);
      assert.equal(c.attrs.domain, undefined, `${name} has no Domain (required by __Host-): ${c.raw}`);
      assert.equal(c.attrs.httponly === true, name !== '__Host-csrf', `${name} HttpOnly: ${c.raw}`);
      const maxAge = Number(c.attrs['max-age']);
      assert.ok(Number.isInteger(maxAge) && maxAge > 0, `${name} Max-Age: ${c.raw}`);
    }
    assert.equal(Number(cookies['__Host-access'].attrs['max-age']), 900);
    assert.equal(typeof res.json.csrf_token, 'string');
    assert.ok(res.json.csrf_token.length >= 16, 'csrf_token is long enough');
    assert.equal(cookies['__Host-csrf'].value, res.json.csrf_token, 'the csrf cookie is the body csrf_token');
    assert.equal(res.json.access_token, undefined, 'no access_token in the body');
    assert.equal(res.json.refresh_token, undefined, 'no refresh_token in the body');
    assert.equal(res.json.tenant.slug, 'acme');
    assert.deepEqual(res.json.roles, ['member']);
    assert.equal(decodeJwt(cookies['__Host-access'].value).payload.sub, res.json.user.id);
    assert.equal(res.headers['cache-control'], 'no-store');
  });

  test('GET /v1/auth/me with the cookie works (no CSRF token needed for a safe method)', async () => {
    const { cookies, jar } = await cookieLogin();
    const res = await call(td, 'GET', '/v1/auth/me', undefined, withCookies(jar));
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.user.email, FIXTURE.acme.member.email);
    const accessOnly = await call(td, 'GET', '/v1/auth/me', undefined, withCookies(`__Host-access=${cookies['__Host-access'].value}`));
    assert.equal(accessOnly.status, 200, accessOnly.body);
    const sessions = await call(td, 'GET', '/v1/auth/sessions', undefined, withCookies(jar, { origin: EVIL }));
    assert.equal(sessions.status, 200, `a safe request is not refused for its Origin: ${sessions.body}`);
  });

  test('a cookie without the __Host- prefix is not a credential', async () => {
    const { cookies } = await cookieLogin();
    const res = await call(td, 'GET', '/v1/auth/me', undefined, withCookies(`access=${cookies['__Host-access'].value}`));
    assert401(res, 'cookie "access"');
  });
});

describe('CSRF and Origin on cookie-authenticated changes', () => {
  test('logout: no x-csrf-token → 403, wrong one → 403, disallowed Origin → 403, then right token → 204', async () => {
    const { jar, csrf } = await cookieLogin();
    const post = (headers) => call(td, 'POST', '/v1/auth/logout', undefined, withCookies(jar, headers));
    assertProblem(await post({}), 403, 'no x-csrf-token');
    assertProblem(await post({ 'x-csrf-token': '' }), 403, 'empty x-csrf-token');
    assertProblem(await post({ 'x-csrf-token': `${csrf}x` }), 403, 'wrong x-csrf-token');
    assertProblem(await post({ 'x-csrf-token': csrf.slice(0, -1) }), 403, 'truncated x-csrf-token');
    for (const origin of [EVIL, 'null', `${APP}.evil.example`, APP.replace('https:', 'http:'), `${APP}:8443`]) {
      assertProblem(await post({ 'x-csrf-token': csrf, origin }), 403, `Origin ${origin}`);
    }
    // still logged in after all the refusals
    assert.equal((await call(td, 'GET', '/v1/auth/me', undefined, withCookies(jar))).status, 200);
    const out = await post({ 'x-csrf-token': csrf, origin: APP });
    assert.equal(out.status, 204, out.body);
    // the cookies are cleared and the session is over
    const cleared = parseSetCookies(out);
    for (const name of ['__Host-access', '__Host-refresh', '__Host-csrf']) {
      assert.ok(cleared[name], `logout clears ${name}`);
      assert.equal(Number(cleared[name].attrs['max-age']), 0, `${name} Max-Age=0`);
    }
    assert401(await call(td, 'GET', '/v1/auth/me', undefined, withCookies(jar)), '/me after the cookie logout');
  });

  test('logout with the right token and no Origin → 204', async () => {
    const { jar, csrf } = await cookieLogin();
    const out = await call(td, 'POST', '/v1/auth/logout', undefined, withCookies(jar, { 'x-csrf-token': csrf }));
    assert.equal(out.status, 204, out.body);
    assert401(await call(td, 'GET', '/v1/auth/me', undefined, withCookies(jar)), '/me after the cookie logout');
  });

  test('another session\'s CSRF token does not fit', async () => {
    const a = await cookieLogin();
    const b = await cookieLogin();
    const res = await call(td, 'POST', '/v1/auth/logout', undefined, withCookies(a.jar, { 'x-csrf-token': b.csrf }));
    assertProblem(res, 403, 'x-csrf-token of another session');
  });

  test('switch and session revoke by cookie need the CSRF token too', async () => {
    const { jar, csrf, res } = await cookieLogin(FIXTURE.multi, { tenant: 'acme' });
    assertProblem(await call(td, 'POST', '/v1/auth/switch', { tenant: 'globex' }, withCookies(jar)), 403, 'switch without x-csrf-token');
    assertProblem(await call(td, 'POST', '/v1/auth/switch', { tenant: 'globex' }, withCookies(jar, { 'x-csrf-token': csrf, origin: EVIL })), 403, 'switch from a disallowed Origin');
    const sid = decodeJwt(parseSetCookies(res)['__Host-access'].value).payload.sid;
    assertProblem(await call(td, 'DELETE', `/v1/auth/sessions/${sid}`, undefined, withCookies(jar)), 403, 'session revoke without x-csrf-token');
    const sw = await call(td, 'POST', '/v1/auth/switch', { tenant: 'globex' }, withCookies(jar, { 'x-csrf-token': csrf, origin: APP }));
    assert.equal(sw.status, 200, sw.body);
    assert.equal(sw.json.tenant.slug, 'globex');
    assert.equal(sw.json.access_token, undefined, 'a cookie switch answers with cookies, not tokens');
    assert.ok(parseSetCookies(sw)['__Host-access'], 'new access cookie');
  });

  test('refresh by cookie: needs x-csrf-token and an allowed Origin; rotates the cookies', async () => {
    const { jar, csrf } = await cookieLogin();
    const post = (headers) => call(td, 'POST', '/v1/auth/refresh', undefined, withCookies(jar, headers));
    assertProblem(await post({}), 403, 'cookie refresh without x-csrf-token');
    assertProblem(await post({ 'x-csrf-token': csrf, origin: EVIL }), 403, 'cookie refresh from a disallowed Origin');
    const ok = await post({ 'x-csrf-token': csrf, origin: APP });
    assert.equal(ok.status, 200, ok.body);
    assert.equal(ok.json.access_token, undefined, 'no tokens in the body');
    assert.equal(ok.json.refresh_token, undefined, 'no tokens in the body');
    const fresh = parseSetCookies(ok);
    assert.deepEqual(Object.keys(fresh).sort(), ['__Host-access', '__Host-csrf', '__Host-refresh']);
    assert.equal(fresh['__Host-csrf'].value, ok.json.csrf_token);
    const freshJar = Object.entries(fresh).map(([n, c]) => `${n}=${c.value}`).join('; ');
    assert.equal((await call(td, 'GET', '/v1/auth/me', undefined, withCookies(freshJar))).status, 200);
  });

  test('a Bearer token needs no CSRF token (it is not ambient)', async () => {
    const res = await call(td, 'POST', '/v1/auth/login', { email: FIXTURE.acme.viewer.email, password: FIXTURE.acme.viewer.password });
    const out = await call(td, 'POST', '/v1/auth/logout', undefined, { token: res.json.access_token, headers: { origin: EVIL } });
    assert.equal(out.status, 204, out.body);
  });
});

describe('CORS', () => {
  test('a preflight from an allowed origin is answered with credentials; a disallowed one is not', async () => {
    const preflight = (origin) => call(td, 'OPTIONS', '/v1/auth/logout', undefined, {
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-csrf-token, content-type' },
    });
    const ok = await preflight(APP);
    assert.ok([200, 204].includes(ok.status), `allowed preflight: ${ok.status} ${ok.body}`);
    assert.equal(ok.headers['access-control-allow-origin'], APP);
    assert.equal(ok.headers['access-control-allow-credentials'], 'true');
    assert.match(String(ok.headers['access-control-allow-methods']), /\bPOST\b/);
    assert.match(String(ok.headers['access-control-allow-headers']).toLowerCase(), /\bx-csrf-token\b/);
    const bad = await preflight(EVIL);
    assert.equal(bad.headers['access-control-allow-origin'], undefined, 'no ACAO for a disallowed origin');
    assert.notEqual(bad.headers['access-control-allow-credentials'], 'true');
    assert.ok(bad.status >= 400 || bad.headers['access-control-allow-methods'] === undefined, `disallowed preflight: ${bad.status}`);
  });

  test('actual requests: ACAO only for allowed origins, never *', async () => {
    for (const origin of [APP, 'http://localhost:5173']) {
      const res = await call(td, 'GET', '/.well-known/jwks.json', undefined, { headers: { origin } });
      assert.equal(res.headers['access-control-allow-origin'], origin);
      assert.equal(res.headers['access-control-allow-credentials'], 'true');
      assert.match(String(res.headers.vary ?? '').toLowerCase(), /\borigin\b/);
    }
    for (const origin of [EVIL, 'null', 'http://localhost:5174']) {
      const res = await call(td, 'GET', '/.well-known/jwks.json', undefined, { headers: { origin } });
      assert.equal(res.headers['access-control-allow-origin'], undefined, `no ACAO for ${origin}`);
    }
    const login = await call(td, 'POST', '/v1/auth/login', { email: FIXTURE.acme.viewer.email, password: FIXTURE.acme.viewer.password, cookie: true }, { headers: { origin: EVIL } });
    assert.notEqual(login.headers['access-control-allow-origin'], '*');
    assert.equal(login.headers['access-control-allow-origin'], undefined);
  });
});
