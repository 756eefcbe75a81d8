#!/usr/bin/env bash
# tests/bench/rest.sh — issue 5, item 8 (not part of ./dev test): an authenticated single-row read
# GET /rest/v1/orders?id=eq.<id> (bearer JWT of viewer@acme.test: token check, tenant transaction,
# policy, JSON) with wrk, against `pgbench -S -M prepared -c16 -j2` on a throwaway database and
# against GET /healthz, all in the same run:
#   - Postgres path: every request misses tenantd's Redis read cache (a filter title=neq.<unique>
#     per request keeps the row and changes the statement's parameters), vs pgbench (target ≥ 0.5×);
#   - cached read: the same URL again and again (served from the Redis read cache), vs /healthz;
#   - 304: the same with If-None-Match: <its ETag>, vs /healthz (target ≥ 0.5×).
# Prints a markdown table on stdout; progress on stderr. See tests/bench/README.md.
#
#   tests/bench/rest.sh                   # 10 s per measurement, about 2 minutes
#   BENCH_SECONDS=5 tests/bench/rest.sh
#
# Knobs: BENCH_SECONDS (10), BENCH_THREADS (tenantd worker threads, nproc), BENCH_SCALE (pgbench, 1).
set -euo pipefail
BENCH_NAME=rest
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
SCALE=${BENCH_SCALE:-1}
[[ $SCALE =~ ^[1-9][0-9]*$ ]] || die "BENCH_SCALE must be a positive integer"

bench_setup tenantd
command -v pgbench >/dev/null && command -v psql >/dev/null || die "pgbench/psql missing (postgresql-client)"

# ------------------------------------------------------------------ the pgbench reference database
DB=bench_rest_$$ # not `bench`: run.sh creates and drops that one, possibly at the same time
BENCH_URL="${PG_ADMIN_URL%/*}/$DB"
CLEANUP_HOOKS+=("timeout 30 psql -X -q \"\$PG_ADMIN_URL\" -c 'DROP DATABASE IF EXISTS $DB WITH (FORCE)' >/dev/null 2>&1 || say 'warning: could not drop $DB'")
say "creating the throwaway database $DB (pgbench -i -s $SCALE)"
timeout 30 psql -X -q -v ON_ERROR_STOP=1 "$PG_ADMIN_URL" -c "CREATE DATABASE $DB" >/dev/null || die "could not create $DB"
timeout 300 pgbench -i -q -s "$SCALE" "$BENCH_URL" >"$WORK/pgbench-init.log" 2>&1 || { cat "$WORK/pgbench-init.log" >&2; die "pgbench -i failed"; }

# run_pgbench N: sets PGB_TPS, PGB_P50, PGB_P99 (ms, from a 5 % sample log), as run.sh does.
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

# ------------------------------------------------------------------ tenantd
say "starting tenantd ($THREADS threads, log level warn, stdout to /dev/null)"
start_tenantd main
BASE=http://127.0.0.1:${TD_PORTS[main]}
TOKEN=$(login viewer@acme.test acme-viewer-pass "${TD_PORTS[main]}")
ID=$(curl -fsS --max-time 5 -H "authorization: Bearer $TOKEN" "$BASE/rest/v1/orders?select=id&order=id&limit=1" | jq -er '.[0].id') \
  || die "no order visible to viewer@acme.test (fixtures seeded?)"
URL="$BASE/rest/v1/orders?id=eq.$ID"
ETAG=$(curl -fsS --max-time 5 -D - -o "$WORK/row.json" -H "authorization: Bearer $TOKEN" "$URL" | awk -F': ' 'tolower($1) == "etag" {print $2}' | tr -d '\r')
[[ -n $ETAG ]] || die "no ETag on $URL"
[[ $(jq length "$WORK/row.json") == 1 ]] || die "$URL did not return one row: $(cat "$WORK/row.json")"
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" -H "if-none-match: $ETAG" "$URL")
[[ $code == 304 ]] || die "If-None-Match: $ETAG answered $code, not 304"
code=$(curl -sS -o "$WORK/miss.json" -w '%{http_code}' -H "authorization: Bearer $TOKEN" "$URL&title=neq.probe-$$")
[[ $code == 200 && $(jq length "$WORK/miss.json") == 1 ]] || die "the cache-miss form of the URL does not return the row ($code)"

printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$TOKEN" >"$WORK/hit.lua"
printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["If-None-Match"] = "%s"\n' "$TOKEN" "${ETAG//\"/\\\"}" >"$WORK/inm.lua"
# cache misses: a unique title=neq.<tag>-<n> per request (setup() runs in wrk's main Lua state,
# once per thread: each thread gets its own tag)
cat >"$WORK/miss.lua" <<EOF
wrk.headers["Authorization"] = "Bearer $TOKEN"
local n = 0
local tid = 0
function setup(thread) tid = tid + 1; thread:set("tag", "r$$x$(date +%s)-" .. tid) end
function request()
  n = n + 1
  return wrk.format("GET", wrk.path .. "&title=neq." .. tag .. "-" .. n)
end
EOF

run_pgbench 1
REF1=$PGB_TPS
row "pgbench -S -M prepared (reference, before)" "-c16 -j2 -T$SECS, $SCALE×100k rows" "$PGB_TPS tps" "$PGB_P50" "$PGB_P99" "p50/p99 from a 5 % sample"

say "wrk /healthz"
wrk_run -t2 -c64 -d"${SECS}s" "$BASE/healthz"
H1=$WRK_RPS
row "GET /healthz (reference, before)" "wrk -t2 -c64 -d${SECS}s" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99" "$WRK_NOTE"

say "wrk single-row read, Redis read cache missed (Postgres), -c16"
wrk_run -t2 -c16 -d"${SECS}s" -s "$WORK/miss.lua" "$URL"
MISS16=$WRK_RPS MISS16_ROW=("wrk -t2 -c16 -d${SECS}s (pgbench's concurrency)" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99") MISS16_NOTE=$WRK_NOTE
say "wrk single-row read, Redis read cache missed (Postgres), -c64"
wrk_run -t2 -c64 -d"${SECS}s" -s "$WORK/miss.lua" "$URL"
MISS64=$WRK_RPS MISS64_ROW=("wrk -t2 -c64 -d${SECS}s" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99") MISS64_NOTE=$WRK_NOTE
say "wrk single-row read, Redis read cache hit"
wrk_run -t2 -c64 -d"${SECS}s" -s "$WORK/hit.lua" "$URL"
HIT=$WRK_RPS HIT_ROW=("wrk -t2 -c64 -d${SECS}s" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99") HIT_NOTE=$WRK_NOTE
say "wrk single-row read, If-None-Match (304)"
wrk_run -t2 -c64 -d"${SECS}s" -s "$WORK/inm.lua" "$URL"
INM=$WRK_RPS INM_ROW=("wrk -t2 -c64 -d${SECS}s" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99") INM_NOTE=$WRK_NOTE
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN" -H "if-none-match: $ETAG" "$URL")
[[ $code == 304 ]] || say "warning: the 304 check after the run answered $code"

say "wrk /healthz"
wrk_run -t2 -c64 -d"${SECS}s" "$BASE/healthz"
H2=$WRK_RPS
row "GET /healthz (reference, after)" "wrk -t2 -c64 -d${SECS}s" "$WRK_RPS req/s" "$WRK_P50" "$WRK_P99" "$WRK_NOTE"
run_pgbench 2
REF2=$PGB_TPS
row "pgbench -S -M prepared (reference, after)" "-c16 -j2 -T$SECS" "$PGB_TPS tps" "$PGB_P50" "$PGB_P99" ""
PREF=$((REF1 > REF2 ? REF1 : REF2)) HREF=$((H1 > H2 ? H1 : H2)) # the better references: conservative

row "orders?id=eq.… uncached (Postgres)" "${MISS16_ROW[@]}" "**$(ratio "$MISS16" "$PREF") pgbench** (target ≥ 0.5×)${MISS16_NOTE:+; $MISS16_NOTE}"
row "orders?id=eq.… uncached (Postgres)" "${MISS64_ROW[@]}" "**$(ratio "$MISS64" "$PREF") pgbench**${MISS64_NOTE:+; $MISS64_NOTE}"
row "orders?id=eq.… cached (Redis read cache, 200)" "${HIT_ROW[@]}" "$(ratio "$HIT" "$PREF") pgbench; **$(ratio "$HIT" "$HREF") /healthz** (target ≥ 0.5×)${HIT_NOTE:+; $HIT_NOTE}"
row "orders?id=eq.… If-None-Match (304)" "${INM_ROW[@]}" "**$(ratio "$INM" "$HREF") /healthz** (target ≥ 0.5×)${INM_NOTE:+; $INM_NOTE}"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
print_table "**data API benchmark (issue 5)** — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by client and server (wrk, pgbench, tenantd, Postgres and Redis all on this machine, plus other sessions' load): ratios are against references measured in the same run (the better of the before/after runs). tenantd $THREADS worker threads, TENANTD_LOG_LEVEL=warn, RelWithDebInfo, $SECS s per measurement; bearer JWT of viewer@acme.test, one row of acme's orders. \"Uncached\" adds a unique title=neq.… filter per request, so every request misses the Redis read cache, runs in Postgres and stores a new cache entry. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER. Latencies in ms.$SOURCE_NOTE$SETUP_NOTE"
