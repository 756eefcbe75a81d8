// rest-postgrest-js.test.mjs — the official @supabase/postgrest-js client against the data API
// (CONTRACT.md §7, issue 5 items 1 and 7).
//
// An acme admin inserts a set of orders whose titles carry a per-run marker, then the client drives
// select with every filter operator (eq neq gt gte lt lte like ilike in is, not, or/and nested),
// ordering (several columns, asc/desc, nullsfirst/nullslast), range/limit/offset, count: 'exact',
// insert of one row and of many with .select() (return=representation), and update and delete with
// filters and .select(). Every expectation is computed from the rows this file inserted; every read
// is narrowed to the run's marker, so other rows of the shared dev database never matter. The rows
// are deleted at the end.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { PostgrestClient } from '@supabase/postgrest-js';

import { startTenantd } from '../lib/harness.mjs';
import { FIXTURE, login, uniq } from '../lib/auth.mjs';

const RUN = `pgjs-${uniq()}`;
const MARK = `${RUN}-%`; // LIKE pattern of every row of this run
const U1 = crypto.randomUUID();
const U2 = crypto.randomUUID();

// The rows inserted in bulk; titles are unique within the run.
const SEED = [
  { title: `${RUN}-alpha`, status: 'open', position: 1, assignee_id: U1 },
  { title: `${RUN}-beta`, status: 'open', position: 2, assignee_id: null },
  { title: `${RUN}-gamma`, status: 'in_progress', position: 3, assignee_id: U2 },
  { title: `${RUN}-delta`, status: 'done', position: 4, assignee_id: null },
  { title: `${RUN}-Epsilon`, status: 'done', position: 5, assignee_id: U1 },
  { title: `${RUN}-zeta, (comma)`, status: 'archived', position: 6, assignee_id: null },
  { title: `${RUN}-eta`, status: 'in_progress', position: 2, assignee_id: U2 },
  { title: `${RUN}-theta`, status: 'open', position: 7, assignee_id: null },
];

let td;
let db; // PostgrestClient of the acme admin
let adminId;
let rows = []; // what the server holds for this run, kept in step with every write below

const titles = (list) => list.map((r) => r.title).sort();
const byTitle = (t) => rows.find((r) => r.title === `${RUN}-${t}`);
const mine = () => db.from('orders').select('*').like('title', MARK);

// Runs a postgrest-js query; asserts no error and the status; returns data.
async function ok(query, status = 200, what = '') {
  const res = await query;
  assert.equal(res.error, null, `${what}: error ${JSON.stringify(res.error)}`);
  assert.equal(res.status, status, `${what}: status`);
  return res;
}

// A filter's result compared with the expected subset of rows (as sets of titles).
async function expectFilter(query, predicate, what) {
  const { data } = await ok(query, 200, what);
  assert.deepEqual(titles(data), titles(rows.filter(predicate)), what);
  return data;
}

before(async () => {
  td = await startTenantd();
  await td.waitReady();
  const tok = await login(td, FIXTURE.acme.admin);
  adminId = tok.user.id;
  db = new PostgrestClient(`${td.url}/rest/v1`, { headers: { Authorization: `Bearer ${tok.access_token}` } });
});

after(async () => {
  if (db) await db.from('orders').delete().like('title', MARK);
});

describe('insert with .select()', () => {
  test('many rows in one call come back with ids, defaults and owner_id = caller', async () => {
    const { data } = await ok(db.from('orders').insert(SEED).select(), 201, 'bulk insert');
    assert.equal(data.length, SEED.length);
    assert.deepEqual(titles(data), titles(SEED));
    for (const row of data) {
      const sent = SEED.find((s) => s.title === row.title);
      assert.match(row.id, /^[0-9a-f-]{36}$/);
      assert.equal(row.status, sent.status);
      assert.equal(row.position, sent.position);
      assert.equal(row.assignee_id, sent.assignee_id);
      assert.equal(row.owner_id, adminId, 'owner_id is set by the server');
      assert.ok(!Number.isNaN(Date.parse(row.created_at)), 'created_at default');
    }
    rows = data;
  });

  test('one object comes back as a one-element array', async () => {
    const { data } = await ok(db.from('orders').insert({ title: `${RUN}-iota`, position: 8 }).select(), 201, 'insert one');
    assert.equal(data.length, 1);
    assert.equal(data[0].title, `${RUN}-iota`);
    assert.equal(data[0].status, 'open', 'column default');
    assert.equal(data[0].assignee_id, null);
    rows.push(data[0]);
  });

  test('without .select() the insert answers 201 and no body', async () => {
    const res = await ok(db.from('orders').insert({ title: `${RUN}-kappa`, status: 'archived', position: 9 }), 201, 'insert minimal');
    assert.equal(res.data, null);
    const { data } = await ok(mine().eq('title', `${RUN}-kappa`), 200, 'read back');
    assert.equal(data.length, 1);
    rows.push(data[0]);
  });

  test('.select("id,title") returns only those columns', async () => {
    const { data } = await ok(db.from('orders').insert({ title: `${RUN}-lambda`, status: 'done', position: 10 }).select('id,title'), 201, 'insert select columns');
    assert.equal(data.length, 1);
    const { data: full } = await ok(mine().eq('title', `${RUN}-lambda`), 200, 'read back');
    rows.push(full[0]);
    assert.deepEqual(Object.keys(data[0]).sort(), ['id', 'title'], `columns of ${JSON.stringify(data[0])}`);
  });
});

describe('select and filters', () => {
  test('everything of the run, and a column list', async () => {
    await expectFilter(mine(), () => true, 'marker only');
    const { data } = await ok(db.from('orders').select('id,title').like('title', MARK), 200, 'select id,title');
    assert.equal(data.length, rows.length);
    for (const r of data) assert.deepEqual(Object.keys(r).sort(), ['id', 'title']);
  });

  test('eq neq gt gte lt lte', async () => {
    await expectFilter(mine().eq('status', 'open'), (r) => r.status === 'open', 'eq');
    await expectFilter(mine().neq('status', 'open'), (r) => r.status !== 'open', 'neq');
    await expectFilter(mine().gt('position', 3), (r) => r.position > 3, 'gt');
    await expectFilter(mine().gte('position', 3), (r) => r.position >= 3, 'gte');
    await expectFilter(mine().lt('position', 3), (r) => r.position < 3, 'lt');
    await expectFilter(mine().lte('position', 3), (r) => r.position <= 3, 'lte');
    await expectFilter(mine().eq('id', byTitle('gamma').id), (r) => r.title === `${RUN}-gamma`, 'eq uuid');
    await expectFilter(mine().eq('assignee_id', U1), (r) => r.assignee_id === U1, 'eq nullable uuid');
    await expectFilter(mine().gte('position', 2).lt('position', 5).neq('status', 'done'),
      (r) => r.position >= 2 && r.position < 5 && r.status !== 'done', 'filters combined with and');
  });

  test('like and ilike', async () => {
    await expectFilter(mine().like('title', `${RUN}-%eta`), (r) => r.title.endsWith('eta'), 'like %');
    await expectFilter(mine().like('title', `${RUN}-_eta`), (r) => /-.eta$/.test(r.title), 'like _');
    await expectFilter(mine().like('title', `${RUN}-e%`), (r) => r.title.startsWith(`${RUN}-e`), 'like is case-sensitive');
    await expectFilter(mine().ilike('title', `${RUN}-e%`), (r) => r.title.toLowerCase().startsWith(`${RUN}-e`), 'ilike');
    await expectFilter(mine().ilike('title', '%EPSILON'), (r) => r.title.endsWith('Epsilon'), 'ilike upper pattern');
  });

  test('in, with values the client must quote', async () => {
    await expectFilter(mine().in('status', ['open', 'done']), (r) => ['open', 'done'].includes(r.status), 'in');
    await expectFilter(mine().in('position', [1, 2, 7]), (r) => [1, 2, 7].includes(r.position), 'in integers');
    const odd = [`${RUN}-zeta, (comma)`, `${RUN}-alpha`];
    await expectFilter(mine().in('title', odd), (r) => odd.includes(r.title), 'in with comma, parentheses and quotes');
    await expectFilter(mine().in('status', []), () => false, 'empty in');
  });

  test('is null, and not', async () => {
    await expectFilter(mine().is('assignee_id', null), (r) => r.assignee_id === null, 'is null');
    await expectFilter(mine().not('assignee_id', 'is', null), (r) => r.assignee_id !== null, 'not is null');
    await expectFilter(mine().not('status', 'eq', 'open'), (r) => r.status !== 'open', 'not eq');
    await expectFilter(mine().not('status', 'in', '(open,done)'), (r) => !['open', 'done'].includes(r.status), 'not in');
    await expectFilter(mine().not('position', 'gt', 4), (r) => !(r.position > 4), 'not gt');
    await expectFilter(mine().not('title', 'ilike', '%ETA'), (r) => !r.title.toLowerCase().endsWith('eta'), 'not ilike');
  });

  test('or, and nested logic', async () => {
    await expectFilter(mine().or('status.eq.done,position.lt.2'), (r) => r.status === 'done' || r.position < 2, 'or');
    await expectFilter(mine().or('status.eq.archived,and(status.eq.open,position.gte.2)'),
      (r) => r.status === 'archived' || (r.status === 'open' && r.position >= 2), 'or with and');
    await expectFilter(mine().or('and(status.eq.in_progress,or(position.eq.3,assignee_id.is.null)),title.ilike.*epsilon*'),
      (r) => (r.status === 'in_progress' && (r.position === 3 || r.assignee_id === null)) || r.title.toLowerCase().includes('epsilon'),
      'or / and / or nested');
    await expectFilter(mine().or('status.not.eq.open,not.and(position.gt.1,assignee_id.is.null)'),
      (r) => r.status !== 'open' || !(r.position > 1 && r.assignee_id === null), 'not inside or');
    await expectFilter(mine().or(`status.in.(open,archived),title.eq."${RUN}-gamma"`),
      (r) => ['open', 'archived'].includes(r.status) || r.title === `${RUN}-gamma`, 'in and quoted value inside or');
    await expectFilter(mine().or('position.eq.1').or('position.eq.2,position.eq.3'),
      (r) => r.position === 1 && [2, 3].includes(r.position), 'two or groups are combined with and');
    await expectFilter(mine().filter('position', 'in', '(4,5)'), (r) => [4, 5].includes(r.position), 'filter()');
    await expectFilter(mine().match({ status: 'open', position: 2 }), (r) => r.status === 'open' && r.position === 2, 'match()');
  });

  test('a bad filter answers an error through the client, not data', async () => {
    const res = await mine().eq('nosuch', 1);
    assert.equal(res.status, 400);
    assert.equal(res.data, null);
    assert.match(JSON.stringify(res.error), /nosuch/);
  });
});

describe('order, range, limit, count', () => {
  const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  // null placement and direction as Postgres does it
  const nullsCmp = (a, b, asc, nullsFirst) => {
    if (a === null && b === null) return 0;
    if (a === null) return nullsFirst ? -1 : 1;
    if (b === null) return nullsFirst ? 1 : -1;
    return asc ? cmp(a, b) : -cmp(a, b);
  };

  test('several columns, asc and desc', async () => {
    const { data } = await ok(mine().order('status').order('position', { ascending: false }).order('id'), 200, 'order');
    const want = [...rows].sort((a, b) => cmp(a.status, b.status) || -cmp(a.position, b.position) || cmp(a.id, b.id));
    assert.deepEqual(data.map((r) => r.title), want.map((r) => r.title));
  });

  test('nullsfirst and nullslast', async () => {
    for (const [ascending, nullsFirst] of [[true, true], [true, false], [false, true], [false, false]]) {
      const { data } = await ok(mine().order('assignee_id', { ascending, nullsFirst }).order('position').order('id'), 200, 'order nulls');
      const want = [...rows].sort((a, b) => nullsCmp(a.assignee_id, b.assignee_id, ascending, nullsFirst) || cmp(a.position, b.position) || cmp(a.id, b.id));
      assert.deepEqual(data.map((r) => r.title), want.map((r) => r.title), `ascending ${ascending} nullsFirst ${nullsFirst}`);
    }
  });

  test('range, limit and offset', async () => {
    const sorted = [...rows].sort((a, b) => cmp(a.position, b.position) || cmp(a.id, b.id));
    const page = (q) => q.order('position').order('id');
    let { data } = await ok(page(mine()).range(2, 4), 200, 'range 2-4');
    assert.deepEqual(data.map((r) => r.title), sorted.slice(2, 5).map((r) => r.title));
    ({ data } = await ok(page(mine()).limit(3), 200, 'limit 3'));
    assert.deepEqual(data.map((r) => r.title), sorted.slice(0, 3).map((r) => r.title));
    ({ data } = await ok(page(mine()).range(rows.length - 2, rows.length + 5), 200, 'range past the end'));
    assert.deepEqual(data.map((r) => r.title), sorted.slice(rows.length - 2).map((r) => r.title));
    ({ data } = await ok(page(mine()).range(rows.length + 10, rows.length + 20), 200, 'range beyond'));
    assert.deepEqual(data, []);
  });

  test("count: 'exact' with a range and with a filter", async () => {
    let res = await ok(db.from('orders').select('*', { count: 'exact' }).like('title', MARK).order('position').order('id').range(0, 1), 200, 'count');
    assert.equal(res.count, rows.length);
    assert.equal(res.data.length, 2);
    res = await ok(db.from('orders').select('id', { count: 'exact' }).like('title', MARK).eq('status', 'open'), 200, 'count filtered');
    assert.equal(res.count, rows.filter((r) => r.status === 'open').length);
    assert.equal(res.data.length, res.count);
    res = await ok(db.from('orders').select('*', { count: 'exact', head: true }).like('title', MARK), 200, 'count with head: true (HEAD)');
    assert.equal(res.count, rows.length);
    assert.equal(res.data, null);
    res = await ok(db.from('orders').select('id', { count: 'exact' }).like('title', MARK).eq('status', 'nothing-has-this'), 200, 'count zero');
    assert.equal(res.count, 0);
    assert.deepEqual(res.data, []);
  });
});

describe('update and delete with filters and .select()', () => {
  test('update by filter returns the changed rows', async () => {
    const { data } = await ok(db.from('orders').update({ status: 'archived', position: 40 }).like('title', MARK).eq('status', 'done').select(), 200, 'update');
    const want = rows.filter((r) => r.status === 'done');
    assert.ok(want.length >= 2);
    assert.deepEqual(titles(data), titles(want));
    for (const r of data) {
      assert.equal(r.status, 'archived');
      assert.equal(r.position, 40);
      const before = rows.find((x) => x.id === r.id);
      assert.ok(Date.parse(r.updated_at) >= Date.parse(before.updated_at), 'updated_at moves forward');
    }
    rows = rows.map((r) => data.find((d) => d.id === r.id) ?? r);
    await expectFilter(mine().eq('position', 40), (r) => r.position === 40, 'the update is visible');
  });

  test('update with or and in filters; a filter matching nothing changes nothing', async () => {
    const ids = [byTitle('alpha').id, byTitle('beta').id];
    const { data } = await ok(db.from('orders').update({ assignee_id: U2 }).in('id', ids).select(), 200, 'update in');
    assert.deepEqual(data.map((r) => r.id).sort(), [...ids].sort());
    for (const r of data) assert.equal(r.assignee_id, U2);
    rows = rows.map((r) => data.find((d) => d.id === r.id) ?? r);
    const res = await ok(db.from('orders').update({ position: 99 }).like('title', MARK).or('position.eq.-1,status.eq.nothing').select(), 200, 'update none');
    assert.deepEqual(res.data, []);
    await expectFilter(mine().eq('position', 99), () => false, 'nothing changed');
  });

  test('update returning selected columns only', async () => {
    const { data } = await ok(db.from('orders').update({ position: 11 }).eq('id', byTitle('gamma').id).select('id,position'), 200, 'update select');
    rows = rows.map((r) => (r.id === byTitle('gamma').id ? { ...r, position: 11 } : r));
    assert.equal(data.length, 1);
    assert.equal(data[0].position, 11);
    assert.deepEqual(Object.keys(data[0]).sort(), ['id', 'position'], `columns of ${JSON.stringify(data[0])}`);
  });

  test('delete by filter returns the deleted rows, which are gone', async () => {
    const { data } = await ok(db.from('orders').delete().like('title', MARK).eq('status', 'archived').select(), 200, 'delete');
    const want = rows.filter((r) => r.status === 'archived');
    assert.ok(want.length >= 3);
    assert.deepEqual(titles(data), titles(want));
    rows = rows.filter((r) => r.status !== 'archived');
    await expectFilter(mine(), () => true, 'the rest remains');
  });

  test('delete with not/or, and without .select()', async () => {
    const res = await ok(db.from('orders').delete().like('title', MARK).or('position.eq.7,assignee_id.eq.' + U1), 204, 'delete minimal');
    assert.equal(res.data, null);
    rows = rows.filter((r) => !(r.position === 7 || r.assignee_id === U1));
    await expectFilter(mine(), () => true, 'after delete');
    const { data } = await ok(db.from('orders').delete().like('title', MARK).not('status', 'eq', 'open').select(), 200, 'delete not');
    assert.deepEqual(titles(data), titles(rows.filter((r) => r.status !== 'open')));
    rows = rows.filter((r) => r.status === 'open');
    await expectFilter(mine(), () => true, 'after delete not');
  });
});
