// tests/bench/lib/logins.mjs — fires waves of concurrent POST /v1/auth/login (correct password) until
// a deadline; each wave waits for all its logins. Used by auth.sh to keep argon2id busy while wrk
// measures /healthz. Prints one JSON line: waves, logins, ok, statuses, login latency p50/p99 (ms).
// Login i of a wave uses account (i mod USERS) + 1: EMAIL with "%d" replaced by that number (tenantd
// refuses a sixth attempt in flight for one account with 429, and counts it as a failure).
//
//   node logins.mjs URL EMAIL PASSWORD CONCURRENCY SECONDS USERS
const [url, email, password, concStr, secsStr, usersStr] = process.argv.slice(2);
const conc = Number(concStr);
const users = Number(usersStr ?? 1);
const deadline = Date.now() + Number(secsStr) * 1000;
if (!url || !email || !password || !(conc > 0) || !(Number(secsStr) > 0) || !(users > 0)) {
  console.error('usage: node logins.mjs URL EMAIL PASSWORD CONCURRENCY SECONDS USERS');
  process.exit(2);
}
const bodies = Array.from({ length: users }, (_, i) => JSON.stringify({ email: email.replace('%d', String(i + 1)), password }));
const lat = [];
const statuses = {};
let waves = 0;
let first = true;
const waveMs = [];

async function one(_, i) {
  const body = bodies[i % users];
  const t0 = performance.now();
  let status = 'error';
  try {
    const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    status = String(r.status);
    await r.arrayBuffer();
  } catch (e) {
    status = 'error:' + (e.cause?.code ?? e.message);
  }
  lat.push(performance.now() - t0);
  statuses[status] = (statuses[status] ?? 0) + 1;
}

while (first || Date.now() < deadline) {
  first = false;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: conc }, one));
  waveMs.push(performance.now() - t0);
  waves++;
  if (statuses['401'] || statuses['429']) break; // never hammer an account with failures
}
lat.sort((a, b) => a - b);
const q = (p) => (lat.length ? lat[Math.min(lat.length - 1, Math.floor(lat.length * p))] : 0);
console.log(JSON.stringify({
  waves, logins: lat.length, ok: statuses['200'] ?? 0, statuses,
  p50_ms: +q(0.5).toFixed(1), p99_ms: +q(0.99).toFixed(1),
  wave_ms: waveMs.map((m) => Math.round(m)),
}));
