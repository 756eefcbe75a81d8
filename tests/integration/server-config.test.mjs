// server-config.test.mjs — tenantd refuses a bad configuration (CONTRACT.md §1).
//
// Each case starts the real binary with the stack environment plus one bad variable and expects
// exit status 2, nothing on stdout and exactly one stderr line that names the variable — and never
// a secret taken from the bad value. Passwords in valid URLs stay out of the logs as well.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { freePort, request, requireEnv, runTenantd, sleep, startTenantd } from '../lib/harness.mjs';

const CASES = [
  { name: 'TENANTD_LISTEN', value: 'nonsense' },
  { name: 'TENANTD_LISTEN', value: '127.0.0.1:99999' },
  { name: 'TENANTD_TLS_LISTEN', value: 'nonsense' },
  { name: 'TENANTD_LOG_LEVEL', value: 'loud' },
  { name: 'REDIS_URL', value: 'http://x' },
  { name: 'DATABASE_URL', value: '' },
  { name: 'TENANTD_TLS_CERT', value: '/nonexistent' },
  { name: 'TENANTD_TLS_KEY', value: '/nonexistent' },
  { name: 'TENANTD_THREADS', value: '0' },
  { name: 'TENANTD_THREADS', value: 'many' },
  { name: 'TENANTD_MAX_BODY_BYTES', value: 'abc' },
  { name: 'TENANTD_DB_QUERY_TIMEOUT_MS', value: '-1' },
  { name: 'TENANTD_SHUTDOWN_TIMEOUT_MS', value: '10s' },
  { name: 'TENANTD_H2_MAX_STREAMS', value: '0' },
];

const SECRET_CASES = [
  { name: 'REDIS_URL', value: 'redis://:sekrit@host:notaport', secret: 'sekrit' },
  { name: 'DATABASE_URL', value: 'mysql://tenantd_app:hunter2@127.0.0.1/tenantd', secret: 'hunter2' },
];

function describeRun(run) {
  return `status ${run.status}${run.timedOut ? ' (timed out, killed)' : ''}\n` +
    `stdout: ${JSON.stringify(run.stdout)}\nstderr: ${JSON.stringify(run.stderr)}`;
}

// The shared expectations: exit 2, stdout empty, one stderr line naming the variable.
function assertConfigError(run, variable) {
  const stderr = run.stderr.filter((line) => line.trim() !== '');
  const stdout = run.stdout.filter((line) => line.trim() !== '');
  assert.equal(run.status, 2, `expected exit status 2 for a bad ${variable}; ${describeRun(run)}`);
  assert.deepEqual(stdout, [], `nothing on stdout for a config error; ${describeRun(run)}`);
  assert.equal(stderr.length, 1, `exactly one stderr line; ${describeRun(run)}`);
  assert.ok(stderr[0].includes(variable), `the stderr line names ${variable}; ${describeRun(run)}`);
}

describe('configuration errors stop start-up with exit 2 and one line naming the variable', () => {
  for (const { name, value } of CASES) {
    test(`${name}=${JSON.stringify(value)}`, async () => {
      const run = await runTenantd({ [name]: value });
      assertConfigError(run, name);
    });
  }

  test('TENANTD_TLS_CERT is not checked when TLS is disabled (TENANTD_TLS_LISTEN empty)', async () => {
    // A positive control for the TLS case above: with TLS off, the missing file does not matter,
    // so the process must still be running (killed by the timeout) rather than exit 2.
    const run = await runTenantd({ TENANTD_TLS_LISTEN: '', TENANTD_TLS_CERT: '/nonexistent' }, { timeoutMs: 3000 });
    assert.ok(run.timedOut, `tenantd should serve with TLS disabled; ${describeRun(run)}`);
  });
});

describe('secrets in a bad value never reach the output', () => {
  for (const { name, value, secret } of SECRET_CASES) {
    test(`${name} with a password: the error names ${name} and hides the password`, async () => {
      const run = await runTenantd({ [name]: value });
      assertConfigError(run, name);
      const output = [...run.stdout, ...run.stderr].join('\n');
      assert.ok(!output.includes(secret), `the output leaks '${secret}'; ${describeRun(run)}`);
    });
  }
});

describe('secrets in valid URLs never reach the logs', () => {
  // The wrong Postgres password makes the stack's Postgres refuse the login (an error message from
  // the server side); Redis is not listening at all (a client-side error).
  test('a Postgres and a Redis password stay out of the output while both connections fail', async () => {
    const redisPort = await freePort();
    const wrongPassword = new URL(requireEnv('DATABASE_URL'));
    wrongPassword.password = 'pg-s3cr3t-pw';
    const td = await startTenantd({
      DATABASE_URL: wrongPassword.href,
      REDIS_URL: `redis://:redis-s3cr3t-pw@127.0.0.1:${redisPort}/0`,
      TENANTD_LOG_LEVEL: 'debug',
    });
    const ready = await request(`${td.url}/readyz`);
    assert.equal(ready.status, 503, `not ready without Postgres and Redis: ${ready.body}`);
    await sleep(1500); // a few reconnect attempts, each a chance to log the URL
    assert.equal(await td.stop(), 0);
    const leaks = td.logs().filter((line) => /s3cr3t/.test(line));
    assert.deepEqual(leaks, [], 'no output line contains a password');
    assert.ok(!ready.body.includes('s3cr3t'), 'the /readyz body does not contain a password');
  });
});
