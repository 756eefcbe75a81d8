// realtime-sio.test.mjs — the Socket.IO server of CONTRACT.md §8 with the real socket.io-client
// against two tenantd instances (A and B) sharing Postgres and Redis: connecting over every
// transport (polling with the upgrade to WebSocket, WebSocket only, polling only) on both
// instances; the session cookie only from an allowed Origin; CONNECT without or with a bad token
// and to an unknown namespace → connect_error; cross-instance delivery of POST /v1/realtime/emit
// (tenant, role, user and custom rooms; also with an API key), of client publish (reserved
// Socket.IO event names refused, binary attachments) and of data API change events
// (INSERT/UPDATE/DELETE, one per row of bulk writes); events right after a join ack; ack errors
// of join/publish/leave (403 forbidden rooms, 400 bad names); leave stops delivery;
// connection-state recovery after a reconnect (also on the other instance; never with another
// user's pid); a long-polling sid is per instance; expired
// tokens and unanswered pings close the socket; a logged-out session's sockets close within 5 s
// on both instances.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { call, decodeJwt, es256Signer, jwt, loginAs, signingKeys } from '../lib/auth.mjs';
import {
  ack, assertAckError, assertAckOk, closedWithin, connect, connectError, rawConnected, deleteRow, emitOk, emitUntilReceived, eventsOf,
  insertRow, join, marker, updateRow, waitEvent,
} from '../lib/realtime.mjs';

const APP_ORIGIN = 'https://app.realtime-tests.example';
const ENV = { TENANTD_EIO_PING_INTERVAL_MS: 1000, TENANTD_EIO_PING_TIMEOUT_MS: 2000, TENANTD_CORS_ORIGINS: APP_ORIGIN };
let A;
let B;
let owner;
let admin;
let member;
let viewer;

before(async () => {
  [A, B] = await Promise.all([startTenantd(ENV), startTenantd(ENV)]);
  await Promise.all([A.waitReady(), B.waitReady()]);
  [owner, admin, member, viewer] = await Promise.all(['owner', 'admin', 'member', 'viewer'].map((r) => loginAs(A, r)));
});

describe('connecting', () => {
  for (const transport of ['default', 'websocket', 'polling']) {
    test(`socket.io-client (${transport}) connects on both instances and gets an emit made on the other`, async () => {
      for (const [here, there] of [[A, B], [B, A]]) {
        const s = await connect(here, member.access_token, { transport });
        assert.ok(s.connected);
        if (transport === 'default') {
          await waitFor(() => s.io.engine.transport.name === 'websocket', { timeoutMs: 5000, message: 'the upgrade to WebSocket' });
        } else {
          assert.equal(s.io.engine.transport.name, transport);
        }
        const got = await emitUntilReceived(there, admin.access_token, `user:${member.user.id}`, 'hello', s);
        assert.equal(got.room, `user:${member.user.id}`);
        assert.equal(got.from, admin.user.id);
        assert.equal(typeof got.seq, 'number');
        // a second one arrives without retries, still over the same transport
        const tag = marker();
        await emitOk(there, admin.access_token, `user:${member.user.id}`, 'hello2', { tag });
        const second = await waitEvent(s, 'hello2', (p) => p.data?.tag === tag);
        assert.deepEqual(second.data, { tag });
        assert.ok(second.seq > got.seq, 'seq grows');
        if (transport === 'polling') assert.equal(s.io.engine.transport.name, 'polling');
        s.close();
      }
    });
  }

  test('CONNECT without a token, with a bad token, or to an unknown namespace: connect_error with a message', async () => {
    for (const transport of ['websocket', 'polling']) {
      const none = await connectError(A, undefined, { transport });
      assert.match(none.message, /auth/i, `no token (${transport})`);
      const bad = await connectError(A, 'not-a-token', { transport });
      assert.match(bad.message, /token/i, `bad token (${transport})`);
      const forged = member.access_token.slice(0, -4) + (member.access_token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
      const err = await connectError(B, forged, { transport });
      assert.ok(err.message.length > 0, 'forged signature refused with a message');
    }
    // an unknown namespace is refused with a CONNECT_ERROR
    const { io } = await import('socket.io-client');
    const s = io(`${A.url}/nope`, { auth: { token: member.access_token }, reconnection: false, transports: ['websocket'], forceNew: true });
    const err = await new Promise((resolve, reject) => {
      s.once('connect', () => reject(new Error('connected to an unknown namespace')));
      s.once('connect_error', resolve);
      setTimeout(() => reject(new Error('no connect_error for an unknown namespace')), 5000);
    }).finally(() => s.close());
    assert.match(err.message, /namespace/i);
  });
  test('the session cookie authenticates a socket only from an allowed Origin', async () => {
    const res = await call(A, 'POST', '/v1/auth/login', { email: 'member@acme.test', password: 'acme-member-pass', cookie: true });
    assert.equal(res.status, 200, res.body);
    const jar = (res.headers['set-cookie'] ?? []).map((c) => c.split(';')[0]).join('; ');
    assert.match(jar, /__Host-access=/);
    for (const transport of ['websocket', 'polling']) {
      const ok = await connect(B, undefined, { transport, extraHeaders: { cookie: jar, origin: APP_ORIGIN } });
      await emitUntilReceived(A, admin.access_token, `user:${member.user.id}`, 'cookie-hello', ok);
      ok.close();
      const evil = await connectError(B, undefined, { transport, extraHeaders: { cookie: jar, origin: 'https://evil.example' } });
      assert.ok(evil.message.length > 0, `cookie from a foreign Origin (${transport})`);
      const noOrigin = await connectError(B, undefined, { transport, extraHeaders: { cookie: jar } });
      assert.ok(noOrigin.message.length > 0, `cookie without an Origin (${transport})`);
    }
  });
});

describe('cross-instance delivery', () => {
  test('emit on A to tenant, role, user and a custom room reaches sockets on B (and on A)', async () => {
    const onB = await connect(B, member.access_token, { transport: 'websocket' });
    const onA = await connect(A, member.access_token, { transport: 'default' });
    const room = `room-${marker('c')}`;
    await join(onB, room);
    await join(onA, room);
    // the first event of a room may race the new Redis subscription: make sure it is in place
    await emitUntilReceived(A, admin.access_token, room, 'warm', onB);
    await emitUntilReceived(A, admin.access_token, room, 'warm', onA);
    for (const to of ['tenant', 'role:member', `user:${member.user.id}`, room]) {
      const tag = marker();
      const seq = await emitOk(A, admin.access_token, to, 'notice', { tag, to });
      for (const s of [onB, onA]) {
        const got = await waitEvent(s, 'notice', (p) => p.data?.tag === tag, { what: `notice to ${to}` });
        assert.deepEqual(got, { room: to, data: { tag, to }, from: admin.user.id, seq });
      }
    }
    // role:admin is not the member's
    const tag = marker();
    await emitOk(A, admin.access_token, 'role:admin', 'notice', { tag });
    await emitOk(A, admin.access_token, `user:${member.user.id}`, 'sentinel', { tag });
    await waitEvent(onB, 'sentinel', (p) => p.data?.tag === tag);
    await sleep(200);
    assert.equal(eventsOf(onB, 'notice', (p) => p.data?.tag === tag).length, 0, 'a member got an event of role:admin');
    onA.close();
    onB.close();
  });

  test('publish from a socket on A reaches the room on B with {room, data, from, seq}; the ack carries the seq', async () => {
    const pub = await connect(A, member.access_token, { transport: 'websocket' });
    const sub = await connect(B, admin.access_token, { transport: 'polling' });
    const room = `pub-${marker('p')}`;
    await join(sub, room);
    await join(pub, room);
    const warm = marker();
    await waitFor(async () => {
      await ack(pub, 'publish', { room, event: 'warm', data: { warm } });
      return eventsOf(sub, 'warm').length > 0;
    }, { timeoutMs: 5000, intervalMs: 200, message: 'the room subscription on B' });
    const data = { text: 'hi', n: [1, 2, 3], nested: { ok: true } };
    const res = assertAckOk(await ack(pub, 'publish', { room, event: 'chat.message', data }), 'publish');
    assert.equal(typeof res.seq, 'number', `publish ack seq: ${JSON.stringify(res)}`);
    const got = await waitEvent(sub, 'chat.message', (p) => p.seq === res.seq);
    assert.deepEqual(got, { room, data, from: member.user.id, seq: res.seq });
    // the publisher (a member of the room) gets it too
    await waitEvent(pub, 'chat.message', (p) => p.seq === res.seq);
    // publishing to a room one is not in but may join works like a join check; reserved event names are refused
    assertAckError(await ack(pub, 'publish', { room, event: 'change', data: {} }), 400, 'publish as change');
    assertAckError(await ack(pub, 'publish', { room, event: 'presence', data: {} }), 400, 'publish as presence');
    assertAckError(await ack(pub, 'publish', { room, event: 'bad name!', data: {} }), 400, 'publish with a bad event name');
    assertAckError(await ack(pub, 'publish', { room: 'bad room', event: 'x', data: {} }), 400, 'publish to a bad room name');
    pub.close();
    sub.close();
  });

  test("publish refuses Socket.IO's reserved event names, as emit does; bystanders stay connected", async () => {
    // An EVENT named "connect" is a parse error for socket.io-client (it disconnects), and
    // "disconnect"/"connect_error" land in the app's own handlers: one member must not be able to
    // send those to a room. A custom room keeps the blast radius inside this test.
    const problems = [];
    for (const event of ['connect', 'connect_error', 'disconnect', 'disconnecting', 'newListener', 'removeListener']) {
      const emitted = await call(A, 'POST', '/v1/realtime/emit', { to: 'tenant', event, data: {} }, { token: admin.access_token });
      assert.equal(emitted.status, 422, `emit ${event}: ${emitted.status}`);
      const room = `reserved-${marker()}`;
      const pub = await connect(A, member.access_token, { transport: 'websocket' });
      const bystander = await connect(B, admin.access_token, { transport: 'websocket' });
      await join(pub, room);
      await join(bystander, room);
      await emitUntilReceived(A, admin.access_token, room, 'warm', bystander);
      let res;
      try {
        res = await ack(pub, 'publish', { room, event, data: { spoofed: true } }, 2000);
      } catch (err) {
        res = `no ack: ${err.message}`;
      }
      await sleep(300);
      if (res?.ok !== false || res.error?.status !== 400) problems.push(`publish ${event} → ${JSON.stringify(res)}`);
      if (!bystander.connected) problems.push(`publish ${event} disconnected a bystander (${bystander.disconnectReason})`);
      pub.close();
      bystander.close();
    }
    assert.deepEqual(problems, [], 'reserved event names accepted by publish');
  });

  test('a data API write on A produces change events for a table:orders member on B (INSERT, UPDATE, DELETE)', async () => {
    const s = await connect(B, member.access_token, { transport: 'default' });
    assertAckOk(await ack(s, 'join', 'table:orders'), 'join table:orders');
    // wait for the subscription: writes until one shows up
    let warmRow;
    await waitFor(async () => {
      warmRow = await insertRow(A, admin.access_token, 'orders', { title: `warm ${marker()}` });
      await sleep(150);
      return eventsOf(s, 'change', (p) => p.id === warmRow.id).length > 0;
    }, { timeoutMs: 6000, intervalMs: 10, message: 'a change event on B' });

    const title = `rt ${marker()}`;
    const row = await insertRow(A, member.access_token, 'orders', { title });
    const ins = await waitEvent(s, 'change', (p) => p.id === row.id && p.op === 'INSERT');
    assert.equal(ins.table, 'orders');
    assert.equal(typeof ins.seq, 'number');
    assert.equal(ins.record.title, title);
    assert.equal(ins.record.owner_id, member.user.id);
    assert.equal(ins.record.id, row.id);

    const up = await updateRow(A, member.access_token, 'orders', row.id, { status: 'done' });
    assert.equal(up.status, 200, up.body);
    const upd = await waitEvent(s, 'change', (p) => p.id === row.id && p.op === 'UPDATE');
    assert.equal(upd.record.status, 'done');
    assert.ok(upd.seq > ins.seq);

    const del = await deleteRow(A, member.access_token, 'orders', row.id);
    assert.ok([200, 204].includes(del.status), del.body);
    const dl = await waitEvent(s, 'change', (p) => p.id === row.id && p.op === 'DELETE');
    assert.equal(dl.table, 'orders');
    assert.ok(dl.seq > upd.seq);
    await deleteRow(A, admin.access_token, 'orders', warmRow.id);
    s.close();
  });

  test('a bulk insert and a multi-row update produce one change event per row', async () => {
    const s = await connect(B, member.access_token, { transport: 'websocket' });
    assertAckOk(await ack(s, 'join', 'table:orders'), 'join table:orders');
    await waitFor(async () => {
      const warm = await insertRow(A, member.access_token, 'orders', { title: `warm ${marker()}` });
      await sleep(150);
      return eventsOf(s, 'change', (p) => p.id === warm.id).length > 0;
    }, { timeoutMs: 6000, intervalMs: 10, message: 'a change event on B' });
    const tag = `bulk${Math.random().toString(36).slice(2, 8)}`;
    const res = await call(A, 'POST', '/rest/v1/orders', [1, 2, 3].map((i) => ({ title: `${tag} ${i}` })), {
      token: member.access_token, headers: { prefer: 'return=representation' },
    });
    assert.equal(res.status, 201, res.body);
    const rows = JSON.parse(res.body);
    assert.equal(rows.length, 3);
    await waitFor(() => rows.every((r) => eventsOf(s, 'change', (p) => p.id === r.id && p.op === 'INSERT').length === 1), {
      timeoutMs: 5000, message: 'one INSERT per row',
    });
    const up = await call(A, 'PATCH', `/rest/v1/orders?title=like.${tag}*`, { status: 'in_progress' }, {
      token: member.access_token, headers: { prefer: 'return=representation' },
    });
    assert.equal(up.status, 200, up.body);
    assert.equal(JSON.parse(up.body).length, 3);
    await waitFor(() => rows.every((r) => eventsOf(s, 'change', (p) => p.id === r.id && p.op === 'UPDATE').length === 1), {
      timeoutMs: 5000, message: 'one UPDATE per row',
    });
    const seqs = eventsOf(s, 'change', (p) => rows.some((r) => r.id === p.id)).map((e) => e.payload.seq);
    assert.equal(new Set(seqs).size, 6, `distinct seqs: ${seqs}`);
    assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'delivered in seq order');
    for (const r of rows) await deleteRow(A, member.access_token, 'orders', r.id);
    s.close();
  });

  test('binary attachments: a published Buffer reaches a socket on B as binary (issue 6 item 1)', async () => {
    const pub = await connect(A, member.access_token, { transport: 'websocket' });
    const sub = await connect(B, admin.access_token, { transport: 'websocket' });
    const room = `bin-${marker()}`;
    await join(pub, room);
    await join(sub, room);
    await emitUntilReceived(A, admin.access_token, room, 'warm', sub);
    const blob = Buffer.from([0, 1, 2, 253, 254, 255]);
    let res;
    try {
      res = await ack(pub, 'publish', { room, event: 'blob', data: { name: 'x.bin', blob } }, 3000);
    } catch (err) {
      assert.fail(`publish with a Buffer: ${err.message}`);
    }
    assertAckOk(res, 'publish with a Buffer');
    const got = await waitEvent(sub, 'blob', () => true);
    assert.equal(got.data.name, 'x.bin');
    assert.ok(Buffer.isBuffer(got.data.blob) || got.data.blob instanceof ArrayBuffer, `blob arrived as ${JSON.stringify(got.data.blob)}`);
    assert.deepEqual([...new Uint8Array(got.data.blob)], [...blob]);
    pub.close();
    sub.close();
  });

  test('an API key with realtime:emit emits from A to a socket on B', async () => {
    const created = await call(A, 'POST', '/v1/admin/api-keys', { name: `rt-${marker()}`, roles: ['admin'] }, { token: admin.access_token });
    assert.equal(created.status, 201, created.body);
    const key = created.json.key;
    const s = await connect(B, member.access_token, { transport: 'polling' });
    const got = await emitUntilReceived(A, key, `user:${member.user.id}`, 'from-backend', s);
    assert.equal(got.room, `user:${member.user.id}`);
    const weak = await call(A, 'POST', '/v1/admin/api-keys', { name: `rt-${marker()}`, roles: ['member'] }, { token: admin.access_token });
    assert.equal(weak.status, 201, weak.body);
    const refused = await call(A, 'POST', '/v1/realtime/emit', { to: 'tenant', event: 'x', data: 1 }, { token: weak.json.key });
    assert.equal(refused.status, 403, `an API key without realtime:emit: ${refused.body}`);
    s.close();
  });

  test('an event emitted right after the join ack (room new on that instance) is delivered', async () => {
    // The ack of join means "you are in the room": an event published after it must arrive.
    const misses = [];
    for (let i = 0; i < 10; i++) {
      const s = await connect(B, member.access_token, { transport: 'websocket' });
      const room = `fresh-${marker(String(i))}`;
      await join(s, room);
      const tag = marker();
      await emitOk(A, admin.access_token, room, 'first', { tag });
      try {
        await waitEvent(s, 'first', (p) => p.data?.tag === tag, { timeoutMs: 2000 });
      } catch {
        misses.push(room);
      }
      s.close();
    }
    assert.deepEqual(misses, [], `events emitted right after the join ack were lost in ${misses.length}/10 fresh rooms`);
  });
});

describe('ack errors', () => {
  test('forbidden rooms → 403, bad names → 400, viewer cannot publish; nothing joined', async () => {
    const v = await connect(A, viewer.access_token, { transport: 'websocket' });
    const m = await connect(B, member.access_token, { transport: 'polling' });
    assertAckError(await ack(v, 'join', 'custom-room'), 403, 'viewer joins a custom room');
    assertAckError(await ack(v, 'publish', { room: 'tenant', event: 'x', data: 1 }), 403, 'viewer publishes');
    assertAckError(await ack(v, 'publish', { room: 'custom-room', event: 'x', data: 1 }), 403, 'viewer publishes to a custom room');
    assertAckError(await ack(m, 'join', `user:${admin.user.id}`), 403, "member joins the admin's user room");
    assertAckError(await ack(m, 'join', 'user:00000000-0000-0000-0000-000000000000'), 403, 'member joins a made-up user room');
    assertAckError(await ack(m, 'join', 'role:admin'), 403, 'member joins role:admin');
    assertAckError(await ack(m, 'join', 'role:owner'), 403, 'member joins role:owner');
    assertAckError(await ack(m, 'presence', `user:${admin.user.id}`), 403, "presence of the admin's user room");
    assertAckError(await ack(m, 'publish', { room: `user:${admin.user.id}`, event: 'x', data: 1 }), 403, "publish to the admin's user room");
    for (const bad of ['', 'a b', 'x'.repeat(65), '../tenant', 'room/1', 'räum', 'a,b', 'a*', '#room']) {
      assertAckError(await ack(m, 'join', bad), 400, `join ${JSON.stringify(bad)}`);
    }
    assertAckOk(await ack(m, 'join', 'x'.repeat(64)), '64-character name');
    assertAckError(await ack(m, 'join', 42), 400, 'join with a number');
    assertAckError(await ack(m, 'join', { room: 'a' }), 400, 'join with an object');
    assertAckError(await ack(m, 'join'), 400, 'join without a room');
    const unknown = await ack(m, 'frobnicate', 'x');
    assert.equal(unknown?.ok, false, `unknown event: ${JSON.stringify(unknown)}`);
    const notIn = await ack(m, 'leave', 'never-joined');
    assert.equal(notIn?.ok, false, `leave a room not joined: ${JSON.stringify(notIn)}`);
    // still connected and working after all of that
    assertAckOk(await ack(m, 'join', 'still-ok'), 'join after errors');
    assert.ok(v.connected && m.connected);
    v.close();
    m.close();
  });

  test('a room name holding U+0000 (valid JSON) gets a 400 ack, not a disconnect', async () => {
    const m = await connect(A, member.access_token, { transport: 'websocket' });
    let value;
    try {
      value = await ack(m, 'join', 'tenant\u0000', 3000);
    } catch (err) {
      assert.fail(`join("tenant\\u0000") → ${err.message} (disconnect reason: ${m.disconnectReason})`);
    }
    assertAckError(value, 400, 'join "tenant\\u0000"');
    m.close();
  });

  test('leave stops delivery of the room', async () => {
    const s = await connect(A, member.access_token, { transport: 'websocket' });
    const room = `leave-${marker()}`;
    await join(s, room);
    await emitUntilReceived(B, admin.access_token, room, 'warm', s);
    assertAckOk(await ack(s, 'leave', room), 'leave');
    const tag = marker();
    await emitOk(B, admin.access_token, room, 'after', { tag });
    await emitOk(B, admin.access_token, `user:${member.user.id}`, 'sentinel', { tag });
    await waitEvent(s, 'sentinel', (p) => p.data?.tag === tag);
    await sleep(200);
    assert.equal(eventsOf(s, 'after').length, 0, 'an event of a room left was delivered');
    s.close();
  });

  test('emit needs realtime:emit (member → 403) and validates the target and the event name', async () => {
    const asMember = await call(A, 'POST', '/v1/realtime/emit', { to: 'tenant', event: 'x', data: 1 }, { token: member.access_token });
    assert.equal(asMember.status, 403, asMember.body);
    for (const body of [{ to: '../x', event: 'x' }, { to: 'tenant', event: 'change' }, { to: 'tenant', event: 'bad name' }, { event: 'x' }]) {
      const res = await call(A, 'POST', '/v1/realtime/emit', body, { token: owner.access_token });
      assert.ok(res.status === 422 || res.status === 400, `${JSON.stringify(body)}: ${res.status} ${res.body}`);
    }
  });
});

describe('recovery and sessions across instances', () => {
  test('connection-state recovery: a socket.io-client that reconnects gets the events it missed (socket.recovered)', async () => {
    const room = `recover-${marker()}`;
    const s = await connect(A, member.access_token, {
      transport: 'websocket', reconnection: true, reconnectionDelay: 700, reconnectionDelayMax: 700, randomizationFactor: 0,
    });
    await join(s, room);
    await emitUntilReceived(B, admin.access_token, room, 'before', s);
    let reconnected = false;
    s.io.on('reconnect', () => { reconnected = true; });
    s.io.engine.close(); // transport close: the client reconnects by itself
    const tag = marker();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await emitOk(B, admin.access_token, room, 'missed', { tag, i }));
    await waitFor(() => reconnected && s.connected, { timeoutMs: 5000, message: 'the reconnect' });
    await sleep(500);
    const got = eventsOf(s, 'missed', (p) => p.data?.tag === tag).map((e) => e.payload.seq);
    const recovered = Boolean(s.recovered);
    s.close();
    assert.deepEqual({ recovered, got }, { recovered: true, got: missed },
      'after a reconnect the missed events are delivered (Socket.IO connection-state recovery, issue 6 item 5)');
  });

  test('connection-state recovery on the other instance: missed events replayed, rooms kept', async () => {
    const room = `recover-x-${marker()}`;
    const s1 = await connect(A, member.access_token, { transport: 'websocket' });
    await join(s1, room);
    await emitUntilReceived(B, admin.access_token, room, 'before', s1);
    const { _pid: pid, _lastOffset: offset } = s1;
    assert.equal(typeof pid, 'string', 'the CONNECT reply carries a pid');
    assert.equal(typeof offset, 'string', 'events carry an offset');
    s1.io.engine.close();
    await waitFor(() => !s1.connected, { timeoutMs: 3000, message: 'the disconnect' });
    const tag = marker();
    const missed = [];
    for (let i = 0; i < 3; i++) missed.push(await emitOk(A, admin.access_token, room, 'missed', { tag, i }));
    const s2 = await connect(B, undefined, { transport: 'polling', auth: { token: member.access_token, pid, offset } });
    await waitFor(() => eventsOf(s2, 'missed', (p) => p.data?.tag === tag).length === 3, { timeoutMs: 5000, message: 'the three missed events on B' });
    assert.deepEqual(eventsOf(s2, 'missed', (p) => p.data?.tag === tag).map((e) => e.payload.seq), missed);
    // still in the room without joining again
    const live = marker();
    await emitOk(A, admin.access_token, room, 'live', { live });
    await waitEvent(s2, 'live', (p) => p.data?.live === live, { what: 'a live event of the recovered room' });
    s2.close();
  });

  test("a pid of someone else's session recovers nothing (other user, other tenant)", async () => {
    const room = `victim-${marker()}`;
    const victim = await connect(A, member.access_token, { transport: 'websocket' });
    await join(victim, room);
    await emitUntilReceived(B, admin.access_token, room, 'before', victim);
    const { _pid: pid, _lastOffset: offset } = victim;
    assert.equal(typeof pid, 'string');
    victim.io.engine.close();
    await waitFor(() => !victim.connected, { timeoutMs: 3000, message: 'the disconnect' });
    const secret = marker('SECRET');
    await emitOk(A, admin.access_token, room, 'missed', { secret });
    await emitOk(A, admin.access_token, `user:${member.user.id}`, 'missed', { secret });
    const globex = await loginAs(A, 'member', 'globex');
    for (const [who, token] of [['viewer', viewer.access_token], ['globex member', globex.access_token]]) {
      let thief;
      try {
        thief = await connect(B, undefined, { transport: 'websocket', auth: { token, pid, offset } });
      } catch {
        continue; // refusing the CONNECT is fine too
      }
      await emitOk(A, admin.access_token, room, 'later', { secret });
      await sleep(700);
      assert.ok(!JSON.stringify(thief.events).includes(secret), `${who} recovered another session's events: ${JSON.stringify(thief.events).slice(0, 500)}`);
      thief.close();
    }
  });

  test('a long-polling sid of A is unknown on B (sticky sessions needed, as the README says)', async () => {
    const open = await call(A, 'GET', '/socket.io/?EIO=4&transport=polling');
    assert.equal(open.status, 200, open.body);
    const { sid } = JSON.parse(open.body.slice(1));
    const onB = await call(B, 'GET', `/socket.io/?EIO=4&transport=polling&sid=${sid}`);
    assert.equal(onB.status, 400, onB.body);
    assert.deepEqual(JSON.parse(onB.body), { code: 1, message: 'Session ID unknown' });
    const closeIt = await call(A, 'POST', `/socket.io/?EIO=4&transport=polling&sid=${sid}`, undefined, { raw: '1', contentType: 'text/plain;charset=UTF-8' });
    assert.equal(closeIt.status, 200, closeIt.body);
  });
});

describe('revocation', () => {
  test('a socket whose access token expires is closed within seconds (ping interval 1 s here)', async () => {
    const [key] = signingKeys();
    const { header, payload } = decodeJwt(member.access_token);
    const now = Math.floor(Date.now() / 1000);
    const token = jwt({ ...header, kid: key.kid }, { ...payload, iat: now, exp: now + 3 }, es256Signer(key.privateKey));
    const s = await connect(B, token, { transport: 'websocket' });
    await waitFor(() => !s.connected, { timeoutMs: 9000, intervalMs: 100, message: 'the close of a socket whose token expired' });
    const late = Date.now() - (now + 3) * 1000;
    assert.ok(late <= 4000, `closed ${late} ms after the expiry`);
  });

  test('a client that stops answering pings is closed (ping interval 1 s, timeout 2 s)', async () => {
    const raw = await rawConnected(A, member.access_token, { pong: false });
    const closed = await closedWithin(raw, 6000);
    assert.ok(closed, 'a client that never answered a ping is still open after 6 s');
    const alive = await rawConnected(A, member.access_token);
    assert.equal(await closedWithin(alive, 3500), null, 'a client that answers pings was closed');
    alive.ws.terminate();
  });

  test("logout closes the session's sockets on both instances within 5 s", async () => {
    const fresh = await loginAs(A, 'member');
    const sockets = await Promise.all([
      connect(A, fresh.access_token, { transport: 'websocket' }),
      connect(B, fresh.access_token, { transport: 'websocket' }),
      connect(B, fresh.access_token, { transport: 'polling' }),
    ]);
    const other = await connect(B, member.access_token, { transport: 'websocket' });
    const t0 = Date.now();
    const res = await call(A, 'POST', '/v1/auth/logout', {}, { token: fresh.access_token });
    assert.ok([200, 204].includes(res.status), `logout: ${res.status} ${res.body}`);
    await waitFor(() => sockets.every((s) => !s.connected), {
      timeoutMs: 5000, intervalMs: 50,
      message: `every socket of the session to close (open: ${sockets.map((s) => s.connected)})`,
    });
    assert.ok(Date.now() - t0 <= 5000);
    // a reconnect with the revoked token is refused
    const err = await connectError(B, fresh.access_token, { transport: 'websocket' });
    assert.ok(err.message.length > 0);
    // another session of the same user keeps its socket
    await sleep(300);
    assert.ok(other.connected, 'a socket of another session was closed');
    other.close();
  });
});
