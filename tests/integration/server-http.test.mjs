// server-http.test.mjs — conventions every response follows, and the HTTP limits (CONTRACT.md §2).
//
// problem+json errors (404, 405, 413, 414), x-request-id echo and sanitising, content-length on
// fixed responses, oversized bodies and headers over HTTP/1.1 and HTTP/2 (the server must survive
// them), idle and slow connections, and many concurrent streams on one HTTP/2 connection. tenantd runs with
// TENANTD_MAX_BODY_BYTES=1024 so the body limit is cheap to cross.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';

import { h2connect, h2request, rawHttp, request, startTenantd, within } from '../lib/harness.mjs';

const MAX_BODY = 1024;
const GENERATED_ID = /^[0-9a-f]{32}$/;
const PROBLEM_MEMBERS = ['type', 'title', 'status', 'detail', 'request_id'];

let td;

before(async () => {
  td = await startTenantd({ TENANTD_MAX_BODY_BYTES: MAX_BODY });
});

after(async () => {
  if (td) assert.equal(await td.stop(), 0, `tenantd exit status after SIGTERM; output:\n${td.formatLogs()}`);
});

// The server answers /healthz: it survived whatever the test did.
async function assertServing() {
  assert.ok(td.alive(), `tenantd exited; output:\n${td.formatLogs()}`);
  const res = await request(`${td.url}/healthz`);
  assert.equal(res.status, 200);
}

// A problem+json response of `status` whose request_id is the x-request-id header.
function assertProblem(res, status) {
  assert.equal(res.status, status, `status; body: ${res.body}`);
  assert.match(String(res.headers['content-type']), /^application\/problem\+json\b/);
  assert.ok(res.json, `the body is JSON: ${res.body}`);
  for (const member of PROBLEM_MEMBERS) assert.ok(Object.hasOwn(res.json, member), `problem member ${member}: ${res.body}`);
  assert.equal(res.json.status, status);
  assert.equal(typeof res.json.type, 'string');
  assert.equal(typeof res.json.title, 'string');
  assert.equal(typeof res.json.detail, 'string');
  assert.equal(res.json.request_id, res.headers['x-request-id'], 'request_id is the x-request-id header');
}

// A fixed-size HTTP/1.1 response: content-length matches the body, no chunked encoding.
function assertContentLength(res) {
  assert.equal(res.headers['transfer-encoding'], undefined, 'no transfer-encoding');
  assert.ok(res.headers['content-length'] !== undefined, 'content-length is present');
  assert.equal(Number(res.headers['content-length']), res.bodyBytes, 'content-length equals the body size');
}

const oversizedBody = () => JSON.stringify({ pad: 'x'.repeat(MAX_BODY * 2) });

describe('problem+json errors', () => {
  test('unknown path → 404', async () => {
    const res = await request(`${td.url}/no/such/thing`);
    assertProblem(res, 404);
    assertContentLength(res);
  });

  test('unknown path over h2c → 404 problem as well', async () => {
    assertProblem(await request(`${td.url}/no/such/thing`, { http2: 'h2c' }), 404);
  });

  test('POST /healthz → 405 with allow: GET, HEAD', async () => {
    const res = await request(`${td.url}/healthz`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assertProblem(res, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
    assertContentLength(res);
  });

  test('DELETE /readyz → 405 with allow', async () => {
    const res = await request(`${td.url}/readyz`, { method: 'DELETE' });
    assertProblem(res, 405);
    assert.equal(res.headers.allow, 'GET, HEAD');
  });

  test(`a body over TENANTD_MAX_BODY_BYTES (${MAX_BODY}) with content-length → 413`, async () => {
    const res = await request(`${td.url}/healthz`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: oversizedBody() });
    assertProblem(res, 413);
    assertContentLength(res);
    await assertServing();
  });

  test('a chunked body over the limit → 413', async () => {
    const res = await request(`${td.url}/healthz`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, body: oversizedBody(), chunked: 256,
    });
    assertProblem(res, 413);
    assertContentLength(res);
    await assertServing();
  });

  test('a body over the limit over h2c → 413 or a stream reset, and the server stays up', async () => {
    const session = await h2connect(td.url);
    try {
      const outcome = await h2request(session, '/healthz', {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: oversizedBody(),
      }).then((res) => ({ res }), (err) => ({ err }));
      if (outcome.res) assertProblem(outcome.res, 413);
      else assert.ok(outcome.err.rstCode > 0 || outcome.err.code, `a stream reset: ${outcome.err.message}`);
    } finally {
      session.close();
    }
    await assertServing();
  });

  test('a query string up to 16 KiB is accepted', async () => {
    const res = await request(`${td.url}/healthz?q=${'a'.repeat(16 * 1024 - 2)}`);
    assert.equal(res.status, 200, `body: ${res.body}`);
  });

  test('a query string over 16 KiB → 414', async () => {
    const res = await request(`${td.url}/healthz?q=${'a'.repeat(16 * 1024 + 10)}`);
    assertProblem(res, 414);
    await assertServing();
  });
});

describe('x-request-id', () => {
  const echoed = ['abc-123_X.y:z', 'a', 'r'.repeat(128), '0123456789abcdef0123456789abcdef'];
  for (const id of echoed) {
    test(`a sane id is echoed (${id.length} chars)`, async () => {
      const res = await request(`${td.url}/healthz`, { headers: { 'x-request-id': id } });
      assert.equal(res.headers['x-request-id'], id);
    });
  }

  const replaced = [
    { why: 'over 128 characters', id: 'r'.repeat(129) },
    { why: 'a space', id: 'abc def' },
    { why: 'a slash', id: 'a/b' },
    { why: 'markup', id: '<script>alert(1)</script>' },
    { why: 'a quote', id: 'a"b' },
    { why: 'a comma', id: 'a,b' },
  ];
  for (const { why, id } of replaced) {
    test(`an id with ${why} is replaced by a generated one`, async () => {
      const res = await request(`${td.url}/healthz`, { headers: { 'x-request-id': id } });
      assert.match(String(res.headers['x-request-id']), GENERATED_ID);
    });
  }

  test('an id with non-ASCII bytes (raw request) is replaced', async () => {
    const raw = 'GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-request-id: abc\xe9\xff\r\n\r\n';
    const { data } = await rawHttp(td.port, Buffer.from(raw, 'latin1'));
    const m = /\r\nx-request-id: ([^\r\n]*)\r\n/i.exec(data);
    assert.ok(m, `a response with x-request-id: ${JSON.stringify(data.slice(0, 300))}`);
    assert.match(m[1], GENERATED_ID);
  });

  test('without an inbound id every response gets a distinct generated one', async () => {
    const ids = [];
    for (let i = 0; i < 3; i++) ids.push((await request(`${td.url}/healthz`)).headers['x-request-id']);
    for (const id of ids) assert.match(String(id), GENERATED_ID);
    assert.equal(new Set(ids).size, 3);
  });

  test('an empty id is replaced', async () => {
    const raw = 'GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nx-request-id: \r\n\r\n';
    const { data } = await rawHttp(td.port, raw);
    const m = /\r\nx-request-id: ([^\r\n]*)\r\n/i.exec(data);
    assert.ok(m, `a response with x-request-id: ${JSON.stringify(data.slice(0, 300))}`);
    assert.match(m[1], GENERATED_ID);
  });

  test('problem bodies carry the echoed id', async () => {
    const res = await request(`${td.url}/nowhere`, { headers: { 'x-request-id': 'trace-42' } });
    assert.equal(res.headers['x-request-id'], 'trace-42');
    assert.equal(res.json?.request_id, 'trace-42');
  });

  test('problem bodies carry the generated id that replaced a bad one', async () => {
    const res = await request(`${td.url}/nowhere`, { headers: { 'x-request-id': 'x'.repeat(300) } });
    assert.match(String(res.headers['x-request-id']), GENERATED_ID);
    assert.equal(res.json?.request_id, res.headers['x-request-id']);
  });

  for (const mode of ['h2c', 'tls']) {
    test(`echo and replacement over HTTP/2 (${mode})`, async () => {
      const base = mode === 'tls' ? td.tlsUrl : td.url;
      const good = await request(`${base}/healthz`, { http2: mode, headers: { 'x-request-id': 'h2-trace.1' } });
      assert.equal(good.headers['x-request-id'], 'h2-trace.1');
      const bad = await request(`${base}/healthz`, { http2: mode, headers: { 'x-request-id': 'bad id!' } });
      assert.match(String(bad.headers['x-request-id']), GENERATED_ID);
    });
  }
});

describe('HTTP/1.1 pipelining', () => {
  test('two requests in one write get two responses, in order, each with its own request id', async () => {
    const raw = 'GET /healthz HTTP/1.1\r\nHost: t\r\nx-request-id: first\r\n\r\n' +
      'GET /nope HTTP/1.1\r\nHost: t\r\nx-request-id: second\r\nConnection: close\r\n\r\n';
    const { data } = await rawHttp(td.port, raw);
    const heads = [...data.matchAll(/HTTP\/1\.1 (\d{3}) [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n/g)]
      .map((m) => ({ status: Number(m[1]), id: /^x-request-id: (.*)$/im.exec(m[2])?.[1] }));
    assert.deepEqual(heads, [{ status: 200, id: 'first' }, { status: 404, id: 'second' }], JSON.stringify(data));
  });
});

describe('content-length on fixed responses (HTTP/1.1)', () => {
  for (const path of ['/healthz', '/readyz', '/metrics', '/no/such/path']) {
    test(`GET ${path}`, async () => {
      assertContentLength(await request(`${td.url}${path}`));
    });
  }

  test('over a raw HTTP/1.1 connection the /healthz head has content-length and no chunked coding', async () => {
    const { data } = await rawHttp(td.port, 'GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n');
    const head = data.split('\r\n\r\n')[0];
    assert.match(head, /^HTTP\/1\.1 200 /);
    assert.match(head, /\r\ncontent-length: 15\r\n/i);
    assert.doesNotMatch(head, /transfer-encoding/i);
  });
});

describe('oversized headers do not hurt the server', () => {
  // h2o 2.2 reads at most H2O_MAX_REQLEN (8 KiB + 4 KiB per header slot, about 408 KiB) of
  // request head and 100 header fields; both tests go past those limits.
  test('one 512 KiB header over HTTP/1.1 → 400/431 or a closed connection', async () => {
    const raw = `GET /healthz HTTP/1.1\r\nHost: t\r\nx-big: ${'b'.repeat(512 * 1024)}\r\nConnection: close\r\n\r\n`;
    const { data } = await rawHttp(td.port, raw);
    if (data !== '') assert.match(data, /^HTTP\/1\.1 (400|431) /, JSON.stringify(data.slice(0, 200)));
    await assertServing();
  });

  test('300 headers over HTTP/1.1 → 400/431 or a closed connection', async () => {
    const many = Array.from({ length: 300 }, (_, i) => `x-h${i}: v\r\n`).join('');
    const { data } = await rawHttp(td.port, `GET /healthz HTTP/1.1\r\nHost: t\r\n${many}Connection: close\r\n\r\n`);
    if (data !== '') assert.match(data, /^HTTP\/1\.1 (400|431) /, JSON.stringify(data.slice(0, 200)));
    await assertServing();
  });

  test('a 48 KiB header over h2c → any answer (error, reset, GOAWAY); the server survives', async () => {
    const session = await h2connect(td.url);
    try {
      const outcome = await h2request(session, '/healthz', { headers: { 'x-big': 'b'.repeat(48 * 1024) } })
        .then((res) => res.status, (err) => err.code ?? 'error');
      if (typeof outcome === 'number') assert.ok([200, 400, 431].includes(outcome), `status ${outcome}`);
    } finally {
      session.destroy();
    }
    await assertServing();
  });

  test('plaintext HTTP sent to the TLS port and a TLS hello to the cleartext port are survived', async () => {
    await rawHttp(td.tlsPort, 'GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n', { timeoutMs: 2000 });
    await rawHttp(td.port, Buffer.from('160301020001000001fc0303', 'hex'), { timeoutMs: 2000 });
    await assertServing();
    assert.equal((await request(`${td.tlsUrl}/healthz`, { http2: 'tls' })).status, 200);
  });

  test('a malformed request line → 400 problem, server survives', async () => {
    const { data } = await rawHttp(td.port, 'GARBAGE\r\n\r\n');
    if (data !== '') assert.match(data, /^HTTP\/1\.[01] 400 /, JSON.stringify(data.slice(0, 200)));
    await assertServing();
  });
});

describe('idle and slow connections are closed at TENANTD_IDLE_TIMEOUT_MS', () => {
  const IDLE_MS = 1000;
  const SLACK_MS = 1500;
  let quick;

  before(async () => {
    quick = await startTenantd({ TENANTD_IDLE_TIMEOUT_MS: IDLE_MS });
  });

  after(async () => {
    if (quick) assert.equal(await quick.stop(), 0);
  });

  // Sends payload on a fresh connection and resolves how long the server took to close it.
  async function closedAfter(payload) {
    const started = Date.now();
    const { closed } = await rawHttp(quick.port, payload, { timeoutMs: IDLE_MS + SLACK_MS + 1000 });
    return closed ? Date.now() - started : null;
  }

  test('an idle HTTP/1.1 keep-alive connection', async () => {
    const ms = await closedAfter('GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n');
    assert.ok(ms !== null && ms <= IDLE_MS + SLACK_MS, `closed after ${ms} ms (null: still open)`);
  });

  test('a request head that never ends (slowloris)', async () => {
    const ms = await closedAfter('GET /healthz HTTP/1.1\r\nHost: t\r\nx-slow: 1\r\n');
    assert.ok(ms !== null && ms <= IDLE_MS + SLACK_MS, `closed after ${ms} ms (null: still open)`);
  });

  test('a connection that never sends anything', async () => {
    const ms = await closedAfter('');
    assert.ok(ms !== null && ms <= IDLE_MS + SLACK_MS, `closed after ${ms} ms (null: still open)`);
  });

  test('an idle h2c connection gets GOAWAY or is closed', async () => {
    const session = await h2connect(quick.url);
    const started = Date.now();
    assert.equal((await h2request(session, '/healthz')).status, 200);
    const ended = await within(new Promise((resolve) => {
      session.once('goaway', () => resolve('goaway'));
      session.once('close', () => resolve('close'));
    }), IDLE_MS + SLACK_MS + 1000);
    session.destroy();
    assert.ok(ended, 'the idle HTTP/2 session was ended by the server');
    assert.ok(Date.now() - started <= IDLE_MS + SLACK_MS + 200, `ended after ${Date.now() - started} ms`);
  });

  test('the server still serves afterwards', async () => {
    assert.equal((await request(`${quick.url}/healthz`)).status, 200);
  });
});

describe('HTTP/2 concurrent streams', () => {
  before(async () => {
    await td.waitReady();
  });

  test('the server advertises SETTINGS_MAX_CONCURRENT_STREAMS = 100 by default', async () => {
    const session = await h2connect(td.url);
    try {
      await new Promise((resolve) => (session.remoteSettings ? resolve() : session.once('remoteSettings', resolve)));
      assert.equal(session.remoteSettings.maxConcurrentStreams, 100);
    } finally {
      session.close();
    }
  });

  test('with TENANTD_H2_MAX_STREAMS=10, 200 concurrent requests on one connection still all complete', async () => {
    // h2o 2.2 queues the streams over its per-connection cap; they must all be answered.
    const small = await startTenantd({ TENANTD_H2_MAX_STREAMS: 10 });
    await small.waitReady();
    const session = await h2connect(small.url);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 200 }, (_, i) => h2request(session, i % 2 ? '/healthz' : '/readyz')),
      );
      const failures = results.filter((r) => r.status === 'rejected' || r.value.status !== 200);
      assert.equal(failures.length, 0, `failed: ${JSON.stringify(failures.slice(0, 3).map((f) => f.reason?.message ?? f.value?.status))}`);
    } finally {
      session.close();
    }
    assert.equal(await small.stop(), 0);
  });

  test('200 concurrent requests on one h2c connection all complete', async () => {
    const session = await h2connect(td.url);
    try {
      const results = await Promise.allSettled(
        Array.from({ length: 200 }, (_, i) => h2request(session, i % 2 ? '/healthz' : '/readyz')),
      );
      const failures = results.filter((r) => r.status === 'rejected' || r.value.status !== 200);
      assert.equal(failures.length, 0, `failed: ${JSON.stringify(failures.slice(0, 3).map((f) => f.reason?.message ?? f.value?.status))}`);
    } finally {
      session.close();
    }
    await assertServing();
  });
});
