#!/usr/bin/env bash
# tests/bench/rest.sh — issue 5, item 8 (not part of ./dev test): an authenticated single-row read
# GET /rest/v1/orders?id=eq.<id> (bearer JWT of a viewer: token check, tenant transaction, policy,
# JSON) with wrk, against `pgbench -S -M prepared -c16 -j2` on a throwaway database and against
# GET /healthz, in rounds: each ratio against the reference of its own round, the median reported. The table read is the benchmark tenant's (bench-load) orders,
# filled to BENCH_SCALE × 100,000 rows like pgbench_accounts; the fixture tenant acme's small orders
# table (about a hundred rows, which Postgres reads by a sequential scan) is measured too.
#   - uncached: every request adds a filter title=neq.<unique> (the row stays, the statement's
#     parameters change), so each is a query's first sighting: straight to Postgres, the Redis read
#     cache neither asked nor filled (server/api/rest_api.c, "Admission"); vs pgbench (target ≥ 0.5×);
#   - cached read: the same URL again and again (served from the Redis read cache), vs /healthz;
#   - 304: the same with If-None-Match: <its ETag>, vs /healthz (target ≥ 0.5×).
# Prints a markdown table on stdout; progress on stderr. See tests/bench/README.md.
#
#   tests/bench/rest.sh                   # 3 rounds of 7 measurements of 6 s: about 2.5 minutes
#   BENCH_ROUNDS=5 BENCH_SECONDS=10 tests/bench/rest.sh
#
# Knobs: BENCH_ROUNDS (3, odd), BENCH_SECONDS (6), BENCH_THREADS (tenantd worker threads, nproc),
# BENCH_SCALE (1).
set -euo pipefail
BENCH_NAME=rest
BENCH_SECONDS=${BENCH_SECONDS:-6}
ROUNDS=${BENCH_ROUNDS:-3}
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] && ((ROUNDS % 2 == 1)) || { echo "rest: BENCH_ROUNDS must be an odd positive number" >&2; exit 2; }
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
# a run where wrk saw errors or non-2xx answers keeps tenantd's stderr for a look afterwards
CLEANUP_HOOKS+=("[[ -z \${WRK_WARNED:-} ]] || { mkdir -p /tmp/tenantd-rest-logs.$$ && cp \"\$WORK\"/tenantd-*.err /tmp/tenantd-rest-logs.$$/ && say \"wrk reported errors: tenantd's stderr kept in /tmp/tenantd-rest-logs.$$\"; }")
say "starting tenantd ($THREADS threads, log level warn, stdout to /dev/null)"
start_tenantd main
BASE=http://127.0.0.1:${TD_PORTS[main]}

# the benchmark tenant's orders: SCALE × 100,000 rows (pgbench_accounts' size), filled once
bench_account "${TD_PORTS[main]}" >/dev/null
bench_login_users 1
ROWS_WANTED=$((SCALE * 100000))
SCHEMA=$(psql -X -At -v ON_ERROR_STOP=1 "$DATABASE_OWNER_URL" -c "SELECT schema_name FROM tenantd.tenants WHERE slug = '$BENCH_SLUG'") \
  || die "no schema for tenant $BENCH_SLUG"
[[ $SCHEMA =~ ^[a-z0-9_]+$ ]] || die "unexpected schema name '$SCHEMA'"
HAVE=$(psql -X -At "$DATABASE_OWNER_URL" -c "SELECT count(*) FROM \"$SCHEMA\".orders") || die "cannot count $SCHEMA.orders"
if ((HAVE < ROWS_WANTED)); then
  say "filling $BENCH_SLUG's orders: $HAVE → $ROWS_WANTED rows"
  timeout 300 psql -X -q -v ON_ERROR_STOP=1 "$DATABASE_OWNER_URL" \
    -c "INSERT INTO \"$SCHEMA\".orders (title, position) SELECT 'bench order ' || g, g FROM generate_series(1, $((ROWS_WANTED - HAVE))) g" \
    -c "VACUUM ANALYZE \"$SCHEMA\".orders" >/dev/null || die "could not fill $SCHEMA.orders"
fi

# prepare_read NAME EMAIL PASSWORD OFFSET: logs the viewer in, picks the row at OFFSET (by id) of
# its tenant's orders, checks the row, its ETag and a 304; writes $WORK/NAME-hit.lua,
# $WORK/NAME-inm.lua and sets URL_NAME, TOKEN_NAME, ETAG_NAME.
prepare_read() {
  local name=$1 token id url etag code
  token=$(login "$2" "$3" "${TD_PORTS[main]}")
  id=$(curl -fsS --max-time 5 -H "authorization: Bearer $token" "$BASE/rest/v1/orders?select=id&order=id&offset=$4&limit=1" | jq -er '.[0].id') \
    || die "no order visible to $2"
  url="$BASE/rest/v1/orders?id=eq.$id"
  # the first read of a query only admits it; the second is stored in the read cache
  curl -fsS --max-time 5 -o /dev/null -H "authorization: Bearer $token" "$url" || die "GET $url failed"
  etag=$(curl -fsS --max-time 5 -D - -o "$WORK/row.json" -H "authorization: Bearer $token" "$url" | awk -F': ' 'tolower($1) == "etag" {print $2}' | tr -d '\r')
  [[ -n $etag ]] || die "no ETag on $url"
  [[ $(jq length "$WORK/row.json") == 1 ]] || die "$url did not return one row: $(cat "$WORK/row.json")"
  code=$(curl -sS -o /dev/null -w '%{http_code}' -H "authorization: Bearer $token" -H "if-none-match: $etag" "$url")
  [[ $code == 304 ]] || die "If-None-Match: $etag answered $code, not 304"
  code=$(curl -sS -o "$WORK/miss.json" -w '%{http_code}' -H "authorization: Bearer $token" "$url&title=neq.probe-$$")
  [[ $code == 200 && $(jq length "$WORK/miss.json") == 1 ]] || die "the uncached form of $url does not return the row ($code)"
  printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$token" >"$WORK/$name-hit.lua"
  printf 'wrk.headers["Authorization"] = "Bearer %s"\nwrk.headers["If-None-Match"] = "%s"\n' "$token" "${etag//\"/\\\"}" >"$WORK/$name-inm.lua"
  printf -v "URL_$name" '%s' "$url"
  printf -v "TOKEN_$name" '%s' "$token"
  printf -v "ETAG_$name" '%s' "$etag"
}

# miss_script NAME: writes a fresh wrk script whose every request adds a filter title=neq.<tag>-<n>
# never used before — a new tag per script, so that no run meets the cache admissions or entries
# of an earlier one — and prints its path. setup() runs in wrk's main Lua state, once per thread:
# each thread gets its own tag.
MISS_RUNS=0
note_warned() { [[ -z $WRK_NOTE ]] || WRK_WARNED=1; }
miss_script() {
  local token_var="TOKEN_$1" file
  MISS_RUNS=$((MISS_RUNS + 1))
  file=$WORK/miss-$MISS_RUNS.lua
  {
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "${!token_var}"
    printf 'local n = 0\nlocal tid = 0\n'
    printf 'function setup(thread) tid = tid + 1; thread:set("tag", "r%sx%sx%s-" .. tid) end\n' "$$" "$(date +%s%N)" "$MISS_RUNS"
    printf 'function request()\n  n = n + 1\n  return wrk.format("GET", wrk.path .. "&title=neq." .. tag .. "-" .. n)\nend\n'
  } >"$file"
  MISS_SCRIPT=$file
}

prepare_read big bench-login-1@tenantd-bench.test "$BENCH_PASSWORD" $((ROWS_WANTED / 2))
prepare_read small viewer@acme.test acme-viewer-pass 0
URL=$URL_big

# ------------------------------------------------------------------ the rounds
# The machine is shared: its speed drifts by ±25 % within minutes. So each ratio is taken within a
# round, against the reference measured in the same round, and the table reports the median over
# BENCH_ROUNDS rounds (with the lowest and highest); each round runs pgbench, /healthz and the five
# reads back to back.
declare -A TPUT P50 P99 NOTE
measure() { # measure KEY ROUND wrk-args...: one wrk run, stored under KEY/ROUND
  local key=$1 r=$2
  shift 2
  wrk_run "$@"
  note_warned
  TPUT[$key/$r]=$WRK_RPS P50[$key/$r]=$WRK_P50 P99[$key/$r]=$WRK_P99 NOTE[$key/$r]=$WRK_NOTE
}
for ((r = 1; r <= ROUNDS; r++)); do
  say "round $r of $ROUNDS"
  run_pgbench "$r"
  TPUT[pgb/$r]=$PGB_TPS P50[pgb/$r]=$PGB_P50 P99[pgb/$r]=$PGB_P99 NOTE[pgb/$r]=
  say "wrk /healthz"
  measure healthz "$r" -t2 -c64 -d"${SECS}s" "$BASE/healthz"
  say "wrk single-row read, uncached (Postgres), -c16"
  miss_script big
  measure miss16 "$r" -t2 -c16 -d"${SECS}s" -s "$MISS_SCRIPT" "$URL"
  say "wrk single-row read, uncached (Postgres), -c64"
  miss_script big
  measure miss64 "$r" -t2 -c64 -d"${SECS}s" -s "$MISS_SCRIPT" "$URL"
  say "wrk single-row read of acme's small orders table, uncached (Postgres), -c16"
  miss_script small
  measure small "$r" -t2 -c16 -d"${SECS}s" -s "$MISS_SCRIPT" "$URL_small"
  say "wrk single-row read, Redis read cache hit"
  measure hit "$r" -t2 -c64 -d"${SECS}s" -s "$WORK/big-hit.lua" "$URL"
  say "wrk single-row read, If-None-Match (304)"
  measure inm "$r" -t2 -c64 -d"${SECS}s" -s "$WORK/big-inm.lua" "$URL"
done
code=$(curl -sS -o /dev/null -w '%{http_code}' -H "authorization: Bearer $TOKEN_big" -H "if-none-match: $ETAG_big" "$URL")
[[ $code == 304 ]] || say "warning: the 304 check after the runs answered $code"

# summary KEY [REF]: prints "median-round throughput p50 p99 notes" for KEY and, with REF, the
# ratios KEY/REF per round as "median min max".
median_round() { # the round whose throughput for KEY is the median
  local key=$1 r
  for ((r = 1; r <= ROUNDS; r++)); do echo "${TPUT[$key/$r]} $r"; done | sort -n | awk -v n="$ROUNDS" 'NR == int((n + 1) / 2) {print $2}'
}
ratios() { # ratios KEY REF: "median min max" of KEY/REF over the rounds
  local key=$1 ref=$2 r
  for ((r = 1; r <= ROUNDS; r++)); do awk -v a="${TPUT[$key/$r]}" -v b="${TPUT[$ref/$r]}" 'BEGIN {printf "%.4f\n", a / b}'; done |
    sort -n | awk -v n="$ROUNDS" '{v[NR] = $1} END {printf "%.2f× %.2f× %.2f×\n", v[int((n + 1) / 2)], v[1], v[n]}'
}
notes() { # the wrk notes of KEY over the rounds, "round r: note" joined
  local key=$1 r out=
  for ((r = 1; r <= ROUNDS; r++)); do [[ -z ${NOTE[$key/$r]} ]] || out+="${out:+; }round $r: ${NOTE[$key/$r]}"; done
  echo "$out"
}
report() { # report KEY LABEL SETTINGS REF TARGET: one table row
  local key=$1 label=$2 settings=$3 ref=$4 target=$5 m med lo hi n b=
  [[ -z $target ]] || b='**' # the issue's targets in bold
  m=$(median_round "$key")
  read -r med lo hi < <(ratios "$key" "$ref")
  n=$(notes "$key")
  row "$label" "$settings" "${TPUT[$key/$m]} req/s" "${P50[$key/$m]}" "${P99[$key/$m]}" \
    "$b$med $( [[ $ref == pgb ]] && echo pgbench || echo /healthz)$b${target:+ (target ≥ $target)}, rounds $lo–$hi${n:+; $n}"
}
per_round() { # per_round KEY: the throughputs of every round, "a / b / c"
  local key=$1 r out=
  for ((r = 1; r <= ROUNDS; r++)); do out+="${out:+ / }${TPUT[$key/$r]}"; done
  echo "$out"
}
m=$(median_round pgb)
row "pgbench -S -M prepared (reference)" "-c16 -j2 -T$SECS, $SCALE×100k rows" "${TPUT[pgb/$m]} tps" "${P50[pgb/$m]}" "${P99[pgb/$m]}" "rounds: $(per_round pgb) tps; p50/p99 from a 5 % sample"
m=$(median_round healthz)
row "GET /healthz (reference)" "wrk -t2 -c64 -d${SECS}s" "${TPUT[healthz/$m]} req/s" "${P50[healthz/$m]}" "${P99[healthz/$m]}" "rounds: $(per_round healthz) req/s${NOTE[healthz/$m]:+; ${NOTE[healthz/$m]}}"
report miss16 "orders?id=eq.… uncached (Postgres)" "wrk -t2 -c16 -d${SECS}s (pgbench's concurrency)" pgb 0.5×
report miss64 "orders?id=eq.… uncached (Postgres)" "wrk -t2 -c64 -d${SECS}s" pgb ""
report small "acme's orders?id=eq.… uncached (small table, sequential scan)" "wrk -t2 -c16 -d${SECS}s" pgb ""
report hit "orders?id=eq.… cached (Redis read cache, 200)" "wrk -t2 -c64 -d${SECS}s" healthz 0.5×
report inm "orders?id=eq.… If-None-Match (304)" "wrk -t2 -c64 -d${SECS}s" healthz 0.5×

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
print_table "**data API benchmark (issue 5)** — $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores shared by client and server (wrk, pgbench, tenantd, Postgres and Redis all on this machine, plus other sessions' load). $ROUNDS rounds, each running pgbench, /healthz and the five reads back to back, $SECS s per measurement; a ratio is taken against the reference of its own round, and the table gives the median over the rounds (lowest–highest after it), throughput and latencies of the median round. tenantd $THREADS worker threads, TENANTD_LOG_LEVEL=warn, RelWithDebInfo; bearer JWT of a viewer, one row of the benchmark tenant's orders ($ROWS_WANTED rows, like pgbench_accounts; primary-key lookup) unless the row says acme's (the fixture table, about a hundred rows, which Postgres scans). \"Uncached\" adds a unique title=neq.… filter per request (a new tag per run), so every request is a query's first sighting: Postgres only, the Redis read cache neither asked nor filled. Load average before/after: $LOAD_BEFORE / $LOAD_AFTER. Latencies in ms.$SOURCE_NOTE$SETUP_NOTE"
