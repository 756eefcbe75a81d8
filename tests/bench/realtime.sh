#!/usr/bin/env bash
# tests/bench/realtime.sh — issue 6, item 10 (not part of ./dev test): drives tests/bench/rt_load
# (a C epoll client speaking Engine.IO/Socket.IO over WebSocket; see its header for why not Node).
#   1. idle memory per authenticated WebSocket connection: one tenantd, cumulative steps of
#      BENCH_RT_COUNTS connections, tenantd VmRSS before/after each; then BENCH_RT_PAIR
#      connections per instance on two instances at once (20,000 in all by default: one process
#      may not hold 20,000 sockets here, see tests/bench/README.md), the two RSS deltas summed;
#   2. fan-out: two tenantd instances sharing Redis, BENCH_RT_MEMBERS members of the tenant room
#      spread over both, BENCH_RT_MESSAGES POST /v1/realtime/emit one at a time (latency), then as
#      many back to back (deliveries per second).
# Every client authenticates as the owner of the benchmark's own tenant (bench-load, created on the
# first run), so no other tenant's rooms are touched. Prints markdown tables on stdout; progress on
# stderr.
#
#   tests/bench/realtime.sh                                     # the issue's sizes: about 2 minutes
#   BENCH_RT_COUNTS=1000,5000 BENCH_RT_PAIR=0 BENCH_RT_MEMBERS=3000 tests/bench/realtime.sh   # smaller
#
# Knobs: BENCH_RT_COUNTS (1000,10000,19000), BENCH_RT_PAIR (10000; 0 skips), BENCH_RT_MEMBERS
# (10000), BENCH_RT_MESSAGES (20), BENCH_THREADS (worker threads per instance, nproc),
# BENCH_RT_FANOUT_THREADS (worker threads of the two fan-out instances, 1: two instances on two
# cores), BENCH_RT_LIMIT (seconds allowed per phase, 900), BENCH_TENANTD_ALIAS (see lib/common.sh).
set -euo pipefail
BENCH_NAME=realtime
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
COUNTS=${BENCH_RT_COUNTS:-1000,10000,19000}
PAIR=${BENCH_RT_PAIR:-10000}
MEMBERS=${BENCH_RT_MEMBERS:-10000}
MESSAGES=${BENCH_RT_MESSAGES:-20}
FANOUT_THREADS=${BENCH_RT_FANOUT_THREADS:-1}
PHASE_LIMIT=${BENCH_RT_LIMIT:-900}
[[ $COUNTS =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "BENCH_RT_COUNTS must be a list like 1000,2000"
[[ $PAIR =~ ^[0-9]+$ ]] || die "BENCH_RT_PAIR must be a number (0 skips)"
for v in MEMBERS MESSAGES FANOUT_THREADS PHASE_LIMIT; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive integer"
done

# File descriptors: tenantd and rt_load need one per connection. Raise the soft limit as far as
# allowed (this container's hard limit is 20,000, for every process).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
FD_LIMIT=$(ulimit -n)
say "open files limit: $FD_LIMIT"
MAXC=${COUNTS##*,}
for n in "$MAXC" "$PAIR" "$MEMBERS"; do
  ((n < FD_LIMIT - 100)) || die "$n connections in one process need more than the open files limit $FD_LIMIT"
done

bench_setup tenantd rt_load
RT_LOAD=$BUILD/rt_load

# ------------------------------------------------------------------ 1. idle memory per connection
say "starting tenantd mem ($THREADS threads, log level warn)"
start_tenantd mem
TOKEN=$(bench_account "${TD_PORTS[mem]}")
PID=$(tenantd_pid mem)
[[ -n $PID ]] || die "no tenantd pid"
say "memory: connections $COUNTS (tenantd pid $PID)"
timeout "$PHASE_LIMIT" "$RT_LOAD" memory --urls "127.0.0.1:${TD_PORTS[mem]}" --pids "$PID" --token "$TOKEN" --counts "$COUNTS" \
  >"$WORK/memory.jsonl" || say "warning: the memory phase ended early (status $?)"
stop_tenantd mem
if ((PAIR > 0)); then
  say "memory: $PAIR connections on each of two instances"
  start_tenantd m1
  start_tenantd m2
  P1=$(tenantd_pid m1)
  P2=$(tenantd_pid m2)
  # one rt_load per instance (each process has its own open files limit); both connect at once
  timeout "$PHASE_LIMIT" "$RT_LOAD" memory --urls "127.0.0.1:${TD_PORTS[m1]}" --pids "$P1" --token "$TOKEN" --counts "$PAIR" --hold 5 \
    >"$WORK/pair1.jsonl" &
  L1=$!
  timeout "$PHASE_LIMIT" "$RT_LOAD" memory --urls "127.0.0.1:${TD_PORTS[m2]}" --pids "$P2" --token "$TOKEN" --counts "$PAIR" --hold 5 \
    >"$WORK/pair2.jsonl" &
  L2=$!
  wait "$L1" || say "warning: rt_load for m1 ended with status $?"
  wait "$L2" || say "warning: rt_load for m2 ended with status $?"
  stop_tenantd m1
  stop_tenantd m2
  jq -cs '{kind: "memory", target: (map(.target) | add), connected: (map(.connected) | add), failed: (map(.failed) | add),
           open_ms: (map(.open_ms) | max), rss_before_kb: (map(.rss_before_kb) | add), rss_after_kb: (map(.rss_after_kb) | add),
           instances: 2, errors: (map(.errors) | map(select(. != "")) | join("; "))}
          | .kb_per_conn = (((.rss_after_kb - .rss_before_kb) / .connected * 100 | round) / 100)' \
    "$WORK/pair1.jsonl" "$WORK/pair2.jsonl" >>"$WORK/memory.jsonl"
fi
cat "$WORK/memory.jsonl" >&2

# ------------------------------------------------------------------ 2. fan-out over two instances
say "starting tenantd a and b ($FANOUT_THREADS threads each, log level warn)"
THREADS=$FANOUT_THREADS start_tenantd a
THREADS=$FANOUT_THREADS start_tenantd b
TOKEN=$(bench_account "${TD_PORTS[a]}")
say "fan-out: $MEMBERS members over 2 instances, $MESSAGES messages"
timeout "$PHASE_LIMIT" "$RT_LOAD" fanout --urls "127.0.0.1:${TD_PORTS[a]},127.0.0.1:${TD_PORTS[b]}" --token "$TOKEN" \
  --n "$MEMBERS" --messages "$MESSAGES" >"$WORK/fanout.jsonl" || say "warning: the fan-out phase ended early (status $?)"
stop_tenantd a
stop_tenantd b
cat "$WORK/fanout.jsonl" >&2
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# ------------------------------------------------------------------ tables
CAPTION_COMMON="$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by client and server (rt_load, tenantd, Redis and Postgres all on this machine, plus other sessions' load); TENANTD_LOG_LEVEL=warn, RelWithDebInfo; tests/bench/rt_load (one epoll thread per process, cleartext WebSocket, one owner token of the benchmark tenant for every socket); open files limit $FD_LIMIT. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER.$SOURCE_NOTE$SETUP_NOTE"
echo
echo "**realtime: idle memory per authenticated WebSocket (issue 6)** — VmRSS from /proc/<pid>/status before the first connection and 2 s after the last of a step connected (Engine.IO open, CONNECT with the token, automatic joins of tenant, user: and role: rooms); (after − before) / connected. One instance: cumulative steps, $THREADS worker threads. Two instances: both at once, $THREADS worker threads each, the RSS of both summed. $CAPTION_COMMON"
echo
echo "| instances | connections | failed | time to open | VmRSS before → after | KB per connection | note |"
echo "|---|---|---|---|---|---|---|"
jq -r 'select(.kind == "memory") | "| \(.instances) | \(.connected) | \(.failed) | \(.open_ms / 1000) s | \(.rss_before_kb) → \(.rss_after_kb) kB | **\(.kb_per_conn)** (target ≤ 8) | \(.errors) |"' "$WORK/memory.jsonl"
echo
echo "**realtime: fan-out over two instances (issue 6)** — one room (\`tenant\`) with its members spread evenly over two tenantd instances ($FANOUT_THREADS worker thread(s) each) sharing Redis; POST /v1/realtime/emit to the room, the payload carries the send time (CLOCK_MONOTONIC of rt_load, taken right before the POST is written); latency = send → the moment rt_load reads the event's frame from the member's socket. \"One at a time\": the next emit once every member got the previous one (or 10 s). \"Back to back\": $MESSAGES emits at once; deliveries per second over first send → last delivery. $CAPTION_COMMON"
echo
echo "| phase | members | deliveries / expected | deliveries per s | p50 ms | p99 ms | note |"
echo "|---|---|---|---|---|---|---|"
jq -r 'select(.kind == "setup") | "| connect | \(.connected) of \(.target) | — | — | — | — | opened in \(.open_ms / 1000) s; \(.failed) failed \(.errors) |"' "$WORK/fanout.jsonl"
jq -r 'select(.kind == "paced") | "| \(.messages) emits, one at a time | \(.members) | \(.deliveries) / \(.expected) | \(.deliveries_per_s_median) (median per message: members ÷ time to its last delivery) | \(.p50_ms) | **\(.p99_ms)** (target ≤ 50) | max \(.max_ms) ms; last delivery of a message after \(.last_delivery_median_ms) ms (median) |"' "$WORK/fanout.jsonl"
jq -r 'select(.kind == "burst") | "| \(.messages) emits, back to back | \(.members) | \(.deliveries) / \(.expected) | **\(.deliveries_per_s)** | \(.p50_ms) | \(.p99_ms) | first send → last delivery \(.window_s) s \(.errors) |"' "$WORK/fanout.jsonl"
echo
