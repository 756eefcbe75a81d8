// openapi.test.mjs — GET /openapi.json (issue 5 item 6): a structurally valid OpenAPI 3.1
// document in which every entry of the router table (`tenantd --routes`) appears with its method,
// path parameters declared, public routes without security and the others with it, and one path
// per data API table with its columns as the row schema.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

import { startTenantd, request } from '../lib/harness.mjs';

let td;
let doc;
let routes;

before(async () => {
  td = await startTenantd();
  await td.waitReady();
  const res = await request(`${td.url}/openapi.json`);
  assert.equal(res.status, 200, res.body);
  assert.match(res.headers['content-type'], /^application\/json/);
  doc = JSON.parse(res.body);
  routes = JSON.parse(execFileSync(process.env.TENANTD_BIN, ['--routes'], { encoding: 'utf8' }));
});

after(async () => {
  await td?.stop();
});

test('the document has the OpenAPI 3.1 shape', () => {
  assert.equal(doc.openapi, '3.1.0');
  assert.equal(typeof doc.info?.title, 'string');
  assert.equal(typeof doc.info?.version, 'string');
  assert.equal(typeof doc.paths, 'object');
  assert.equal(doc.components?.securitySchemes?.bearer?.scheme, 'bearer');
  const methods = new Set(['get', 'put', 'post', 'delete', 'options', 'head', 'patch', 'trace']);
  const opIds = new Set();
  for (const [path, item] of Object.entries(doc.paths)) {
    assert.ok(path.startsWith('/'), path);
    for (const [method, op] of Object.entries(item)) {
      assert.ok(methods.has(method), `${path}: ${method}`);
      assert.equal(typeof op.responses, 'object', `${method} ${path} has responses`);
      assert.ok(Object.keys(op.responses).length > 0);
      for (const [code, r] of Object.entries(op.responses)) {
        assert.match(code, /^([1-5][0-9][0-9]|default)$/);
        assert.equal(typeof r.description, 'string', `${method} ${path} ${code} has a description`);
      }
      if (op.operationId !== undefined) {
        assert.ok(!opIds.has(op.operationId), `operationId ${op.operationId} is unique`);
        opIds.add(op.operationId);
      }
      // every {param} of the path is declared as a required path parameter
      for (const m of path.matchAll(/\{([^}]+)\}/g)) {
        const p = (op.parameters ?? []).find((x) => x.name === m[1] && x.in === 'path');
        assert.ok(p && p.required === true, `${method} ${path} declares {${m[1]}}`);
      }
      for (const ref of JSON.stringify(op).matchAll(/"\$ref":"#\/components\/schemas\/([^"]+)"/g)) {
        assert.ok(doc.components.schemas[ref[1]], `${ref[1]} is defined`);
      }
    }
  }
});

test('every router entry appears, with security exactly when it is not public', () => {
  assert.ok(routes.length > 20);
  for (const r of routes) {
    const op = doc.paths[r.pattern]?.[r.method.toLowerCase()];
    assert.ok(op, `${r.method} ${r.pattern} is in /openapi.json`);
    if (r.permission === 'public') assert.deepEqual(op.security, [], `${r.method} ${r.pattern} is public`);
    else assert.ok(op.security?.length > 0, `${r.method} ${r.pattern} needs credentials`);
  }
});

test('the data API tables are described with their columns', () => {
  const orders = doc.paths['/rest/v1/orders']?.get;
  assert.ok(orders, '/rest/v1/orders');
  const schema = doc.components.schemas.orders;
  for (const col of ['id', 'title', 'status', 'position', 'owner_id', 'created_at']) {
    assert.ok(schema.properties[col], `orders.${col}`);
  }
  assert.equal(schema.properties.position.type, 'integer');
  assert.equal(schema.properties.id.format, 'uuid');
});
