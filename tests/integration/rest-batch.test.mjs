// rest-batch.test.mjs — data API reads that share one Postgres sync stay correct and private
// (server/infra/db.c read batches, issue 5 item 8's speed work).
//
// One tenantd with one worker thread and one Postgres connection, so concurrent reads of both
// fixture tenants go out in shared batches: [role+search_path, SELECT] per request, one sync per
// batch. Waves of concurrent reads — acme's, globex's, and ones that fail inside Postgres (a
// malformed uuid, refused by the uuid input function) — each carrying a unique filter so every one
// misses the Redis read cache and runs. Every good read must answer exactly its own tenant's rows,
// every bad one a 400, none a 5xx; /metrics must show that reads did share a sync and that reads
// aborted by a failing batch neighbour were sent again (and then answered correctly). Finally, with
// a write held inside Postgres by a row lock taken from psql, reads arriving one by one still get
// one batch onto the busy connection (a write does not hold reads back), and the ones after it wait
// and leave together as one batch when it comes back.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { after, before, test } from 'node:test';

import { labelledValues, requireEnv, sleep, startTenantd, waitFor } from '../lib/harness.mjs';
import { FIXTURE, call, login, uniq } from '../lib/auth.mjs';

const RUN = `batch-${uniq()}`;
let td;
const tok = {};
const expected = {};

const read = (who, query) => call(td, 'GET', `/rest/v1/orders?${query}`, undefined, { token: tok[who] });

const batching = () => labelledValues(td, 'tenantd_db_read_batching_total', 'event', ['shared', 'resent']);

before(async () => {
  td = await startTenantd({ TENANTD_THREADS: 1, TENANTD_DB_POOL_SIZE: 1 });
  await td.waitReady();
  tok.acme = (await login(td, FIXTURE.acme.viewer)).access_token;
  tok.globex = (await login(td, FIXTURE.globex.viewer)).access_token;
  for (const who of ['acme', 'globex']) {
    const res = await read(who, `select=id,title&order=id&limit=5&title=neq.${RUN}-baseline-${who}`);
    assert.equal(res.status, 200, res.body);
    assert.ok(res.json.length > 0, `${who} has orders (fixtures loaded)`);
    expected[who] = JSON.stringify(res.json);
  }
  assert.notEqual(expected.acme, expected.globex, 'the two tenants have different rows');
});

after(async () => {
  await td?.stop();
});

test('concurrent reads sharing a sync answer their own tenant, failures stay their own', async () => {
  let before0 = await batching();
  let wave = 0;
  // A failing read must land in a batch ahead of a good one at least once; waves make that certain
  // in practice (each wave is 240 requests at once over one connection).
  for (; wave < 8; wave++) {
    const jobs = [];
    for (let i = 0; i < 240; i++) {
      const tag = `${RUN}-${wave}-${i}`;
      if (i % 3 === 2) {
        jobs.push(read('acme', `id=eq.not-a-uuid-${tag}`).then((res) => ['bad', res]));
      } else {
        const who = i % 3 === 0 ? 'acme' : 'globex';
        jobs.push(read(who, `select=id,title&order=id&limit=5&title=neq.${tag}`).then((res) => [who, res]));
      }
    }
    for (const [who, res] of await Promise.all(jobs)) {
      if (who === 'bad') {
        assert.equal(res.status, 400, `a malformed uuid is a 400: ${res.body}`);
        continue;
      }
      assert.equal(res.status, 200, `${who}: ${res.body}`);
      assert.equal(JSON.stringify(res.json), expected[who], `${who} got exactly its own rows`);
    }
    const now = await batching();
    if (now.shared > before0.shared && now.resent > before0.resent) break;
  }
  const end = await batching();
  assert.ok(end.shared > before0.shared, `reads shared a sync (${JSON.stringify(end)})`);
  assert.ok(end.resent > before0.resent, `reads aborted by a failing neighbour were sent again (${JSON.stringify(end)})`);
});

test('after the batches, the connection serves other requests normally', async () => {
  // a write (never batched) and a control-plane read run on the same single connection
  const adminTok = (await login(td, FIXTURE.acme.admin)).access_token;
  const ins = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-after` }, { token: adminTok, headers: { prefer: 'return=representation' } });
  assert.equal(ins.status, 201, ins.body);
  const del = await call(td, 'DELETE', `/rest/v1/orders?id=eq.${ins.json[0].id}`, undefined, { token: adminTok });
  assert.equal(del.status, 204, del.body);
  const me = await call(td, 'GET', '/v1/auth/me', undefined, { token: tok.globex });
  assert.equal(me.status, 200, me.body);
  const res = await read('globex', `select=id,title&order=id&limit=5&title=neq.${RUN}-final`);
  assert.equal(JSON.stringify(res.json), expected.globex);
});

// A psql session holding a row lock of acme's orders: { waiters(), release() }. waiters() asks the
// same session how many lock requests wait in Postgres (pg_locks shows every session's).
async function holdRowLock(id) {
  const owner = requireEnv('DATABASE_OWNER_URL');
  const schema = execFileSync('psql', [owner, '-AtXq', '-c', "SELECT schema_name FROM tenantd.tenants WHERE slug = 'acme'"], { encoding: 'utf8' }).trim();
  assert.match(schema, /^t_[0-9a-f]{32}$/);
  const psql = spawn('psql', [owner, '-AtXq', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = new Promise((resolve) => psql.on('exit', resolve));
  let buffered = '';
  const waiting = []; // resolvers of the lines still to come, in order
  psql.stdout.on('data', (d) => {
    buffered += d.toString();
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      waiting.shift()?.(line);
    }
  });
  const ask = (sql) => {
    const line = new Promise((resolve, reject) => {
      waiting.push(resolve);
      exited.then((code) => reject(new Error(`psql exited (${code})`)));
    });
    psql.stdin.write(`${sql}\n`);
    return line;
  };
  assert.equal(await ask(`BEGIN; SELECT 'locked' FROM "${schema}".orders WHERE id = '${id}' FOR UPDATE;`), 'locked');
  return {
    waiters: async () => Number(await ask('SELECT count(*) FROM pg_locks WHERE NOT granted;')),
    release: async () => {
      psql.stdin.end('COMMIT;\n');
      await exited;
    },
  };
}

test('a write in flight does not hold reads back; reads behind a batch leave together', async () => {
  const adminTok = (await login(td, FIXTURE.acme.admin)).access_token;
  const ins = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-locked` }, { token: adminTok, headers: { prefer: 'return=representation' } });
  assert.equal(ins.status, 201, ins.body);
  const id = ins.json[0].id;
  const lock = await holdRowLock(id);
  let patch;
  const reads = [];
  let before0;
  try {
    // the guard's tenant cache (0.9 s) must not need a query of its own while the write blocks the
    // connection: one read now, and the five reads below within a few hundred milliseconds
    assert.equal((await read('acme', `select=id&id=eq.${id}&title=neq.${RUN}-warm`)).status, 200);
    patch = call(td, 'PATCH', `/rest/v1/orders?id=eq.${id}`, { position: 5 }, { token: adminTok }); // waits for the lock
    await waitFor(async () => (await lock.waiters()) > 0, { intervalMs: 5, timeoutMs: 3000, message: 'the PATCH waiting for the row lock' });
    before0 = await batching();
    for (let i = 0; i < 5; i++) { // one by one: each in its own loop turn
      reads.push(read('acme', `select=id,title&id=eq.${id}&title=neq.${RUN}-behind-${i}`)); // a plain read is not blocked by the lock
      await sleep(30);
    }
    await sleep(30);
  } finally {
    await lock.release();
  }
  const p = await patch;
  assert.ok([200, 204].includes(p.status), p.body);
  for (const res of await Promise.all(reads)) {
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, [{ id, title: `${RUN}-locked` }]);
  }
  const end = await batching();
  // the first read went out behind the write (a batch of one); the four after it waited for that
  // batch and left as one batch of four (each counted as shared)
  assert.ok(end.shared - before0.shared >= 4, `reads waiting behind a batch left together (${JSON.stringify({ before0, end })})`);
  const del = await call(td, 'DELETE', `/rest/v1/orders?id=eq.${id}`, undefined, { token: adminTok });
  assert.equal(del.status, 204, del.body);
});
