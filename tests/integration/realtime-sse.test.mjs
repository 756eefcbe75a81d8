// realtime-sse.test.mjs — GET /v1/events (Server-Sent Events, CONTRACT.md §8) with the npm
// eventsource client against two tenantd instances sharing Postgres and Redis: the response is
// text/event-stream; emits made on the other instance and data API changes arrive as `event:`
// name, `id:` seq, `data:` JSON; bad requests (no token → 401, no rooms or a bad name → 400,
// forbidden rooms → 403); Last-Event-ID recovery after a disconnect gets exactly the missed events
// of the followed rooms, in order, with no duplicates, then live ones — on the same instance, on the
// other one, and with ?last_event_id=; the replay honours own-row read grants; the same stream over
// HTTP/2; logout ends the stream within 5 s, an expired token within the 10 s heartbeat; a
// `: ping` comment within the 10 s heartbeat.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { h2connect, request, sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { call, decodeJwt, es256Signer, jwt, loginAs, signingKeys } from '../lib/auth.mjs';
import { emitOk, insertRow, marker, sse, userWithCustomRole, waitEvent } from '../lib/realtime.mjs';

let A;
let B;
let admin;
let member;
let viewer;
let rawPing; // a raw stream opened at the start, checked for the heartbeat at the end

// A raw HTTP/1.1 GET of the stream that records what arrives: {res, text(), close()}.
function rawStream(td, token, query) {
  return new Promise((resolve, reject) => {
    const req = http.get(`${td.url}/v1/events?${query}`, { headers: { authorization: `Bearer ${token}` }, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => { text += c; });
      res.on('error', () => {});
      resolve({ res, text: () => text, openedAt: Date.now(), close: () => req.destroy() });
    });
    req.on('error', reject);
  });
}

before(async () => {
  [A, B] = await Promise.all([startTenantd(), startTenantd()]);
  await Promise.all([A.waitReady(), B.waitReady()]);
  [admin, member, viewer] = await Promise.all(['admin', 'member', 'viewer'].map((r) => loginAs(A, r)));
  rawPing = await rawStream(B, viewer.access_token, 'rooms=tenant');
});

after(() => rawPing?.close());

const notices = (client, tag) => client.events.filter((e) => e.name === 'notice' && e.payload?.data?.tag === tag);

describe('SSE stream', () => {
  test('text/event-stream; emits from the other instance and data changes arrive with id = seq', async () => {
    assert.equal(rawPing.res.statusCode, 200);
    assert.match(String(rawPing.res.headers['content-type']), /^text\/event-stream/);

    const room = `sse-${marker()}`;
    const s = await sse(B, member.access_token, `rooms=tenant,table:orders,${room}`, { names: ['notice', 'change'] });
    // the subscription may trail the open: emit until one arrives
    await waitFor(async () => {
      await emitOk(A, admin.access_token, room, 'notice', { tag: 'warm' });
      await sleep(100);
      return notices(s, 'warm').length > 0;
    }, { timeoutMs: 5000, intervalMs: 10, message: 'the first SSE event' });
    const tag = marker();
    const seq = await emitOk(A, admin.access_token, 'tenant', 'notice', { tag, n: 1 });
    const got = await waitFor(() => notices(s, tag)[0], { timeoutMs: 5000, message: 'the notice over SSE' });
    assert.equal(got.id, String(seq), 'id: is the seq');
    assert.deepEqual(got.payload, { room: 'tenant', data: { tag, n: 1 }, from: admin.user.id, seq });

    const row = await insertRow(A, member.access_token, 'orders', { title: `sse ${tag}` });
    const change = await waitEvent(s, 'change', (p) => p.id === row.id);
    assert.equal(change.op, 'INSERT');
    assert.equal(change.table, 'orders');
    assert.equal(change.record.title, `sse ${tag}`);
    const ev = s.events.find((e) => e.name === 'change' && e.payload.id === row.id);
    assert.equal(ev.id, String(change.seq));
    s.close();
  });

  test('bad requests: no token 401, no rooms 400, bad room name 400, forbidden rooms 403', async () => {
    const noAuth = await request(`${A.url}/v1/events?rooms=tenant`);
    assert.equal(noAuth.status, 401, noAuth.body);
    const get = (q, token) => call(A, 'GET', `/v1/events${q}`, undefined, { token, timeoutMs: 3000 });
    assert.equal((await get('', member.access_token)).status, 400);
    assert.equal((await get('?rooms=', member.access_token)).status, 400);
    assert.equal((await get('?rooms=a%20b', member.access_token)).status, 400);
    assert.equal((await get('?rooms=..%2Ftenant', member.access_token)).status, 400);
    assert.equal((await get(`?rooms=${'x'.repeat(65)}`, member.access_token)).status, 400);
    assert.equal((await get('?rooms=custom', viewer.access_token)).status, 403, 'viewer follows a custom room');
    assert.equal((await get(`?rooms=tenant,user:${admin.user.id}`, member.access_token)).status, 403, "another user's room");
    assert.equal((await get('?rooms=role:admin', member.access_token)).status, 403, 'a role not held');
  });
});

describe('Last-Event-ID recovery', () => {
  // Opens a stream, gets `before` notices, closes, emits `missed` while away (plus noise: another
  // room, another tenant), reconnects with the last id via `how` to `back`, and checks the replay.
  async function recovery(first, back, how) {
    const room = `rec-${marker()}`;
    const other = `other-${marker()}`;
    const tag = marker('rec');
    const s1 = await sse(first, member.access_token, `rooms=${room}`, { names: ['notice'] });
    await waitFor(async () => {
      await emitOk(A, admin.access_token, room, 'notice', { tag: `warm-${tag}` });
      await sleep(100);
      return notices(s1, `warm-${tag}`).length > 0;
    }, { timeoutMs: 5000, intervalMs: 10, message: 'the first SSE event' });
    const seen = [];
    for (let i = 0; i < 3; i++) seen.push(await emitOk(A, admin.access_token, room, 'notice', { tag, i }));
    await waitFor(() => notices(s1, tag).length === 3, { timeoutMs: 5000, message: 'three live notices' });
    const lastId = notices(s1, tag).at(-1).id;
    assert.equal(lastId, String(seen[2]));
    s1.close();
    await sleep(100);

    const missed = [];
    for (let i = 3; i < 8; i++) {
      missed.push(await emitOk(i % 2 ? A : B, admin.access_token, room, 'notice', { tag, i }));
      await emitOk(A, admin.access_token, other, 'notice', { tag, i, other: true });
    }
    const globex = await loginAs(A, 'admin', 'globex');
    await emitOk(A, globex.access_token, room, 'notice', { tag, globex: true });

    const query = how === 'query' ? `rooms=${room}&last_event_id=${lastId}` : `rooms=${room}`;
    const headers = how === 'header' ? { 'Last-Event-ID': lastId } : {};
    const s2 = await sse(back, member.access_token, query, { names: ['notice'], headers });
    await waitFor(() => notices(s2, tag).length >= 5, { timeoutMs: 5000, message: 'the replayed notices' });
    const live = await emitOk(B, admin.access_token, room, 'notice', { tag, i: 8 });
    await waitFor(() => notices(s2, tag).some((e) => e.payload.data.i === 8), { timeoutMs: 5000, message: 'a live notice after the replay' });
    await sleep(200);
    const got = notices(s2, tag);
    assert.deepEqual(got.map((e) => e.payload.data.i), [3, 4, 5, 6, 7, 8], 'exactly the missed notices, in order, then the live one');
    assert.deepEqual(got.map((e) => e.id), [...missed, live].map(String), 'ids are the seqs');
    assert.ok(got.every((e) => e.payload.room === room && !e.payload.data.other && !e.payload.data.globex));
    s2.close();
  }

  test('reconnecting to the same instance with the Last-Event-ID header', () => recovery(A, A, 'header'));
  test('reconnecting to the other instance with the Last-Event-ID header', () => recovery(A, B, 'header'));
  test('reconnecting to the other instance with ?last_event_id=', () => recovery(B, A, 'query'));

  test('the replay honours own-row read grants', async () => {
    const own = await userWithCustomRole(A, admin.access_token, ['orders:read:own', 'orders:create'], 'sseown');
    const token = own.tokens.access_token;
    const s1 = await sse(A, token, 'rooms=table:orders', { names: ['change'] });
    let warm;
    await waitFor(async () => {
      warm = await insertRow(A, token, 'orders', { title: 'warm' });
      await sleep(100);
      return s1.events.some((e) => e.payload?.id === warm.id);
    }, { timeoutMs: 5000, intervalMs: 10, message: 'a change over SSE' });
    const lastId = s1.events.at(-1).id;
    s1.close();
    await sleep(100);
    const theirs = await insertRow(A, admin.access_token, 'orders', { title: `theirs ${marker()}` });
    const mine = await insertRow(B, token, 'orders', { title: `mine ${marker()}` });
    const theirs2 = await insertRow(B, member.access_token, 'orders', { title: `theirs2 ${marker()}` });
    const s2 = await sse(B, token, 'rooms=table:orders', { names: ['change'], headers: { 'Last-Event-ID': lastId } });
    await waitEvent(s2, 'change', (p) => p.id === mine.id, { what: 'its own row, replayed' });
    const sentinel = await insertRow(A, token, 'orders', { title: 'sentinel' });
    await waitEvent(s2, 'change', (p) => p.id === sentinel.id, { what: 'a live own row' });
    const ids = s2.events.map((e) => e.payload.id);
    assert.ok(!ids.includes(theirs.id) && !ids.includes(theirs2.id), `the replay held rows the user may not read: ${JSON.stringify(s2.events)}`);
    assert.deepEqual(ids, [mine.id, sentinel.id]);
    s2.close();
  });
});

describe('other', () => {
  test('the same stream over HTTP/2 (h2c)', async () => {
    const session = await h2connect(B.url);
    const room = `h2-${marker()}`;
    const stream = session.request({ ':method': 'GET', ':path': `/v1/events?rooms=${room}`, authorization: `Bearer ${member.access_token}` });
    let text = '';
    let headers;
    stream.setEncoding('utf8');
    stream.on('response', (h) => { headers = h; });
    stream.on('data', (c) => { text += c; });
    stream.on('error', () => {});
    try {
      await waitFor(() => headers, { timeoutMs: 5000, message: 'HTTP/2 response headers' });
      assert.equal(headers[':status'], 200);
      assert.match(String(headers['content-type']), /^text\/event-stream/);
      const tag = marker();
      await waitFor(async () => {
        await emitOk(A, admin.access_token, room, 'h2note', { tag });
        await sleep(100);
        return text.includes(tag);
      }, { timeoutMs: 5000, intervalMs: 10, message: 'an event over HTTP/2' });
      assert.match(text, /id: \d+\nevent: h2note\ndata: \{.*\}\n\n/);
    } finally {
      stream.close();
      session.close();
    }
  });

  test('logout ends the stream within 5 s', async () => {
    const fresh = await loginAs(A, 'member');
    const raw = await rawStream(B, fresh.access_token, 'rooms=tenant');
    let ended = false;
    raw.res.on('end', () => { ended = true; });
    raw.res.on('close', () => { ended = true; });
    await sleep(200);
    const t0 = Date.now();
    const res = await call(A, 'POST', '/v1/auth/logout', {}, { token: fresh.access_token });
    assert.ok([200, 204].includes(res.status), res.body);
    await waitFor(() => ended, { timeoutMs: 5000, intervalMs: 50, message: 'the end of the revoked session\'s stream' });
    assert.ok(Date.now() - t0 <= 5000);
    raw.close();
  });

  test('a stream whose access token expires ends within the 10 s heartbeat', { timeout: 30000 }, async () => {
    const [key] = signingKeys();
    const { header, payload } = decodeJwt(member.access_token);
    const now = Math.floor(Date.now() / 1000);
    const token = jwt({ ...header, kid: key.kid }, { ...payload, iat: now, exp: now + 2 }, es256Signer(key.privateKey));
    const raw = await rawStream(A, token, 'rooms=tenant');
    assert.equal(raw.res.statusCode, 200);
    let endedAt = null;
    raw.res.on('end', () => { endedAt ??= Date.now(); });
    raw.res.on('close', () => { endedAt ??= Date.now(); });
    await waitFor(() => endedAt, { timeoutMs: 15000, intervalMs: 100, message: 'the end of a stream whose token expired' });
    const late = endedAt - (now + 2) * 1000;
    assert.ok(late <= 11000, `ended ${late} ms after the expiry`);
    raw.close();
  });

  test('a `: ping` comment arrives within the 10 s heartbeat', async () => {
    const waited = Date.now() - rawPing.openedAt;
    await waitFor(() => /(^|\n): ?ping\n/.test(rawPing.text()), {
      timeoutMs: Math.max(1000, 12000 - waited), intervalMs: 100, message: `a ping comment (got ${JSON.stringify(rawPing.text())})`,
    });
  });
});
