// server-resilience.test.mjs — tenantd rides out Postgres and Redis outages without restarting.
//
// tenantd runs against a scratch Postgres or Redis (never the shared stack) while loops of
// concurrent keep-alive GET /readyz run. The dependency is stopped (or frozen / paused) and brought
// back: /readyz must turn into prompt 503 problems naming the dependency as down, tenantd must never
// drop a connection or crash, and it must report ready again within 10 s — the same process.
// Clients that hang up while their query or command is pending must not hurt it either (the ASan
// build reports any use of a request after its client went away).
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import { after, before, describe, test } from 'node:test';

import { findSample, h2connect, parsePrometheus, request, sleep, startScratchPostgres, startScratchRedis, startTenantd, waitFor } from '../lib/harness.mjs';
import { startLoad, summarize } from '../lib/load.mjs';

const QUERY_TIMEOUT_MS = 1000;
const LATENCY_BUDGET_MS = QUERY_TIMEOUT_MS + 1500; // the timeout plus scheduling slack (ASan build)
const SETTLE_MS = 1500;                            // after an outage starts, before every answer must be 503
const RECOVERY_MS = 10000;                         // ready again this soon after the dependency is back
const STABLE_MS = 1000;                            // and answering only 200 for this long
const CONCURRENCY = 8;

async function metricsSamples(td) {
  return parsePrometheus((await request(`${td.url}/metrics`)).body).samples;
}

const inWindow = (records, from, to = Infinity) => records.filter((r) => r.start >= from && r.start < to);

// A 503 /readyz problem with retry-after saying `down` is down and `up` is up.
function assertNotReady(record, down, up) {
  const what = `${record.status} ${JSON.stringify(record.headers)} ${record.body}`;
  assert.equal(record.status, 503, what);
  assert.match(String(record.headers['content-type']), /^application\/problem\+json\b/, what);
  assert.ok(record.headers['retry-after'] !== undefined, `retry-after: ${what}`);
  assert.equal(record.json?.[down], 'down', what);
  assert.equal(record.json?.[up], 'up', what);
}

// True when, for the last windowMs (all after `since`), every answer was 200 and every loop made one.
function recoveredFor(records, since, windowMs) {
  const now = Date.now();
  if (now - windowMs < since) return false;
  const recent = inWindow(records, now - windowMs);
  return recent.length >= CONCURRENCY && recent.every((r) => r.status === 200);
}

// Runs the load through an outage: `breakIt()` then, after `downMs`, `fixIt()`. Returns the
// records and the timestamps of each phase.
async function throughOutage(td, { breakIt, fixIt, downMs = 2500, duringOutage = async () => {} }) {
  const load = startLoad({ url: td.url, path: '/readyz', concurrency: CONCURRENCY, timeoutMs: 10000 });
  try {
    await sleep(1000);
    const t = { broken: Date.now() };
    await breakIt();
    t.brokenDone = Date.now();
    await waitFor(() => inWindow(load.results, t.brokenDone).some((r) => r.status === 503),
      { timeoutMs: LATENCY_BUDGET_MS + 1000, message: 'a 503 from /readyz once the dependency is gone' });
    t.first503 = Date.now();
    await sleep(downMs);
    await duringOutage();
    t.fixed = Date.now();
    await fixIt();
    await waitFor(() => recoveredFor(load.results, t.fixed, STABLE_MS),
      { timeoutMs: RECOVERY_MS + STABLE_MS, intervalMs: 50, message: `/readyz to answer only 200 for ${STABLE_MS} ms` });
    t.recovered = Date.now() - STABLE_MS;
    await sleep(1000);
    t.end = Date.now();
    return { records: await load.stop(), t };
  } finally {
    await load.stop();
  }
}

// The common verdict on a run through an outage.
function assertOutageHandled({ records, t }, { down, up }) {
  const errors = records.filter((r) => r.error);
  assert.deepEqual(errors.map((r) => r.error), [], `no transport errors from tenantd (${summarize(records)})`);
  const before = records.filter((r) => r.end <= t.broken); // answered before the dependency was touched
  assert.ok(before.length > 0 && before.every((r) => r.status === 200), `all 200 before the outage: ${summarize(before)}`);
  const steady = inWindow(records, t.brokenDone + SETTLE_MS, t.fixed);
  assert.ok(steady.length > 0, 'requests were made during the outage');
  for (const r of steady) assertNotReady(r, down, up);
  const slow = records.filter((r) => r.end - r.start > LATENCY_BUDGET_MS);
  assert.deepEqual(slow.map((r) => `${r.status} after ${r.end - r.start} ms`), [],
    `every answer within ${LATENCY_BUDGET_MS} ms`);
  const after = inWindow(records, t.recovered);
  assert.ok(after.length > 0 && after.every((r) => r.status === 200), `all 200 once recovered: ${summarize(after)}`);
  assert.ok(t.recovered - t.fixed <= RECOVERY_MS, `ready again ${t.recovered - t.fixed} ms after the dependency came back`);
}

// Starts `count` GET /readyz requests over HTTP/1.1 and as many over h2c (two sessions) and
// abandons them all after abortAfterMs: sockets destroyed, streams cancelled, sessions torn down.
async function abandonRequests(td, { count = 10, abortAfterMs = 200 } = {}) {
  const h1 = Array.from({ length: count }, () => {
    const req = http.request(`${td.url}/readyz`, { agent: false });
    req.on('error', () => {});
    req.end();
    return req;
  });
  const cancelled = await h2connect(td.url);
  const destroyed = await h2connect(td.url);
  const streams = [cancelled, destroyed].flatMap((session) => Array.from({ length: count / 2 }, () => {
    const stream = session.request({ ':path': '/readyz' });
    stream.on('error', () => {});
    return stream;
  }));
  await sleep(abortAfterMs);
  for (const req of h1) req.destroy();
  for (const stream of streams.slice(0, count / 2)) stream.close(http2.constants.NGHTTP2_CANCEL);
  destroyed.destroy();
  await sleep(50);
  cancelled.close();
}

// After clients vanished mid-request: still running, no sanitizer report, ready again.
async function assertUnharmed(td) {
  assert.ok(td.alive(), `tenantd is still running; output:\n${td.formatLogs()}`);
  td.assertNoSanitizerReports();
  await td.waitReady({ timeoutMs: RECOVERY_MS });
}

describe('Postgres outages', () => {
  let pg;
  let td;

  before(async () => {
    pg = await startScratchPostgres();
    td = await startTenantd({ DATABASE_URL: pg.url, TENANTD_DB_QUERY_TIMEOUT_MS: QUERY_TIMEOUT_MS });
    await td.waitReady();
  });

  after(async () => {
    if (td) assert.equal(await td.stop(), 0, `tenantd exit status; output:\n${td.formatLogs()}`);
  });

  test('Postgres stopped under load → 503s; started again → ready, same process', async () => {
    const pid = td.pid;
    let downSamples;
    const run = await throughOutage(td, {
      breakIt: () => pg.stop(),
      fixIt: () => pg.start(),
      duringOutage: async () => { downSamples = await metricsSamples(td); },
    });
    assertOutageHandled(run, { down: 'postgres', up: 'redis' });
    assert.equal(findSample(downSamples, 'tenantd_db_connections', { state: 'up' })[0]?.value, 0,
      'tenantd_db_connections{state="up"} is 0 while Postgres is down');
    assert.ok(td.alive(), `tenantd is still running; output:\n${td.formatLogs()}`);
    assert.equal(td.pid, pid);
    const upSamples = await metricsSamples(td);
    assert.ok(findSample(upSamples, 'tenantd_db_connections', { state: 'up' })[0]?.value >= 1, 'connections are up again');
  });

  test('clients vanishing while their query hangs (timeouts fire for gone requests) do no harm', async () => {
    pg.freeze();
    try {
      await abandonRequests(td);
      await sleep(QUERY_TIMEOUT_MS + 500);
    } finally {
      pg.thaw();
    }
    await assertUnharmed(td);
  });

  test('Postgres hung (SIGSTOP) → 503s within the query timeout; resumed → ready', async () => {
    const run = await throughOutage(td, {
      breakIt: async () => pg.freeze(),
      fixIt: async () => pg.thaw(),
    });
    assertOutageHandled(run, { down: 'postgres', up: 'redis' });
    assert.ok(td.alive(), `tenantd is still running; output:\n${td.formatLogs()}`);
  });
});

describe('Redis outages', () => {
  let redis;
  let td;

  before(async () => {
    redis = await startScratchRedis();
    td = await startTenantd({ REDIS_URL: redis.url, TENANTD_REDIS_TIMEOUT_MS: QUERY_TIMEOUT_MS });
    await td.waitReady();
  });

  after(async () => {
    if (td) assert.equal(await td.stop(), 0, `tenantd exit status; output:\n${td.formatLogs()}`);
  });

  test('Redis stopped under load → 503s; started again → ready, same process', async () => {
    const pid = td.pid;
    let downSamples;
    const run = await throughOutage(td, {
      breakIt: () => redis.stop(),
      fixIt: () => redis.start(),
      duringOutage: async () => { downSamples = await metricsSamples(td); },
    });
    assertOutageHandled(run, { down: 'redis', up: 'postgres' });
    assert.deepEqual(findSample(downSamples, 'tenantd_redis_up').map((s) => s.value), [0], 'tenantd_redis_up is 0 while down');
    assert.ok(td.alive(), `tenantd is still running; output:\n${td.formatLogs()}`);
    assert.equal(td.pid, pid);
    assert.deepEqual(findSample(await metricsSamples(td), 'tenantd_redis_up').map((s) => s.value), [1], 'tenantd_redis_up is 1 again');
  });

  test('clients vanishing while Redis is paused (timeouts, then late replies) do no harm', async () => {
    assert.equal(await redis.command(['CLIENT', 'PAUSE', String(QUERY_TIMEOUT_MS + 500), 'ALL']), '+OK');
    await abandonRequests(td);
    await sleep(QUERY_TIMEOUT_MS + 1000);
    await assertUnharmed(td);
  });

  test('Redis not answering (CLIENT PAUSE) → 503s within the command timeout; then ready', async () => {
    const pauseMs = 4000;
    const run = await throughOutage(td, {
      breakIt: async () => assert.equal(await redis.command(['CLIENT', 'PAUSE', String(pauseMs), 'ALL']), '+OK'),
      fixIt: async () => assert.equal(await redis.command(['CLIENT', 'UNPAUSE']), '+OK'),
      downMs: 1500,
    });
    assertOutageHandled(run, { down: 'redis', up: 'postgres' });
    assert.ok(td.alive(), `tenantd is still running; output:\n${td.formatLogs()}`);
  });
});
