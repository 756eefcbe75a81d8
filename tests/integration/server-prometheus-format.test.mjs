// server-prometheus-format.test.mjs — checks the Prometheus text parser the /metrics tests rely on.
//
// "Every line of /metrics parses" only means something if the parser rejects what Prometheus
// would reject; these cases pin that down without starting tenantd.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { findSample, parsePrometheus } from '../lib/harness.mjs';

const VALID = [
  '# HELP tenantd_http_requests_total HTTP requests.',
  '# TYPE tenantd_http_requests_total counter',
  'tenantd_http_requests_total{route="/healthz",method="GET",status="200"} 3',
  '# TYPE tenantd_http_request_duration_seconds histogram',
  'tenantd_http_request_duration_seconds_bucket{le="0.005"} 2',
  'tenantd_http_request_duration_seconds_bucket{le="+Inf"} 3',
  'tenantd_http_request_duration_seconds_sum 0.0123',
  'tenantd_http_request_duration_seconds_count 3',
  '# a free comment',
  'tenantd_redis_up 1 1700000000000',
  'escaped{v="a\\"b\\\\c\\n"} -1.5e-3',
  'odd_values{x="1"} NaN',
  'odd_values{x="2"} -Inf',
  '',
].join('\n');

const INVALID = {
  'no trailing newline': 'a 1',
  'no value': 'a\n',
  'two values': 'a 1 2 3\n',
  'bad value': 'a one\n',
  'bad metric name': '1a 1\n',
  'unquoted label value': 'a{x=1} 1\n',
  'unterminated labels': 'a{x="1" 1\n',
  'missing comma between labels': 'a{x="1" y="2"} 1\n',
  'repeated label': 'a{x="1",x="2"} 1\n',
  'bad escape in label': 'a{x="\\t"} 1\n',
  'unknown type': '# TYPE a countr\na 1\n',
  'TYPE twice': '# TYPE a counter\n# TYPE a counter\na 1\n',
  'HELP twice': '# HELP a x\n# HELP a y\na 1\n',
  'TYPE after samples': 'a 1\n# TYPE a counter\n',
  'malformed TYPE': '# TYPE a\na 1\n',
  'leading space': ' a 1\n',
};

describe('parsePrometheus', () => {
  test('accepts a valid exposition and reads samples, labels and values', () => {
    const { families, samples } = parsePrometheus(VALID);
    assert.equal(families.get('tenantd_http_requests_total').type, 'counter');
    assert.equal(families.get('tenantd_http_request_duration_seconds').type, 'histogram');
    const [req] = findSample(samples, 'tenantd_http_requests_total', { route: '/healthz', status: '200' });
    assert.equal(req.value, 3);
    assert.equal(findSample(samples, 'escaped')[0].labels.v, 'a"b\\c\n');
    assert.equal(findSample(samples, 'escaped')[0].value, -0.0015);
    assert.ok(Number.isNaN(findSample(samples, 'odd_values', { x: '1' })[0].value));
    assert.equal(findSample(samples, 'odd_values', { x: '2' })[0].value, -Infinity);
    assert.equal(findSample(samples, 'tenantd_redis_up')[0].value, 1);
  });

  for (const [why, text] of Object.entries(INVALID)) {
    test(`rejects: ${why}`, () => {
      assert.throws(() => parsePrometheus(text));
    });
  }
});
