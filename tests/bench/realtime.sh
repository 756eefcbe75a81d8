#!/usr/bin/env bash
# tests/bench/realtime.sh — issue 6, item 10 (not part of ./dev test): wraps tests/bench/realtime.mjs.
#   1. idle memory per authenticated WebSocket connection: one tenantd, N websocket-only
#      socket.io-client connections (cumulative steps BENCH_RT_COUNTS), tenantd VmRSS before/after;
#   2. fan-out: two tenantd instances sharing Redis, BENCH_RT_MEMBERS members of the tenant room
#      spread over both, 20 POST /v1/realtime/emit one at a time (latency) and 20 back to back
#      (deliveries per second).
# Every client authenticates as the owner of the benchmark's own tenant (bench-load, created on the
# first run), so no other tenant's rooms are touched. Prints markdown tables on stdout; progress on
# stderr. See tests/bench/README.md ("realtime") for why the sizes are smaller than the issue's.
#
#   tests/bench/realtime.sh
#   BENCH_RT_COUNTS=1000,2000,5000 BENCH_RT_MEMBERS=3000 tests/bench/realtime.sh   # bigger (slow)
#
# Knobs: BENCH_RT_COUNTS (1000,2000), BENCH_RT_MEMBERS (1500), BENCH_RT_MESSAGES (20),
# BENCH_RT_PROCS (client processes, 4), BENCH_THREADS (tenantd worker threads, nproc),
# BENCH_RT_LIMIT (seconds allowed per phase, 900).
set -euo pipefail
BENCH_NAME=realtime
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
COUNTS=${BENCH_RT_COUNTS:-1000,2000}
MEMBERS=${BENCH_RT_MEMBERS:-1500}
MESSAGES=${BENCH_RT_MESSAGES:-20}
PROCS=${BENCH_RT_PROCS:-4}
PHASE_LIMIT=${BENCH_RT_LIMIT:-900}
[[ $COUNTS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "BENCH_RT_COUNTS must be a list like 1000,2000"
for v in MEMBERS MESSAGES PROCS PHASE_LIMIT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done

# File descriptors: tenantd needs one per connection. Raise the soft limit as far as allowed (a
# container may cap the hard limit below what the issue's 20,000 connections need).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
say "open files limit: $FD_LIMIT"
MAXC=${COUNTS##*,}
((MAXC < FD_LIMIT - 100)) || die "BENCH_RT_COUNTS up to $MAXC needs more than the open files limit $FD_LIMIT"

bench_setup tenantd
[[ -d $ROOT/tests/node_modules/socket.io-client || -n ${NODE_PATH:-} ]] \
  || die "socket.io-client is missing: (cd tests && npm ci), or set NODE_PATH to a node_modules that has it"

# ------------------------------------------------------------------ 1. idle memory per connection
say "starting tenantd mem ($THREADS threads, log level warn)"
start_tenantd mem
TOKEN=$(bench_account "${TD_PORTS[mem]}")
PID=$(tenantd_pid mem)
[[ -n $PID ]] || die "no tenantd pid"
say "memory: connections $COUNTS (tenantd pid $PID), $PROCS client processes"
timeout "$PHASE_LIMIT" node "$ROOT/tests/bench/realtime.mjs" memory --url "http://127.0.0.1:${TD_PORTS[mem]}" --pid "$PID" \
  --token "$TOKEN" --counts "$COUNTS" --procs "$PROCS" >"$WORK/memory.jsonl" || say "warning: the memory phase ended early (status $?)"
stop_tenantd mem
cat "$WORK/memory.jsonl" >&2

# ------------------------------------------------------------------ 2. fan-out over two instances
say "starting tenantd a and b ($THREADS threads each, log level warn)"
start_tenantd a
start_tenantd b
TOKEN=$(bench_account "${TD_PORTS[a]}")
say "fan-out: $MEMBERS members over 2 instances, $MESSAGES messages"
timeout "$PHASE_LIMIT" node "$ROOT/tests/bench/realtime.mjs" fanout --urls "http://127.0.0.1:${TD_PORTS[a]},http://127.0.0.1:${TD_PORTS[b]}" \
  --token "$TOKEN" --emit-token "$TOKEN" --n "$MEMBERS" --messages "$MESSAGES" --procs "$PROCS" >"$WORK/fanout.jsonl" \
  || say "warning: the fan-out phase ended early (status $?)"
stop_tenantd a
stop_tenantd b
cat "$WORK/fanout.jsonl" >&2
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ tables
CAPTION_COMMON="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by client and server (the Node client processes, tenantd, Redis and Postgres all on this machine, plus other sessions' load). tenantd $THREADS worker threads per instance, TENANTD_LOG_LEVEL=warn, RelWithDebInfo; socket.io-client 4 with transports: ['websocket'], one owner token of the benchmark tenant for every socket, $PROCS client processes; open files limit $FD_LIMIT. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER.$SOURCE_NOTE$SETUP_NOTE"
echo
echo "**realtime: idle memory per connection (issue 6)** — one tenantd; VmRSS from /proc/<pid>/status before the first connection and after each step, once the clients stopped receiving the join announcements (presence events) for 3 s. $CAPTION_COMMON"
echo
echo "| connections | failed | time to open | presence events received | drain | VmRSS before → after | KB per connection | note |"
echo "|---|---|---|---|---|---|---|---|"
jq -r 'select(.kind == "memory") | "| \(.connected) | \(.failed) | \(.open_ms / 1000) s | \(.presence_events) | \(.drain_ms / 1000) s\(if .drain_capped then " (capped)" else "" end) | \(.rss_before_kb) → \(.rss_after_kb) kB | **\(.kb_per_conn)** (target ≤ 8) | \(.errors | to_entries | map("\(.key): \(.value)") | join("; ")) |"' "$WORK/memory.jsonl"
echo
echo "**realtime: fan-out over two instances (issue 6)** — one room (\`tenant\`) with its members spread evenly over two tenantd instances sharing Redis; POST /v1/realtime/emit to the room, the payload carries the send time (performance.timeOrigin + now(), same machine); latency = send → the client's event callback. \"One at a time\": the next emit after every member got the previous one (or 10 s). \"Back to back\": $MESSAGES emits at once; deliveries per second over first send → last delivery. $CAPTION_COMMON"
echo
echo "| phase | members | deliveries / expected | deliveries per s | p50 ms | p99 ms | note |"
echo "|---|---|---|---|---|---|---|"
jq -r 'select(.kind == "setup") | "| connect (join announcements) | \(.connected) of \(.target) | — | — | — | — | opened in \(.open_ms / 1000) s, \(.presence_events) presence events received, drained after \(.drain_ms / 1000) s\(if .drain_capped then " (capped)" else "" end); \(.failed) failed\(if (.errors | length) > 0 then ": " + (.errors | to_entries | map("\(.key) ×\(.value)") | join("; ")) else "" end) |"' "$WORK/fanout.jsonl"
jq -r 'select(.kind == "paced") | "| \(.messages) emits, one at a time | \(.members) | \(.deliveries) / \(.expected) | \(.deliveries_per_s_median) (median per message: members ÷ time to its last delivery) | \(.p50_ms) | **\(.p99_ms)** (target ≤ 50) | max \(.max_ms) ms; last delivery of a message after \(.last_delivery_median_ms) ms (median) |"' "$WORK/fanout.jsonl"
jq -r 'select(.kind == "burst") | "| \(.messages) emits, back to back | \(.members) | \(.deliveries) / \(.expected) | **\(.deliveries_per_s)** | \(.p50_ms) | \(.p99_ms) | first send → last delivery \(.window_s) s |"' "$WORK/fanout.jsonl"
echo
