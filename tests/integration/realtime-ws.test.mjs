// realtime-ws.test.mjs — tenantd's own WebSocket layer under Socket.IO (server/realtime/ws.c).
// An idle connection gives its input buffer and its write queues back, so these check that large
// and fragmented messages still work, in both directions, after a connection idled; that
// WebSocket pings are answered with the same payload; that a client's close frame is answered
// with its code; that one event published to a room reaches every member intact (the members
// share one encoded frame); and that a client which never reads again loses its TCP connection
// once the server gave up on it (the closing handshake is bounded: h2o has no write timeout).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { after, before, describe, test } from 'node:test';

import { sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { freshAccount, loginAs, redis } from '../lib/auth.mjs';
import { emitOk, marker, rawConnected } from '../lib/realtime.mjs';

let A;
let admin;
let stuck; // owner of a fresh tenant: the 300 KB events of the last test fill its stream, not acme's

before(async () => {
  A = await startTenantd();
  await A.waitReady();
  admin = await loginAs(A, 'admin');
  stuck = (await freshAccount(A, 'rtws')).res;
});

after(async () => {
  if (stuck) await redis(['DEL', `t:${stuck.tenant.id}:events`]).catch(() => {});
});

// The state of tenantd's side of the TCP connection to the client port (from /proc/net/tcp):
// '01' established, '04' FIN-WAIT-1 (closed by tenantd, data still unsent), …; null when gone.
function serverSideState(serverPort, clientPort) {
  const hex = (p) => p.toString(16).toUpperCase().padStart(4, '0');
  for (const line of fs.readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length > 3 && f[1].endsWith(`:${hex(serverPort)}`) && f[2].endsWith(`:${hex(clientPort)}`)) return f[3];
  }
  return null;
}

// Sends a Socket.IO event with ack id `id` on a raw socket and waits for its ack; resolves the ack's value.
async function rawAck(raw, id, args, { send = (t) => raw.send(t) } = {}) {
  send(`42${id}${JSON.stringify(args)}`);
  let found;
  await waitFor(() => {
    found = raw.messages.find((m) => typeof m === 'string' && m.startsWith(`43${id}[`));
    return found !== undefined;
  }, { timeoutMs: 5000, intervalMs: 10, message: `the ack ${id} of ${args[0]}` });
  return JSON.parse(found.slice(2 + String(id).length))[0];
}

// The payloads of the events named `name` a raw socket received.
function rawEvents(raw, name) {
  return raw.messages
    .filter((m) => typeof m === 'string' && m.startsWith('42['))
    .map((m) => JSON.parse(m.slice(2)))
    .filter((a) => a[0] === name)
    .map((a) => a[1]);
}

describe('WebSocket layer', () => {
  test('after idling, a 600 KB event goes in and comes out intact, and small ones still work', async () => {
    const room = `ws-big-${marker()}`;
    const pub = await rawConnected(A, admin.access_token);
    const sub = await rawConnected(A, admin.access_token);
    assert.equal((await rawAck(pub, 1, ['join', room])).ok, true);
    assert.equal((await rawAck(sub, 1, ['join', room])).ok, true);
    await sleep(1500); // idle: both connections hand their buffers back
    const big = 'b'.repeat(600 * 1024);
    const res = await rawAck(pub, 2, ['publish', { room, event: 'big', data: { big } }]);
    assert.equal(res.ok, true, JSON.stringify(res));
    await waitFor(() => rawEvents(sub, 'big').length === 1, { timeoutMs: 5000, intervalMs: 10, message: 'the big event on sub' });
    assert.equal(rawEvents(sub, 'big')[0].data.big, big, 'the 600 KB event arrived intact');
    await sleep(1500);
    for (let i = 0; i < 3; i++) {
      assert.equal((await rawAck(pub, 10 + i, ['publish', { room, event: 'small', data: { i } }])).ok, true);
    }
    await waitFor(() => rawEvents(sub, 'small').length === 3, { timeoutMs: 5000, intervalMs: 10, message: 'three small events on sub' });
    assert.deepEqual(rawEvents(sub, 'small').map((e) => e.data.i), [0, 1, 2]);
    pub.ws.close();
    sub.ws.close();
  });

  test('a message in fragments, with a ping between them, is one message; the ping is answered', async () => {
    const raw = await rawConnected(A, admin.access_token);
    await sleep(300);
    const room = `ws-frag-${marker()}`;
    const text = `42${7}${JSON.stringify(['join', room])}`;
    const pongs = [];
    raw.ws.on('pong', (data) => pongs.push(data.toString()));
    const third = Math.floor(text.length / 3);
    raw.ws.send(text.slice(0, third), { fin: false });
    raw.ws.ping('between');
    raw.ws.send(text.slice(third, 2 * third), { fin: false });
    await sleep(50); // the last fragment in a later read
    raw.ws.send(text.slice(2 * third), { fin: true });
    await waitFor(() => raw.messages.some((m) => typeof m === 'string' && m.startsWith('437[')), {
      timeoutMs: 5000, intervalMs: 10, message: 'the ack of the fragmented join',
    });
    assert.equal(JSON.parse(raw.messages.find((m) => m.startsWith('437[')).slice(3))[0].ok, true);
    await waitFor(() => pongs.length === 1, { timeoutMs: 3000, intervalMs: 10, message: 'a pong' });
    assert.deepEqual(pongs, ['between']);
    raw.ws.close();
  });

  test("a client's close frame is answered with its code; the server goes on", async () => {
    const raw = await rawConnected(A, admin.access_token);
    raw.ws.close(4001, 'bye');
    const closed = await raw.closed;
    assert.equal(closed.code, 4001);
    const again = await rawConnected(A, admin.access_token);
    assert.equal((await rawAck(again, 1, ['join', `ws-after-${marker()}`])).ok, true);
    again.ws.close();
  });

  test('one event published to a room reaches every member intact', async () => {
    const room = `ws-fan-${marker()}`;
    const members = await Promise.all(Array.from({ length: 20 }, () => rawConnected(A, admin.access_token)));
    for (const m of members) assert.equal((await rawAck(m, 1, ['join', room])).ok, true);
    const pub = members[0];
    for (let i = 0; i < 5; i++) {
      assert.equal((await rawAck(pub, 2 + i, ['publish', { room, event: 'fan', data: { i, pad: 'p'.repeat(i * 40000) } }])).ok, true);
    }
    await waitFor(() => members.every((m) => rawEvents(m, 'fan').length === 5), {
      timeoutMs: 5000, intervalMs: 10, message: 'five events on each of the 20 members',
    });
    for (const m of members) {
      assert.deepEqual(rawEvents(m, 'fan').map((e) => [e.data.i, e.data.pad.length, e.room]), [0, 1, 2, 3, 4].map((i) => [i, i * 40000, room]));
    }
    for (const m of members) m.ws.close();
  });

  test('a client that never reads again is cut off: its TCP connection ends within seconds of the server giving up', { timeout: 60000 }, async (t) => {
    const raw = await rawConnected(A, stuck.access_token);
    const clientPort = raw.ws._socket.localPort;
    assert.equal(serverSideState(A.port, clientPort), '01', 'established at first');
    raw.ws._socket.pause(); // and never resumed
    const pad = 's'.repeat(300 * 1024);
    for (let i = 0; i < 40; i++) await emitOk(A, stuck.access_token, `user:${stuck.user.id}`, 'stuck', { i, pad });
    // 12 MB for a 1 MB send queue: the session is closed as a slow reader, its close frame queued
    // behind data the client does not read; the closing handshake then has 5 s
    const t0 = Date.now();
    await waitFor(() => serverSideState(A.port, clientPort) !== '01', {
      timeoutMs: 15000, intervalMs: 100, message: "tenantd's side of the stuck connection to leave ESTABLISHED",
    });
    t.diagnostic(`tenantd closed its side after ${Date.now() - t0} ms (state now ${serverSideState(A.port, clientPort)})`);
    raw.ws.terminate();
    const again = await rawConnected(A, admin.access_token);
    assert.equal((await rawAck(again, 1, ['join', `ws-alive-${marker()}`])).ok, true);
    again.ws.close();
  });
});
