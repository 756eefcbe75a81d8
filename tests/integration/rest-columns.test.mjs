// rest-columns.test.mjs — column rules of the data API (policies/columns/*.json, issue 5 item 3):
// a column hidden from a role is absent from `select=*`, refused in select/filters/order and in
// write bodies, and stripped from change events; a read-only column is readable but not writable;
// a role without the rule (admin) sees and writes everything.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { startTenantd, sleep } from '../lib/harness.mjs';
import { call, login, uniq } from '../lib/auth.mjs';

const RULES = {
  tables: {
    orders: {
      hidden: { viewer: ['assignee_id'], member: ['assignee_id'] },
      readonly: { member: ['position'] },
    },
  },
};

let td;
let dir;
const tok = {};
const RUN = `cols-${uniq()}`;

before(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tenantd-policies-'));
  fs.cpSync(process.env.TENANTD_POLICIES, dir, { recursive: true });
  fs.mkdirSync(path.join(dir, 'columns'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'columns', 'orders.json'), JSON.stringify(RULES));
  td = await startTenantd({ TENANTD_POLICIES: dir });
  await td.waitReady();
  for (const role of ['admin', 'member', 'viewer']) {
    tok[role] = (await login(td, { email: `${role}@acme.test`, password: `acme-${role}-pass` })).access_token;
  }
});

after(async () => {
  if (tok.admin) await call(td, 'DELETE', `/rest/v1/orders?title=like.${RUN}*`, undefined, { token: tok.admin });
  await td?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('hidden columns: absent for the restricted roles, present for admin', async () => {
  const created = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-a`, assignee_id: '00000000-0000-0000-0000-000000000001' },
    { token: tok.admin, headers: { prefer: 'return=representation' } });
  assert.equal(created.status, 201, created.body);
  const asAdmin = await call(td, 'GET', `/rest/v1/orders?title=eq.${RUN}-a`, undefined, { token: tok.admin });
  assert.equal(asAdmin.json[0].assignee_id, '00000000-0000-0000-0000-000000000001');
  for (const role of ['member', 'viewer']) {
    const rows = await call(td, 'GET', `/rest/v1/orders?title=eq.${RUN}-a`, undefined, { token: tok[role] });
    assert.equal(rows.status, 200, rows.body);
    assert.equal(rows.json.length, 1);
    assert.ok(!('assignee_id' in rows.json[0]), `${role} sees assignee_id`);
    assert.ok('title' in rows.json[0]);
    for (const q of ['select=assignee_id', 'select=id,assignee_id', 'assignee_id=is.null', 'order=assignee_id', 'or=(assignee_id.is.null,title.eq.x)']) {
      const r = await call(td, 'GET', `/rest/v1/orders?${q}`, undefined, { token: tok[role] });
      assert.equal(r.status, 400, `${role} ?${q}: ${r.body}`);
    }
  }
});

test('writes: hidden and read-only columns are refused with 403; allowed ones pass', async () => {
  const mine = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-m` }, { token: tok.member, headers: { prefer: 'return=representation' } });
  assert.equal(mine.status, 201, mine.body);
  assert.ok(!('assignee_id' in mine.json[0]), 'the representation hides assignee_id');
  const id = mine.json[0].id;
  const hidden = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-h`, assignee_id: null }, { token: tok.member });
  assert.equal(hidden.status, 403, hidden.body);
  const ro = await call(td, 'PATCH', `/rest/v1/orders?id=eq.${id}`, { position: 9 }, { token: tok.member });
  assert.equal(ro.status, 403, ro.body);
  const ok = await call(td, 'PATCH', `/rest/v1/orders?id=eq.${id}`, { status: 'done' }, { token: tok.member, headers: { prefer: 'return=representation' } });
  assert.equal(ok.status, 200, ok.body);
  assert.equal(ok.json[0].status, 'done');
  assert.ok(!('assignee_id' in ok.json[0]));
  const byAdmin = await call(td, 'PATCH', `/rest/v1/orders?id=eq.${id}`, { position: 9 }, { token: tok.admin, headers: { prefer: 'return=representation' } });
  assert.equal(byAdmin.status, 200, byAdmin.body);
  assert.equal(byAdmin.json[0].position, 9);
});

test('change events over SSE carry no hidden column for the restricted role', async () => {
  const controller = new AbortController();
  const res = await fetch(`${td.url}/v1/events?rooms=table:orders`, { headers: { authorization: `Bearer ${tok.viewer}` }, signal: controller.signal });
  assert.equal(res.status, 200);
  const reader = res.body.getReader();
  let text = '';
  const reading = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      text += Buffer.from(value).toString('utf8');
    }
  })().catch(() => {});
  await sleep(300);
  const created = await call(td, 'POST', '/rest/v1/orders', { title: `${RUN}-e`, assignee_id: '00000000-0000-0000-0000-000000000002' }, { token: tok.admin });
  assert.equal(created.status, 201);
  for (let i = 0; i < 50 && !text.includes(`${RUN}-e`); i++) await sleep(100);
  controller.abort();
  await reading;
  const line = text.split('\n').find((l) => l.startsWith('data:') && l.includes(`${RUN}-e`));
  assert.ok(line, `a change event arrived: ${text.slice(0, 500)}`);
  const data = JSON.parse(line.slice(5));
  assert.equal(data.record.title, `${RUN}-e`);
  assert.ok(!('assignee_id' in data.record), 'the viewer\'s event hides assignee_id');
});
