// server-ops.test.mjs — the operations endpoints and the access log (CONTRACT.md §9, §2).
//
// One tenantd against the project-local Postgres and Redis: /healthz, /readyz and /metrics over
// HTTP/1.1, h2c (prior knowledge) and TLS (ALPN h2 and http/1.1); the Prometheus exposition is
// parsed strictly; every request leaves one JSON access-log line on stdout.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';

import { findSample, parsePrometheus, request, startTenantd, waitFor } from '../lib/harness.mjs';

let td;

before(async () => {
  td = await startTenantd();
  await td.waitReady();
});

after(async () => {
  if (td) assert.equal(await td.stop(), 0, `tenantd exit status after SIGTERM; output:\n${td.formatLogs()}`);
});

const uniqueId = (prefix) => `${prefix}-${randomBytes(6).toString('hex')}`;

// The URL of path on the cleartext or the TLS listener, per transport.
function urlFor(transport, path) {
  return (transport === 'tls' || transport === 'https' ? td.tlsUrl : td.url) + path;
}

const TRANSPORTS = [
  { name: 'HTTP/1.1 cleartext', transport: 'http1', opts: {}, alpn: null, version: '1.1' },
  { name: 'HTTP/1.1 over TLS (ALPN http/1.1)', transport: 'https', opts: {}, alpn: 'http/1.1', version: '1.1' },
  { name: 'h2c (prior knowledge)', transport: 'h2c', opts: { http2: 'h2c' }, alpn: null, version: '2.0' },
  { name: 'HTTP/2 over TLS (ALPN h2)', transport: 'tls', opts: { http2: 'tls' }, alpn: 'h2', version: '2.0' },
];

describe('/healthz', () => {
  for (const { name, transport, opts, alpn, version } of TRANSPORTS) {
    test(`200 {"status":"ok"} over ${name}`, async () => {
      const res = await request(urlFor(transport, '/healthz'), opts);
      assert.equal(res.status, 200);
      assert.equal(res.httpVersion, version);
      if (alpn) assert.equal(res.alpn, alpn, 'negotiated ALPN protocol');
      assert.match(String(res.headers['content-type']), /^application\/json\b/);
      assert.deepEqual(res.json, { status: 'ok' });
    });
  }

  test('HEAD answers 200 without a body', async () => {
    const res = await request(`${td.url}/healthz`, { method: 'HEAD' });
    assert.equal(res.status, 200);
    assert.equal(res.bodyBytes, 0);
  });
});

describe('/readyz with Postgres and Redis reachable', () => {
  for (const { name, transport, opts } of TRANSPORTS) {
    test(`200 ready, postgres up, redis up over ${name}`, async () => {
      const res = await request(urlFor(transport, '/readyz'), opts);
      assert.equal(res.status, 200, `body: ${res.body}`);
      assert.match(String(res.headers['content-type']), /^application\/json\b/);
      assert.equal(res.json?.status, 'ready', `body: ${res.body}`);
      assert.equal(res.json.postgres, 'up');
      assert.equal(res.json.redis, 'up');
    });
  }
});

async function scrape() {
  const res = await request(`${td.url}/metrics`);
  assert.equal(res.status, 200);
  return res;
}

function healthzCount(samples) {
  const found = findSample(samples, 'tenantd_http_requests_total', { route: '/healthz', method: 'GET', status: '200' });
  assert.equal(found.length, 1, 'one tenantd_http_requests_total series for GET /healthz 200');
  return found[0].value;
}

// Buckets are cumulative: non-decreasing in le, ending with +Inf equal to _count.
function assertHistogram(samples, name) {
  const buckets = findSample(samples, `${name}_bucket`).filter((s) => Object.keys(s.labels).length === 1);
  assert.ok(buckets.length >= 2, `${name} has buckets`);
  const les = buckets.map((b) => (b.labels.le === '+Inf' ? Infinity : Number(b.labels.le)));
  assert.ok(les.every((le) => !Number.isNaN(le)), 'every le is a number or +Inf');
  assert.equal(les.at(-1), Infinity, 'the last bucket is le="+Inf"');
  for (let i = 1; i < buckets.length; i++) {
    assert.ok(les[i] > les[i - 1], 'le values increase');
    assert.ok(buckets[i].value >= buckets[i - 1].value, 'bucket counts are cumulative');
  }
  const [count] = findSample(samples, `${name}_count`);
  const [sum] = findSample(samples, `${name}_sum`);
  assert.ok(count && sum, `${name}_count and ${name}_sum are present`);
  assert.equal(buckets.at(-1).value, count.value, '+Inf bucket equals _count');
  assert.ok(sum.value >= 0);
}

describe('/metrics', () => {
  test('200 text/plain; version=0.0.4 and every line is valid Prometheus text', async () => {
    const res = await scrape();
    const type = String(res.headers['content-type']);
    assert.match(type, /^text\/plain\b/);
    assert.match(type, /version=0\.0\.4/);
    assert.doesNotThrow(() => parsePrometheus(res.body), 'the exposition parses');
  });

  test('has the required series', async () => {
    await request(`${td.url}/healthz`);
    const { families, samples } = parsePrometheus((await scrape()).body);
    assert.equal(families.get('tenantd_http_requests_total')?.type, 'counter');
    assert.equal(families.get('tenantd_http_request_duration_seconds')?.type, 'histogram');
    assert.ok(healthzCount(samples) >= 1);
    assertHistogram(samples, 'tenantd_http_request_duration_seconds');
    for (const state of ['up', 'down']) {
      assert.equal(findSample(samples, 'tenantd_db_connections', { state }).length, 1, `tenantd_db_connections{state="${state}"}`);
    }
    assert.ok(findSample(samples, 'tenantd_db_connections', { state: 'up' })[0].value >= 1, 'a Postgres connection is up');
    assert.equal(findSample(samples, 'tenantd_db_queue_depth').length, 1, 'tenantd_db_queue_depth');
    assert.deepEqual(findSample(samples, 'tenantd_redis_up').map((s) => s.value), [1], 'tenantd_redis_up is 1');
    const open = findSample(samples, 'tenantd_open_connections');
    assert.equal(open.length, 1, 'tenantd_open_connections');
    assert.ok(open[0].value >= 1, 'the scrape itself is an open connection');
  });

  test('the request counter is process-wide: three /healthz calls add exactly three', async () => {
    const before = healthzCount(parsePrometheus((await scrape()).body).samples);
    for (let i = 0; i < 3; i++) await request(`${td.url}/healthz`);
    const delta = await waitFor(async () => {
      const d = healthzCount(parsePrometheus((await scrape()).body).samples) - before;
      return d >= 3 ? d : false;
    }, { timeoutMs: 3000, message: 'the /healthz counter to grow by 3' });
    assert.equal(delta, 3);
  });

  test('unknown paths share one bounded route label instead of one series per path', async () => {
    const paths = [1, 2, 3].map(() => `/${uniqueId('nowhere')}`);
    for (const path of paths) assert.equal((await request(`${td.url}${path}`)).status, 404);
    const res = await scrape();
    for (const path of paths) assert.ok(!res.body.includes(path.slice(1)), `the metrics mention ${path}`);
    const { samples } = parsePrometheus(res.body);
    assert.ok(findSample(samples, 'tenantd_http_requests_total', { status: '404' }).length >= 1, 'the 404s are counted');
  });

  test('tenantd_open_connections falls back once clients disconnect', async () => {
    const openNow = async () => findSample(parsePrometheus((await scrape()).body).samples, 'tenantd_open_connections')[0].value;
    const baseline = await openNow();
    const agent = new http.Agent({ keepAlive: true, maxSockets: 10 });
    await Promise.all(Array.from({ length: 10 }, () => request(`${td.url}/healthz`, { agent })));
    const busy = await openNow();
    agent.destroy();
    assert.ok(busy >= baseline + 10 - 1, `10 keep-alive connections are counted (baseline ${baseline}, now ${busy})`);
    await waitFor(async () => (await openNow()) <= baseline, { timeoutMs: 3000, message: `the gauge to return to ${baseline}` });
  });

  test('over HTTP/2 as well (h2c)', async () => {
    const res = await request(`${td.url}/metrics`, { http2: 'h2c' });
    assert.equal(res.status, 200);
    assert.doesNotThrow(() => parsePrometheus(res.body));
  });
});

// The parsed access-log line of the request with this id, waiting until it is written.
async function accessLine(requestId) {
  const line = await td.waitForLog((l) => l.includes(requestId) && l.includes('"status"'), { timeoutMs: 5000 });
  return JSON.parse(line);
}

describe('access log', () => {
  test('one JSON line per request with request_id, method, path, status, duration_ms', async () => {
    const id = uniqueId('ops-access');
    await request(`${td.url}/healthz`, { headers: { 'x-request-id': id } });
    const entry = await accessLine(id);
    assert.equal(entry.request_id, id);
    assert.equal(entry.method, 'GET');
    assert.equal(entry.path, '/healthz');
    assert.equal(entry.status, 200);
    assert.equal(typeof entry.duration_ms, 'number');
    assert.ok(entry.duration_ms >= 0);
    const lines = td.stdoutLines().filter((l) => l.includes(id));
    assert.equal(lines.length, 1, `exactly one stdout line carries the request id: ${JSON.stringify(lines)}`);
  });

  test('errors and HTTP/2 requests are logged too', async () => {
    const id404 = uniqueId('ops-404');
    const idH2 = uniqueId('ops-h2');
    await request(`${td.url}/no/such/path`, { headers: { 'x-request-id': id404 } });
    await request(`${td.url}/healthz`, { http2: 'h2c', headers: { 'x-request-id': idH2 } });
    const e404 = await accessLine(id404);
    assert.equal(e404.status, 404);
    assert.equal(e404.path, '/no/such/path');
    const eH2 = await accessLine(idH2);
    assert.equal(eH2.status, 200);
    assert.equal(eH2.method, 'GET');
  });

  test('every stdout line is a JSON object', () => {
    const bad = td.stdoutLines().filter((line) => {
      try {
        const v = JSON.parse(line);
        return v === null || typeof v !== 'object' || Array.isArray(v);
      } catch {
        return true;
      }
    });
    assert.deepEqual(bad, []);
  });
});
