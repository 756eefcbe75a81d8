// realtime-connect-deadline.test.mjs — an Engine.IO session that answers every ping but never sends
// an authenticated Socket.IO CONNECT is closed pingInterval + pingTimeout after it opened (45 s by
// default, like Socket.IO's own connect timeout), while an authenticated one stays; and PUT on
// /socket.io/ is refused with Engine.IO's 400 "Bad request method".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';

import { startTenantd, request, sleep } from '../lib/harness.mjs';
import { loginAs } from '../lib/auth.mjs';
import { rawSocket, rawConnected, closedWithin } from '../lib/realtime.mjs';

let td;
let member;

before(async () => {
  td = await startTenantd({ TENANTD_EIO_PING_INTERVAL_MS: 400, TENANTD_EIO_PING_TIMEOUT_MS: 400 });
  await td.waitReady();
  member = await loginAs(td, 'member');
});

after(async () => {
  await td?.stop();
});

test('no CONNECT within pingInterval + pingTimeout closes the session; a connected one stays', async () => {
  const idle = await rawSocket(td); // answers pings, never authenticates
  const connected = await rawConnected(td, member.access_token);
  const closed = await closedWithin(idle, 4000);
  assert.ok(closed, 'the unauthenticated session was closed');
  await sleep(500);
  assert.equal(await closedWithin(connected, 100), null, 'the authenticated session is still open');
  connected.ws.close();
});

test('PUT /socket.io/ → 400 Bad request method', async () => {
  const open = await request(`${td.url}/socket.io/?EIO=4&transport=polling`);
  const { sid } = JSON.parse(open.body.slice(1));
  const res = await request(`${td.url}/socket.io/?EIO=4&transport=polling&sid=${sid}`, { method: 'PUT', body: 'x' });
  assert.equal(res.status, 400);
  assert.deepEqual(JSON.parse(res.body), { code: 2, message: 'Bad request method' });
});
