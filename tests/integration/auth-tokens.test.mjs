// auth-tokens.test.mjs — forged and malformed access tokens (issue 4 item 7, CONTRACT.md §3–4).
//
// Every forgery is checked against GET /v1/auth/me and must get 401 with a Bearer challenge.
// Tokens that are correctly signed with the dev key set (TENANTD_JWT_KEYS, read by the test) but
// carry one defect (expired, wrong issuer, a `jku` header, …) isolate the claim and header checks
// from the signature check; a control token made the same way without the defect must pass, so
// a refusal is never an accident of our own signer. The session id of those tokens is that of a
// real login, so the session check passes.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import http2 from 'node:http2';
import { before, describe, test } from 'node:test';

import { h2request, request, startTenantd } from '../lib/harness.mjs';
import {
  FIXTURE, assert401, assertProblem, b64json, b64url, call, decodeJwt, es256Signer, fetchJwks, hs256Signer, jwt, login, me,
  signingKeys,
} from '../lib/auth.mjs';

let td;
let real;        // a real login of acme's member
let claims;      // its payload
let header;      // its header
let key;         // the dev signing key its kid names
let publicJwk;   // the published JWK of that kid
let sign;        // ES256 with the real key

before(async () => {
  td = await startTenantd();
  real = await login(td, FIXTURE.acme.member);
  ({ header, payload: claims } = decodeJwt(real.access_token));
  key = signingKeys().find((k) => k.kid === header.kid);
  assert.ok(key, `TENANTD_JWT_KEYS holds the private key of kid ${header.kid}`);
  sign = es256Signer(key.privateKey);
  publicJwk = (await fetchJwks(td)).keys.find((k) => k.kid === header.kid);
  assert.ok(publicJwk, 'the kid is published');
});
// tenantd is killed by the harness when the file ends (its graceful stop is server-shutdown's topic).

const now = () => Math.floor(Date.now() / 1000);

async function assertRefused(token, what) {
  const res = await me(td, token);
  assert401(res, what);
  assert.equal(res.json.user, undefined, `${what}: no user data`);
}

describe('control', () => {
  test('the real token works, and so does one the test signs with the dev key', async () => {
    assert.equal((await me(td, real.access_token)).status, 200);
    const own = jwt(header, { ...claims, iat: now(), exp: now() + 300 }, sign);
    const res = await me(td, own);
    assert.equal(res.status, 200, `a well-formed token signed with the dev key: ${res.body}`);
    assert.equal(res.json.tenant.slug, 'acme');
  });
});

describe('forged signatures and headers → 401', () => {
  test('alg none (with and without a signature, several spellings)', async () => {
    for (const alg of ['none', 'None', 'NONE', 'nOnE', '']) {
      const h = { alg, typ: 'JWT', kid: header.kid };
      await assertRefused(jwt(h, claims), `alg ${JSON.stringify(alg)}, empty signature`);
      await assertRefused(`${b64json(h)}.${b64json(claims)}.${real.access_token.split('.')[2]}`, `alg ${JSON.stringify(alg)}, real signature`);
    }
    await assertRefused(`${b64json({ alg: 'none' })}.${b64json(claims)}.`, 'alg none without kid');
  });

  test('HS256 keyed with the public key (PEM, DER, JWK JSON, raw x||y)', async () => {
    const pub = crypto.createPublicKey({ key: publicJwk, format: 'jwk' });
    const pem = pub.export({ type: 'spki', format: 'pem' });
    const secrets = {
      'PEM': pem,
      'PEM without trailing newline': pem.trimEnd(),
      'DER': pub.export({ type: 'spki', format: 'der' }),
      'JWK JSON (as published)': JSON.stringify(publicJwk),
      'JWK JSON (pretty)': JSON.stringify(publicJwk, null, 2),
      'JWKS document': JSON.stringify({ keys: [publicJwk] }),
      'x||y': Buffer.concat([Buffer.from(publicJwk.x, 'base64url'), Buffer.from(publicJwk.y, 'base64url')]),
    };
    for (const [what, secret] of Object.entries(secrets)) {
      for (const alg of ['HS256', 'HS384', 'HS512']) {
        const digest = `sha${alg.slice(2)}`;
        const signer = (data) => crypto.createHmac(digest, secret).update(data).digest();
        await assertRefused(jwt({ alg, typ: 'JWT', kid: header.kid }, claims, signer), `${alg} keyed with ${what}`);
      }
    }
    await assertRefused(jwt({ alg: 'HS256', typ: 'JWT', kid: header.kid }, claims, hs256Signer('')), 'HS256 with an empty secret');
  });

  test('other algorithms under our kid (ES384, RS256, EdDSA) with the real signature', async () => {
    const sig = real.access_token.split('.')[2];
    for (const alg of ['ES384', 'ES512', 'RS256', 'PS256', 'EdDSA', 'es256']) {
      await assertRefused(`${b64json({ ...header, alg })}.${real.access_token.split('.')[1]}.${sig}`, `alg ${alg}`);
    }
  });

  test('a fresh EC key under our kid', async () => {
    const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await assertRefused(jwt(header, claims, es256Signer(privateKey)), 'fresh P-256 key, our kid');
    const { privateKey: k384 } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
    await assertRefused(jwt({ ...header, alg: 'ES384' }, claims, (d) => crypto.sign('sha384', d, { key: k384, dsaEncoding: 'ieee-p1363' })), 'P-384 key');
  });

  test('unknown, missing or injected kid', async () => {
    const kids = ['unknown-kid', '', `${header.kid}x`, header.kid.toUpperCase(), '../../../../dev/null', '/dev/null',
      "' OR '1'='1", `${header.kid}\u0000`, 'a'.repeat(4000), 0, null, [header.kid], { kid: header.kid }];
    // (a kid of digits only is its own upper case: that variant would be the real kid, not a wrong one)
    for (const kid of kids.filter((k) => k !== header.kid)) {
      // correctly signed with the real key: only the kid is wrong
      await assertRefused(jwt({ ...header, kid }, claims, sign), `kid ${JSON.stringify(kid).slice(0, 40)}`);
    }
    const { kid: _, ...noKid } = header;
    await assertRefused(jwt(noKid, claims, sign), 'no kid');
  });

  test('jku, jwk, x5u, x5c and crit headers are refused even with a valid signature', async () => {
    const attackerJwk = { kty: publicJwk.kty, crv: publicJwk.crv, x: publicJwk.x, y: publicJwk.y, kid: header.kid };
    const extras = {
      jku: 'https://attacker.example/jwks.json',
      jwk: attackerJwk,
      x5u: 'https://attacker.example/cert.pem',
      x5c: ['MIIBszCCAVmgAwIBAgIU'],
      crit: ['exp'],
    };
    for (const [name, value] of Object.entries(extras)) {
      await assertRefused(jwt({ ...header, [name]: value }, claims, sign), `header ${name}`);
    }
    // and a jwk header naming the attacker's own key, signed with it
    const { privateKey, publicKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const own = { ...publicKey.export({ format: 'jwk' }), kid: header.kid };
    await assertRefused(jwt({ ...header, jwk: own }, claims, es256Signer(privateKey)), 'embedded attacker jwk');
  });

  test('header oddities: not JSON, not an object, typ other than JWT, duplicate members', async () => {
    const p = b64json(claims);
    const bad = {
      'header not JSON': b64url('{"alg":"ES256",'),
      'header an array': b64url('["ES256"]'),
      'header a string': b64url('"ES256"'),
      'typ JWE': b64json({ ...header, typ: 'JWE' }),
      'typ number': b64json({ ...header, typ: 1 }),
      'alg number': b64json({ ...header, alg: 256 }),
      'duplicate alg': b64url(`{"alg":"none","alg":"ES256","typ":"JWT","kid":"${header.kid}"}`),
      'duplicate kid': b64url(`{"alg":"ES256","typ":"JWT","kid":"other","kid":"${header.kid}"}`),
    };
    for (const [what, h] of Object.entries(bad)) {
      const input = `${h}.${p}`;
      await assertRefused(`${input}.${b64url(sign(Buffer.from(input)))}`, what);
    }
  });
});

describe('malformed tokens → 401 (never 5xx)', () => {
  test('bad base64url, wrong segment counts, empty parts', async () => {
    const [h, p, s] = real.access_token.split('.');
    // the same bytes in the standard alphabet: a lenient decoder would accept them
    const std = (seg) => seg.replace(/-/g, '+').replace(/_/g, '/');
    let own;
    do own = jwt(header, { ...claims, iat: now(), exp: now() + 300 }, sign); while (!/[-_]/.test(own.split('.')[2]));
    assert.equal((await me(td, own)).status, 200, 'control: the token before translation works');
    const stdToken = own.split('.').map(std).join('.');
    const tokens = {
      'standard base64 alphabet (+/)': stdToken,
      'standard base64 with padding': `${Buffer.from(Buffer.from(h, 'base64url')).toString('base64')}.${p}.${Buffer.from(Buffer.from(s, 'base64url')).toString('base64')}`,
      'padding =': `${h}=.${p}.${s}`,
      'illegal character *': `${h}.${p}*.${s}`,
      'space inside': `${h}.${p.slice(0, 5)} ${p.slice(5)}.${s}`,
      'non-ASCII': `${h}.${p}é.${s}`,
      'truncated signature': `${h}.${p}.${s.slice(0, -4)}`,
      'signature of one char': `${h}.${p}.${s.slice(0, 1)}`,
      'impossible base64 length': `${h}.${p}x.${s}`,
      'empty signature': `${h}.${p}.`,
      'empty header': `.${p}.${s}`,
      'empty payload': `${h}..${s}`,
      '2 segments': `${h}.${p}`,
      '4 segments': `${h}.${p}.${s}.${s}`,
      '5 segments (JWE shape)': `${h}.${p}.${s}.${s}.${s}`,
      '1 segment': h,
      'dots only': '..',
      'a single dot': '.',
      'signature flipped': `${h}.${p}.${s.slice(0, -2)}${s.endsWith('AA') ? 'AB' : 'AA'}`,
    };
    for (const [what, token] of Object.entries(tokens)) await assertRefused(token, what);
  });

  test('a 100 KB token → 401 or 431 over HTTP/1.1 and HTTP/2; the server keeps serving', async () => {
    const [h, p, s] = real.access_token.split('.');
    const huge = `${h}.${p}${'A'.repeat(100 * 1024)}.${s}`;
    const res = await me(td, huge);
    assert.ok([401, 431].includes(res.status), `HTTP/1.1: status ${res.status}: ${res.body.slice(0, 200)}`);
    if (res.status === 401) assert401(res, '100 KB token');
    // node's client refuses to send a header block over 64 KB unless told otherwise
    const session = http2.connect(td.url, { maxSendHeaderBlockLength: 1 << 20 });
    await new Promise((resolve, reject) => { session.once('connect', resolve); session.once('error', reject); });
    try {
      const r2 = await h2request(session, '/v1/auth/me', { headers: { authorization: `Bearer ${huge}` } }).catch((err) => ({ status: `error ${err.code}` }));
      assert.ok([401, 431].includes(r2.status), `HTTP/2: status ${r2.status}`);
    } finally {
      session.close();
    }
    // just over the server's cap, and in the cookie
    const big = `${h}.${p}${'A'.repeat(9000)}.${s}`;
    await assertRefused(big, '9 KB token');
    const viaCookie = await call(td, 'GET', '/v1/auth/me', undefined, { headers: { cookie: `__Host-access=${huge}` } });
    assert.ok([401, 431].includes(viaCookie.status), `cookie: status ${viaCookie.status}`);
    assert.equal((await request(`${td.url}/healthz`)).status, 200);
    assert.equal((await me(td, real.access_token)).status, 200);
  });
});

describe('claims, correctly signed → 401', () => {
  const variants = () => {
    const { exp: _e, ...noExp } = claims;
    const { iss: _i, ...noIss } = claims;
    const { aud: _a, ...noAud } = claims;
    const { sub: _s, ...noSub } = claims;
    const { tid: _t, ...noTid } = claims;
    const { sid: _d, ...noSid } = claims;
    const { roles: _r, ...noRoles } = claims;
    const t = now();
    return {
      'exp missing': noExp,
      'exp in the past': { ...claims, iat: t - 3600, exp: t - 60 },
      'exp now': { ...claims, iat: t - 60, exp: t },
      'exp a string': { ...claims, exp: String(t + 600) },
      'exp a float string': { ...claims, exp: `${t + 600}.5` },
      'exp null': { ...claims, exp: null },
      'exp true': { ...claims, exp: true },
      'exp an array': { ...claims, exp: [t + 600] },
      'iat a string': { ...claims, iat: String(t), exp: t + 600 },
      'nbf far in the future': { ...claims, nbf: t + 3600, exp: t + 7200 },
      'nbf a string': { ...claims, nbf: String(t) },
      'iss missing': noIss,
      'iss other': { ...claims, iss: 'https://attacker.example' },
      'iss case': { ...claims, iss: 'TENANTD' },
      'iss with NUL': { ...claims, iss: 'tenantd\u0000' },
      'iss array': { ...claims, iss: ['tenantd'] },
      'aud missing': noAud,
      'aud other': { ...claims, aud: 'other-service' },
      'aud array without ours': { ...claims, aud: ['a', 'b'] },
      'aud prefix': { ...claims, aud: 'tenant' },
      'aud number': { ...claims, aud: 1 },
      'sub missing': noSub,
      'sub a number': { ...claims, sub: 1 },
      'tid missing': noTid,
      'sid missing': noSid,
      'sid of no session': { ...claims, sid: crypto.randomBytes(16).toString('hex') },
      'roles missing': noRoles,
      'roles a string': { ...claims, roles: 'owner' },
      'tid of a tenant that does not exist': { ...claims, tid: crypto.randomUUID() },
      'tid not a uuid': { ...claims, tid: 'acme' },
    };
  };

  test('one defect each', async () => {
    for (const [what, payload] of Object.entries(variants())) {
      await assertRefused(jwt(header, payload, sign), what);
    }
    // a payload that is not an object
    for (const [what, raw] of [['array payload', '[]'], ['string payload', '"x"'], ['not JSON', '{"sub":']]) {
      await assertRefused(jwt(header, b64url(raw), sign), what);
    }
    const dup = b64url(JSON.stringify({ ...claims }).replace('{', '{"exp":1,'));
    await assertRefused(jwt(header, dup, sign), 'duplicate exp member');
  });

  test('an aud array that contains ours is accepted (control for the aud checks)', async () => {
    const res = await me(td, jwt(header, { ...claims, aud: ['other', 'tenantd'], iat: now(), exp: now() + 300 }, sign));
    assert.equal(res.status, 200, res.body);
  });
});

describe('tampered payloads keep the old signature → 401', () => {
  test('another tenant, more roles, another user, later exp', async () => {
    const globex = await login(td, FIXTURE.globex.viewer);
    const owner = await login(td, FIXTURE.acme.owner);
    const [h, , s] = real.access_token.split('.');
    const changes = {
      'tid of globex': { tid: globex.tenant.id },
      'roles owner': { roles: ['owner'] },
      'roles platform_admin': { roles: ['platform_admin'] },
      'sub of the owner': { sub: owner.user.id },
      'exp a year later': { exp: claims.exp + 365 * 86400 },
    };
    for (const [what, change] of Object.entries(changes)) {
      await assertRefused(`${h}.${b64json({ ...claims, ...change })}.${s}`, what);
    }
  });
});

describe('session binding (defence in depth)', () => {
  test('a correctly signed token whose tid or sub is not its session\'s → 401', async () => {
    // only a holder of the signing key can make these; the session check must still bind sid to
    // the user and tenant it was opened for
    const globex = await login(td, FIXTURE.globex.viewer);
    const owner = await login(td, FIXTURE.acme.owner);
    const t = now();
    for (const [what, change] of [['tid of globex', { tid: globex.tenant.id }], ['sub of the owner', { sub: owner.user.id }]]) {
      await assertRefused(jwt(header, { ...claims, ...change, iat: t, exp: t + 300 }, sign), what);
    }
  });
});

describe('tenant named by the request', () => {
  test('a valid acme token with x-tenant: globex → 403; x-tenant: acme → 200', async () => {
    const res = await call(td, 'GET', '/v1/auth/me', undefined, { token: real.access_token, headers: { 'x-tenant': 'globex' } });
    assertProblem(res, 403, 'x-tenant: globex');
    assert.equal(res.json.user, undefined);
    for (const other of ['ACME', 'acme ', 'nosuch', 'acme,globex']) {
      const r = await call(td, 'GET', '/v1/auth/me', undefined, { token: real.access_token, headers: { 'x-tenant': other } });
      assertProblem(r, 403, `x-tenant: ${JSON.stringify(other)}`);
    }
    const same = await call(td, 'GET', '/v1/auth/me', undefined, { token: real.access_token, headers: { 'x-tenant': 'acme' } });
    assert.equal(same.status, 200, same.body);
    // a state-changing route is refused the same way
    const sw = await call(td, 'POST', '/v1/auth/switch', { tenant: 'acme' }, { token: real.access_token, headers: { 'x-tenant': 'globex' } });
    assertProblem(sw, 403, 'switch with x-tenant: globex');
  });
});
