// realtime.mjs — helpers for the realtime tests (CONTRACT.md §8): Socket.IO clients (the real
// socket.io-client) that record every event they get, acks with a deadline, SSE clients (npm
// eventsource) that record theirs, raw Engine.IO WebSockets (npm ws) for malformed input, and
// small data API / emit calls. Every client opened here is closed when the test file ends.
import assert from 'node:assert/strict';

import EventSource from 'eventsource';
import { io } from 'socket.io-client';
import WebSocket from 'ws';

import { onCleanup } from './cleanup.mjs';
import { sleep, waitFor } from './harness.mjs';
import { call } from './auth.mjs';

export { WebSocket };

const openClients = new Set();
onCleanup({
  name: 'realtime clients',
  run: async () => {
    for (const c of openClients) {
      try { c.close(); } catch { /* already closed */ }
    }
    openClients.clear();
  },
  runSync: () => {
    for (const c of openClients) {
      try { c.close(); } catch { /* already closed */ }
    }
  },
});

function track(client, close = () => client.close()) {
  const entry = { close };
  openClients.add(entry);
  return () => openClients.delete(entry);
}

// Transport options of socket.io-client by name: 'default' (polling, then the upgrade to
// WebSocket), 'websocket' (WebSocket only) and 'polling' (long-polling only).
export const TRANSPORTS = {
  default: {},
  websocket: { transports: ['websocket'] },
  polling: { transports: ['polling'], upgrade: false },
};

// Connects a socket.io-client to td with the token; resolves the socket once connected (rejects
// with the connect_error). The socket records every event it gets in socket.events
// ([{name, payload, at}]) and its disconnect reason in socket.disconnectReason.
export function connect(td, token, { transport = 'default', timeoutMs = 8000, auth, ...extra } = {}) {
  const socket = io(td.url, {
    auth: auth ?? (token === undefined ? undefined : { token }),
    reconnection: false,
    timeout: timeoutMs,
    forceNew: true,
    ...TRANSPORTS[transport],
    ...extra,
  });
  socket.events = [];
  socket.disconnectReason = null;
  socket.onAny((name, payload) => socket.events.push({ name, payload, at: Date.now() }));
  socket.on('disconnect', (reason) => { socket.disconnectReason = reason; });
  const untrack = track(socket);
  socket.on('disconnect', untrack);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new Error(`socket.io connect to ${td.url} (${transport}) timed out`));
    }, timeoutMs + 1000);
    socket.once('connect', () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once('connect_error', (err) => {
      clearTimeout(timer);
      socket.close();
      untrack();
      reject(err);
    });
  });
}

// Resolves the connect_error of a connection attempt that must fail (throws if it connects).
export async function connectError(td, token, opts = {}) {
  try {
    const s = await connect(td, token, opts);
    s.close();
  } catch (err) {
    return err;
  }
  throw new Error('the connection was accepted');
}

// Emits event(arg) with an ack and resolves the ack's value; throws after timeoutMs.
export async function ack(socket, event, arg, timeoutMs = 5000) {
  try {
    return await socket.timeout(timeoutMs).emitWithAck(event, arg);
  } catch (err) {
    throw new Error(`no ack for ${event}(${JSON.stringify(arg)}): ${err.message} (connected: ${socket.connected}, disconnect reason: ${socket.disconnectReason})`);
  }
}

// Asserts an ack is {ok: false, error: {status, title}} with the status.
export function assertAckError(value, status, what = '') {
  assert.equal(value?.ok, false, `${what}: ack ${JSON.stringify(value)}`);
  assert.equal(value?.error?.status, status, `${what}: ack ${JSON.stringify(value)}`);
  assert.equal(typeof value?.error?.title, 'string', `${what}: error.title`);
}

// Asserts an ack is {ok: true, …}; returns it.
export function assertAckOk(value, what = '') {
  assert.equal(value?.ok, true, `${what}: ack ${JSON.stringify(value)}`);
  return value;
}

// Joins room and asserts the ack is ok.
export async function join(socket, room) {
  return assertAckOk(await ack(socket, 'join', room), `join ${room}`);
}

// Events of `client` (a socket or an SSE client) named `name` and matching pred(payload).
export function eventsOf(client, name, pred = () => true) {
  return client.events.filter((e) => e.name === name && pred(e.payload));
}

// Waits until `client` got an event named `name` whose payload matches pred; resolves the payload.
export async function waitEvent(client, name, pred = () => true, { timeoutMs = 5000, what } = {}) {
  const hit = await waitFor(() => eventsOf(client, name, pred)[0], {
    timeoutMs,
    intervalMs: 20,
    message: what ?? `event ${name} (got: ${client.events.map((e) => e.name).join(', ') || 'nothing'})`,
  });
  return hit.payload;
}

// A unique marker for payloads.
export function marker(tag = 'm') {
  return `${tag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

// POST /v1/realtime/emit; returns the raw response.
export function emit(td, token, to, event, data) {
  return call(td, 'POST', '/v1/realtime/emit', { to, event, data }, { token });
}

// Emits and asserts 202 with a numeric seq; resolves the seq.
export async function emitOk(td, token, to, event, data) {
  const res = await emit(td, token, to, event, data);
  assert.equal(res.status, 202, `emit to ${to}: ${res.body}`);
  assert.equal(typeof res.json?.seq, 'number', `emit seq: ${res.body}`);
  return res.json.seq;
}

// Emits `event` repeatedly to `to` until `client` gets it (the room's Redis subscription of a
// freshly joined instance may not be in place yet when the join is acknowledged); resolves the
// payload of the first one received.
export async function emitUntilReceived(td, token, to, event, client, { timeoutMs = 5000 } = {}) {
  const deadline = Date.now() + timeoutMs;
  const tag = marker('probe');
  for (let i = 0; Date.now() < deadline; i++) {
    await emitOk(td, token, to, event, { probe: tag, i });
    try {
      return await waitEvent(client, event, (p) => p?.data?.probe === tag, { timeoutMs: 250 });
    } catch { /* not yet */ }
  }
  throw new Error(`${event} to ${to} never arrived within ${timeoutMs} ms`);
}

// Inserts a row through the data API; resolves the row.
export async function insertRow(td, token, table, row) {
  const res = await call(td, 'POST', `/rest/v1/${table}`, row, { token, headers: { prefer: 'return=representation' } });
  assert.equal(res.status, 201, `insert into ${table}: ${res.body}`);
  const rows = JSON.parse(res.body);
  return Array.isArray(rows) ? rows[0] : rows;
}

// PATCH /rest/v1/{table}?id=eq.{id}; resolves the response.
export function updateRow(td, token, table, id, patch) {
  return call(td, 'PATCH', `/rest/v1/${table}?id=eq.${id}`, patch, { token, headers: { prefer: 'return=representation' } });
}

// DELETE /rest/v1/{table}?id=eq.{id}; resolves the response.
export function deleteRow(td, token, table, id) {
  return call(td, 'DELETE', `/rest/v1/${table}?id=eq.${id}`, undefined, { token, headers: { prefer: 'return=representation' } });
}

// Opens an SSE stream GET /v1/events?{query} with the Bearer token (and extra headers, e.g.
// Last-Event-ID). Resolves {es, events: [{name, id, payload, at}], errors, close()} once open.
export function sse(td, token, query, { headers = {}, names = [], timeoutMs = 5000 } = {}) {
  const es = new EventSource(`${td.url}/v1/events?${query}`, {
    headers: { authorization: `Bearer ${token}`, ...headers },
  });
  const client = { es, events: [], errors: [], close: () => es.close() };
  const untrack = track(es);
  client.close = () => { es.close(); untrack(); };
  const record = (name) => (ev) => {
    let payload;
    try { payload = JSON.parse(ev.data); } catch { payload = ev.data; }
    client.events.push({ name, id: ev.lastEventId, payload, at: Date.now() });
  };
  es.onmessage = record('message');
  for (const name of names) es.addEventListener(name, record(name));
  es.onerror = (err) => client.errors.push(err);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { client.close(); reject(new Error('SSE stream did not open')); }, timeoutMs);
    es.onopen = () => { clearTimeout(timer); resolve(client); };
    es.addEventListener('error', (err) => {
      if (es.readyState === EventSource.CLOSED || err?.status) {
        clearTimeout(timer);
        client.close();
        reject(Object.assign(new Error(`SSE error ${err?.status ?? ''} ${err?.message ?? ''}`), { status: err?.status }));
      }
    });
  });
}

// A raw Engine.IO WebSocket to td: resolves {ws, open (the parsed open packet), messages (text
// frames received after it), closed (promise of {code, reason}), send(text)}.
// With pong: false, pings ("2") are not answered.
export function rawSocket(td, { timeoutMs = 5000, pong = true } = {}) {
  const ws = new WebSocket(`ws://127.0.0.1:${td.port}/socket.io/?EIO=4&transport=websocket`, { maxPayload: 64 * 1024 * 1024 });
  const untrack = track(ws, () => ws.terminate());
  const messages = [];
  let resolveClosed;
  const closed = new Promise((r) => { resolveClosed = r; });
  ws.on('close', (code, reason) => { untrack(); resolveClosed({ code, reason: reason.toString() }); });
  ws.on('error', () => {});
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { ws.terminate(); reject(new Error('raw WebSocket: no open packet')); }, timeoutMs);
    let open = null;
    ws.on('message', (data, isBinary) => {
      const text = isBinary ? data : data.toString();
      if (open === null && typeof text === 'string' && text.startsWith('0')) {
        open = JSON.parse(text.slice(1));
        clearTimeout(timer);
        resolve({ ws, open, messages, closed, send: (t) => ws.send(t) });
        return;
      }
      if (pong && typeof text === 'string' && text === '2') ws.send('3'); // answer pings
      messages.push(text);
    });
    ws.on('close', () => { clearTimeout(timer); if (open === null) reject(new Error('raw WebSocket closed before the open packet')); });
  });
}

// A raw socket that has sent CONNECT with the token and got the CONNECT answer ("40{…}").
export async function rawConnected(td, token, opts = {}) {
  const raw = await rawSocket(td, opts);
  raw.send(`40${JSON.stringify({ token })}`);
  await waitFor(() => raw.messages.some((m) => typeof m === 'string' && m.startsWith('40')), {
    timeoutMs: 5000, intervalMs: 20, message: 'CONNECT answer on the raw socket',
  });
  return raw;
}

// Resolves {code, reason} when the raw socket closes within timeoutMs, else null.
export async function closedWithin(raw, timeoutMs) {
  return Promise.race([raw.closed, sleep(timeoutMs).then(() => null)]);
}

// As an admin of the tenant: creates the custom role {name: tag-xxxx, permissions}, invites a fresh
// user into it and accepts the invitation. Resolves {role, email, password, tokens (the token
// response of the acceptance: access_token, user, tenant, roles)}.
export async function userWithCustomRole(td, adminToken, permissions, tag = 'rt') {
  const suffix = Math.random().toString(36).slice(2, 10);
  const role = `${tag}-${suffix}`;
  const created = await call(td, 'POST', '/v1/admin/roles', { name: role, permissions }, { token: adminToken });
  assert.equal(created.status, 201, `create role ${role}: ${created.body}`);
  const email = `${role}@realtime-tests.example`;
  const password = `pw-${suffix}-${suffix}`;
  // The new role reaches the other worker threads' caches asynchronously (a separate finding:
  // an invitation naming it right after its creation can get 422 "unknown role"); retry briefly.
  let inv;
  for (let i = 0; i < 20; i++) {
    inv = await call(td, 'POST', '/v1/admin/invitations', { email, roles: [role] }, { token: adminToken });
    if (inv.status !== 422) break;
    await sleep(100);
  }
  assert.equal(inv.status, 201, `invite ${email}: ${inv.body}`);
  const acc = await call(td, 'POST', `/v1/invitations/${encodeURIComponent(inv.json.token)}/accept`, { password });
  assert.equal(acc.status, 200, `accept the invitation: ${acc.body}`);
  assert.equal(typeof acc.json?.access_token, 'string', `acceptance token response: ${acc.body}`);
  return { role, email, password, tokens: acc.json };
}
