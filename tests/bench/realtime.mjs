// tests/bench/realtime.mjs — issue 6, item 10: Socket.IO benchmark driver (run by realtime.sh, which
// starts tenantd and passes the tokens; not part of ./dev test).
//
//   node realtime.mjs memory --url URL --pid PID --token T --counts 2000,5000,20000 [--procs 4]
//     idle memory per authenticated WebSocket connection: tenantd's VmRSS before and after N
//     websocket-only socket.io-client connections (cumulative steps), KB per connection.
//   node realtime.mjs fanout --urls URL1,URL2 --token T --emit-token T2 --n 10000 [--messages 20] [--procs 4]
//     fan-out: N members of the tenant room spread over the instances; MESSAGES events published one
//     at a time with POST /v1/realtime/emit (payload: send time), then MESSAGES back to back;
//     deliveries per second and delivery latency p50/p99 (send → client callback, same machine).
//
// Clients live in --procs child processes (Node needs tens of KB per socket); each socket binds
// to one of 127.0.0.2…127.0.0.9 so that ephemeral ports do not run out. Prints one JSON object per
// measurement on stdout (realtime.sh turns them into a table); progress goes to stderr.
import { fork } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const SELF = fileURLToPath(import.meta.url);
const now = () => performance.timeOrigin + performance.now(); // wall clock, sub-ms, comparable across processes
const log = (...a) => console.error('realtime:', ...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function args(argv) {
  const o = { _: [] };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--')) o[argv[i].slice(2)] = argv[++i];
    else o._.push(argv[i]);
  }
  return o;
}

// ------------------------------------------------------------------------------ child: clients
async function child() {
  // socket.io-client from tests/node_modules (or NODE_PATH)
  const req = createRequire(path.join(path.dirname(SELF), '..', 'package.json'));
  let ioMod;
  try {
    ioMod = req('socket.io-client');
  } catch {
    ioMod = createRequire(path.join(process.env.NODE_PATH || '/nonexistent', 'x'))('socket.io-client');
  }
  const io = ioMod.io ?? ioMod;
  const sockets = [];
  let lat = []; // ms, bench events
  let benchCount = 0;
  let lastRecv = 0; // wall-clock ms of the latest bench delivery
  let otherCount = 0; // presence and any other event
  const errors = {};
  let disconnects = 0;

  function open(url, token, count, addrOffset) {
    return new Promise((resolve) => {
      let started = 0;
      let done = 0;
      let ok = 0;
      let inflight = 0;
      const MAX_INFLIGHT = 100;
      const next = () => {
        while (inflight < MAX_INFLIGHT && started < count) {
          const k = started++;
          inflight++;
          const s = io(url, {
            transports: ['websocket'],
            auth: { token },
            reconnection: false,
            forceNew: true,
            timeout: 60000,
            perMessageDeflate: false,
            localAddress: `127.0.0.${2 + ((addrOffset + k) % 8)}`,
          });
          let settled = false;
          const settle = (good, why) => {
            if (settled) return;
            settled = true;
            inflight--;
            done++;
            if (good) ok++;
            else errors[why] = (errors[why] ?? 0) + 1;
            if (done === count) resolve({ ok, failed: count - ok });
            else next();
          };
          s.on('connect', () => settle(true));
          s.on('connect_error', (e) => {
            settle(false, 'connect_error: ' + (e?.message ?? e));
            s.close();
          });
          s.on('disconnect', (why) => {
            if (settled) {
              disconnects++;
              errors['disconnect: ' + why] = (errors['disconnect: ' + why] ?? 0) + 1;
            }
          });
          s.on('bench', (d) => {
            benchCount++;
            lastRecv = now();
            lat.push(lastRecv - (d?.data?.t ?? d?.t)); // emit payloads arrive wrapped: {room, data, from, seq}
          });
          s.onAny((ev) => {
            if (ev !== 'bench') otherCount++;
          });
          sockets.push(s);
        }
      };
      if (count === 0) resolve({ ok: 0, failed: 0 });
      else next();
    });
  }

  process.on('message', async (m) => {
    if (m.cmd === 'open') {
      const r = await open(m.url, m.token, m.count, m.addrOffset);
      process.send({ id: m.id, ...r, errors });
    } else if (m.cmd === 'counts') {
      process.send({ id: m.id, bench: benchCount, lastRecv, other: otherCount, connected: sockets.filter((s) => s.connected).length, disconnects, errors });
    } else if (m.cmd === 'take') {
      const l = lat;
      lat = [];
      process.send({ id: m.id, lat: l });
    } else if (m.cmd === 'close') {
      for (const s of sockets) s.close();
      process.send({ id: m.id });
      setTimeout(() => process.exit(0), 100);
    }
  });
  process.send({ ready: true });
}

// ------------------------------------------------------------------------------ parent
function sumErrors(a, b) {
  const o = { ...a };
  for (const [k, v] of Object.entries(b)) o[k] = (o[k] ?? 0) + v;
  return o;
}

class Pool {
  constructor(n) {
    this.kids = [];
    this.seq = 0;
    this.waiting = new Map();
    for (let i = 0; i < n; i++) {
      const k = fork(SELF, ['child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: ['--max-old-space-size=4096'] });
      k.on('message', (m) => {
        if (m.ready) k.readyResolve?.();
        const w = this.waiting.get(m.id);
        if (w) {
          this.waiting.delete(m.id);
          w(m);
        }
      });
      k.on('exit', (code) => {
        if (code && !this.closing) {
          log(`client process exited with ${code}`);
          process.exit(1);
        }
      });
      k.ready = new Promise((r) => (k.readyResolve = r));
      this.kids.push(k);
    }
  }
  ask(k, msg) {
    const id = ++this.seq;
    return new Promise((r) => {
      this.waiting.set(id, r);
      k.send({ ...msg, id });
    });
  }
  all(msgFor) {
    return Promise.all(this.kids.map((k, i) => this.ask(k, msgFor(i))));
  }
  async counts() {
    const rs = await this.all(() => ({ cmd: 'counts' }));
    return rs.reduce(
      (a, r) => ({ bench: a.bench + r.bench, lastRecv: Math.max(a.lastRecv, r.lastRecv), other: a.other + r.other, connected: a.connected + r.connected, disconnects: a.disconnects + r.disconnects, errors: sumErrors(a.errors, r.errors) }),
      { bench: 0, lastRecv: 0, other: 0, connected: 0, disconnects: 0, errors: {} },
    );
  }
  async close() {
    this.closing = true;
    await Promise.race([this.all(() => ({ cmd: 'close' })), sleep(5000)]);
    for (const k of this.kids) k.kill('SIGTERM');
  }
}

// Waits until the clients' count of non-bench events (presence announcements of the joins) has not
// moved for quietMs; returns {ms, other}.
async function drain(pool, quietMs, capMs) {
  const t0 = Date.now();
  let last = -1;
  let since = Date.now();
  for (;;) {
    const c = await pool.counts();
    if (c.other !== last) {
      last = c.other;
      since = Date.now();
    }
    if (Date.now() - since >= quietMs) return { ms: Date.now() - t0 - quietMs, other: c.other, capped: false };
    if (Date.now() - t0 > capMs) return { ms: Date.now() - t0, other: c.other, capped: true };
    await sleep(200);
  }
}

function rssKB(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m[1]);
}

function pct(sorted, p) {
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] : NaN;
}

async function openSpread(pool, urls, token, total, already) {
  // `total` more connections, spread evenly over the processes and the URLs
  const per = pool.kids.map((_, i) => Math.floor(total / pool.kids.length) + (i < total % pool.kids.length ? 1 : 0));
  const t0 = Date.now();
  const rs = await pool.all((i) => ({ cmd: 'open', url: urls[i % urls.length], token, count: per[i], addrOffset: already + i * 7 }));
  const ok = rs.reduce((a, r) => a + r.ok, 0);
  const failed = rs.reduce((a, r) => a + r.failed, 0);
  const errors = {};
  for (const r of rs) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v;
  return { ok, failed, errors, ms: Date.now() - t0 };
}

async function memory(o) {
  const counts = o.counts.split(',').map(Number);
  const pool = new Pool(Number(o.procs ?? 4));
  await Promise.all(pool.kids.map((k) => k.ready));
  const pid = Number(o.pid);
  const quiet = Number(o.quiet ?? 3000);
  const cap = Number(o['drain-cap'] ?? 300000);
  await sleep(1000);
  const base = rssKB(pid);
  log(`tenantd VmRSS before: ${base} kB`);
  let have = 0;
  try {
    for (const n of counts) {
      log(`opening ${n - have} connections (to ${n})`);
      const r = await openSpread(pool, [o.url], o.token, n - have, have);
      have += r.ok;
      log(`opened ${r.ok} (${r.failed} failed ${JSON.stringify(r.errors)}) in ${r.ms} ms; waiting for the join announcements to drain`);
      const d = await drain(pool, quiet, cap);
      await sleep(1000);
      const c = await pool.counts();
      const rss = rssKB(pid);
      const out = { kind: 'memory', target: n, connected: c.connected, failed: r.failed, open_ms: r.ms, drain_ms: d.ms, drain_capped: d.capped,
        presence_events: d.other, rss_before_kb: base, rss_after_kb: rss, kb_per_conn: +((rss - base) / c.connected).toFixed(2), errors: c.errors };
      console.log(JSON.stringify(out));
      if (r.failed > 0 && r.ok === 0) break;
      if (d.capped) {
        log('the join announcements did not drain within the cap: stopping here');
        break;
      }
    }
    if (o.hold) {
      log(`holding the connections for ${o.hold} s`);
      await sleep(Number(o.hold) * 1000);
    }
  } finally {
    await pool.close();
  }
}

async function emit(url, token, i) {
  const t = now();
  const r = await fetch(url + '/v1/realtime/emit', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: 'Bearer ' + token },
    body: JSON.stringify({ to: 'tenant', event: 'bench', data: { t, i } }),
  });
  await r.arrayBuffer();
  if (r.status !== 202) throw new Error(`emit answered ${r.status}`);
  return t;
}

async function fanout(o) {
  const urls = o.urls.split(',');
  const n = Number(o.n);
  const messages = Number(o.messages ?? 20);
  const pool = new Pool(Number(o.procs ?? 4));
  await Promise.all(pool.kids.map((k) => k.ready));
  try {
    log(`opening ${n} connections over ${urls.length} instance(s)`);
    const r = await openSpread(pool, urls, o.token, n, 0);
    log(`opened ${r.ok} (${r.failed} failed ${JSON.stringify(r.errors)}) in ${r.ms} ms; waiting for the join announcements to drain`);
    const d = await drain(pool, Number(o.quiet ?? 3000), Number(o['drain-cap'] ?? 300000));
    log(`drained ${d.other} presence events in ${d.ms} ms${d.capped ? ' (CAPPED: still arriving)' : ''}`);
    const members = (await pool.counts()).connected;
    console.log(JSON.stringify({ kind: 'setup', target: n, connected: members, failed: r.failed, open_ms: r.ms, drain_ms: d.ms, drain_capped: d.capped, presence_events: d.other, errors: r.errors }));

    // waits until `want` bench deliveries in total (or timeout); returns the time of the check
    const waitFor = async (want, ms) => {
      const t0 = Date.now();
      for (;;) {
        const c = await pool.counts();
        if (c.bench >= want || Date.now() - t0 > ms) return c.bench;
        await sleep(5);
      }
    };
    const takeLat = async () => (await pool.all(() => ({ cmd: 'take' }))).flatMap((x) => x.lat);

    // 1. one message at a time: latency
    let base = (await pool.counts()).bench;
    const spans = [];
    let lats = [];
    for (let i = 0; i < messages; i++) {
      const t = await emit(urls[i % urls.length], o['emit-token'], i);
      base += members;
      const got = await waitFor(base, 10000);
      const l = await takeLat();
      lats = lats.concat(l);
      const maxLat = l.length ? Math.max(...l) : NaN;
      spans.push({ got: l.length, last_ms: maxLat });
      if (got < base) base = got;
      await sleep(50);
    }
    lats.sort((a, b) => a - b);
    const lastSorted = spans.map((s) => s.last_ms).sort((a, b) => a - b);
    const rates = spans.map((s) => s.got / (s.last_ms / 1000)).sort((a, b) => a - b);
    console.log(JSON.stringify({ kind: 'paced', members, messages, deliveries: lats.length, expected: members * messages,
      p50_ms: +pct(lats, 0.5).toFixed(2), p99_ms: +pct(lats, 0.99).toFixed(2), max_ms: +lats[lats.length - 1]?.toFixed(2),
      last_delivery_median_ms: +pct(lastSorted, 0.5).toFixed(2), deliveries_per_s_median: Math.round(pct(rates, 0.5)) }));

    // 2. back to back: throughput
    base = (await pool.counts()).bench;
    const t0 = now();
    await Promise.all(Array.from({ length: messages }, (_, i) => emit(urls[i % urls.length], o['emit-token'], 1000 + i)));
    const got = await waitFor(base + members * messages, 30000);
    const c = await pool.counts();
    const l = (await takeLat()).sort((a, b) => a - b);
    const secs = (c.lastRecv - t0) / 1000; // first send → last delivery
    console.log(JSON.stringify({ kind: 'burst', members, messages, deliveries: got - base, expected: members * messages,
      p50_ms: +pct(l, 0.5).toFixed(2), p99_ms: +pct(l, 0.99).toFixed(2), window_s: +secs.toFixed(3),
      deliveries_per_s: Math.round((got - base) / secs) }));
  } finally {
    await pool.close();
  }
}

const o = args(process.argv.slice(2));
const mode = o._[0];
if (mode === 'child') await child();
else if (mode === 'memory') await memory(o);
else if (mode === 'fanout') await fanout(o);
else {
  console.error('usage: node realtime.mjs memory|fanout … (see the header)');
  process.exit(2);
}
if (mode !== 'child') process.exit(0);
