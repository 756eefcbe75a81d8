// server-shutdown.test.mjs — graceful shutdown on SIGTERM (CONTRACT.md §9).
//
// SIGTERM must stop the listeners, let every in-flight request finish with a complete response,
// send HTTP/2 connections a GOAWAY, close idle keep-alive connections by the drain deadline
// (TENANTD_SHUTDOWN_TIMEOUT_MS) and exit 0. Requests sent after the signal may be refused.
// SIGHUP (the reload hook) must leave the server running.
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { describe, test } from 'node:test';

import { h2connect, h2request, request, sleep, startScratchRedis, startTenantd, within } from '../lib/harness.mjs';
import { startLoad, summarize } from '../lib/load.mjs';

const DEADLINE_MS = 3000;
const EXIT_SLACK_MS = 1500; // process teardown after the deadline (ASan build)

// Sends SIGTERM once and waits for the exit; resolves {status, elapsed} (status null: still running).
async function sigterm(td, waitMs = DEADLINE_MS + EXIT_SLACK_MS) {
  const sent = Date.now();
  td.proc.kill('SIGTERM');
  const status = await within(td.exited, waitMs);
  return { status, elapsed: Date.now() - sent, sent };
}

// Sanitizer reports first: they explain a bad exit status better than the status does.
function assertCleanExit({ status, elapsed }, td, limitMs = DEADLINE_MS + EXIT_SLACK_MS) {
  td.assertNoSanitizerReports();
  assert.notEqual(status, null, `tenantd still running ${elapsed} ms after SIGTERM; output:\n${td.formatLogs()}`);
  assert.equal(status, 0, `exit status after SIGTERM; output:\n${td.formatLogs()}`);
  assert.ok(elapsed <= limitMs, `exited ${elapsed} ms after SIGTERM (limit ${limitMs} ms)`);
}

// Opens an HTTP/1.1 keep-alive connection (cleartext or TLS with ALPN http/1.1), completes one
// request on it and leaves it idle. Resolves {socket, closed} where closed resolves on close.
function openIdleHttp1(port, { useTls = false } = {}) {
  return new Promise((resolve, reject) => {
    const socket = useTls
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] })
      : net.connect(port, '127.0.0.1');
    const closed = new Promise((r) => socket.once('close', () => r(Date.now())));
    let data = '';
    socket.setEncoding('latin1');
    socket.once(useTls ? 'secureConnect' : 'connect', () => socket.write('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n'));
    socket.on('data', (chunk) => {
      data += chunk;
      if (data.includes('{"status":"ok"}')) resolve({ socket, closed });
    });
    socket.on('error', () => {});
    closed.then(() => reject(new Error(`connection closed before the first response: ${JSON.stringify(data)}`)));
  });
}

describe('SIGTERM', () => {
  test('with nothing in flight: exit 0 promptly', async () => {
    const td = await startTenantd({ TENANTD_SHUTDOWN_TIMEOUT_MS: DEADLINE_MS });
    assert.equal((await request(`${td.url}/healthz`)).status, 200);
    assertCleanExit(await sigterm(td), td, 2000);
  });

  test('under load (20 keep-alive loops): no in-flight request fails, exit 0 within the deadline', async () => {
    const td = await startTenantd({ TENANTD_SHUTDOWN_TIMEOUT_MS: DEADLINE_MS });
    await td.waitReady();
    const load = startLoad({ url: td.url, path: '/readyz', concurrency: 20, timeoutMs: 10000 });
    await sleep(1500);
    const stopped = await sigterm(td);
    await sleep(300); // let the loops see the closed listener
    const records = await load.stop();
    assertCleanExit(stopped, td);

    const inFlight = records.filter((r) => r.start < stopped.sent);
    const later = records.filter((r) => r.start >= stopped.sent);
    assert.ok(inFlight.length > 20, `load ran before SIGTERM: ${summarize(inFlight)}`);
    const failed = inFlight.filter((r) => r.status !== 200);
    assert.deepEqual(failed.map((r) => r.error ?? r.status), [],
      `requests sent before SIGTERM all complete with 200 (${summarize(inFlight)})`);
    // A new connection whose handshake the kernel completes in the instant between a worker's last
    // accept() and close() of its listener is reset by the kernel, not refused (Linux cannot stop a
    // listening socket without dropping its queue). That is a refusal the client sees as ECONNRESET on
    // a fresh connection; tolerated here, but only as a rare event — never on a reused connection and
    // never more than twice in a run (a server that dropped new connections would exceed that).
    const raced = later.filter((r) => r.error === 'ECONNRESET' && !r.reusedSocket);
    assert.ok(raced.length <= 2, `at most a couple of connections raced the listener's close (${summarize(later)})`);
    const badLater = later.filter((r) => r.status !== 200 && r.error !== 'ECONNREFUSED' && !raced.includes(r));
    assert.deepEqual(badLater.map((r) => `${r.error ?? r.status}${r.reusedSocket ? ' (reused connection)' : ''}`), [],
      `after SIGTERM: 200 or ECONNREFUSED only (${summarize(later)})`);
  });

  test('slow in-flight requests over HTTP/1.1 and HTTP/2 complete; GOAWAY; new connections refused', async () => {
    const redis = await startScratchRedis();
    const td = await startTenantd({
      REDIS_URL: redis.url, TENANTD_REDIS_TIMEOUT_MS: 8000, TENANTD_SHUTDOWN_TIMEOUT_MS: 6000,
    });
    await td.waitReady();
    const session = await h2connect(td.url);
    const goaway = new Promise((resolve) => session.once('goaway', (code) => resolve({ code, at: Date.now() })));
    // While Redis is paused every /readyz waits for its PING: requests stay in flight.
    assert.equal(await redis.command(['CLIENT', 'PAUSE', '2000', 'ALL']), '+OK');
    const pausedAt = Date.now();
    const http1 = Array.from({ length: 4 }, () => request(`${td.url}/readyz`, { timeoutMs: 10000 }).catch((e) => e));
    const h2 = Array.from({ length: 4 }, () => h2request(session, '/readyz', { timeoutMs: 10000 }).catch((e) => e));
    await sleep(400);
    const sent = Date.now();
    td.proc.kill('SIGTERM');
    await sleep(300);
    const refused = await request(`${td.url}/healthz`, { timeoutMs: 2000 }).then((r) => `status ${r.status}`, (e) => e.code);

    const results = await Promise.all([...http1, ...h2]);
    const answeredAt = Date.now();
    const status = await within(td.exited, 6000 + EXIT_SLACK_MS);
    session.destroy();
    assertCleanExit({ status, elapsed: Date.now() - sent }, td, 6000 + EXIT_SLACK_MS + 2000);

    const outcomes = results.map((r) => (r instanceof Error ? `${r.code ?? r.message}` : r.status));
    assert.deepEqual(outcomes, Array(8).fill(200), 'every in-flight request completes with 200');
    assert.ok(answeredAt - pausedAt >= 1500, 'the requests really were in flight across SIGTERM');
    const away = await within(goaway, 1000);
    assert.ok(away, 'the HTTP/2 connection received GOAWAY');
    assert.ok(away.at >= sent, 'GOAWAY came after SIGTERM');
    assert.equal(refused, 'ECONNREFUSED', 'a new connection after SIGTERM is refused');
  });

  test('idle keep-alive connections (HTTP/1.1, TLS, h2c, h2) do not hold it past the deadline', async () => {
    const td = await startTenantd({ TENANTD_SHUTDOWN_TIMEOUT_MS: DEADLINE_MS });
    const idle = [await openIdleHttp1(td.port), await openIdleHttp1(td.tlsPort, { useTls: true })];
    const sessions = [await h2connect(td.url), await h2connect(td.tlsUrl)];
    const goaways = sessions.map((s) => new Promise((resolve) => s.once('goaway', () => resolve(true))));
    for (const s of sessions) assert.equal((await h2request(s, '/healthz')).status, 200);

    const stopped = await sigterm(td);
    const closedIdle = await Promise.all(idle.map((c) => within(c.closed, 1000)));
    const gotGoaway = await Promise.all(goaways.map((g) => within(g, 1000, false)));
    for (const s of sessions) s.destroy();
    for (const c of idle) c.socket.destroy();
    assertCleanExit(stopped, td);
    assert.ok(closedIdle.every(Boolean), 'the server closed the idle HTTP/1.1 connections');
    assert.deepEqual(gotGoaway, [true, true], 'both HTTP/2 connections received GOAWAY');
  });
});

describe('SIGHUP', () => {
  test('does not stop the server; it keeps serving and still drains on SIGTERM', async () => {
    const td = await startTenantd({ TENANTD_SHUTDOWN_TIMEOUT_MS: DEADLINE_MS });
    td.proc.kill('SIGHUP');
    await sleep(500);
    assert.ok(td.alive(), `tenantd exited on SIGHUP; output:\n${td.formatLogs()}`);
    assert.equal((await request(`${td.url}/healthz`)).status, 200);
    assertCleanExit(await sigterm(td), td, 2000);
  });
});
