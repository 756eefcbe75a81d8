// auth.mjs — helpers for the authentication tests (CONTRACT.md §4–5): JSON calls, sign-ups from
// their own loopback source address, logins of the dev fixtures, JWT decoding and forging, the
// signing key of the dev key set, problem+json checks and Redis access for the rate-limit keys.
//
// Sign-ups are rate limited per source IP (60 per hour). Every sign-up made through these helpers
// comes from a random 127.x.y.z address (the whole 127/8 block is loopback on Linux), so the tests
// never spend the 127.0.0.1 budget other tests rely on.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

import { redisCommand, request, requireEnv } from './harness.mjs';

// The dev fixtures (fixtures/tenants.json, loaded by `./dev setup`).
export const FIXTURE = {
  acme: {
    owner: { email: 'owner@acme.test', password: 'acme-owner-pass' },
    admin: { email: 'admin@acme.test', password: 'acme-admin-pass' },
    member: { email: 'member@acme.test', password: 'acme-member-pass' },
    viewer: { email: 'viewer@acme.test', password: 'acme-viewer-pass' },
  },
  globex: {
    owner: { email: 'owner@globex.test', password: 'globex-owner-pass' },
    admin: { email: 'admin@globex.test', password: 'globex-admin-pass' },
    member: { email: 'member@globex.test', password: 'globex-member-pass' },
    viewer: { email: 'viewer@globex.test', password: 'globex-viewer-pass' },
  },
  multi: { email: 'multi@tenantd.test', password: 'multi-dev-pass' },
};
export const ROLES = ['owner', 'admin', 'member', 'viewer'];
export const ACCESS_TTL_S = 900;
export const PROBLEM_MEMBERS = ['type', 'title', 'status', 'detail', 'request_id'];

// A short random suffix for unique e-mails and slugs.
export function uniq() {
  return crypto.randomBytes(5).toString('hex');
}

// A random loopback address other than 127.0.0.1.
export function randomLoopback() {
  const b = crypto.randomBytes(3);
  return `127.${1 + (b[0] % 254)}.${b[1]}.${1 + (b[2] % 254)}`;
}

// An HTTP/1.1 agent whose connections leave from localAddress (fresh connection per request).
export function agentFrom(localAddress) {
  return new http.Agent({ keepAlive: false, localAddress });
}

// One JSON call. opts: token (Bearer), headers, agent, raw (body sent as is), contentType.
export async function call(td, method, urlPath, body, opts = {}) {
  const headers = { ...(opts.headers ?? {}) };
  if (opts.token !== undefined) headers.authorization = `Bearer ${opts.token}`;
  let payload;
  if (opts.raw !== undefined) payload = opts.raw;
  else if (body !== undefined) payload = JSON.stringify(body);
  if (payload !== undefined && headers['content-type'] === undefined) headers['content-type'] = opts.contentType ?? 'application/json';
  return request(`${td.url}${urlPath}`, { method, headers, body: payload, agent: opts.agent, timeoutMs: opts.timeoutMs });
}

export const me = (td, token, opts = {}) => call(td, 'GET', '/v1/auth/me', undefined, { ...opts, token });

// POST /v1/auth/login; returns the raw response.
export function loginRaw(td, email, password, extra = {}, opts = {}) {
  return call(td, 'POST', '/v1/auth/login', { email, password, ...extra }, opts);
}

// Logs in and asserts 200; returns the token response body.
export async function login(td, who, extra = {}) {
  const res = await loginRaw(td, who.email, who.password, extra);
  assert.equal(res.status, 200, `login of ${who.email}: ${res.body}`);
  return res.json;
}

export const loginAs = (td, role, tenant = 'acme') => login(td, FIXTURE[tenant][role]);

// A fresh sign-up request body.
export function signupBody(tag = 'u') {
  const id = uniq();
  return {
    email: `${tag}-${id}@auth-tests.example`,
    password: `pw-${id}-${uniq()}`,
    tenant: { slug: `t-${tag}-${id}`, name: `Auth test ${tag} ${id}` },
  };
}

// POST /v1/auth/signup from a random loopback address (or opts.ip); returns the raw response.
export function signupRaw(td, body, { ip, raw, contentType } = {}) {
  return call(td, 'POST', '/v1/auth/signup', body, { agent: agentFrom(ip ?? randomLoopback()), raw, contentType });
}

// Signs up a fresh user + tenant; asserts 201; returns {body (what was sent), res (token response)}.
export async function freshAccount(td, tag = 'u') {
  const body = signupBody(tag);
  const res = await signupRaw(td, body);
  assert.equal(res.status, 201, `signup: ${res.body}`);
  return { ...body, res: res.json, who: { email: body.email, password: body.password } };
}

// A problem+json response of `status` whose request_id is the x-request-id header.
export function assertProblem(res, status, what = '') {
  assert.equal(res.status, status, `${what} status; body: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json\b/, `${what} content-type`);
  assert.ok(res.json, `${what} the body is JSON: ${res.body}`);
  for (const member of PROBLEM_MEMBERS) assert.ok(Object.hasOwn(res.json, member), `${what} problem member ${member}: ${res.body}`);
  assert.equal(res.json.status, status, `${what} problem status`);
  assert.equal(res.json.request_id, res.headers['x-request-id'], `${what} request_id is the x-request-id header`);
}

// A 401 problem with a Bearer challenge.
export function assert401(res, what = '') {
  assertProblem(res, 401, what);
  assert.match(String(res.headers['www-authenticate'] ?? ''), /^Bearer\b/, `${what} www-authenticate: Bearer`);
}

// The full token response shape of CONTRACT.md §4.
export function assertTokenResponse(body, { email, slug, roles } = {}) {
  assert.equal(typeof body.access_token, 'string', 'access_token');
  assert.equal(body.access_token.split('.').length, 3, 'access_token is a JWS compact token');
  assert.equal(body.token_type, 'Bearer');
  assert.equal(body.expires_in, ACCESS_TTL_S);
  assert.equal(typeof body.refresh_token, 'string', 'refresh_token');
  assert.ok(body.refresh_token.length >= 32, 'refresh_token is long enough');
  assert.equal(typeof body.user?.id, 'string');
  assert.equal(typeof body.user?.email, 'string');
  assert.equal(typeof body.tenant?.id, 'string');
  assert.equal(typeof body.tenant?.slug, 'string');
  assert.equal(typeof body.tenant?.name, 'string');
  assert.ok(Array.isArray(body.roles), 'roles is an array');
  if (email !== undefined) assert.equal(body.user.email, email);
  if (slug !== undefined) assert.equal(body.tenant.slug, slug);
  if (roles !== undefined) assert.deepEqual(body.roles, roles);
}

// ------------------------------------------------------------------------------------------------
// JWTs
// ------------------------------------------------------------------------------------------------

export const b64url = (buf) => Buffer.from(buf).toString('base64url');
export const b64json = (obj) => b64url(JSON.stringify(obj));

export function decodeJwt(token) {
  const [h, p] = token.split('.');
  return { header: JSON.parse(Buffer.from(h, 'base64url')), payload: JSON.parse(Buffer.from(p, 'base64url')) };
}

// header.payload signed by sign(bytes) → signature bytes.
export function jwt(header, payload, sign) {
  const input = `${typeof header === 'string' ? header : b64json(header)}.${typeof payload === 'string' ? payload : b64json(payload)}`;
  const sig = sign ? b64url(sign(Buffer.from(input))) : '';
  return `${input}.${sig}`;
}

export const es256Signer = (privateKey) => (data) => crypto.sign('sha256', data, { key: privateKey, dsaEncoding: 'ieee-p1363' });
export const hs256Signer = (secret) => (data) => crypto.createHmac('sha256', secret).update(data).digest();

// The private keys of the dev key set (TENANTD_JWT_KEYS): [{kid, alg, jwk, privateKey}].
export function signingKeys() {
  const file = requireEnv('TENANTD_JWT_KEYS');
  const set = JSON.parse(fs.readFileSync(file, 'utf8'));
  return set.keys.filter((k) => k.kty === 'EC' && k.d).map((jwk) => ({
    kid: jwk.kid,
    alg: jwk.alg,
    jwk,
    privateKey: crypto.createPrivateKey({ key: jwk, format: 'jwk' }),
  }));
}

// GET /.well-known/jwks.json → the parsed set.
export async function fetchJwks(td) {
  const res = await request(`${td.url}/.well-known/jwks.json`);
  assert.equal(res.status, 200, res.body);
  return JSON.parse(res.body);
}

// ------------------------------------------------------------------------------------------------
// Policies
// ------------------------------------------------------------------------------------------------

// The default roles file (TENANTD_POLICIES/roles.json).
export function defaultPolicy() {
  const dir = process.env.TENANTD_POLICIES || path.join(requireEnv('TENANTD_ROOT'), 'policies');
  return JSON.parse(fs.readFileSync(path.join(dir, 'roles.json'), 'utf8'));
}

// Every permission a default role holds, its inherited ones included.
export function expandRole(policy, role, seen = new Set()) {
  if (seen.has(role)) return new Set();
  seen.add(role);
  const r = policy.roles[role];
  assert.ok(r, `role ${role} exists in the policy`);
  const out = new Set(r.permissions ?? []);
  for (const parent of r.inherits ?? []) for (const p of expandRole(policy, parent, seen)) out.add(p);
  return out;
}

// True when one of the grants ("res:act" or "res:act:own", `*` wildcards) covers `permission`
// ("res:act"). A `*` resource never matches an admin resource (policies/roles.json).
export function grantsCover(grants, permission, adminResources) {
  const [res, act] = permission.split(':');
  return grants.some((g) => {
    const [gres, gact] = g.split(':');
    const resOk = gres === '*' ? !adminResources.includes(res) : gres === res;
    return resOk && (gact === '*' || gact === act);
  });
}

// ------------------------------------------------------------------------------------------------
// Redis (the stack's REDIS_URL)
// ------------------------------------------------------------------------------------------------

// One command against REDIS_URL's server (db 0, no password); resolves the first reply line.
export function redis(args) {
  const url = new URL(requireEnv('REDIS_URL'));
  return redisCommand(Number(url.port || 6379), args);
}
