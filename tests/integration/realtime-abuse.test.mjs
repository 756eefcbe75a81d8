// realtime-abuse.test.mjs — hostile and broken realtime clients (issue 6 items 8–9) against two
// tenantd instances sharing Postgres and Redis: malformed Engine.IO / Socket.IO packets over a raw
// WebSocket (bad types, bad JSON, an event whose name is not a string, binary frames and binary
// attachments, a 2 MB frame, before and after CONNECT) close that connection while the server keeps
// serving; a 2 MB long-poll POST is refused; Engine.IO handshake errors; more than 100 client
// events per second (over WebSocket and in one long-polling POST) close the socket and the server
// survives; the 65th room is refused (429); a slow reader — a raw WebSocket or an SSE stream that
// stops reading, or a long-polling client that stops polling, while large events are emitted to
// it — is disconnected and the server stays up; on SIGTERM WebSocket clients get a going-away
// close (1001).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { request, sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { freshAccount, loginAs, redis } from '../lib/auth.mjs';
import {
  ack, assertAckError, closedWithin, connect, emitOk, emitUntilReceived, rawConnected, rawSocket,
} from '../lib/realtime.mjs';

let A;
let B;
let admin;
let member;
let slow; // owner of a fresh tenant: the slow-reader tests' 300 KB events fill its stream, not acme's

before(async () => {
  [A, B] = await Promise.all([startTenantd(), startTenantd()]);
  await Promise.all([A.waitReady(), B.waitReady()]);
  [admin, member] = await Promise.all(['admin', 'member'].map((r) => loginAs(A, r)));
  slow = (await freshAccount(A, 'rtslow')).res;
});

// the big events stay in the throwaway tenant's replay stream otherwise
after(async () => {
  if (slow) await redis(['DEL', `t:${slow.tenant.id}:events`]).catch(() => {});
});

function rssKb(td) {
  try {
    const m = /VmRSS:\s+(\d+)/.exec(fs.readFileSync(`/proc/${td.pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

// The server still serves: /healthz, and a fresh socket.io-client connects and gets an emit.
async function assertServing(td, what) {
  assert.ok(td.alive(), `tenantd exited after ${what}:\n${td.formatLogs(40)}`);
  assert.equal((await request(`${td.url}/healthz`)).status, 200, `healthz after ${what}`);
  const s = await connect(td, member.access_token, { transport: 'websocket' });
  await emitUntilReceived(td, admin.access_token, `user:${member.user.id}`, 'alive', s);
  s.close();
}

const MALFORMED = [
  ['4zzz', 'an unknown Socket.IO packet type'],
  ['42[', 'truncated JSON'],
  ['42["join"', 'an unterminated array'],
  ['42[1,"x"]', 'an event whose name is a number'],
  ['42[]', 'an event without a name'],
  ['42{"a":1}', 'an event that is an object'],
  ['42"join"', 'an event that is a string'],
  ['42["join","a"]trailing', 'trailing bytes after the JSON'],
  ['43', 'an ACK without an id'],
  ['4', 'an empty Socket.IO packet'],
  ['47', 'Socket.IO type 7'],
  ['45x-["x"]', 'a binary event with a bad attachment count'],
  ['451["x"]', 'a binary event without the dash'],
  ['42/nsp-without-comma', 'a namespace without a payload'],
  [`42${'9'.repeat(30)}["x"]`, 'an ack id of 30 digits'],
  ['9', 'an unknown Engine.IO packet type'],
  ['x', 'a non-numeric Engine.IO type'],
  ['\u0000', 'a NUL byte'],
];

describe('malformed packets over a raw WebSocket', () => {
  test('each malformed packet after CONNECT closes the connection; the server keeps serving', async () => {
    const notClosed = [];
    for (const [packet, what] of MALFORMED) {
      const raw = await rawConnected(A, member.access_token);
      raw.send(packet);
      const closed = await closedWithin(raw, 3000);
      if (!closed) notClosed.push(`${JSON.stringify(packet)} (${what})`);
      raw.ws.terminate();
    }
    await assertServing(A, 'the malformed packets');
    assert.deepEqual(notClosed, [], 'packets that did not close the connection');
  });

  test('malformed packets before CONNECT also close the connection', async () => {
    const notClosed = [];
    for (const [packet, what] of MALFORMED.slice(0, 8)) {
      const raw = await rawSocket(B);
      raw.send(packet);
      if (!(await closedWithin(raw, 3000))) notClosed.push(`${JSON.stringify(packet)} (${what})`);
      raw.ws.terminate();
    }
    await assertServing(B, 'the malformed packets before CONNECT');
    assert.deepEqual(notClosed, [], 'packets that did not close the connection');
  });

  test('a binary frame, invalid UTF-8 and a 2 MB frame close the connection', async () => {
    const cases = [
      ['binary frame', (raw) => raw.ws.send(Buffer.from([1, 2, 3]), { binary: true })],
      ['invalid UTF-8 text frame', (raw) => raw.ws._socket.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0x34, 0xff]))],
      ['2 MB text frame', (raw) => raw.send(`42["publish",{"room":"tenant","event":"big","data":"${'x'.repeat(2 * 1024 * 1024)}"}]`)],
    ];
    const notClosed = [];
    for (const [what, send] of cases) {
      const raw = await rawConnected(A, member.access_token);
      send(raw);
      const closed = await closedWithin(raw, 5000);
      if (!closed) notClosed.push(what);
      raw.ws.terminate();
    }
    await assertServing(A, 'binary and oversized frames');
    assert.deepEqual(notClosed, [], 'frames that did not close the connection');
  });

  test('a 2 MB long-polling POST is refused; the session and the server go on', async () => {
    const open = await request(`${B.url}/socket.io/?EIO=4&transport=polling`);
    assert.equal(open.status, 200, open.body);
    const { sid } = JSON.parse(open.body.slice(1));
    const big = await request(`${B.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, {
      method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body: `4${'x'.repeat(2 * 1024 * 1024)}`,
    }).catch((err) => ({ status: err.code }));
    assert.ok(big.status === 400 || big.status === 413 || big.status === 'ECONNRESET' || big.status === 'EPIPE', `2 MB POST: ${big.status}`);
    await assertServing(B, 'the 2 MB POST');
  });
});

describe('Engine.IO handshake errors', () => {
  test('wrong protocol version, unknown transport, unknown sid, POST handshake → 400 with the Engine.IO error code', async () => {
    const cases = [
      ['/socket.io/?EIO=3&transport=polling', 'GET', 5],
      ['/socket.io/?transport=polling', 'GET', 5],
      ['/socket.io/?EIO=4&transport=carrier-pigeon', 'GET', 0],
      ['/socket.io/?EIO=4&transport=polling&sid=nope', 'GET', 1],
      ['/socket.io/?EIO=4&transport=polling&sid=nope', 'POST', 1],
      ['/socket.io/?EIO=4&transport=polling', 'POST', 2],
    ];
    for (const [path, method, code] of cases) {
      const res = await request(`${A.url}${path}`, { method, body: method === 'POST' ? '40' : undefined });
      assert.equal(res.status, 400, `${method} ${path}: ${res.status} ${res.body}`);
      assert.equal(JSON.parse(res.body).code, code, `${method} ${path}: ${res.body}`);
    }
    await assertServing(A, 'handshake errors');
  });
});

describe('limits', () => {
  test('more than 100 client events in a second close the socket; the server keeps serving', async () => {
    // an instance of its own: a crash here must not take the other tests down with it
    const C = await startTenantd();
    await C.waitReady();
    // over long-polling: one POST carrying 300 packets
    {
      const base = `${C.url}/socket.io/?EIO=4&transport=polling`;
      const { sid } = JSON.parse((await request(base)).body.slice(1));
      const post = (body) => request(`${base}&sid=${sid}`, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body });
      assert.equal((await post(`40${JSON.stringify({ token: member.access_token })}`)).status, 200);
      assert.match((await request(`${base}&sid=${sid}`)).body, /^40\{/);
      await sleep(1100);
      const flood = Array.from({ length: 300 }, (_, i) => `42${i}["leave","not-joined-${i}"]`).join('\u001e');
      await post(flood).catch(() => null);
      await sleep(300);
      assert.ok(C.alive(), `tenantd died after a 300-packet POST; stderr:\n${C.stderrLines().slice(-5).join('\n')}`);
      const after = await request(`${base}&sid=${sid}`, { timeoutMs: 3000 }).catch((err) => ({ status: err.code, body: '' }));
      assert.ok(after.status === 400 || /(^|\u001e)1$/.test(after.body), `the flooding poller was not closed: ${after.status} ${after.body.slice(0, 200)}`);
    }
    for (const n of [110, 150, 300, 300, 1000]) {
      await sleep(1100);
      const raw = await rawConnected(C, member.access_token);
      for (let i = 0; i < n; i++) raw.send(`42${i}["leave","not-joined-${i}"]`);
      const closed = await closedWithin(raw, 3000);
      assert.ok(closed, `a socket sending ${n} events at once was not closed`);
      await sleep(300);
      assert.ok(C.alive(), `tenantd died after a burst of ${n} events on one WebSocket; stderr:\n${C.stderrLines().slice(-5).join("\n")}`);
      await assertServing(C, `a burst of ${n} events`);
    }
    await C.kill();
  });

  test('at most 64 rooms per connection: the 65th join → 429', async () => {
    const s = await connect(B, member.access_token, { transport: 'websocket' });
    await sleep(1100); // a fresh rate-limit second
    let refusedAt = null;
    // tenant, user:{id} and role:member are joined already
    for (let i = 0; i < 70 && refusedAt === null; i++) {
      const res = await ack(s, 'join', `many-${i}`);
      if (!res.ok) {
        assertAckError(res, 429, `join #${i}`);
        refusedAt = i;
      }
      if (i % 40 === 39) await sleep(1000);
    }
    assert.equal(refusedAt, 61, 'the 62nd custom room (65th in all) is refused');
    assert.ok(s.connected);
    s.close();
  });
});

describe('slow readers', () => {
  const BIG = 'y'.repeat(300 * 1024);
  const COUNT = 100; // 30 MB in all: far more than the 1 MB send queue and the socket buffers

  test('a WebSocket that stops reading while 30 MB of events are emitted to it is disconnected', { timeout: 60000 }, async (t) => {
    const raw = await rawConnected(A, slow.access_token);
    const rssBefore = rssKb(A);
    raw.ws._socket.pause();
    let received = 0;
    raw.ws.on('message', (d) => { if (String(d).includes('"slow"')) received++; });
    for (let i = 0; i < COUNT; i++) await emitOk(B, slow.access_token, `user:${slow.user.id}`, 'slow', { i, pad: BIG });
    await sleep(3000);
    const rssPeak = rssKb(A);
    raw.ws._socket.resume();
    const closed = await closedWithin(raw, 15000);
    t.diagnostic(`slow WebSocket reader: ${received}/${COUNT} events received, closed: ${JSON.stringify(closed)}, RSS ${rssBefore} → ${rssPeak} kB`);
    assert.ok(closed, `the slow reader was not disconnected: it got ${received}/${COUNT} events of 300 KB (RSS ${rssBefore} → ${rssPeak} kB)`);
    assert.ok(received < COUNT, `the slow reader got all ${COUNT} events: nothing was bounded`);
    await assertServing(A, 'the slow WebSocket reader');
  });

  test('an SSE client that stops reading while 30 MB of events are emitted to it is cut off', { timeout: 60000 }, async (t) => {
    const http = await import('node:http');
    const room = `slow-sse-${Math.random().toString(36).slice(2, 8)}`;
    let bytes = 0;
    let ended = false;
    const { req, res } = await new Promise((resolve, reject) => {
      const r = http.get(`${A.url}/v1/events?rooms=${room}`, { headers: { authorization: `Bearer ${slow.access_token}` }, agent: false },
        (response) => resolve({ req: r, res: response }));
      r.on('error', reject);
    });
    assert.equal(res.statusCode, 200);
    res.on('data', (c) => { bytes += c.length; });
    res.on('end', () => { ended = true; });
    res.on('close', () => { ended = true; });
    res.on('error', () => { ended = true; });
    // the subscription first, then stop reading
    await waitFor(async () => {
      await emitOk(B, slow.access_token, room, 'warm', 1);
      await sleep(100);
      return bytes > 20;
    }, { timeoutMs: 5000, intervalMs: 10, message: 'the first SSE event' });
    res.pause();
    req.socket.pause();
    const rssBefore = rssKb(A);
    for (let i = 0; i < COUNT; i++) await emitOk(B, slow.access_token, room, 'slow', { i, pad: BIG });
    await sleep(3000);
    const rssPeak = rssKb(A);
    const pausedBytes = bytes;
    req.socket.resume();
    res.resume();
    await waitFor(() => ended, { timeoutMs: 15000, intervalMs: 100, message: `the end of the slow SSE stream (got ${bytes} bytes)` }).catch((err) => {
      req.destroy();
      throw new Error(`${err.message}; RSS ${rssBefore} → ${rssPeak} kB`);
    });
    t.diagnostic(`slow SSE reader: ${pausedBytes} bytes while paused, ${bytes} in all; RSS ${rssBefore} → ${rssPeak} kB`);
    assert.ok(bytes < COUNT * BIG.length, `the slow SSE reader got all ${COUNT} events`);
    await assertServing(A, 'the slow SSE reader');
  });

  test('a long-polling client that stops polling while events pile up is disconnected', async () => {
    const base = `${B.url}/socket.io/?EIO=4&transport=polling`;
    const open = await request(base);
    const { sid } = JSON.parse(open.body.slice(1));
    const post = (body) => request(`${base}&sid=${sid}`, { method: 'POST', headers: { 'content-type': 'text/plain;charset=UTF-8' }, body });
    assert.equal((await post(`40${JSON.stringify({ token: slow.access_token })}`)).status, 200);
    const first = await request(`${base}&sid=${sid}`);
    assert.match(first.body, /^40\{/, `CONNECT answer: ${first.body.slice(0, 200)}`);
    // stop polling; 10 × 300 KB go to the user
    for (let i = 0; i < 10; i++) await emitOk(A, slow.access_token, `user:${slow.user.id}`, 'slow', { i, pad: BIG });
    await sleep(1500);
    const after = await request(`${base}&sid=${sid}`, { timeoutMs: 5000 }).catch((err) => ({ status: err.code, body: '' }));
    // disconnected: the sid is unknown (400) or the poll answers a close packet ("1")
    const cut = after.status === 400 || after.body === '1' || after.body.endsWith('\u001e1');
    assert.ok(cut, `the idle poller was not disconnected: ${after.status} with ${after.body?.length} bytes`);
    await assertServing(B, 'the idle poller');
  });
});

describe('shutdown', () => {
  test('on SIGTERM WebSocket clients get a going-away close (1001)', async () => {
    const raw = await rawConnected(B, member.access_token);
    const s = await connect(B, member.access_token, { transport: 'websocket' });
    let reason = null;
    s.on('disconnect', (r) => { reason = r; });
    const stopping = B.stop('SIGTERM');
    const closed = await closedWithin(raw, 10000);
    assert.ok(closed, 'no close frame on SIGTERM');
    assert.equal(closed.code, 1001, `close code: ${JSON.stringify(closed)}`);
    await waitFor(() => reason !== null, { timeoutMs: 10000, message: 'the socket.io-client disconnect' });
    assert.equal(await stopping, 0, 'exit status after SIGTERM');
    await assertServing(A, "B's shutdown");
  });
});
