# tests/bench/lib/common.sh — shared set-up for auth.sh, rest.sh and realtime.sh (sourced, not run).
# The same steps as run.sh: the project-local stack of ./dev, a RelWithDebInfo tenantd in
# build-bench/, tenantd on free ports with stdout to /dev/null, every process bounded by `timeout`
# and stopped on exit. The sourcing script sets BENCH_NAME first and may append to CLEANUP_HOOKS.
#
# Provides: ROOT WORK SECS LIMIT, say die, bench_setup (stack + build), free_port,
# start_tenantd NAME [ENV=VALUE...] (sets PORT_<NAME>, PID_<NAME>), stop_tenantd NAME, tenantd_pid NAME,
# login EMAIL PASSWORD PORT (prints the access token), to_ms, wrk_run (sets WRK_RPS WRK_P50 WRK_P99
# WRK_NON2XX WRK_ERRORS), ratio, pct, row, print_table.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd -P)
SECS=${BENCH_SECONDS:-10}
THREADS=${BENCH_THREADS:-$(nproc)}
[[ $SECS =~ ^[1-9][0-9]*$ ]] || { echo "$BENCH_NAME: BENCH_SECONDS must be a positive integer" >&2; exit 2; }
[[ $THREADS =~ ^[1-9][0-9]*$ ]] || { echo "$BENCH_NAME: BENCH_THREADS must be a positive integer" >&2; exit 2; }
LIMIT=$((SECS + 60)) # hard bound for any single measurement

say() { printf '%s: %s\n' "$BENCH_NAME" "$*" >&2; }
die() { printf '%s: error: %s\n' "$BENCH_NAME" "$*" >&2; exit 1; }

cd "$ROOT"
WORK=$(mktemp -d "/tmp/tenantd-$BENCH_NAME.XXXXXX")
STOP_STACK=0
SETUP_NOTE=
SOURCE_NOTE=
CLEANUP_HOOKS=()  # commands (strings) run first on exit
declare -A TD_PIDS # instance name -> pid of timeout(1) wrapping tenantd
declare -A TD_PORTS
BG_PIDS=()         # other background processes to stop on exit

stop_tenantd() {
  local name=$1 pid=${TD_PIDS[$1]:-}
  [[ -n $pid ]] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    local i
    for ((i = 0; i < 150; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then # pid is timeout(1); its child is tenantd
      say "tenantd $name did not exit in 15 s: SIGKILL"
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
    fi
  fi
  wait "$pid" 2>/dev/null || true
  unset "TD_PIDS[$name]"
}

bench_cleanup() {
  local rc=$? h p n
  for h in "${CLEANUP_HOOKS[@]}"; do eval "$h" || true; done
  for p in "${BG_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${BG_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "${!TD_PIDS[@]}"; do stop_tenantd "$n"; done
  if ((STOP_STACK)); then
    say "stopping the Postgres and Redis that ./dev setup started for this run"
    "$ROOT/dev" stop >/dev/null 2>&1 || say "warning: ./dev stop failed"
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT TERM

# bench_setup [TARGETS...]: ./dev setup (tolerating a broken build/ while the stack answers, like
# run.sh), then builds build-bench/ (RelWithDebInfo, -DTENANTD_BENCH=ON) targets (default tenantd).
bench_setup() {
  local targets=("$@")
  ((${#targets[@]})) || targets=(tenantd)
  [[ -x ./dev ]] || die "./dev is missing"
  eval "$(./dev env)"
  PG_PORT=${TENANTD_DEV_PG_PORT:-55432}
  REDIS_PORT=${TENANTD_DEV_REDIS_PORT:-56379}
  if ! "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 >/dev/null 2>&1 \
     && ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    STOP_STACK=1
  fi
  say "./dev setup (packages, Postgres, Redis, TLS pair, build/, migrations, fixtures)"
  if ! ./dev setup >"$WORK/setup.log" 2>&1; then
    tail -20 "$WORK/setup.log" >&2
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 1 && redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1 \
      || die "./dev setup failed (output above) and the stack is not running"
    say "WARNING: ./dev setup failed (output above), but Postgres and Redis answer: continuing"
    SETUP_NOTE=" ./dev setup FAILED (see stderr); the stack was up, so the run went on."
  fi
  eval "$(./dev env)"
  local tool
  for tool in wrk curl jq cmake node; do
    command -v "$tool" >/dev/null || die "$tool is missing after ./dev setup"
  done
  BUILD=$ROOT/build-bench
  SOURCE_NOTE=" Source: working tree at $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- server CMakeLists.txt || echo ' + uncommitted changes')."
  say "building build-bench/ (RelWithDebInfo, TENANTD_BENCH=ON): ${targets[*]}"
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTENANTD_BENCH=ON -DTENANTD_TESTS=OFF >/dev/null \
    || die "cmake configure failed for $BUILD"
  cmake --build "$BUILD" -j"$(nproc)" --target "${targets[@]}" >"$WORK/build.log" 2>&1 \
    || { tail -30 "$WORK/build.log" >&2; die "build failed in $BUILD"; }
  TENANTD_EXE=$BUILD/tenantd
  if [[ -n ${BENCH_TENANTD_ALIAS:-} ]]; then
    # started through a symlink of that name (in a folder whose path does not say "tenantd"), so
    # that a `pkill tenantd` / `pkill -f tenantd` of another session on a shared machine misses it
    [[ $BENCH_TENANTD_ALIAS =~ ^[A-Za-z0-9_-]+$ && $BENCH_TENANTD_ALIAS != *tenantd* ]] \
      || die "BENCH_TENANTD_ALIAS must be a plain name without \"tenantd\" in it"
    ALIAS_DIR=$(mktemp -d /tmp/bench-alias.XXXXXX)
    CLEANUP_HOOKS+=("rm -rf '$ALIAS_DIR'")
    ln -s "$BUILD/tenantd" "$ALIAS_DIR/$BENCH_TENANTD_ALIAS"
    TENANTD_EXE=$ALIAS_DIR/$BENCH_TENANTD_ALIAS
  fi
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
}

# A port nothing listens on (bash /dev/tcp connect fails), from a random start.
free_port() {
  local p i
  for ((i = 0; i < 200; i++)); do
    p=$((20000 + RANDOM % 30000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  die "no free port found"
}

# start_tenantd NAME [ENV=VALUE...]: build-bench/tenantd (through $TENANTD_EXE, see bench_setup and
# BENCH_TENANTD_ALIAS) on a free port (TLS off), THREADS worker
# threads, TENANTD_LOG_LEVEL=warn (no access log), stdout to /dev/null; waits for /healthz.
start_tenantd() {
  local name=$1
  shift
  local port
  port=$(free_port)
  env TENANTD_LISTEN="127.0.0.1:$port" TENANTD_TLS_LISTEN= TENANTD_THREADS="$THREADS" TENANTD_LOG_LEVEL=warn "$@" \
    timeout -s TERM 1800 "$TENANTD_EXE" >/dev/null 2>"$WORK/tenantd-$name.err" &
  TD_PIDS[$name]=$!
  TD_PORTS[$name]=$port
  local i
  for ((i = 0; i < 100; i++)); do
    curl -fsS -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz" 2>/dev/null && return 0
    kill -0 "${TD_PIDS[$name]}" 2>/dev/null || { cat "$WORK/tenantd-$name.err" >&2; die "tenantd $name exited at start"; }
    sleep 0.1
  done
  cat "$WORK/tenantd-$name.err" >&2
  die "tenantd $name did not answer /healthz within 10 s"
}

# tenantd_pid NAME: the pid of tenantd itself (the only child of timeout(1)).
tenantd_pid() { pgrep -P "${TD_PIDS[$1]}" | head -1; }

# login EMAIL PASSWORD PORT [TENANT]: prints the access token (fixture accounts: correct passwords
# only — 5 failures lock an account for 15 minutes).
login() {
  local body out
  body=$(jq -cn --arg e "$1" --arg p "$2" --arg t "${4:-}" '{email: $e, password: $p} + (if $t == "" then {} else {tenant: $t} end)')
  out=$(curl -sS --max-time 10 -H 'content-type: application/json' -d "$body" "http://127.0.0.1:$3/v1/auth/login") \
    || die "login $1 failed: $out"
  jq -er '.access_token' <<<"$out" 2>/dev/null || die "login $1: no access_token in $out"
}

# Latency as printed by wrk (1.23ms / 456.00us / 1.2s) -> milliseconds with 3 decimals.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) { sub(/us$/, "", v); printf "%.3f", v / 1000 }
    else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.3f", v }
    else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.3f", v * 1000 }
    else print "?" }'
}

# wrk_run ARGS...: wrk --latency under timeout; sets WRK_RPS WRK_P50 WRK_P99 (ms) and WRK_NOTE
# (non-2xx/3xx responses and socket errors, if any).
wrk_run() {
  local out
  out=$(timeout "$LIMIT" wrk --latency "$@" 2>&1) || die "wrk failed: $out"
  WRK_RPS=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
  WRK_P50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
  WRK_P99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  WRK_NOTE=$( (grep -E 'Non-2xx|Socket errors' <<<"$out" || true) | sed 's/^ *//' | paste -sd';' -)
  [[ -z $WRK_NOTE ]] || say "warning: wrk $*: $WRK_NOTE"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f×", a / b}'; }

ROWS=()
row() { ROWS+=("| $1 | $2 | $3 | $4 | $5 | $6 |"); }
print_table() { # print_table CAPTION
  echo
  echo "$1"
  echo
  echo "| benchmark | settings | throughput | p50 ms | p99 ms | note |"
  echo "|---|---|---|---|---|---|"
  printf '%s\n' "${ROWS[@]}"
  echo
}

# bench_account PORT: prints an access token of the benchmark's own account, the owner of its own
# tenant (so rooms, sessions and members of the fixture tenants stay untouched): signs it up on the
# first run (one signup; 60 per IP per hour are allowed), logs in afterwards. Sets BENCH_EMAIL,
# BENCH_PASSWORD.
BENCH_EMAIL=bench-load@tenantd-bench.test
BENCH_PASSWORD=bench-load-password-0001
BENCH_SLUG=bench-load
bench_account() {
  local port=$1 out code
  code=$(curl -sS --max-time 10 -o "$WORK/acct.json" -w '%{http_code}' -H 'content-type: application/json' \
    -d "$(jq -cn --arg e "$BENCH_EMAIL" --arg p "$BENCH_PASSWORD" '{email: $e, password: $p}')" \
    "http://127.0.0.1:$port/v1/auth/login") || die "login of $BENCH_EMAIL failed"
  if [[ $code == 401 ]]; then # first run: the account does not exist yet
    say "signing up $BENCH_EMAIL (tenant $BENCH_SLUG)"
    code=$(curl -sS --max-time 10 -o "$WORK/acct.json" -w '%{http_code}' -H 'content-type: application/json' \
      -d "$(jq -cn --arg e "$BENCH_EMAIL" --arg p "$BENCH_PASSWORD" --arg s "$BENCH_SLUG" \
        '{email: $e, password: $p, tenant: {slug: $s, name: "tenantd benchmark"}}')" \
      "http://127.0.0.1:$port/v1/auth/signup") || die "signup of $BENCH_EMAIL failed"
  fi
  [[ $code == 200 || $code == 201 ]] || die "bench account: HTTP $code: $(cat "$WORK/acct.json")"
  jq -er '.access_token' "$WORK/acct.json" || die "bench account: no access_token in $(cat "$WORK/acct.json")"
}

# bench_login_users N: makes sure bench-login-1..N@tenantd-bench.test exist as viewers of the
# benchmark's tenant (tenantctl user create, ~0.1 s each, only for the missing ones), all with
# BENCH_PASSWORD. login attempts are reserved per account before hashing and at most 5 may be in
# flight (server/api/auth_api.c on_login_rate), so parallel logins need several accounts.
bench_login_users() {
  local n=$1 have i
  have=$(psql -X -At "$DATABASE_OWNER_URL" -c \
    "SELECT email FROM tenantd.users WHERE email LIKE 'bench-login-%@tenantd-bench.test'" 2>/dev/null) \
    || die "could not list users"
  for ((i = 1; i <= n; i++)); do
    grep -qx "bench-login-$i@tenantd-bench.test" <<<"$have" && continue
    printf '%s\n' "$BENCH_PASSWORD" | timeout 30 "${TENANTCTL_BIN:-$ROOT/build/tenantctl}" user create \
      --email "bench-login-$i@tenantd-bench.test" --tenant "$BENCH_SLUG" --role viewer >/dev/null 2>"$WORK/usercreate.err" \
      || { cat "$WORK/usercreate.err" >&2; die "tenantctl user create bench-login-$i failed"; }
  done
}
