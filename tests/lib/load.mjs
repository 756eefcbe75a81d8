// load.mjs — concurrent request loops for the restart and shutdown tests.
//
// startLoad() runs `concurrency` loops, each on its own keep-alive connection, requesting the same
// path back to back until stop(). Every request is recorded with its start and end times, status
// or error code, so a test can reason about what happened before and after an event.
import http from 'node:http';

import { request } from './harness.mjs';
import { sleep } from './util.mjs';

async function runLoop(index, state, { url, path, timeoutMs, pauseMs }) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  try {
    while (!state.stopped) {
      const record = { loop: index, start: Date.now(), end: null, status: null, error: null, body: null };
      try {
        const res = await request(`${url}${path}`, { agent, timeoutMs });
        Object.assign(record, { status: res.status, headers: res.headers, body: res.body, json: res.json, reusedSocket: res.reusedSocket });
      } catch (err) {
        Object.assign(record, { error: err.code || err.message, reusedSocket: err.reusedSocket });
        if (err.code === 'ECONNREFUSED') await sleep(50);
      }
      record.end = Date.now();
      state.results.push(record);
      if (pauseMs) await sleep(pauseMs);
    }
  } finally {
    agent.destroy();
  }
}

// Starts the loops; returns {results (live array), stop() → Promise<results>}.
export function startLoad({ url, path = '/readyz', concurrency = 8, timeoutMs = 10000, pauseMs = 0 }) {
  const state = { stopped: false, results: [] };
  const loops = Array.from({ length: concurrency }, (_, i) => runLoop(i, state, { url, path, timeoutMs, pauseMs }));
  return {
    results: state.results,
    async stop() {
      state.stopped = true;
      await Promise.all(loops);
      return state.results;
    },
  };
}

// A one-line summary of records for assertion messages: counts by status/error.
export function summarize(records) {
  const counts = {};
  for (const r of records) {
    const key = r.error ? `error ${r.error}` : `status ${r.status}`;
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return JSON.stringify(counts);
}
