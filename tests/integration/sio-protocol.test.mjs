// sio-protocol.test.mjs — our own copy, for CI, of every behaviour the official Engine.IO and
// Socket.IO conformance suites check (tests/conformance/README.md), run against sio_echo: the
// protocol module server/realtime/sio.c in echo mode, two worker threads, pingInterval 300 ms and
// pingTimeout 200 ms, on a free port. Engine.IO under /engine.io/ (messages echoed) and
// /socket.io/: handshake over polling and WebSocket and its 400s (EIO, transport, method),
// polling payloads with text and base64 binary packets, WebSocket text and binary frames, a bad
// packet or an overlapping GET closes the session, ping/pong and the ping timeout, a client close
// (the parked GET gets a noop), the upgrade (probe, noop to the pending GET, no polling and no
// second WebSocket afterwards). Socket.IO: CONNECT to "/" and "/custom" with and without a
// payload (then the "auth" event), an unknown namespace → CONNECT_ERROR, malformed packets close
// the connection, DISCONNECT of a namespace keeps the Engine.IO session, events and acks echoed,
// binary attachments over both transports. The binary: SIO_ECHO_BIN, else sio_echo next to
// TENANTD_BIN (./dev test builds both in build-asan/).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import WebSocket from 'ws';

import { onCleanup } from '../lib/cleanup.mjs';
import { freePort, requireEnv, sanitizerReports, sleep } from '../lib/harness.mjs';

const PING_INTERVAL = 300;
const PING_TIMEOUT = 200;
const WAIT_MS = 3000;

let port;
let echo;
const output = [];

function echoBin() {
  if (process.env.SIO_ECHO_BIN) return process.env.SIO_ECHO_BIN;
  return path.join(path.dirname(requireEnv('TENANTD_BIN')), 'sio_echo');
}

before(async () => {
  const bin = echoBin();
  assert.ok(existsSync(bin), `${bin} does not exist: build the sio_echo target (TENANTD_TESTS=ON)`);
  port = await freePort();
  echo = spawn(bin, [], {
    env: { ...process.env, TENANTD_LISTEN: `127.0.0.1:${port}`, TENANTD_THREADS: '2', TENANTD_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  for (const stream of [echo.stdout, echo.stderr]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk) => output.push(...chunk.split('\n')));
  }
  const exited = new Promise((resolve) => echo.once('exit', resolve));
  onCleanup({
    name: 'sio_echo',
    run: async () => {
      if (echo.exitCode === null && echo.signalCode === null) {
        echo.kill('SIGKILL');
        await exited;
      }
    },
    runSync: () => echo.kill('SIGKILL'),
  });
  const deadline = Date.now() + 15000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/socket.io/?EIO=4&transport=polling`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (echo.exitCode !== null || Date.now() > deadline) throw new Error(`sio_echo did not start:\n${output.join('\n')}`);
    await sleep(50);
  }
});

after(() => {
  assert.deepEqual(sanitizerReports(output), [], output.join('\n'));
  assert.equal(echo.exitCode, null, `sio_echo exited during the tests:\n${output.join('\n')}`);
});

// ---------------------------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------------------------

const url = (base, query) => `http://127.0.0.1:${port}${base}?EIO=4&${query}`;

async function httpGet(base, query) {
  const res = await fetch(url(base, query));
  return { status: res.status, body: await res.text() };
}

async function httpPost(base, query, body) {
  try {
    const res = await fetch(url(base, query), { method: 'POST', body });
    return { status: res.status, body: await res.text() };
  } catch {
    return { status: 'reset', body: '' }; // a server may also reset a refused POST
  }
}

async function openPolling(base) {
  const { status, body } = await httpGet(base, 'transport=polling');
  assert.equal(status, 200);
  return JSON.parse(body.slice(1)).sid;
}

// A WebSocket whose messages are queued, so that none is missed between two reads.
class WsClient {
  constructor(base, query = 'transport=websocket') {
    this.queue = [];
    this.waiters = [];
    this.ws = new WebSocket(`ws://127.0.0.1:${port}${base}?EIO=4&${query}`);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', resolve);
      this.ws.once('error', reject);
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => this.ws.once('close', (code) => resolve(code)));
    this.ws.on('message', (data, isBinary) => {
      this.queue.push(isBinary ? new Uint8Array(data) : data.toString());
      this.wake();
    });
    this.ws.on('close', () => this.wake());
  }

  wake() {
    for (const w of this.waiters.splice(0)) w();
  }

  // The next message (pings "2" skipped unless keepPings); rejects after WAIT_MS or on close.
  async next({ keepPings = false } = {}) {
    const deadline = Date.now() + WAIT_MS;
    for (;;) {
      while (this.queue.length > 0) {
        const m = this.queue.shift();
        if (keepPings || m !== '2') return m;
      }
      if (this.ws.readyState === WebSocket.CLOSED) throw new Error('the WebSocket closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error('no message in time');
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(data) {
    this.ws.send(data);
  }

  async closedWithin(ms) {
    const code = await Promise.race([this.closed, sleep(ms).then(() => 'open')]);
    assert.notEqual(code, 'open', `the server did not close the WebSocket within ${ms} ms`);
    return code;
  }

  close() {
    this.ws.close();
  }
}

// Opens a WebSocket-only session; resolves with the client and the open packet's value.
async function openWs(base) {
  const c = new WsClient(base);
  const open = await c.next();
  assert.ok(open.startsWith('0'), open);
  return { c, handshake: JSON.parse(open.slice(1)) };
}

// A WebSocket whose upgrade request the server must refuse.
function refusedUpgrade(base, query) {
  return new Promise((resolve) => {
    const ws = new WebSocket(`ws://127.0.0.1:${port}${base}?${query}`);
    ws.on('unexpected-response', (req, res) => {
      res.resume();
      req.destroy();
      resolve(res.statusCode);
    });
    ws.on('error', () => resolve('error'));
    ws.on('open', () => {
      ws.close();
      resolve('opened');
    });
  });
}

function assertHandshake(value, upgrades) {
  assert.deepEqual(Object.keys(value).sort(), ['maxPayload', 'pingInterval', 'pingTimeout', 'sid', 'upgrades']);
  assert.equal(typeof value.sid, 'string');
  assert.deepEqual(value.upgrades, upgrades);
  assert.equal(value.pingInterval, PING_INTERVAL);
  assert.equal(value.pingTimeout, PING_TIMEOUT);
  assert.equal(value.maxPayload, 1000000);
}

// ---------------------------------------------------------------------------------------------
// Engine.IO, under both paths
// ---------------------------------------------------------------------------------------------

for (const base of ['/engine.io/', '/socket.io/']) {
  describe(`Engine.IO under ${base}`, () => {
    test('polling handshake: 200 and the open packet', async () => {
      const { status, body } = await httpGet(base, 'transport=polling');
      assert.equal(status, 200);
      assert.ok(body.startsWith('0'), body);
      assertHandshake(JSON.parse(body.slice(1)), ['websocket']);
    });

    test('polling handshake: 400 for a missing or bad EIO, transport or method', async () => {
      for (const q of ['transport=polling', 'EIO=abc&transport=polling', 'EIO=4', 'EIO=4&transport=abc']) {
        const res = await fetch(`http://127.0.0.1:${port}${base}?${q}`);
        assert.equal(res.status, 400, q);
        await res.arrayBuffer();
      }
      for (const method of ['POST', 'PUT']) {
        const res = await fetch(url(base, 'transport=polling'), { method });
        assert.equal(res.status, 400, method);
        await res.arrayBuffer();
      }
    });

    test('WebSocket handshake: the open packet without upgrades', async () => {
      const { c, handshake } = await openWs(base);
      assertHandshake(handshake, []);
      c.close();
    });

    test('WebSocket handshake: refused for a missing or bad EIO or transport', async () => {
      for (const q of ['transport=websocket', 'EIO=abc&transport=websocket', 'EIO=4', 'EIO=4&transport=abc']) {
        assert.equal(await refusedUpgrade(base, q), 400, q);
      }
    });

    test('polling: a bad packet gets 400 and closes the session', async () => {
      const sid = await openPolling(base);
      const post = await httpPost(base, `transport=polling&sid=${sid}`, 'abc');
      assert.ok(post.status === 400 || post.status === 'reset', String(post.status));
      assert.equal((await httpGet(base, `transport=polling&sid=${sid}`)).status, 400);
    });

    test('polling: an overlapping GET gets 400 and closes the session, the first GET gets "1"', async () => {
      const sid = await openPolling(base);
      const first = httpGet(base, `transport=polling&sid=${sid}`);
      await sleep(20);
      const second = await httpGet(base, `transport=polling&sid=${sid}&t=burst`);
      assert.equal(second.status, 400);
      assert.deepEqual(await first, { status: 200, body: '1' });
      assert.equal((await httpGet(base, `transport=polling&sid=${sid}`)).status, 400);
    });

    test('polling: pings every pingInterval, answered by pongs', async () => {
      const sid = await openPolling(base);
      for (let i = 0; i < 3; i++) {
        const started = Date.now();
        assert.deepEqual(await httpGet(base, `transport=polling&sid=${sid}`), { status: 200, body: '2' });
        assert.ok(Date.now() - started >= PING_INTERVAL - 100, `ping ${i} came too early`);
        const pong = await httpPost(base, `transport=polling&sid=${sid}`, '3');
        assert.deepEqual(pong, { status: 200, body: 'ok' });
      }
    });

    test('polling: no pong within pingTimeout after the ping closes the session', async () => {
      const sid = await openPolling(base);
      await sleep(PING_INTERVAL + PING_TIMEOUT + 50);
      assert.equal((await httpGet(base, `transport=polling&sid=${sid}`)).status, 400);
    });

    test('polling: a client close answers the parked GET with a noop and ends the session', async () => {
      const sid = await openPolling(base);
      const parked = httpGet(base, `transport=polling&sid=${sid}`);
      await sleep(20);
      assert.deepEqual(await httpPost(base, `transport=polling&sid=${sid}`, '1'), { status: 200, body: 'ok' });
      assert.deepEqual(await parked, { status: 200, body: '6' });
      assert.equal((await httpGet(base, `transport=polling&sid=${sid}`)).status, 400);
    });

    test('WebSocket: pings every pingInterval, answered by pongs', async () => {
      const { c } = await openWs(base);
      for (let i = 0; i < 3; i++) {
        assert.equal(await c.next({ keepPings: true }), '2');
        c.send('3');
      }
      c.close();
    });

    test('WebSocket: no pong closes the connection', async () => {
      const { c } = await openWs(base);
      await c.closedWithin(PING_INTERVAL + PING_TIMEOUT + 1000);
    });

    test('WebSocket: a bad packet closes the connection', async () => {
      const { c } = await openWs(base);
      c.send('abc');
      await c.closedWithin(WAIT_MS);
    });

    test('WebSocket: a close packet closes the connection', async () => {
      const { c } = await openWs(base);
      c.send('1');
      await c.closedWithin(WAIT_MS);
    });

    test('upgrade: probe, a noop for the GET, then the WebSocket carries the session', async () => {
      const sid = await openPolling(base);
      const c = new WsClient(base, `transport=websocket&sid=${sid}`);
      await c.opened;
      c.send('2probe');
      assert.equal(await c.next(), '3probe');
      const started = Date.now();
      assert.deepEqual(await httpGet(base, `transport=polling&sid=${sid}`), { status: 200, body: '6' });
      assert.ok(Date.now() - started < PING_INTERVAL, 'the GET waited for a ping instead of getting a noop');
      c.send('5');
      if (base === '/engine.io/') {
        c.send('4hello');
        assert.equal(await c.next(), '4hello');
      } else {
        c.send('40');
        assert.ok((await c.next()).startsWith('40{'));
      }
      c.close();
    });

    test('upgrade: a GET parked before the probe is released with a noop at once', async () => {
      const sid = await openPolling(base);
      const parked = httpGet(base, `transport=polling&sid=${sid}`);
      await sleep(20);
      const c = new WsClient(base, `transport=websocket&sid=${sid}`);
      await c.opened;
      const started = Date.now();
      c.send('2probe');
      assert.equal(await c.next(), '3probe');
      assert.deepEqual(await parked, { status: 200, body: '6' });
      assert.ok(Date.now() - started < PING_INTERVAL, 'the parked GET waited for a ping');
      c.send('5');
      c.close();
    });

    test('upgrade: polling after the upgrade gets 400, the WebSocket goes on', async () => {
      const sid = await openPolling(base);
      const c = new WsClient(base, `transport=websocket&sid=${sid}`);
      await c.opened;
      c.send('2probe');
      c.send('5');
      assert.equal(await c.next(), '3probe');
      await sleep(20);
      assert.equal((await httpGet(base, `transport=polling&sid=${sid}`)).status, 400);
      if (base === '/engine.io/') {
        c.send('4hello');
        assert.equal(await c.next(), '4hello');
      }
      c.close();
    });

    test('upgrade: a second WebSocket for the session is closed, the first goes on', async () => {
      const sid = await openPolling(base);
      const c = new WsClient(base, `transport=websocket&sid=${sid}`);
      await c.opened;
      c.send('2probe');
      c.send('5');
      assert.equal(await c.next(), '3probe');
      const c2 = new WsClient(base, `transport=websocket&sid=${sid}`);
      await c2.closedWithin(WAIT_MS);
      if (base === '/engine.io/') {
        c.send('4hello');
        assert.equal(await c.next(), '4hello');
      }
      c.close();
    });
  });
}

describe('Engine.IO echo (/engine.io/)', () => {
  const base = '/engine.io/';

  test('polling: one text packet, several, and text with binary come back as sent', async () => {
    for (const payload of ['4hello', '4test1\x1e4test2\x1e4test3', '4hello\x1ebAQIDBA==']) {
      const sid = await openPolling(base);
      assert.deepEqual(await httpPost(base, `transport=polling&sid=${sid}`, payload), { status: 200, body: 'ok' });
      await sleep(20); // two worker threads: let the owner queue all the echoes first
      assert.deepEqual(await httpGet(base, `transport=polling&sid=${sid}`), { status: 200, body: payload });
    }
  });

  test('WebSocket: a text and a binary packet come back as sent', async () => {
    const { c } = await openWs(base);
    c.send('4hello');
    assert.equal(await c.next(), '4hello');
    c.send(Uint8Array.from([1, 2, 3, 4]));
    assert.deepEqual(await c.next(), Uint8Array.from([1, 2, 3, 4]));
    c.close();
  });
});

// ---------------------------------------------------------------------------------------------
// Socket.IO
// ---------------------------------------------------------------------------------------------

describe('Socket.IO (/socket.io/)', () => {
  const base = '/socket.io/';

  async function connected() {
    const { c } = await openWs(base);
    c.send('40');
    assert.ok((await c.next()).startsWith('40{'));
    assert.equal(await c.next(), '42["auth",{}]');
    return c;
  }

  for (const [sent, prefix, auth] of [
    ['40', '40', '42["auth",{}]'],
    ['40{"token":"123"}', '40', '42["auth",{"token":"123"}]'],
    ['40/custom,', '40/custom,', '42/custom,["auth",{}]'],
    ['40/custom,{"token":"abc"}', '40/custom,', '42/custom,["auth",{"token":"abc"}]'],
  ]) {
    test(`CONNECT ${sent}: handshake with a sid, then the auth event`, async () => {
      const { c } = await openWs(base);
      c.send(sent);
      const hello = await c.next();
      assert.ok(hello.startsWith(prefix), hello);
      const value = JSON.parse(hello.slice(prefix.length));
      assert.deepEqual(Object.keys(value), ['sid']);
      assert.equal(typeof value.sid, 'string');
      assert.equal(await c.next(), auth);
      c.close();
    });
  }

  test('CONNECT to an unknown namespace: CONNECT_ERROR "Invalid namespace"', async () => {
    const { c } = await openWs(base);
    c.send('40/random');
    assert.equal(await c.next(), '44/random,{"message":"Invalid namespace"}');
    c.close();
  });

  test('an invalid handshake closes the connection', async () => {
    const { c } = await openWs(base);
    c.send('4abc');
    await c.closedWithin(WAIT_MS);
  });

  test('no handshake: the connection is closed', async () => {
    const c = new WsClient(base);
    await c.closedWithin(WAIT_MS);
  });

  test('DISCONNECT from "/" keeps the Engine.IO session (the next packet is a ping)', async () => {
    const c = await connected();
    c.send('41');
    assert.equal(await c.next({ keepPings: true }), '2');
    c.close();
  });

  test('connect then disconnect "/custom"; "/" still echoes', async () => {
    const c = await connected();
    assert.equal(await c.next({ keepPings: true }), '2');
    c.send('40/custom');
    assert.ok((await c.next()).startsWith('40/custom,{'));
    assert.equal(await c.next(), '42/custom,["auth",{}]');
    c.send('41/custom');
    c.send('42["message","message to main namespace"]');
    assert.equal(await c.next(), '42["message-back","message to main namespace"]');
    c.close();
  });

  test('an event comes back as message-back', async () => {
    const c = await connected();
    c.send('42["message",1,"2",{"3":[true]}]');
    assert.equal(await c.next(), '42["message-back",1,"2",{"3":[true]}]');
    c.close();
  });

  test('an event with an ack is acked with its arguments', async () => {
    const c = await connected();
    c.send('42456["message-with-ack",1,"2",{"3":[false]}]');
    assert.equal(await c.next(), '43456[1,"2",{"3":[false]}]');
    c.close();
  });

  test('binary attachments over WebSocket come back with the event and with the ack', async () => {
    const c = await connected();
    c.send('452-["message",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    c.send(Uint8Array.from([1, 2, 3]));
    c.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await c.next(), '452-["message-back",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await c.next(), Uint8Array.from([1, 2, 3]));
    assert.deepEqual(await c.next(), Uint8Array.from([4, 5, 6]));
    c.send('452-789["message-with-ack",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    c.send(Uint8Array.from([1, 2, 3]));
    c.send(Uint8Array.from([4, 5, 6]));
    assert.equal(await c.next(), '462-789[{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]');
    assert.deepEqual(await c.next(), Uint8Array.from([1, 2, 3]));
    assert.deepEqual(await c.next(), Uint8Array.from([4, 5, 6]));
    c.close();
  });

  test('binary attachments over polling come back base64-encoded', async () => {
    const sid = await openPolling(base);
    const q = `transport=polling&sid=${sid}`;
    assert.equal((await httpPost(base, q, '40')).status, 200);
    await sleep(20);
    const hello = await httpGet(base, q);
    assert.match(hello.body, /^40\{"sid":"[^"]+"\}/);
    if (!hello.body.includes('\x1e42["auth"')) assert.equal((await httpGet(base, q)).body, '42["auth",{}]');
    const sent = '451-["message",{"_placeholder":true,"num":0}]\x1ebAQID';
    assert.deepEqual(await httpPost(base, q, sent), { status: 200, body: 'ok' });
    await sleep(20);
    assert.deepEqual(await httpGet(base, q), { status: 200, body: '451-["message-back",{"_placeholder":true,"num":0}]\x1ebAQID' });
  });

  for (const bad of ['4abc', '42{}', '42abc["message-with-ack",1,"2",{"3":[false]}]']) {
    test(`a malformed packet (${bad}) closes the connection`, async () => {
      const c = await connected();
      c.send(bad);
      await c.closedWithin(WAIT_MS);
    });
  }
});
