// cleanup.mjs — one registry of things to undo when a test file ends.
//
// Every process or scratch service the harness starts registers itself here. The registry is
// drained by a root `after` hook that runs after the file's own ones (asynchronously, newest first) and, as a last resort
// when the test process exits or is signalled before that, by each entry's synchronous variant.
import { after } from 'node:test';

const entries = new Set();

// Registers {name, run: async () => void, runSync: () => void}; returns a function removing it.
export function onCleanup(entry) {
  entries.add(entry);
  return () => entries.delete(entry);
}

async function drainAsync() {
  const errors = [];
  for (const entry of [...entries].reverse()) {
    entries.delete(entry);
    try {
      await entry.run();
    } catch (err) {
      errors.push(new Error(`cleanup of ${entry.name} failed: ${err.message}`, { cause: err }));
    }
  }
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new AggregateError(errors, errors.map((e) => e.message).join('; '));
}

function drainSync() {
  for (const entry of [...entries].reverse()) {
    entries.delete(entry);
    try {
      entry.runSync();
    } catch {
      // last resort on exit: nothing left to report to
    }
  }
}

// Registered on the next turn, after the test file's own top-level hooks, so that a file's
// `after` (a graceful stop it asserts on, say) runs before this last sweep kills what is left.
setImmediate(() => after(drainAsync));
process.on('exit', drainSync);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => {
    drainSync();
    process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 })[signal]);
  });
}
