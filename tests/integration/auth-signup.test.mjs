// auth-signup.test.mjs — POST /v1/auth/signup (CONTRACT.md §2–4): the 201 token response, 409 on
// a taken e-mail or slug (and nothing half-created), 422 validation, 415/400 bodies, and the
// per-IP sign-up limit. Every sign-up comes from its own random 127.x.y.z source address (see
// lib/auth.mjs), so 127.0.0.1's budget is never touched.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { startTenantd } from '../lib/harness.mjs';
import {
  ACCESS_TTL_S, assertProblem, assertTokenResponse, decodeJwt, me, randomLoopback, redis, signupBody, signupRaw, uniq,
} from '../lib/auth.mjs';

let td;

before(async () => {
  td = await startTenantd();
});

// tenantd is killed by the harness when the file ends (its graceful stop is server-shutdown's topic).

describe('signup', () => {
  test('201 with the token response; the user is owner of the new tenant', async () => {
    const body = signupBody('shape');
    body.email = body.email.replace(/^s/, 'S'); // mixed case: stored and answered lower-case
    const res = await signupRaw(td, body);
    assert.equal(res.status, 201, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json\b/);
    assert.equal(res.headers['cache-control'], 'no-store');
    assertTokenResponse(res.json, { email: body.email.toLowerCase(), slug: body.tenant.slug, roles: ['owner'] });
    assert.equal(res.json.tenant.name, body.tenant.name);

    const { header, payload } = decodeJwt(res.json.access_token);
    assert.equal(header.alg, 'ES256');
    assert.equal(typeof header.kid, 'string');
    assert.equal(payload.sub, res.json.user.id);
    assert.equal(payload.tid, res.json.tenant.id);
    assert.deepEqual(payload.roles, ['owner']);
    assert.equal(payload.iss, 'tenantd');
    assert.equal(payload.aud, 'tenantd');
    assert.equal(payload.exp - payload.iat, ACCESS_TTL_S);
    assert.ok(Math.abs(payload.iat - Date.now() / 1000) < 60, 'iat is now');

    const who = await me(td, res.json.access_token);
    assert.equal(who.status, 200, who.body);
    assert.equal(who.json.tenant.slug, body.tenant.slug);
    assert.equal(who.json.user.email, body.email.toLowerCase());
    assert.deepEqual(who.json.roles, ['owner']);
    assert.equal(who.json.session_id, payload.sid);
  });

  test('a taken e-mail → 409 (also in another case), and the new slug is not left behind', async () => {
    const first = signupBody('dupmail');
    assert.equal((await signupRaw(td, first)).status, 201);
    for (const email of [first.email, first.email.toUpperCase()]) {
      const again = signupBody('dupmail2');
      again.email = email;
      const res = await signupRaw(td, again);
      assertProblem(res, 409, `e-mail ${email}`);
      // the transaction rolled back: the slug of the refused sign-up is still free
      const retry = signupBody('dupmail3');
      retry.tenant.slug = again.tenant.slug;
      const ok = await signupRaw(td, retry);
      assert.equal(ok.status, 201, `slug ${again.tenant.slug} of a refused sign-up is free: ${ok.body}`);
    }
  });

  test('a taken slug → 409, and the e-mail is not left behind', async () => {
    const first = signupBody('dupslug');
    assert.equal((await signupRaw(td, first)).status, 201);
    for (const slug of [first.tenant.slug, 'acme', 'globex']) {
      const again = signupBody('dupslug2');
      again.tenant.slug = slug;
      const res = await signupRaw(td, again);
      assertProblem(res, 409, `slug ${slug}`);
      const retry = signupBody('dupslug3');
      retry.email = again.email;
      const ok = await signupRaw(td, retry);
      assert.equal(ok.status, 201, `e-mail ${again.email} of a refused sign-up is free: ${ok.body}`);
    }
  });

  test('concurrent sign-ups with one slug or one e-mail: exactly one 201, the others 409', async () => {
    const base = signupBody('race');
    const sameSlug = Array.from({ length: 4 }, () => ({ ...signupBody('race'), tenant: { ...base.tenant } }));
    const bySlug = await Promise.all(sameSlug.map((b) => signupRaw(td, b)));
    assert.deepEqual(bySlug.map((r) => r.status).sort(), [201, 409, 409, 409], `same slug: ${bySlug.map((r) => r.body.slice(0, 120)).join(' | ')}`);
    const sameEmail = Array.from({ length: 4 }, () => ({ ...signupBody('race'), email: base.email }));
    const byEmail = await Promise.all(sameEmail.map((b) => signupRaw(td, b)));
    assert.deepEqual(byEmail.map((r) => r.status).sort(), [201, 409, 409, 409], `same e-mail: ${byEmail.map((r) => r.body.slice(0, 120)).join(' | ')}`);
  });

  test('bad e-mail, slug or name → 422', async () => {
    const cases = [];
    for (const email of ['', 'plain', '@x.test', 'a@', 'a@b', 'a@@b.test', 'a b@x.test', 'a@x.test.', `${'a'.repeat(250)}@x.test`, 42, null]) {
      cases.push([`email ${JSON.stringify(email)}`, (b) => { b.email = email; }]);
    }
    cases.push(['no email', (b) => { delete b.email; }]);
    for (const slug of ['', 'a', 'A-corp', '1abc', '-abc', 'ab_c', 'ab c', 'abc.', `a${'b'.repeat(63)}`, 'ÿab', 7]) {
      cases.push([`slug ${JSON.stringify(slug)}`, (b) => { b.tenant.slug = slug; }]);
    }
    cases.push(['no slug', (b) => { delete b.tenant.slug; }]);
    cases.push(['no tenant', (b) => { delete b.tenant; }]);
    cases.push(['tenant is a string', (b) => { b.tenant = 'acme'; }]);
    for (const name of ['', 'n'.repeat(201), 12]) cases.push([`name ${JSON.stringify(name).slice(0, 20)}`, (b) => { b.tenant.name = name; }]);
    cases.push(['no name', (b) => { delete b.tenant.name; }]);
    cases.push(['no password', (b) => { delete b.password; }]);
    cases.push(['password not a string', (b) => { b.password = 12345678; }]);
    for (const [what, mutate] of cases) {
      const body = signupBody('bad');
      mutate(body);
      assertProblem(await signupRaw(td, body), 422, what);
    }
  });

  test('a slug of 63 characters is accepted; 64 is not', async () => {
    const body = signupBody('long');
    body.tenant.slug = `s${uniq()}${'x'.repeat(52)}`;
    assert.equal(body.tenant.slug.length, 63);
    const res = await signupRaw(td, body);
    assert.equal(res.status, 201, res.body);
    const longer = signupBody('long');
    longer.tenant.slug = `s${uniq()}${'x'.repeat(53)}`;
    assertProblem(await signupRaw(td, longer), 422, '64-character slug');
  });

  test('a password over 4096 bytes → 422; exactly 4096 bytes is accepted', async () => {
    const over = signupBody('pw');
    over.password = 'p'.repeat(4097);
    assertProblem(await signupRaw(td, over), 422, '4097 ASCII bytes');
    const overUtf8 = signupBody('pw');
    overUtf8.password = 'é'.repeat(2049); // 2049 characters, 4098 bytes
    assertProblem(await signupRaw(td, overUtf8), 422, '4098 UTF-8 bytes in 2049 characters');
    const huge = signupBody('pw');
    huge.password = 'p'.repeat(200000);
    const res = await signupRaw(td, huge);
    assert.ok([413, 422].includes(res.status), `200 KB password → 413 or 422, got ${res.status}: ${res.body.slice(0, 200)}`);
    const max = signupBody('pw');
    max.password = 'p'.repeat(4096);
    const ok = await signupRaw(td, max);
    assert.equal(ok.status, 201, `4096-byte password: ${ok.body}`);
  });

  test('a body that is not JSON → 415; malformed JSON → 400', async () => {
    const body = JSON.stringify(signupBody('ct'));
    for (const contentType of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x']) {
      assertProblem(await signupRaw(td, undefined, { raw: body, contentType }), 415, contentType);
    }
    for (const raw of ['{"email":', '{email: "a@b.test"}', '{"email":"a@b.test",}', '\u0000', '{"a":1}{"b":2}']) {
      assertProblem(await signupRaw(td, undefined, { raw }), 400, `body ${JSON.stringify(raw)}`);
    }
    for (const raw of ['[]', '"text"', '42', 'null']) {
      assertProblem(await signupRaw(td, undefined, { raw }), 400, `non-object body ${raw}`);
    }
    const dup = '{"email":"a@b.test","email":"c@d.test","password":"longenough","tenant":{"slug":"dupkey","name":"x"}}';
    assertProblem(await signupRaw(td, undefined, { raw: dup }), 400, 'duplicate member');
  });

  test('the 61st sign-up from one IP within the hour → 429 with retry-after', async () => {
    // A fresh source address whose counter is brought to 58 directly, so only three sign-ups are
    // needed: the 59th and 60th pass, the 61st is refused (also with an otherwise valid body).
    const ip = randomLoopback();
    const key = `tenantd:rl:signup:ip:${ip}`;
    assert.equal(await redis(['SET', key, '58', 'EX', '3600']), '+OK');
    try {
      for (const n of [59, 60]) {
        const res = await signupRaw(td, signupBody('rl'), { ip });
        assert.equal(res.status, 201, `sign-up #${n}: ${res.body}`);
      }
      const refused = await signupRaw(td, signupBody('rl'), { ip });
      assertProblem(refused, 429, 'sign-up #61');
      const retryAfter = Number(refused.headers['retry-after']);
      assert.ok(Number.isInteger(retryAfter) && retryAfter > 0 && retryAfter <= 3600, `retry-after: ${refused.headers['retry-after']}`);
      // another address is not affected
      const other = await signupRaw(td, signupBody('rl'));
      assert.equal(other.status, 201, other.body);
    } finally {
      await redis(['DEL', key]);
    }
  });
});
