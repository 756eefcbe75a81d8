#!/usr/bin/env bash
# run.sh — runs the official Engine.IO and Socket.IO conformance suites (the test-suite/ folders of
# github.com/socketio/engine.io-protocol and github.com/socketio/socket.io-protocol) against
# sio_echo, tenantd's protocol module (server/realtime/sio.c) in echo mode on 127.0.0.1:3000.
#
#   ENGINE_IO_SUITE=/path/to/engine.io-protocol/test-suite \
#   SOCKET_IO_SUITE=/path/to/socket.io-protocol/test-suite  tests/conformance/run.sh
#
# The suites are not in this repository and CI cannot reach GitHub: fetch them beforehand (see
# README.md in this folder). Each suite is copied into a scratch folder, its npm dependencies are
# installed there (`npm ci`, needs the npm registry), and `mocha test-suite.js` runs against a
# sio_echo started by this script. A suite whose variable is unset or whose folder is missing is
# skipped with a message; the script fails only when a suite that ran had failures.
#
# Options (environment): SIO_ECHO_BIN (default build-asan/sio_echo, else build/sio_echo),
# SIO_ECHO_THREADS (worker threads of sio_echo, default 1: see README.md, "Known race"),
# CONFORMANCE_RUNS (how many times each suite runs, default 1). Not part of ./dev test.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
THREADS=${SIO_ECHO_THREADS:-1}
RUNS=${CONFORMANCE_RUNS:-1}

say() { printf 'conformance: %s\n' "$*" >&2; }

declare -A SUITES=([engine.io]=${ENGINE_IO_SUITE:-} [socket.io]=${SOCKET_IO_SUITE:-})
to_run=()
for name in engine.io socket.io; do
  dir=${SUITES[$name]}
  var=$([[ $name == engine.io ]] && echo ENGINE_IO_SUITE || echo SOCKET_IO_SUITE)
  if [[ -z $dir ]]; then
    say "SKIP $name suite: $var is not set (path of the fetched $name-protocol/test-suite folder)"
  elif [[ ! -f $dir/test-suite.js || ! -f $dir/package.json ]]; then
    say "SKIP $name suite: $var=$dir has no test-suite.js and package.json"
  else
    to_run+=("$name")
  fi
done
if [[ ${#to_run[@]} -eq 0 ]]; then
  say "nothing to run: no suite was given"
  exit 0
fi

BIN=${SIO_ECHO_BIN:-}
if [[ -z $BIN ]]; then
  for candidate in "$ROOT/build-asan/sio_echo" "$ROOT/build/sio_echo"; do
    if [[ -x $candidate ]]; then BIN=$candidate; break; fi
  done
fi
if [[ -z $BIN || ! -x $BIN ]]; then
  say "no sio_echo binary: build it (cmake --build build-asan --target sio_echo) or set SIO_ECHO_BIN"
  exit 1
fi

if (exec 3<>/dev/tcp/127.0.0.1/3000) 2>/dev/null; then
  say "port 3000 is already in use: the suites need it for sio_echo"
  exit 1
fi

SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/tenantd-conformance.XXXXXX")
ECHO_PID=
cleanup() {
  if [[ -n $ECHO_PID ]] && kill -0 "$ECHO_PID" 2>/dev/null; then
    kill "$ECHO_PID" 2>/dev/null || true
    wait "$ECHO_PID" 2>/dev/null || true
  fi
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

say "sio_echo: $BIN ($THREADS worker thread(s)), log in $SCRATCH/sio_echo.log"
TENANTD_LISTEN=127.0.0.1:3000 TENANTD_THREADS=$THREADS TENANTD_LOG_LEVEL=${TENANTD_LOG_LEVEL:-warn} \
  ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0} "$BIN" >"$SCRATCH/sio_echo.log" 2>&1 &
ECHO_PID=$!
for _ in $(seq 1 100); do
  if curl -fsS -o /dev/null 'http://127.0.0.1:3000/socket.io/?EIO=4&transport=polling' 2>/dev/null; then break; fi
  kill -0 "$ECHO_PID" 2>/dev/null || { cat "$SCRATCH/sio_echo.log" >&2; say "sio_echo exited"; exit 1; }
  sleep 0.1
done

status=0
declare -A RESULT
for name in "${to_run[@]}"; do
  work=$SCRATCH/$name
  cp -r "${SUITES[$name]}" "$work"
  rm -rf "$work/node_modules"
  say "$name: npm ci in $work"
  (cd "$work" && npm ci --no-audit --no-fund --loglevel=error >"$work/npm.log" 2>&1) || { cat "$work/npm.log" >&2; say "$name: npm ci failed"; exit 1; }
  failed_runs=0
  for run in $(seq 1 "$RUNS"); do
    say "$name suite, run $run/$RUNS"
    if ! (cd "$work" && npx --no-install mocha test-suite.js); then failed_runs=$((failed_runs + 1)); fi
  done
  RESULT[$name]="$((RUNS - failed_runs))/$RUNS runs passed"
  [[ $failed_runs -eq 0 ]] || status=1
done

if grep -qE 'ERROR: AddressSanitizer|runtime error:' "$SCRATCH/sio_echo.log"; then
  cat "$SCRATCH/sio_echo.log" >&2
  say "sio_echo reported a sanitizer error"
  status=1
fi
kill -0 "$ECHO_PID" 2>/dev/null || { say "sio_echo died during the suites"; status=1; }
for name in "${to_run[@]}"; do say "$name: ${RESULT[$name]}"; done
exit $status
