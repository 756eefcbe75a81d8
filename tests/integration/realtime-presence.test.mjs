// realtime-presence.test.mjs — presence (CONTRACT.md §8, issue 6 item 6) over two tenantd
// instances sharing Postgres and Redis: joining a room sends `presence {room, joined, left, seq}`
// to the other members (also across instances), leaving and disconnecting send `left`; the
// presence(room) ack lists the members as {user_id, connections} with counts that follow joins,
// leaves and disconnects; on SIGTERM an instance's members leave at once (with `left` events);
// after `kill -9` of instance B its members disappear from presence within 40 s (the Redis entries
// expire) while A's members stay, and A keeps delivering.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';

import { sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { loginAs } from '../lib/auth.mjs';
import { ack, assertAckOk, connect, emitUntilReceived, eventsOf, join, marker, waitEvent } from '../lib/realtime.mjs';

const ENV = { TENANTD_EIO_PING_INTERVAL_MS: 500, TENANTD_EIO_PING_TIMEOUT_MS: 500 };
let A;
let B;
let owner;
let admin;
let member;

before(async () => {
  [A, B] = await Promise.all([startTenantd(ENV), startTenantd(ENV)]);
  await Promise.all([A.waitReady(), B.waitReady()]);
  [owner, admin, member] = await Promise.all(['owner', 'admin', 'member'].map((r) => loginAs(A, r)));
});

// The presence(room) ack's members as {user_id: connections}.
async function presence(socket, room) {
  const res = assertAckOk(await ack(socket, 'presence', room), `presence ${room}`);
  assert.equal(res.room, room);
  assert.ok(Array.isArray(res.members), `members: ${JSON.stringify(res)}`);
  const out = {};
  for (const m of res.members) {
    assert.equal(typeof m.user_id, 'string');
    assert.equal(typeof m.connections, 'number');
    assert.equal(out[m.user_id], undefined, `user ${m.user_id} listed twice`);
    out[m.user_id] = m.connections;
  }
  return out;
}

describe('presence', () => {
  test('join, leave and disconnect are announced to the other members, across instances', async () => {
    const room = `pr-${marker()}`;
    const watcher = await connect(A, admin.access_token, { transport: 'websocket' });
    await join(watcher, room);
    await emitUntilReceived(A, admin.access_token, room, 'warm', watcher);

    const joiner = await connect(B, member.access_token, { transport: 'polling' });
    await join(joiner, room);
    const joined = await waitEvent(watcher, 'presence', (p) => p.room === room && p.joined?.includes(member.user.id));
    assert.deepEqual(joined.left, []);
    assert.deepEqual(joined.joined, [member.user.id]);
    assert.equal(typeof joined.seq, 'number');

    assertAckOk(await ack(joiner, 'leave', room), 'leave');
    const left = await waitEvent(watcher, 'presence', (p) => p.room === room && p.left?.includes(member.user.id));
    assert.deepEqual(left.joined, []);
    assert.ok(left.seq > joined.seq);

    await join(joiner, room);
    await waitEvent(watcher, 'presence', (p) => p.room === room && p.joined?.includes(member.user.id) && p.seq > left.seq);
    const before = eventsOf(watcher, 'presence', (p) => p.left?.includes(member.user.id)).length;
    joiner.close();
    await waitFor(() => eventsOf(watcher, 'presence', (p) => p.room === room && p.left?.includes(member.user.id)).length > before, {
      timeoutMs: 5000, message: 'presence left after a disconnect',
    });
    watcher.close();
  });

  test('presence(room) lists the members with their connection counts', async () => {
    const room = `list-${marker()}`;
    const m1 = await connect(A, member.access_token, { transport: 'websocket' });
    const m2 = await connect(B, member.access_token, { transport: 'default' });
    const a1 = await connect(B, admin.access_token, { transport: 'websocket' });
    for (const s of [m1, m2, a1]) await join(s, room);
    await waitFor(async () => {
      const p = await presence(m1, room);
      return p[member.user.id] === 2 && p[admin.user.id] === 1 && Object.keys(p).length === 2;
    }, { timeoutMs: 3000, message: 'two members: member with 2 connections, admin with 1' });
    // the same list from the other instance
    assert.deepEqual(await presence(a1, room), { [member.user.id]: 2, [admin.user.id]: 1 });
    // one of the member's connections leaves, the admin disconnects
    assertAckOk(await ack(m2, 'leave', room), 'leave');
    a1.close();
    await waitFor(async () => {
      const p = await presence(m1, room);
      return p[member.user.id] === 1 && p[admin.user.id] === undefined;
    }, { timeoutMs: 3000, message: 'member with 1 connection, admin gone' });
    // a member who is not in the room may still ask (it may join it); a viewer may not
    const viewer = await loginAs(A, 'viewer');
    const v = await connect(A, viewer.access_token, { transport: 'websocket' });
    const res = await ack(v, 'presence', room);
    assert.equal(res?.ok, false, `viewer presence of a custom room: ${JSON.stringify(res)}`);
    assert.equal(res.error.status, 403);
    for (const s of [m1, m2, v]) s.close();
  });

  test('on SIGTERM of an instance its members leave presence at once, with presence left events', async () => {
    const C = await startTenantd(ENV);
    await C.waitReady();
    const room = `term-${marker()}`;
    const onA = await connect(A, member.access_token, { transport: 'websocket' });
    const onC = await connect(C, owner.access_token, { transport: 'polling' });
    await join(onA, room);
    await emitUntilReceived(A, admin.access_token, room, 'warm', onA);
    await join(onC, room);
    await waitEvent(onA, 'presence', (p) => p.room === room && p.joined?.includes(owner.user.id));
    assert.deepEqual(await presence(onA, room), { [member.user.id]: 1, [owner.user.id]: 1 });
    const status = await C.stop('SIGTERM');
    assert.equal(status, 0);
    let last;
    const listed = await waitFor(async () => {
      last = await presence(onA, room);
      return last[owner.user.id] === undefined;
    }, { timeoutMs: 3000, intervalMs: 100 }).catch(() => false);
    const announced = eventsOf(onA, 'presence', (p) => p.room === room && p.left?.includes(owner.user.id)).length > 0;
    assert.deepEqual({ listed, announced }, { listed: true, announced: true },
      `after SIGTERM: gone from presence(room) within 3 s (last: ${JSON.stringify(last)}), and a presence left event`);
    onA.close();
  });

  test('after kill -9 of instance B, its members disappear from presence within 40 s', { timeout: 60000 }, async () => {
    const room = `crash-${marker()}`;
    const onA = await connect(A, member.access_token, { transport: 'websocket' });
    const onB1 = await connect(B, owner.access_token, { transport: 'websocket' });
    const onB2 = await connect(B, admin.access_token, { transport: 'polling' });
    for (const s of [onA, onB1, onB2]) await join(s, room);
    await waitFor(async () => Object.keys(await presence(onA, room)).length === 3, { timeoutMs: 3000, message: 'three members' });
    const killedAt = Date.now();
    await B.kill();
    assert.ok(!B.alive());
    let last;
    const gone = await waitFor(async () => {
      last = await presence(onA, room);
      return last[owner.user.id] === undefined && last[admin.user.id] === undefined ? Date.now() : null;
    }, { timeoutMs: 40000, intervalMs: 1000, message: `B's members to leave presence (last: ${JSON.stringify(last)})` }).catch((err) => {
      throw new Error(`${err.message}; presence after ${Date.now() - killedAt} ms: ${JSON.stringify(last)}`);
    });
    assert.ok(gone - killedAt <= 40000, `took ${gone - killedAt} ms`);
    // A's member stayed (its entry is refreshed by A's heartbeat) and A still delivers
    assert.deepEqual(last, { [member.user.id]: 1 }, 'only A\'s member remains');
    assert.ok(onA.connected);
    await emitUntilReceived(A, admin.access_token, room, 'after-crash', onA);
    await sleep(10);
    onA.close();
  });
});
