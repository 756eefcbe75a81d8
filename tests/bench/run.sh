#!/usr/bin/env bash
# tests/bench/run.sh — tenantd's benchmark (not part of ./dev test): /healthz over HTTP/1.1 (wrk),
# h2c and h2 over TLS (h2load), then the db module (build-bench/db_bench) against
# `pgbench -S -M prepared` measured in the same run. Prints one markdown table on stdout;
# progress goes to stderr. See tests/bench/README.md for what each row means.
#
#   tests/bench/run.sh                 # everything, 10 s per measurement (about 4 minutes)
#   BENCH_SECONDS=5 tests/bench/run.sh # shorter
#
# Knobs (environment): BENCH_SECONDS (10), BENCH_THREADS (tenantd worker threads, default nproc),
# BENCH_DEPTH (db_bench jobs outstanding per thread, 256), BENCH_SCALE (pgbench scale, 1),
# BENCH_REV (benchmark this commit instead of the working tree; built in build-bench-rev/).
# It uses the project-local stack of ./dev (started with `./dev setup` when it is not running and
# stopped again at the end in that case), builds build-bench/ (RelWithDebInfo, -DTENANTD_BENCH=ON),
# creates the throwaway database `bench` and drops it at the end. Every process it starts is
# bounded by `timeout` and stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
SECS=${BENCH_SECONDS:-10}
THREADS=${BENCH_THREADS:-$(nproc)}
DEPTH=${BENCH_DEPTH:-256}
SCALE=${BENCH_SCALE:-1}
for v in SECS THREADS DEPTH SCALE; do
  [[ ${!v} =~ ^[1-9][0-9]*$ ]] || { echo "run.sh: $v must be a positive integer, not '${!v}'" >&2; exit 2; }
done
LIMIT=$((SECS + 60)) # hard bound for any single measurement

say() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

cd "$ROOT"
WORK=$(mktemp -d /tmp/tenantd-bench.XXXXXX)
TENANTD_PID=
STOP_STACK=0 # set only once we know the stack was down before ./dev setup
SETUP_NOTE=
BENCH_DB_CREATED=0

stop_tenantd() {
  [[ -n $TENANTD_PID ]] || return 0
  if kill -0 "$TENANTD_PID" 2>/dev/null; then
    kill -TERM "$TENANTD_PID" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      kill -0 "$TENANTD_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$TENANTD_PID" 2>/dev/null; then # TENANTD_PID is timeout(1); its child is tenantd
      say "tenantd did not exit in 15 s: SIGKILL"
      pkill -KILL -P "$TENANTD_PID" 2>/dev/null || true
      kill -KILL "$TENANTD_PID" 2>/dev/null || true
    fi
  fi
  wait "$TENANTD_PID" 2>/dev/null || true
  TENANTD_PID=
}

cleanup() {
  local rc=$?
  stop_tenantd
  if ((BENCH_DB_CREATED)); then
    timeout 30 psql -X -q "$PG_ADMIN_URL" -c 'DROP DATABASE IF EXISTS bench WITH (FORCE)' >/dev/null 2>&1 \
      || say "warning: could not drop the database 'bench'"
  fi
  if ((STOP_STACK)); then
    say "stopping the Postgres and Redis that ./dev setup started for this run"
    "$ROOT/dev" stop >/dev/null 2>&1 || say "warning: ./dev stop failed"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ------------------------------------------------------------------------------------ set-up

[[ -x ./dev ]] || die "./dev is missing"
eval "$(./dev env)"
PG_PORT=${TENANTD_DEV_PG_PORT:-55432}
REDIS_PORT=${TENANTD_DEV_REDIS_PORT:-56379}
# Stop the stack at the end only when neither half was running: someone else may be using it.
if ! "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 >/dev/null 2>&1 \
   && ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
  STOP_STACK=1
fi
say "./dev setup (packages, Postgres, Redis, TLS pair, build/, migrations)"
if ! ./dev setup >&2; then
  # The benchmark needs only Postgres and Redis from the set-up (it builds its own build-bench/):
  # a broken build/ elsewhere in a shared checkout should not stop it, but it must be visible.
  "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 \
    || die "./dev setup failed (output above) and the stack is not running"
  say "WARNING: ./dev setup failed (output above), but Postgres and Redis answer: continuing"
  SETUP_NOTE=" ./dev setup FAILED (see stderr); the stack was up, so the run went on."
fi
eval "$(./dev env)"
for tool in wrk h2load pgbench psql curl cmake; do
  command -v "$tool" >/dev/null || die "$tool is missing after ./dev setup (packages wrk, nghttp2-client, postgresql-client)"
done

# The working tree by default; BENCH_REV=<commit> benchmarks a committed state instead (exported
# with git archive, built in build-bench-rev/), e.g. while a shared checkout has half-done edits.
SRC=$ROOT BUILD=$ROOT/build-bench
if [[ -n ${BENCH_REV:-} ]]; then
  REV=$(git -C "$ROOT" rev-parse --verify "$BENCH_REV^{commit}") || die "BENCH_REV=$BENCH_REV is not a commit"
  SRC=$WORK/src BUILD=$ROOT/build-bench-rev
  mkdir -p "$SRC"
  git -C "$ROOT" archive "$REV" | tar -x -C "$SRC" || die "git archive $REV failed"
  rm -f "$BUILD/CMakeCache.txt" # the source directory changes with every export
  SOURCE_NOTE=" Source: commit ${REV:0:10}."
else
  SOURCE_NOTE=" Source: working tree at $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server CMakeLists.txt || echo ' + uncommitted changes')."
fi
say "building ${BUILD#"$ROOT"/}/ (RelWithDebInfo, TENANTD_BENCH=ON)"
cmake -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTENANTD_BENCH=ON -DTENANTD_TESTS=OFF >/dev/null \
  || die "cmake configure failed for $BUILD"
cmake --build "$BUILD" -j"$(nproc)" --target tenantd db_bench >&2 || die "build failed in $BUILD (set BENCH_REV=HEAD to benchmark the last commit)"

# A port nothing listens on (bash /dev/tcp connect fails), from a random start.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# start_tenantd LOG_LEVEL: starts build-bench/tenantd on fresh ports, waits for /healthz.
start_tenantd() {
  HTTP_PORT=$(free_port)
  TLS_PORT=$(free_port)
  [[ $TLS_PORT != "$HTTP_PORT" ]] || TLS_PORT=$(free_port)
  local level_env=()
  [[ -n $1 ]] && level_env=(TENANTD_LOG_LEVEL="$1")
  env TENANTD_LISTEN="127.0.0.1:$HTTP_PORT" TENANTD_TLS_LISTEN="127.0.0.1:$TLS_PORT" TENANTD_THREADS="$THREADS" \
    "${level_env[@]}" timeout -s TERM 1800 "$BUILD/tenantd" >/dev/null 2>"$WORK/tenantd.err" &
  TENANTD_PID=$!
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$HTTP_PORT/healthz" 2>/dev/null \
      && curl -fsSk -o /dev/null --max-time 1 "https://127.0.0.1:$TLS_PORT/healthz" 2>/dev/null && return 0
    kill -0 "$TENANTD_PID" 2>/dev/null || { cat "$WORK/tenantd.err" >&2; die "tenantd exited at start"; }
    sleep 0.1
  done
  cat "$WORK/tenantd.err" >&2
  die "tenantd did not answer /healthz within 10 s"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }

# Latency as printed by the tools (wrk: 1.23ms / 456.00us / 1.2s) -> milliseconds with 3 decimals.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print "?" }'
}

# ------------------------------------------------------------------------------------ HTTP

http_benches() { # $1 = label for the log level
  local out rps p50 p99 mean sd proto
  say "wrk HTTP/1.1 /healthz ($1)"
  out=$(timeout "$LIMIT" wrk -t2 -c64 -d"${SECS}s" --latency "http://127.0.0.1:$HTTP_PORT/healthz" 2>&1) || die "wrk failed: $out"
  rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  grep -q "Non-2xx" <<<"$out" && say "warning: wrk saw non-2xx responses: $(grep Non-2xx <<<"$out")"
  row "/healthz HTTP/1.1 ($1)" "wrk -t2 -c64 -d${SECS}s" "$rps req/s" "$p50" "$p99" ""

  for proto in h2c h2; do
    local url="http://127.0.0.1:$HTTP_PORT/healthz"
    [[ $proto == h2 ]] && url="https://127.0.0.1:$TLS_PORT/healthz"
    say "h2load $proto /healthz ($1)"
    out=$(timeout "$LIMIT" h2load -t2 -c16 -m10 -D "$SECS" --warm-up-time=1 "$url" 2>&1) || die "h2load failed: $out"
    grep -q "Application protocol: h2" <<<"$out" || die "h2load did not speak h2 to $url: $out"
    rps=$(awk '/^finished in/ {gsub(",", "", $4); printf "%.0f", $4}' <<<"$out")
    read -r mean sd < <(awk '/^time for request:/ {print $6, $7}' <<<"$out") # min max mean sd
    local failed
    failed=$(awk '/^requests:/ {for (i = 1; i < NF; i++) if ($(i+1) ~ /^failed/) print $i}' <<<"$out")
    [[ ${failed:-0} == 0 ]] || say "warning: h2load $proto: $failed failed requests"
    row "/healthz $proto ($1)" "h2load -t2 -c16 -m10 -D $SECS" "$rps req/s" "mean $(to_ms "$mean")" "—" "sd $(to_ms "$sd") ms; no percentiles in h2load"
  done
}

say "starting tenantd ($THREADS threads, default log level, stdout to /dev/null)"
start_tenantd ""
http_benches "log level info"
stop_tenantd
say "starting tenantd ($THREADS threads, TENANTD_LOG_LEVEL=warn: no access log)"
start_tenantd warn
http_benches "log level warn"
stop_tenantd

# ------------------------------------------------------------------------------------ Postgres

BENCH_URL="${PG_ADMIN_URL%/*}/bench"
say "creating the throwaway database 'bench' (pgbench -i -s $SCALE)"
timeout 30 psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c 'DROP DATABASE IF EXISTS bench WITH (FORCE)' -c 'CREATE DATABASE bench' >/dev/null \
  || die "could not create the database 'bench'"
BENCH_DB_CREATED=1
timeout 300 pgbench -i -q -s "$SCALE" "$BENCH_URL" >"$WORK/pgbench-init.log" 2>&1 || { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }
ACCOUNTS=$((SCALE * 100000))

# run_pgbench N: pgbench -S -M prepared -c16 -j2; sets PGB_TPS, PGB_P50, PGB_P99 (ms, from a 5 % sample log).
run_pgbench() {
  local dir=$WORK/pgb$1 out
  mkdir -p "$dir"
  say "pgbench -S -M prepared -c16 -j2 -T$SECS (reference run $1)"
  out=$(cd "$dir" && timeout "$LIMIT" pgbench -n -S -M prepared -c16 -j2 -T"$SECS" -l --sampling-rate=0.05 --log-prefix=pgb "$BENCH_URL" 2>&1) \
    || die "pgbench failed: $out"
  PGB_TPS=$(awk '/^tps = / {printf "%.0f", $3}' <<<"$out")
  sort -n -k3,3 <(cat "$dir"/pgb.*) | awk '{v[NR] = $3} END {
      printf "%.3f %.3f\n", v[int(NR * 0.50) + 1] / 1000, v[int(NR * 0.99) + 1] / 1000 }' >"$dir/pct"
  read -r PGB_P50 PGB_P99 <"$dir/pct"
}

# run_db_bench THREADS CONNS DEPTH: sets DBB_QPS, DBB_P50, DBB_P99 (ms).
run_db_bench() {
  local out line
  say "db_bench -t$1 -c$2 -n$3 -T$SECS"
  out=$(timeout "$LIMIT" "$BUILD/db_bench" -d "$BENCH_URL" -t"$1" -c"$2" -n"$3" -T"$SECS" -w1 -a"$ACCOUNTS" 2>&1) \
    || die "db_bench failed: $out"
  line=$(grep '^db_bench ' <<<"$out")
  DBB_QPS=$(sed -n 's/.* qps=\([0-9]*\).*/\1/p' <<<"$line")
  DBB_P50=$(sed -n 's/.* p50_us=\([0-9]*\).*/\1/p' <<<"$line" | awk '{printf "%.3f", $1 / 1000}')
  DBB_P99=$(sed -n 's/.* p99_us=\([0-9]*\).*/\1/p' <<<"$line" | awk '{printf "%.3f", $1 / 1000}')
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'; }

run_pgbench 1
REF1=$PGB_TPS
row "pgbench -S -M prepared (reference, before)" "-c16 -j2 -T$SECS, $SCALE×100k rows" "$PGB_TPS tps" "$PGB_P50" "$PGB_P99" "p50/p99 from a 5 % sample"

declare -A QPS P50 P99
for t in 1 2; do
  for c in 1 2 4; do
    run_db_bench "$t" "$c" "$DEPTH"
    QPS[$t,$c]=$DBB_QPS P50[$t,$c]=$DBB_P50 P99[$t,$c]=$DBB_P99
  done
done
run_db_bench 2 2 8
EQ_QPS=$DBB_QPS EQ_P50=$DBB_P50 EQ_P99=$DBB_P99

run_pgbench 2
REF2=$PGB_TPS
row "pgbench -S -M prepared (reference, after)" "-c16 -j2 -T$SECS" "$PGB_TPS tps" "$PGB_P50" "$PGB_P99" ""
REF=$((REF1 > REF2 ? REF1 : REF2)) # ratios against the better reference run: conservative

for t in 1 2; do
  best=1
  for c in 1 2 4; do
    ((QPS[$t,$c] > QPS[$t,$best])) && best=$c
    row "db_bench $t thread(s), $c conn/thread" "$DEPTH outstanding/thread, -T$SECS" "${QPS[$t,$c]} q/s" "${P50[$t,$c]}" "${P99[$t,$c]}" "$(ratio "${QPS[$t,$c]}" "$REF") pgbench"
  done
  BEST[$t]=$best
done
row "db_bench 2 threads, 2 conn/thread, 8 outstanding/thread" "same concurrency as pgbench -c16" "$EQ_QPS q/s" "$EQ_P50" "$EQ_P99" "$(ratio "$EQ_QPS" "$REF") pgbench"

# ------------------------------------------------------------------------------------ table

echo
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
echo "**tenantd benchmark** — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by client and server" \
  "(load generators, tenantd and Postgres all run on this machine), tenantd $THREADS worker threads," \
  "$SECS s per measurement, RelWithDebInfo build. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER" \
  "(anything else running on the machine skews every row: compare rows of one run, not across runs)." \
  "Latencies in ms.$SOURCE_NOTE$SETUP_NOTE"
echo
echo "| benchmark | settings | throughput | p50 ms | p99 ms | note |"
echo "|---|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
for t in 1 2; do
  b=${BEST[$t]}
  echo "db module, $t thread(s): best pool size $b conn/thread = ${QPS[$t,$b]} q/s = $(ratio "${QPS[$t,$b]}" "$REF") pgbench (reference: the better of $REF1 / $REF2 tps; target ≥ 0.80×)."
done
