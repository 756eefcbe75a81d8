// rest-security.test.mjs — what the data API refuses (CONTRACT.md §2, §3, §5, §7; issue 5 items 1,
// 3 and 7).
//
// Cross-tenant: a globex token never reads, updates or deletes an acme row, and naming acme in
// x-tenant with it is 403. Own rows: a member reads every row but changes and deletes only its own,
// cannot move owner_id, and gets owner_id = itself on insert whatever the body says; a viewer only
// reads. Typed errors: unknown table 404, unknown column 400 naming it, bad uuid/integer 400, check
// violation 422 and duplicate key 409 naming the constraint, write without a filter 400, is.true on
// a non-boolean column 400 (not 500) — and no error body carries SQL
// text or a schema name. SQL-injection strings in every position (filter keys, operators, values,
// order, select, logic trees, limit, table name, JSON keys of bodies) get 400/404 (values are bound
// parameters: 200 with no row) and change nothing. Huge in.() lists and or= nesting limits, ETag and
// If-None-Match, Range with Prefer: count=exact. Rows carry a per-run marker and are removed at the end.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import { after, before, describe, test } from 'node:test';

import { requireEnv, startTenantd } from '../lib/harness.mjs';
import { FIXTURE, assertProblem, call, login, uniq } from '../lib/auth.mjs';

const RUN = `sec-${uniq()}`;
const MARK = encodeURIComponent(`${RUN}*`); // for title=like.
const REP = { prefer: 'return=representation' };
// What leaked SQL or a Postgres error would look like (none of it is in the strings this file sends).
const SQLISH = /(json_populate|RETURNING|array_agg|row_to_json|coalesce\(|set_config\('(role|search_path)', \$|ERROR:|syntax error|violates (check|not-null|foreign key|unique) constraint|relation "|does not exist|invalid input syntax|out of range for type|\$\d+::|\bWITH _w\b|FROM json|t_[0-9a-f]{32})/i;
const SQLSTATE = /\b(42|22|23|25|XX)[0-9A-Z]{3}\b/;

let td;
const tok = {}; // role@tenant → access token
const uid = {}; // role@tenant → user id
let schemaOfAcme;

const enc = encodeURIComponent;

function rest(method, path, who, { body, headers = {}, raw } = {}) {
  return call(td, method, `/rest/v1/${path}`, body, { token: tok[who], headers, raw });
}

// An error answer: problem+json of status, without SQL text or schema names.
function refused(res, status, what, mention) {
  assertProblem(res, status, what);
  const text = `${res.json.title} ${res.json.detail}`;
  assert.doesNotMatch(text, SQLISH, `${what}: SQL text or a schema name in ${res.body}`);
  assert.doesNotMatch(text, SQLSTATE, `${what}: an SQLSTATE in ${res.body}`);
  if (schemaOfAcme) assert.ok(!res.body.includes(schemaOfAcme), `${what}: schema name in ${res.body}`);
  if (mention) assert.ok(res.json.detail.includes(mention), `${what}: detail should name ${mention}: ${res.body}`);
}

async function readAll(who = 'admin@acme') {
  const res = await rest('GET', `orders?title=like.${MARK}&order=id`, who);
  assert.equal(res.status, 200, res.body);
  return res.json;
}

async function readOne(id, who = 'admin@acme') {
  const res = await rest('GET', `orders?id=eq.${id}`, who);
  assert.equal(res.status, 200, res.body);
  return res.json[0];
}

async function insert(who, row) {
  const res = await rest('POST', 'orders', who, { body: row, headers: REP });
  assert.equal(res.status, 201, `insert by ${who}: ${res.body}`);
  return res.json[0];
}

let adminRow; // owned by the acme admin
let memberRow; // owned by the acme member
let globexRow;

before(async () => {
  td = await startTenantd();
  await td.waitReady();
  for (const tenant of ['acme', 'globex']) {
    for (const role of ['owner', 'admin', 'member', 'viewer']) {
      const t = await login(td, FIXTURE[tenant][role]);
      tok[`${role}@${tenant}`] = t.access_token;
      uid[`${role}@${tenant}`] = t.user.id;
    }
  }
  const url = new URL(requireEnv('DATABASE_URL'));
  const admin = new URL(requireEnv('PG_ADMIN_URL'));
  admin.pathname = url.pathname;
  schemaOfAcme = execFileSync('psql', [admin.href, '-AtXqc', "SELECT schema_name FROM tenantd.tenants WHERE slug = 'acme'"], { encoding: 'utf8' }).trim();
  adminRow = await insert('admin@acme', { title: `${RUN}-admin`, status: 'open', position: 1 });
  memberRow = await insert('member@acme', { title: `${RUN}-member`, status: 'open', position: 2 });
  globexRow = await insert('admin@globex', { title: `${RUN}-globex`, status: 'open', position: 3 });
});

after(async () => {
  if (!td) return;
  await rest('DELETE', `orders?title=like.${MARK}`, 'admin@acme');
  await rest('DELETE', `orders?title=like.${MARK}`, 'admin@globex');
});

describe('cross-tenant', () => {
  test('a globex token never sees an acme row', async () => {
    for (const q of [`id=eq.${adminRow.id}`, `or=(id.eq.${adminRow.id},id.eq.${memberRow.id})`, `title=like.${MARK}`, `id=in.(${adminRow.id},${memberRow.id})`]) {
      const res = await rest('GET', `orders?${q}`, 'admin@globex');
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json.map((r) => r.title).filter((t) => !t.endsWith('-globex')), [], q);
    }
    const res = await rest('GET', `orders?id=eq.${globexRow.id}`, 'admin@acme');
    assert.deepEqual(res.json, [], 'nor acme a globex row');
  });

  test('update and delete of an acme id with a globex token reach no row', async () => {
    let res = await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@globex', { body: { title: 'stolen' }, headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, []);
    res = await rest('DELETE', `orders?id=eq.${adminRow.id}`, 'owner@globex', { headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, []);
    res = await rest('DELETE', `orders?id=eq.${memberRow.id}`, 'owner@globex');
    assert.ok([200, 204].includes(res.status), res.body);
    assert.deepEqual(await readOne(adminRow.id), adminRow, 'the acme row is unchanged');
    assert.deepEqual(await readOne(memberRow.id), memberRow, 'the acme row still exists');
  });

  test('x-tenant naming another tenant is 403, naming its own is fine', async () => {
    for (const [method, body] of [['GET'], ['POST', { title: `${RUN}-x` }], ['PATCH', { title: 'x' }], ['DELETE']]) {
      const q = method === 'GET' || method === 'POST' ? 'orders' : `orders?id=eq.${adminRow.id}`;
      refused(await rest(method, q, 'admin@globex', { body, headers: { 'x-tenant': 'acme' } }), 403, `${method} x-tenant: acme`);
    }
    const res = await rest('GET', `orders?id=eq.${globexRow.id}`, 'admin@globex', { headers: { 'x-tenant': 'globex' } });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json.length, 1);
    assert.deepEqual(await readOne(adminRow.id), adminRow);
  });
});

describe('own rows and roles', () => {
  test('member and viewer read every row', async () => {
    for (const who of ['member@acme', 'viewer@acme']) {
      const titles = (await readAll(who)).map((r) => r.title).sort();
      assert.deepEqual(titles, [`${RUN}-admin`, `${RUN}-member`], who);
    }
  });

  test("a member's update or delete of another's row reaches nothing", async () => {
    let res = await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'member@acme', { body: { title: `${RUN}-hijacked` }, headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, []);
    res = await rest('DELETE', `orders?id=eq.${adminRow.id}`, 'member@acme', { headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, []);
    // a broad filter changes only the member's own row
    res = await rest('PATCH', `orders?title=like.${MARK}`, 'member@acme', { body: { position: 77 }, headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.map((r) => r.id), [memberRow.id]);
    memberRow = res.json[0];
    // an or= / not.or= filter cannot escape the own-row condition (it is ANDed as a whole); every
    // query is also narrowed to this run's rows, so nothing else of the shared database is touched
    const cases = [
      [`or=(id.eq.${adminRow.id},id.eq.${memberRow.id})`, [memberRow.id]],
      [`or=(id.eq.${adminRow.id},title.like.*)`, [memberRow.id]],
      [`not.or=(id.eq.${memberRow.id})`, []],
      [`or=(owner_id.eq.${uid['admin@acme']},owner_id.is.null,id.eq.${adminRow.id})`, []],
    ];
    for (const [q, want] of cases) {
      res = await rest('PATCH', `orders?${q}&title=like.${MARK}`, 'member@acme', { body: { position: 78 }, headers: REP });
      assert.equal(res.status, 200, `${q}: ${res.body}`);
      assert.deepEqual(res.json.map((r) => r.id), want, `PATCH ${q}`);
      res = await rest('DELETE', `orders?${q}&title=like.${MARK}&id=eq.${adminRow.id}`, 'member@acme', { headers: REP });
      assert.equal(res.status, 200, `${q}: ${res.body}`);
      assert.deepEqual(res.json, [], `DELETE ${q}`);
    }
    memberRow = await readOne(memberRow.id);
    assert.deepEqual(await readOne(adminRow.id), adminRow, 'the admin row is untouched');
  });

  test('a member updates its own row but cannot change owner_id', async () => {
    let res = await rest('PATCH', `orders?id=eq.${memberRow.id}`, 'member@acme', { body: { status: 'in_progress' }, headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.equal(res.json[0].status, 'in_progress');
    memberRow = res.json[0];
    for (const owner of [uid['admin@acme'], uid['member@acme'], null]) {
      res = await rest('PATCH', `orders?id=eq.${memberRow.id}`, 'member@acme', { body: { owner_id: owner, title: `${RUN}-member` }, headers: REP });
      refused(res, 403, `owner_id ${owner}`);
    }
    assert.deepEqual(await readOne(memberRow.id), memberRow);
  });

  test('insert sets owner_id to the caller whatever the body says', async () => {
    const rows = [{ title: `${RUN}-m1`, owner_id: uid['admin@acme'] }, { title: `${RUN}-m2`, owner_id: null }, { title: `${RUN}-m3`, owner_id: uid['owner@globex'] }];
    const res = await rest('POST', 'orders', 'member@acme', { body: rows, headers: REP });
    assert.equal(res.status, 201, res.body);
    assert.equal(res.json.length, 3);
    for (const r of res.json) assert.equal(r.owner_id, uid['member@acme'], r.title);
    for (const r of res.json) assert.equal((await readOne(r.id)).owner_id, uid['member@acme']);
    const adminIns = await insert('admin@acme', { title: `${RUN}-a1`, owner_id: uid['member@acme'] });
    assert.equal(adminIns.owner_id, uid['admin@acme'], 'for an admin too');
  });

  test('a member deletes its own row', async () => {
    const own = await insert('member@acme', { title: `${RUN}-doomed` });
    const res = await rest('DELETE', `orders?id=eq.${own.id}`, 'member@acme', { headers: REP });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json.map((r) => r.id), [own.id]);
    assert.equal(await readOne(own.id), undefined);
  });

  test('a viewer cannot insert, update or delete', async () => {
    refused(await rest('POST', 'orders', 'viewer@acme', { body: { title: `${RUN}-v` } }), 403, 'viewer POST');
    refused(await rest('PATCH', `orders?id=eq.${memberRow.id}`, 'viewer@acme', { body: { title: 'v' } }), 403, 'viewer PATCH');
    refused(await rest('DELETE', `orders?id=eq.${memberRow.id}`, 'viewer@acme'), 403, 'viewer DELETE');
    assert.deepEqual(await readOne(memberRow.id), memberRow);
    assert.ok(!(await readAll()).some((r) => r.title === `${RUN}-v`));
  });
});

describe('typed errors', () => {
  test('unknown table 404', async () => {
    for (const t of ['nosuch', 'Orders', 'tenants', 'users', 'memberships', 'pg_class', 'pg_catalog.pg_roles', 'tenantd.users', 'orders.id', `${enc(schemaOfAcme)}.orders`]) {
      refused(await rest('GET', t, 'admin@acme'), 404, `GET /rest/v1/${t}`);
    }
    refused(await rest('POST', 'nosuch', 'admin@acme', { body: { title: 'x' } }), 404, 'POST nosuch');
    refused(await rest('DELETE', 'nosuch?id=eq.1', 'admin@acme'), 404, 'DELETE nosuch');
  });

  test('unknown column 400 naming it, in every place a column appears', async () => {
    refused(await rest('GET', 'orders?colour=eq.red', 'admin@acme'), 400, 'filter', 'colour');
    refused(await rest('GET', 'orders?select=id,colour', 'admin@acme'), 400, 'select', 'colour');
    refused(await rest('GET', 'orders?order=colour.desc', 'admin@acme'), 400, 'order', 'colour');
    refused(await rest('GET', 'orders?or=(title.eq.x,colour.eq.red)', 'admin@acme'), 400, 'or', 'colour');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-c`, colour: 'red' } }), 400, 'POST body', 'colour');
    refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { colour: 'red' } }), 400, 'PATCH body', 'colour');
    refused(await rest('PATCH', `orders?colour=eq.red`, 'admin@acme', { body: { title: 'x' } }), 400, 'PATCH filter', 'colour');
    refused(await rest('DELETE', `orders?colour=eq.red`, 'admin@acme'), 400, 'DELETE filter', 'colour');
  });

  test('a value that does not fit its column is 400', async () => {
    refused(await rest('GET', 'orders?id=eq.not-a-uuid', 'admin@acme'), 400, 'GET bad uuid');
    refused(await rest('GET', 'orders?position=gt.many', 'admin@acme'), 400, 'GET bad integer');
    refused(await rest('GET', 'orders?created_at=lt.yesterday-ish', 'admin@acme'), 400, 'GET bad timestamp');
    refused(await rest('GET', 'orders?id=in.(x,y)', 'admin@acme'), 400, 'GET bad uuid list');
    refused(await rest('PATCH', 'orders?id=eq.zzz', 'admin@acme', { body: { title: 'x' } }), 400, 'PATCH bad uuid');
    refused(await rest('DELETE', 'orders?id=eq.zzz', 'admin@acme'), 400, 'DELETE bad uuid');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-u`, assignee_id: 'nope' } }), 400, 'POST bad uuid');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-u`, position: 'first' } }), 400, 'POST bad integer');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-u`, position: 1.5 } }), 400, 'POST fractional integer');
    refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { position: 2 ** 40 } }), 400, 'PATCH out of range');
    assert.deepEqual(await readOne(adminRow.id), adminRow);
  });

  test('check violation is 422 naming the constraint; a missing required column 422 naming it', async () => {
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-s`, status: 'bogus' } }), 422, 'POST status', 'orders_status_check');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { title: '' } }), 422, 'POST empty title', 'orders_title_check');
    refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { status: 'bogus' } }), 422, 'PATCH status', 'orders_status_check');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { status: 'open' } }), 422, 'POST without title', 'title');
    refused(await rest('POST', 'orders', 'admin@acme', { body: { id: adminRow.id, title: `${RUN}-dup` } }), 409, 'POST duplicate id', 'orders_pkey');
    // an array is one transaction: one bad row, none inserted
    const res = await rest('POST', 'orders', 'admin@acme', { body: [{ title: `${RUN}-good`, status: 'open' }, { title: `${RUN}-bad`, status: 'bogus' }] });
    refused(res, 422, 'POST array with a bad row', 'orders_status_check');
    assert.ok(!(await readAll()).some((r) => r.title === `${RUN}-good`), 'nothing of the array was inserted');
    assert.deepEqual(await readOne(adminRow.id), adminRow);
  });

  test('a write without a filter is 400 and changes nothing', async () => {
    const before = await readAll();
    for (const q of ['', '?select=*', '?order=id', '?limit=1', '?select=id&order=title&limit=5&offset=0']) {
      refused(await rest('PATCH', `orders${q}`, 'admin@acme', { body: { title: `${RUN}-all` } }), 400, `PATCH orders${q}`);
      refused(await rest('DELETE', `orders${q}`, 'admin@acme'), 400, `DELETE orders${q}`);
    }
    assert.deepEqual(await readAll(), before);
  });

  test('malformed bodies and syntax are 400/415, never 500', async () => {
    refused(await rest('POST', 'orders', 'admin@acme', { raw: '{"title": ' }), 400, 'truncated JSON');
    refused(await rest('POST', 'orders', 'admin@acme', { raw: '[]' }), 400, 'empty array');
    refused(await rest('POST', 'orders', 'admin@acme', { raw: '"x"' }), 400, 'a string');
    refused(await rest('POST', 'orders', 'admin@acme', { raw: '[1, 2]' }), 400, 'an array of numbers');
    refused(await rest('POST', 'orders', 'admin@acme', { raw: '{"title": "a", "title": "b"}' }), 400, 'duplicate keys');
    refused(await rest('POST', 'orders', 'admin@acme', { raw: `title=${RUN}`, headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'form body');
    refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: {} }), 400, 'empty PATCH body');
    for (const q of ['order=title.asc.desc', 'order=title.nullsfirst.asc', 'order=title.nullsfirst.nullslast', 'select=', 'limit=-1', 'offset=x',
      'title=eq', 'title=zz.x', 'title=in.(a', 'title=is.maybe', 'or=(title.eq.x', 'or=()', 'title=eq.%zz', 'title=eq.a%00b', 'title',
      'title=is.true', 'position=is.false', 'created_at=is.unknown', 'or=(title.is.true)']) {
      refused(await rest('GET', `orders?${q}`, 'admin@acme'), 400, `GET ?${q}`);
    }
  });
});

describe('SQL injection in every position', () => {
  const INJ = [
    "'; DROP TABLE orders; --",
    '"; DELETE FROM orders; --',
    "x' OR '1'='1",
    '1) OR (1=1',
    'title) OR TRUE --',
    '$1',
    'pg_sleep(2)',
    '(SELECT 1)',
    'id"::text; TRUNCATE orders; --',
    "\\'; SELECT set_config('role', 'postgres', false); --",
  ];
  let snapshot;

  before(async () => {
    snapshot = await readAll();
  });

  test('filter keys, operators, order, select, logic trees, limit: 400', async () => {
    for (const s of INJ) {
      const e = enc(s);
      const cases = [
        `${e}=eq.1`, `title=${e}.x`, `title=not.${e}.x`, `order=${e}`, `order=title.${e}`, `order=title,${e}`, `select=${e}`, `select=id,${e}`,
        `or=(title.eq.x,${e})`, `or=(${e}.eq.1)`, `or=(title.${e}.1)`, `and=(${e})`, `limit=${e}`, `offset=${e}`, `title=is.${e}`,
      ];
      for (const q of cases) refused(await rest('GET', `orders?${q}`, 'admin@acme'), 400, `GET ?${q}`);
      for (const q of [`${e}=eq.1`, `or=(${e})`, `order=${e}&id=eq.${adminRow.id}`]) {
        refused(await rest('PATCH', `orders?${q}`, 'admin@acme', { body: { title: 'pwned' } }), 400, `PATCH ?${q}`);
        refused(await rest('DELETE', `orders?${q}`, 'admin@acme'), 400, `DELETE ?${q}`);
      }
    }
  });

  test('values are bound parameters: text matches nothing, typed columns 400', async () => {
    for (const s of INJ) {
      const e = enc(s);
      for (const q of [`title=eq.${e}`, `title=like.${e}`, `title=ilike.*${e}*`, `title=in.(${e})`, `title=in.("${e}",x)`, `or=(title.eq."${e}")`]) {
        const res = await rest('GET', `orders?${q}&id=in.(${adminRow.id},${memberRow.id})`, 'admin@acme');
        if (res.status === 400) refused(res, 400, `GET ?${q}`);
        else {
          assert.equal(res.status, 200, `GET ?${q}: ${res.body}`);
          assert.deepEqual(res.json, [], `GET ?${q}`);
        }
      }
      for (const q of [`id=eq.${e}`, `position=eq.${e}`, `id=in.(${e})`]) refused(await rest('GET', `orders?${q}`, 'admin@acme'), 400, `GET ?${q}`);
      const res = await rest('PATCH', `orders?title=eq.${e}&id=in.(${adminRow.id},${memberRow.id})`, 'admin@acme', { body: { title: 'pwned' }, headers: REP });
      assert.equal(res.status, 200, res.body);
      assert.deepEqual(res.json, []);
      // a value written is stored as is
      const row = await insert('admin@acme', { title: `${RUN}-v ${s}` });
      assert.equal(row.title, `${RUN}-v ${s}`);
      const back = await rest('GET', `orders?title=eq.${enc(`${RUN}-v ${s}`)}`, 'admin@acme');
      assert.deepEqual(back.json, [row]);
      await rest('DELETE', `orders?id=eq.${row.id}`, 'admin@acme');
    }
  });

  test('table names: 404', async () => {
    for (const s of INJ) {
      const e = enc(s);
      for (const t of [e, `orders${e}`, `orders%3B${e}`, `${e}orders`]) {
        const res = await rest('GET', t, 'admin@acme');
        assert.ok([400, 404].includes(res.status), `GET /rest/v1/${t}: ${res.status} ${res.body}`);
        refused(res, res.status, `GET /rest/v1/${t}`);
        const w = await rest('DELETE', `${t}?id=eq.${adminRow.id}`, 'admin@acme');
        assert.ok([400, 404].includes(w.status), `DELETE /rest/v1/${t}: ${w.status} ${w.body}`);
      }
    }
  });

  test('JSON keys of bodies: 400', async () => {
    for (const s of INJ) {
      refused(await rest('POST', 'orders', 'admin@acme', { body: { title: `${RUN}-k`, [s]: 'x' } }), 400, `POST key ${s}`);
      refused(await rest('POST', 'orders', 'admin@acme', { body: [{ title: `${RUN}-k` }, { [s]: 'x' }] }), 400, `POST array key ${s}`);
      refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { [s]: 'x' } }), 400, `PATCH key ${s}`);
      refused(await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { title: 'x', [s]: 'x' } }), 400, `PATCH key ${s} with a good one`);
    }
  });

  test('nothing changed: the rows and the tables are intact', async () => {
    assert.deepEqual(await readAll(), snapshot);
    const res = await rest('GET', 'orders?limit=1', 'viewer@acme');
    assert.equal(res.status, 200);
    const admin = new URL(requireEnv('PG_ADMIN_URL'));
    admin.pathname = new URL(requireEnv('DATABASE_URL')).pathname;
    const n = execFileSync('psql', [admin.href, '-AtXqc',
      `SELECT count(*) FROM tenantd.tenants t WHERE t.slug IN ('acme', 'globex') AND to_regclass(quote_ident(t.schema_name) || '.orders') IS NOT NULL AND to_regclass(quote_ident(t.schema_name) || '.notifications') IS NOT NULL`,
    ], { encoding: 'utf8' }).trim();
    assert.equal(n, '2', 'both fixture tenants still have their tables');
  });
});

describe('limits', () => {
  test('in.() with 3000 values is 400, not 500; 2000 parameters are served', async () => {
    const nums = (n) => Array.from({ length: n }, (_, i) => i).join(',');
    assert.ok(`position=in.(${nums(3000)})`.length < 16384);
    refused(await rest('GET', `orders?position=in.(${nums(3000)})`, 'admin@acme'), 400, 'GET 3000 values');
    refused(await rest('DELETE', `orders?position=in.(${nums(3000)})&title=like.${MARK}`, 'admin@acme'), 400, 'DELETE 3000 values');
    refused(await rest('GET', `orders?or=(title.eq.x,position.in.(${nums(3000)}))`, 'admin@acme'), 400, 'GET 3000 values inside or=');
    const res = await rest('GET', `orders?position=in.(${nums(1999)})&title=like.${MARK}`, 'admin@acme');
    assert.equal(res.status, 200, res.body);
    // 3000 uuids is over the 16 KiB query limit of CONTRACT.md §2
    const uuids = Array.from({ length: 3000 }, () => crypto.randomUUID()).join(',');
    const big = await rest('GET', `orders?id=in.(${uuids})`, 'admin@acme');
    assert.ok([400, 414].includes(big.status), `3000 uuids: ${big.status} ${big.body.slice(0, 200)}`);
    assert.equal(big.status, 414, 'a query string over 16 KiB is 414');
  });

  test('or= nests 16 deep, 17 is 400', async () => {
    const nested = (depth, top = 'or') => {
      let q = `${top}=(`;
      for (let i = 1; i < depth; i++) q += i % 2 ? 'and(' : 'or(';
      return `${q}position.eq.1${')'.repeat(depth)}`;
    };
    for (const top of ['or', 'and', 'not.or']) {
      const res = await rest('GET', `orders?${nested(16, top)}&title=like.${MARK}`, 'admin@acme');
      assert.equal(res.status, 200, `${top} 16 deep: ${res.body}`);
      refused(await rest('GET', `orders?${nested(17, top)}`, 'admin@acme'), 400, `${top} 17 deep`);
    }
    refused(await rest('GET', `orders?${nested(500)}`, 'admin@acme'), 400, '500 deep');
    refused(await rest('DELETE', `orders?${nested(17)}&title=like.${MARK}`, 'admin@acme'), 400, 'DELETE 17 deep');
  });
});

describe('ETag and Range', () => {
  test('If-None-Match answers 304 until the rows change', async () => {
    const q = `orders?title=like.${MARK}&order=id`;
    const first = await rest('GET', q, 'admin@acme');
    assert.equal(first.status, 200);
    const etag = first.headers.etag;
    assert.ok(etag, 'an ETag');
    const again = await rest('GET', q, 'admin@acme', { headers: { 'if-none-match': etag } });
    assert.equal(again.status, 304);
    assert.equal(again.body, '');
    assert.equal(again.headers.etag, etag);
    const other = await rest('GET', q, 'admin@acme', { headers: { 'if-none-match': 'W/"0000000000000000"' } });
    assert.equal(other.status, 200);
    assert.deepEqual(other.json, first.json);
    const upd = await rest('PATCH', `orders?id=eq.${adminRow.id}`, 'admin@acme', { body: { position: 5 }, headers: REP });
    assert.equal(upd.status, 200, upd.body);
    adminRow = upd.json[0];
    const changed = await rest('GET', q, 'admin@acme', { headers: { 'if-none-match': etag } });
    assert.equal(changed.status, 200, 'a change invalidates the ETag');
    assert.notEqual(changed.headers.etag, etag);
    // another tenant with the same query gets its own representation, not a 304 for acme's
    const g = await rest('GET', q, 'admin@globex', { headers: { 'if-none-match': changed.headers.etag } });
    assert.equal(g.status, 200);
  });

  test('Range header with Prefer: count=exact', async () => {
    const all = await readAll();
    const n = all.length;
    assert.ok(n >= 4, `rows of the run: ${n}`);
    const q = `orders?title=like.${MARK}&order=id`;
    let res = await rest('GET', q, 'admin@acme', { headers: { range: '0-1', prefer: 'count=exact' } });
    assert.ok([200, 206].includes(res.status), res.body);
    assert.deepEqual(res.json, all.slice(0, 2));
    assert.equal(res.headers['content-range'], `0-1/${n}`);
    res = await rest('GET', q, 'admin@acme', { headers: { range: '1-2', 'range-unit': 'items', prefer: 'count=exact' } });
    assert.deepEqual(res.json, all.slice(1, 3));
    assert.equal(res.headers['content-range'], `1-2/${n}`);
    res = await rest('GET', q, 'admin@acme', { headers: { range: `${n - 1}-`, prefer: 'count=exact' } });
    assert.deepEqual(res.json, all.slice(n - 1));
    assert.equal(res.headers['content-range'], `${n - 1}-${n - 1}/${n}`);
    res = await rest('GET', q, 'admin@acme', { headers: { range: `${n + 5}-${n + 9}`, prefer: 'count=exact' } });
    assert.ok([200, 206, 416].includes(res.status), res.body);
    if (res.status !== 416) assert.deepEqual(res.json, []);
    assert.equal(res.headers['content-range'], `*/${n}`);
    res = await rest('GET', q, 'admin@acme', { headers: { range: '0-1' } });
    assert.equal(res.headers['content-range'], '0-1/*', 'no count without Prefer: count=exact');
    res = await rest('GET', `${q}&limit=2&offset=1`, 'admin@acme', { headers: { prefer: 'count=exact' } });
    assert.deepEqual(res.json, all.slice(1, 3));
    assert.equal(res.headers['content-range'], `1-2/${n}`);
    // a huge end is a malformed header (ignored), not an overflow; a huge start reads past the end
    for (const range of ['0-99999999999999999999', '0-9223372036854775807', '5-1', '-3', 'a-b', '1-2x', '+1-2']) {
      res = await rest('GET', q, 'admin@acme', { headers: { range } });
      assert.equal(res.status, 200, `Range: ${range}: ${res.body}`);
      assert.deepEqual(res.json, all, `Range: ${range} is ignored`);
    }
    res = await rest('GET', q, 'admin@acme', { headers: { range: '999999999999999-' } });
    assert.equal(res.status, 200, res.body);
    assert.deepEqual(res.json, []);
    res = await rest('GET', q, 'admin@acme', { headers: { range: '0-999999999999999' } });
    assert.deepEqual(res.json, all, 'an end past the last row: every row (the limit is capped)');
  });
});
