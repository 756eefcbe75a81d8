// scratch.mjs — throwaway PostgreSQL 15 and Redis instances for destructive tests.
//
// Tests that stop and restart a dependency must not touch the shared project-local stack, so
// they point tenantd at one of these instead. Each listens on 127.0.0.1 on a free port, keeps its
// files in a fresh /tmp folder and is stopped and removed when the test file ends.
import { execFile, spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';

import { onCleanup } from './cleanup.mjs';
import { freePort, sleep, within } from './util.mjs';

const execFileP = promisify(execFile);

// ---------------------------------------------------------------------------------------------
// PostgreSQL
// ---------------------------------------------------------------------------------------------

function pgBin(name) {
  return path.join(process.env.PGBIN || '/usr/lib/postgresql/15/bin', name);
}

function postgresIds() {
  const uid = Number(spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).stdout.trim());
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error('there is no postgres OS user');
  return { uid, gid };
}

// Runs a PostgreSQL binary as the postgres OS user from dir; rejects with its output on failure.
async function asPostgres(dir, bin, args) {
  try {
    return await execFileP('runuser', ['-u', 'postgres', '--', pgBin(bin), ...args], { cwd: dir, timeout: 60000 });
  } catch (err) {
    throw new Error(`${bin} ${args.join(' ')} failed: ${err.stderr || err.stdout || err.message}`);
  }
}

function asPostgresSync(dir, bin, args) {
  spawnSync('runuser', ['-u', 'postgres', '--', pgBin(bin), ...args], { cwd: dir, stdio: 'ignore', timeout: 30000 });
}

// Sends signal to the postmaster of the cluster in dataDir and to all of its children.
function signalCluster(dataDir, signal) {
  const postmaster = Number(fs.readFileSync(path.join(dataDir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  const children = spawnSync('pgrep', ['-P', String(postmaster)], { encoding: 'utf8' }).stdout
    .split('\n').filter(Boolean).map(Number);
  for (const pid of [postmaster, ...children]) {
    try {
      process.kill(pid, signal);
    } catch {
      // a backend that just exited
    }
  }
}

function scratchPgConf(port, socketDir) {
  return [
    '',
    '# tenantd test scratch cluster',
    "listen_addresses = '127.0.0.1'",
    `port = ${port}`,
    `unix_socket_directories = '${socketDir}'`,
    'max_connections = 100',
    'fsync = off',
    'synchronous_commit = off',
    'full_page_writes = off',
    '',
  ].join('\n');
}

// initdb + start a PostgreSQL 15 cluster owned by the postgres OS user, trust authentication,
// superuser `postgres`. Returns {url, port, dir, stop(), start(), restart(), freeze(), thaw(),
// log(), destroy()}.
export async function startScratchPostgres() {
  const { uid, gid } = postgresIds();
  const dir = fs.mkdtempSync('/tmp/tenantd-pg-');
  fs.chownSync(dir, uid, gid);
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'postgres.log');
  const port = await freePort();
  let running = false;
  let frozen = false;

  const pg = {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    dir,
    async start() {
      await asPostgres(dir, 'pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '30', '-s', 'start']);
      running = true;
    },
    async stop() {
      await asPostgres(dir, 'pg_ctl', ['-D', data, '-m', 'fast', '-w', '-t', '30', '-s', 'stop']);
      running = false;
    },
    async restart() {
      await pg.stop();
      await pg.start();
    },
    log: () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : ''),
    // SIGSTOP / SIGCONT the postmaster and every backend: connections stay open but nothing
    // answers, as with a hung database host.
    freeze() {
      signalCluster(data, 'SIGSTOP');
      frozen = true;
    },
    thaw() {
      signalCluster(data, 'SIGCONT');
      frozen = false;
    },
    async destroy() {
      if (frozen) pg.thaw();
      if (running) await asPostgres(dir, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-t', '30', '-s', 'stop']);
      running = false;
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  onCleanup({
    name: `scratch Postgres on port ${port}`,
    run: () => pg.destroy(),
    runSync: () => {
      if (frozen) signalCluster(data, 'SIGCONT');
      asPostgresSync(dir, 'pg_ctl', ['-D', data, '-m', 'immediate', '-w', '-s', 'stop']);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  });
  await asPostgres(dir, 'initdb', ['-D', data, '-U', 'postgres', '--auth-host=trust', '--auth-local=trust',
    '--encoding=UTF8', '--no-locale', '--no-sync']);
  fs.appendFileSync(path.join(data, 'postgresql.conf'), scratchPgConf(port, dir));
  await pg.start();
  return pg;
}

// ---------------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------------

function encodeResp(args) {
  const parts = [`*${args.length}\r\n`];
  for (const arg of args) parts.push(`$${Buffer.byteLength(String(arg))}\r\n${arg}\r\n`);
  return parts.join('');
}

// Sends one command to the Redis on 127.0.0.1:port; resolves the first line of the reply
// (e.g. "+PONG", "+OK", "-ERR ..."). Rejects on connection errors or after timeoutMs.
export function redisCommand(port, args, { timeoutMs = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(Object.assign(new Error(`redis ${args[0]} timed out`), { code: 'ETESTTIMEOUT' }));
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(encodeResp(args)));
    socket.on('data', (chunk) => {
      data += chunk;
      const end = data.indexOf('\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      socket.destroy();
      resolve(data.slice(0, end));
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

async function waitForRedis(port, child, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`redis-server on port ${port} exited at start-up`);
    try {
      if ((await redisCommand(port, ['PING'], { timeoutMs: 500 })) === '+PONG') return;
    } catch {
      // not listening yet
    }
    await sleep(50);
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

// A redis-server child on a free port, no persistence. start() after stop() reuses the port.
// Returns {url, port, dir, stop(), start(), command(args), destroy()}.
export async function startScratchRedis() {
  const dir = fs.mkdtempSync('/tmp/tenantd-redis-');
  const port = await freePort();
  let child = null;
  let output = '';

  const redis = {
    url: `redis://127.0.0.1:${port}/0`,
    port,
    dir,
    output: () => output,
    async start() {
      if (child) return;
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
        '--dir', dir, '--daemonize', 'no'];
      child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.on('data', (c) => { output += c; });
      child.stderr.on('data', (c) => { output += c; });
      await waitForRedis(port, child);
    },
    async stop() {
      if (!child) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const done = await within(exited.then(() => true), 10000, false);
      if (!done) {
        child.kill('SIGKILL');
        await exited;
      }
      child = null;
    },
    command: (args, opts) => redisCommand(port, args, opts),
    async destroy() {
      await redis.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  onCleanup({
    name: `scratch Redis on port ${port}`,
    run: () => redis.destroy(),
    runSync: () => {
      if (child) child.kill('SIGKILL');
      fs.rmSync(dir, { recursive: true, force: true });
    },
  });
  await redis.start();
  return redis;
}
