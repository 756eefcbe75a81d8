// harness.mjs — start the real tenantd on free ports and talk to it over HTTP/1.1, h2c and TLS.
//
// Test files import everything from here: the process helpers (startTenantd, runTenantd), the
// request helpers (request, h2connect, h2request, rawHttp), small utilities (freePort, sleep,
// waitFor) and, re-exported, the scratch services (startScratchPostgres, startScratchRedis) and
// the Prometheus text parser. The stack environment comes from `./dev test` (`eval "$(./dev env)"`
// by hand); nothing started here outlives the test file (see cleanup.mjs).
import { spawn } from 'node:child_process';
import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import net from 'node:net';

import { onCleanup } from './cleanup.mjs';
import { freePort, sleep, waitFor, within } from './util.mjs';

export { freePort, sleep, waitFor, within } from './util.mjs';
export { startScratchPostgres, startScratchRedis, redisCommand } from './scratch.mjs';
export { parsePrometheus, findSample } from './prometheus.mjs';
import { parsePrometheus as parseMetrics, findSample as findMetric } from './prometheus.mjs';

const READY_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 30000;
const REQUEST_TIMEOUT_MS = 10000;
const SANITIZER_MARKERS = [/ERROR: AddressSanitizer/, /ERROR: LeakSanitizer/, /runtime error:/];

// ---------------------------------------------------------------------------------------------
// Utilities
// ---------------------------------------------------------------------------------------------

// The value of a stack environment variable; throws with a hint when it is not set.
export function requireEnv(name) {
  const value = process.env[name];
  if (value === undefined || value === '') {
    throw new Error(`${name} is not set: run the tests through ./dev test, or eval "$(./dev env)" first`);
  }
  return value;
}

// process.env with overrides applied: a value of undefined or null removes the variable.
function mergeEnv(...layers) {
  const env = { ...process.env };
  for (const layer of layers) {
    for (const [name, value] of Object.entries(layer)) {
      if (value === undefined || value === null) delete env[name];
      else env[name] = String(value);
    }
  }
  return env;
}

// Collects a stream's output as lines; onLine is called for each complete line.
function collectLines(stream, onLine) {
  let pending = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk) => {
    pending += chunk;
    const parts = pending.split('\n');
    pending = parts.pop();
    for (const line of parts) onLine(line);
  });
  stream.on('end', () => {
    if (pending !== '') onLine(pending);
    pending = '';
  });
}

// ---------------------------------------------------------------------------------------------
// tenantd processes
// ---------------------------------------------------------------------------------------------

// Spawns TENANTD_BIN and records its output; the returned handle is the basis of startTenantd
// and runTenantd.
function spawnTenantd(env) {
  const bin = requireEnv('TENANTD_BIN');
  const proc = spawn(bin, [], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = [];
  let exitInfo = null;
  let spawnError = null;
  const streamsDone = Promise.all(
    ['stdout', 'stderr'].map((name) => new Promise((resolve) => {
      collectLines(proc[name], (line) => lines.push({ stream: name, line }));
      proc[name].on('close', resolve);
    })),
  );
  const exited = new Promise((resolve) => {
    proc.on('error', (err) => {
      spawnError = err;
      exitInfo = { code: null, signal: null };
      resolve(exitInfo);
    });
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      streamsDone.then(() => resolve(exitInfo));
    });
  });
  return {
    proc,
    lines,
    exited,
    exitInfo: () => exitInfo,
    spawnError: () => spawnError,
  };
}

// The exit code, or the signal name when the process was killed by one.
function exitStatus({ code, signal }) {
  return code ?? signal;
}

// Lines of the collected output that are sanitizer (ASan/UBSan) reports.
export function sanitizerReports(lines) {
  return lines.filter((line) => SANITIZER_MARKERS.some((re) => re.test(line)));
}

function formatLogs(lines, max = 60) {
  const tail = lines.slice(-max).map((l) => `  [${l.stream}] ${l.line}`);
  return tail.length ? tail.join('\n') : '  (no output)';
}

// Runs tenantd with the given environment overrides and waits for it to exit by itself (config
// errors); kills it after timeoutMs. Resolves {status, stdout: [lines], stderr: [lines], timedOut}.
export async function runTenantd(envOverrides = {}, { timeoutMs = 10000 } = {}) {
  const child = spawnTenantd(mergeEnv(await defaultListenEnv(), envOverrides));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.proc.kill('SIGKILL');
  }, timeoutMs);
  const info = await child.exited;
  clearTimeout(timer);
  if (child.spawnError()) throw child.spawnError();
  const pick = (stream) => child.lines.filter((l) => l.stream === stream).map((l) => l.line);
  return { status: exitStatus(info), stdout: pick('stdout'), stderr: pick('stderr'), timedOut };
}

// Two distinct free ports for the cleartext and TLS listeners, and two worker threads.
async function defaultListenEnv() {
  const port = await freePort();
  let tlsPort = await freePort();
  while (tlsPort === port) tlsPort = await freePort();
  return {
    TENANTD_LISTEN: `127.0.0.1:${port}`,
    TENANTD_TLS_LISTEN: `127.0.0.1:${tlsPort}`,
    TENANTD_THREADS: '2',
  };
}

// Parses "host:port" of a listen variable; null for an empty (disabled) one.
function listenPort(value) {
  if (!value) return null;
  const m = /:(\d+)$/.exec(value);
  return m ? Number(m[1]) : null;
}

async function healthzAnswers(url) {
  try {
    const res = await request(`${url}/healthz`, { timeoutMs: 1000 });
    return res.status === 200;
  } catch {
    return false;
  }
}

// Waits until GET /healthz answers 200, the process exits, or the deadline passes.
async function waitUntilServing(child, url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitInfo()) {
      const why = child.spawnError() ? child.spawnError().message : `exit status ${exitStatus(child.exitInfo())}`;
      throw new Error(`tenantd exited during start-up (${why}); output:\n${formatLogs(child.lines)}`);
    }
    if (await healthzAnswers(url)) return;
    await sleep(100);
  }
  throw new Error(`tenantd did not answer GET /healthz within ${timeoutMs} ms; output:\n${formatLogs(child.lines)}`);
}

// Starts tenantd on free ports (cleartext and TLS) with the stack environment plus envOverrides
// (a value of undefined/null unsets a variable) and waits until /healthz answers. Returns
// {url, tlsUrl, h2cUrl, port, tlsPort, proc, logs(), stdoutLines(), stderrLines(), waitForLog(),
// waitReady(), exited, stop(signal), kill()}. /healthz answering does not mean Postgres and Redis
// are connected yet: tests that need them call waitReady(). The process is killed when the test
// file ends; its output must not contain sanitizer reports (checked then, and by stop()).
export async function startTenantd(envOverrides = {}, { readyTimeoutMs = READY_TIMEOUT_MS } = {}) {
  const env = mergeEnv(await defaultListenEnv(), envOverrides);
  const port = listenPort(env.TENANTD_LISTEN);
  const tlsPort = listenPort(env.TENANTD_TLS_LISTEN);
  const url = `http://127.0.0.1:${port}`;
  const child = spawnTenantd(env);
  const handle = makeHandle(child, { url, port, tlsPort });
  const unregister = onCleanup({
    name: `tenantd pid ${child.proc.pid}`,
    run: async () => {
      await handle.kill();
      handle.assertNoSanitizerReports();
    },
    runSync: () => child.proc.kill('SIGKILL'),
  });
  handle.unregisterCleanup = unregister;
  try {
    await waitUntilServing(child, url, readyTimeoutMs);
  } catch (err) {
    await handle.kill();
    unregister();
    throw err;
  }
  return handle;
}

async function waitReadyStreak(url, timeoutMs, streak) {
  let inARow = 0;
  await waitFor(async () => {
    const ok = (await request(`${url}/readyz`, { timeoutMs: 3000 }).catch(() => null))?.status === 200;
    inARow = ok ? inARow + 1 : 0;
    return inARow >= streak;
  }, { timeoutMs, intervalMs: 20, message: `/readyz to answer 200 ${streak} times in a row` });
}

function makeHandle(child, { url, port, tlsPort }) {
  const lines = child.lines;
  const pick = (stream) => lines.filter((l) => l.stream === stream).map((l) => l.line);
  const handle = {
    url,
    h2cUrl: url,
    tlsUrl: tlsPort ? `https://127.0.0.1:${tlsPort}` : null,
    port,
    tlsPort,
    proc: child.proc,
    pid: child.proc.pid,
    exited: child.exited.then(exitStatus),
    logs: () => lines.map((l) => l.line),
    stdoutLines: () => pick('stdout'),
    stderrLines: () => pick('stderr'),
    formatLogs: (max) => formatLogs(lines, max),
    alive: () => child.exitInfo() === null,
    // Resolves once GET /readyz answers 200 on `streak` fresh connections in a row (each worker
    // thread has its own Postgres and Redis connections; fresh connections spread over them);
    // throws after timeoutMs.
    waitReady: ({ timeoutMs = 10000, streak = 10 } = {}) => waitReadyStreak(url, timeoutMs, streak),
    // Resolves with the first output line satisfying predicate(line), or throws after timeoutMs.
    waitForLog: (predicate, { timeoutMs = 5000 } = {}) =>
      waitFor(() => lines.map((l) => l.line).find(predicate), { timeoutMs, intervalMs: 50, message: 'a matching log line' }),
    // Throws (once per process, so one report is not repeated by every later check) when the
    // output holds ASan/UBSan reports.
    assertNoSanitizerReports() {
      const reports = sanitizerReports(handle.logs());
      if (reports.length && !handle.sanitizerReported) {
        handle.sanitizerReported = true;
        throw new Error(`tenantd (pid ${handle.pid}) reported sanitizer errors:\n${formatLogs(lines, 120)}`);
      }
    },
    // Sends signal and waits (bounded) for the exit; resolves the exit code (or the signal name
    // when the process died of a signal). Throws when it does not exit within timeoutMs (it is then
    // killed) or when its output holds sanitizer reports.
    async stop(signal = 'SIGTERM', { timeoutMs = STOP_TIMEOUT_MS } = {}) {
      if (child.exitInfo() === null) child.proc.kill(signal);
      const info = await within(child.exited, timeoutMs);
      if (info === null) {
        child.proc.kill('SIGKILL');
        await child.exited;
        throw new Error(`tenantd did not exit within ${timeoutMs} ms of ${signal}; output:\n${formatLogs(lines)}`);
      }
      handle.assertNoSanitizerReports();
      return exitStatus(info);
    },
    // SIGKILL (if still running) and wait for the exit.
    async kill() {
      if (child.exitInfo() === null) child.proc.kill('SIGKILL');
      await child.exited;
    },
  };
  return handle;
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

function parseJson(headers, body) {
  const type = String(headers['content-type'] ?? '');
  if (!/json/.test(type) || body === '') return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

function makeResult(status, headers, buffer, extra = {}) {
  const body = buffer.toString('utf8');
  return { status, headers, body, bodyBytes: buffer.length, json: parseJson(headers, body), ...extra };
}

// One request to url. HTTP/1.1 (http: or https: with ALPN http/1.1) by default; with
// http2: 'h2c' or 'tls' over a fresh HTTP/2 session. Options: method, headers, body (string or
// Buffer), chunked (HTTP/1.1: send the body with transfer-encoding chunked, in pieces of this many
// bytes), agent (HTTP/1.1; default: a fresh connection), timeoutMs. Resolves {status, headers,
// body, bodyBytes, json, alpn, httpVersion}; rejects with the transport error (err.code) otherwise.
export async function request(url, opts = {}) {
  if (opts.http2) {
    const target = new URL(url);
    const origin = opts.http2 === 'tls' ? `https://${target.host}` : `http://${target.host}`;
    const session = await h2connect(origin, { timeoutMs: opts.timeoutMs });
    try {
      return await h2request(session, target.pathname + target.search, opts);
    } finally {
      session.close();
    }
  }
  return http1Request(url, opts);
}

function http1Request(url, { method = 'GET', headers = {}, body, chunked, agent, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const target = new URL(url);
    const isTls = target.protocol === 'https:';
    const lib = isTls ? https : http;
    const hdrs = { ...headers };
    const payload = body === undefined ? undefined : Buffer.from(body);
    if (payload && !chunked) hdrs['content-length'] = String(payload.length);
    const options = { method, headers: hdrs, agent: agent ?? false };
    if (isTls) Object.assign(options, { rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] });
    let settled = false;
    const fail = (err) => {
      if (settled) return;
      settled = true;
      err.reusedSocket = req.reusedSocket;
      reject(err);
    };
    const req = lib.request(target, options, (res) => {
      const alpn = res.socket?.alpnProtocol || null;
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('error', fail);
      res.on('aborted', () => fail(Object.assign(new Error('response aborted'), { code: 'ECONNRESET' })));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        resolve(makeResult(res.statusCode, res.headers, Buffer.concat(chunks), {
          alpn, httpVersion: res.httpVersion, rawHeaders: res.rawHeaders, reusedSocket: req.reusedSocket,
        }));
      });
    });
    req.on('error', fail);
    req.setTimeout(timeoutMs, () => {
      req.destroy(Object.assign(new Error(`no response within ${timeoutMs} ms`), { code: 'ETESTTIMEOUT' }));
    });
    writeBody(req, payload, chunked);
  });
}

// Writes the request body: in one piece, or (chunked) in pieces of `chunked` bytes.
function writeBody(req, payload, chunked) {
  if (!payload) {
    req.end();
    return;
  }
  if (!chunked) {
    req.end(payload);
    return;
  }
  const size = typeof chunked === 'number' ? chunked : 256;
  for (let i = 0; i < payload.length; i += size) req.write(payload.subarray(i, i + size));
  req.end();
}

// Opens an HTTP/2 session: http://host:port is h2c with prior knowledge, https:// is TLS with
// ALPN h2 (the dev certificate is self-signed, so it is not verified). Resolves once connected.
export function h2connect(origin, { timeoutMs = REQUEST_TIMEOUT_MS, settings } = {}) {
  return new Promise((resolve, reject) => {
    const options = origin.startsWith('https:') ? { rejectUnauthorized: false } : {};
    if (settings) options.settings = settings;
    const session = http2.connect(origin, options);
    const timer = setTimeout(() => {
      session.destroy();
      reject(Object.assign(new Error(`HTTP/2 connect to ${origin} timed out`), { code: 'ETESTTIMEOUT' }));
    }, timeoutMs);
    session.once('connect', () => {
      clearTimeout(timer);
      session.removeListener('error', onError);
      session.on('error', (err) => { session.lastError = err; });
      resolve(session);
    });
    const onError = (err) => {
      clearTimeout(timer);
      reject(err);
    };
    session.once('error', onError);
  });
}

// One request on an open HTTP/2 session. Resolves {status, headers, body, bodyBytes, json, alpn};
// rejects when the stream is reset before the response ends (err.rstCode holds the code).
export function h2request(session, path, { method = 'GET', headers = {}, body, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(body);
    const stream = session.request({ ':method': method, ':path': path, ...headers }, { endStream: !payload });
    let responseHeaders = null;
    let settled = false;
    const chunks = [];
    const finish = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(value);
    };
    const timer = setTimeout(() => {
      stream.close(http2.constants.NGHTTP2_CANCEL);
      finish(reject, Object.assign(new Error(`no HTTP/2 response within ${timeoutMs} ms`), { code: 'ETESTTIMEOUT' }));
    }, timeoutMs);
    stream.on('response', (h) => { responseHeaders = h; });
    stream.on('data', (c) => chunks.push(c));
    stream.on('end', () => {
      if (!responseHeaders) return;
      finish(resolve, makeResult(responseHeaders[':status'], responseHeaders, Buffer.concat(chunks), {
        alpn: session.alpnProtocol ?? null, httpVersion: '2.0',
      }));
    });
    stream.on('error', (err) => finish(reject, Object.assign(err, { rstCode: stream.rstCode })));
    stream.on('close', () => {
      const err = new Error(`HTTP/2 stream closed without a complete response (rstCode ${stream.rstCode})`);
      finish(reject, Object.assign(err, { code: 'ESTREAMCLOSED', rstCode: stream.rstCode }));
    });
    if (payload) stream.end(payload);
  });
}

// Sends raw bytes to 127.0.0.1:port and collects what comes back until the server closes the
// connection, `until(text)` returns true, or timeoutMs passes. Resolves {data, closed, error}.
export function rawHttp(port, payload, { timeoutMs = 5000, until } = {}) {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    let done = false;
    const finish = (closed, error = null) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ data, closed, error });
    };
    const timer = setTimeout(() => finish(false), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(payload));
    socket.on('data', (chunk) => {
      data += chunk;
      if (until && until(data)) finish(false);
    });
    socket.on('end', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('error', (err) => finish(true, err));
  });
}

// labelledValues(td, name, label, values): GET /metrics of td and the value of name{label="v"} for
// each v of values, as an object keyed by v; asserts that each series appears exactly once.
export async function labelledValues(td, name, label, values) {
  const res = await request(`${td.url}/metrics`);
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}`);
  const { samples } = parseMetrics(res.body);
  const out = {};
  for (const v of values) {
    const found = findMetric(samples, name, { [label]: v });
    if (found.length !== 1) throw new Error(`expected one ${name}{${label}="${v}"} series, found ${found.length}`);
    out[v] = found[0].value;
  }
  return out;
}
