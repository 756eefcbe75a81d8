#!/usr/bin/env bash
# tests/bench/tenancy.sh — tenantctl at scale (issue 3): with N tenants (default 1,000) it measures
#   1. tenant creation latency, p50 and p99 (`tenantctl tenant create`, one process per tenant),
#   2. one new migration applied to every tenant (`tenantctl migrate --jobs 4`),
#   3. a migrate with nothing to do (`tenantctl migrate`),
# each beside a sequential psql loop doing the same work in the same run: one psql process per
# tenant that creates the schema + role, runs the tenant migrations and records them / applies the
# new migration in one transaction and records it / checks the tenant's ledger — the shape of a
# shell script or of a per-schema migration tool. Then
#   4. batched creation of N tenants (`tenantctl tenant create --from-file --jobs 1`, then
#      `--jobs 4`): the total time and the per-tenant time tenantctl measures itself (p50, p99),
#      beside the psql loop of step 1 and a fairer reference, one psql session creating all N
#      sequentially from one file (each tenant its own transaction, a clock_timestamp() between
#      tenants for the per-tenant times). Each of the three starts from its own fresh database.
# Prints markdown tables with the ratios (reference ÷ tenantctl) on stdout; progress goes to
# stderr. Not part of ./dev test.
#
#   eval "$(./dev env)"; tests/bench/tenancy.sh        # 1,000 tenants (about a minute or two)
#   BENCH_TENANTS=200 tests/bench/tenancy.sh           # smaller
#
# Needs PG_ADMIN_URL, DATABASE_URL, DATABASE_OWNER_URL and TENANTCTL_BIN (or build/tenantctl) in
# the environment (./dev env prints them). It creates the throwaway database tenancy_bench_<pid>,
# owned by the DATABASE_OWNER_URL role, and drops it and every role it created on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
N=${BENCH_TENANTS:-1000}
JOBS=${BENCH_JOBS:-4}
[[ $N =~ ^[1-9][0-9]*$ ]] || { echo "tenancy.sh: BENCH_TENANTS must be a positive integer" >&2; exit 2; }
[[ $JOBS =~ ^[1-9][0-9]*$ ]] || { echo "tenancy.sh: BENCH_JOBS must be a positive integer" >&2; exit 2; }
for v in PG_ADMIN_URL DATABASE_URL DATABASE_OWNER_URL; do
  [[ -n ${!v:-} ]] || { echo "tenancy.sh: $v is not set (eval \"\$(./dev env)\" first)" >&2; exit 2; }
done
CTL=${TENANTCTL_BIN:-$ROOT/build/tenantctl}
[[ -x $CTL ]] || { echo "tenancy.sh: $CTL is missing; build first" >&2; exit 2; }
PSQL=${PGBIN:-/usr/lib/postgresql/15/bin}/psql
[[ -x $PSQL ]] || PSQL=psql

say() { printf 'bench: %s\n' "$*" >&2; }

DB=tenancy_bench_$$
RUN=$(printf '%x' "$$")
with_db() { # with_db URL [NAME]: the same URL pointing at database NAME (default $DB)
  local url=$1
  printf '%s/%s' "${url%/*}" "${2:-$DB}"
}
ADMIN=$(with_db "$PG_ADMIN_URL")
OWNER=$(with_db "$DATABASE_OWNER_URL")
APP=$(with_db "$DATABASE_URL")
OWNER_ROLE=$(sed -E 's#^[a-z]+://([^:@/]+).*#\1#' <<<"$DATABASE_OWNER_URL")
APP_ROLE=$(sed -E 's#^[a-z]+://([^:@/]+).*#\1#' <<<"$DATABASE_URL")
WORK=$(mktemp -d /tmp/tenancy-bench-XXXXXX)

q() { "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$1" -c "$2"; }

DBS=("$DB")        # every database this run created (section 4 adds its own)
cleanup() {
  set +e
  local roles="" d
  for d in "${DBS[@]}"; do
    roles+=" $(q "$(printf '%s/%s' "${PG_ADMIN_URL%/*}" "$d")" "SELECT nspname FROM pg_namespace WHERE nspname ~ '^(t_[0-9a-f]{32}|bb_${RUN}_s?[0-9]+)\$'" 2>/dev/null)"
    q "$PG_ADMIN_URL" "DROP DATABASE IF EXISTS \"$d\" WITH (FORCE)" >/dev/null 2>&1
  done
  # One session for every role (a psql per role would take minutes for 2,000 roles).
  for r in $roles; do printf 'DROP ROLE IF EXISTS "%s";\n' "$r"; done |
    "$PSQL" -X -q -d "$PG_ADMIN_URL" >/dev/null 2>&1
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

export DATABASE_URL=$APP DATABASE_OWNER_URL=$OWNER TENANTD_MIGRATIONS=$WORK/migrations
cp -r "$ROOT/migrations" "$WORK/migrations"
cp -r "$ROOT/migrations" "$WORK/migrations4" # section 4: the same set as step 1 (without step 2's)

say "database $DB, $N tenants, tenantctl $CTL"
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
STARTED_UTC=$(date -u '+%Y-%m-%d %H:%M UTC')
q "$PG_ADMIN_URL" "CREATE DATABASE \"$DB\" OWNER \"$OWNER_ROLE\"" >/dev/null
q "$ADMIN" "GRANT CONNECT ON DATABASE \"$DB\" TO \"$APP_ROLE\"" >/dev/null
"$CTL" migrate >/dev/null
q "$OWNER" "CREATE SCHEMA bench_base; CREATE TABLE bench_base.ledger (schema_name text, version int, name text,
  checksum text, applied_at timestamptz DEFAULT now(), PRIMARY KEY (schema_name, version))" >/dev/null

now() { echo "$EPOCHREALTIME"; }
elapsed_ms() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", (b - a) * 1000 }'; }
pct() { # pct FILE P: the P-th percentile (nearest rank) of the numbers in FILE
  sort -n "$1" | awk -v p="$2" '{ v[NR] = $1 } END { i = int((p / 100) * NR + 0.999999); if (i < 1) i = 1; print v[i] }'
}

# The psql loop's version of a tenant's SQL, in one transaction: the statements of
# tenantd.create_tenant (control migration 0003) without the row in tenantd.tenants — role, schema,
# default privileges, the tenant migrations with their ledger rows, USAGE on the schema, the role
# to the server's role.
tenant_files=("$WORK"/migrations/tenant/*.sql)
baseline_create_sql() { # baseline_create_sql SCHEMA
  local s=$1 f
  printf 'BEGIN;\nCREATE ROLE %s NOLOGIN;\nCREATE SCHEMA %s;\n' "$s" "$s"
  printf 'ALTER DEFAULT PRIVILEGES IN SCHEMA %s GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO %s;\n' "$s" "$s"
  printf 'ALTER DEFAULT PRIVILEGES IN SCHEMA %s GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO %s;\n' "$s" "$s"
  printf 'SET LOCAL search_path TO %s;\n' "$s"
  for f in "${tenant_files[@]}"; do
    printf '\\i %s\n' "$f"
    printf "INSERT INTO bench_base.ledger (schema_name, version, name, checksum) VALUES ('%s', %d, '%s', '%s');\n" \
      "$s" "$((10#$(basename "$f" | cut -c1-4)))" "$(basename "$f" .sql | cut -c6-)" "$(sha256sum "$f" | cut -c1-64)"
  done
  printf 'GRANT USAGE ON SCHEMA %s TO %s;\nGRANT %s TO %s;\nCOMMIT;\n' "$s" "$s" "$s" "$APP_ROLE"
}

# --- 1. creation --------------------------------------------------------------------------------
say "1/4 creating $N tenants with tenantctl, one process per tenant"
: >"$WORK/create_ctl"
for ((i = 1; i <= N; i++)); do
  t0=$(now)
  "$CTL" tenant create "bench-$i" --name "Bench $i" >/dev/null
  t1=$(now)
  elapsed_ms "$t0" "$t1" >>"$WORK/create_ctl"
done
say "1/4 creating $N tenants with the psql loop"
: >"$WORK/create_psql"
for ((i = 1; i <= N; i++)); do
  s="bb_${RUN}_$i"
  baseline_create_sql "$s" >"$WORK/create.sql"
  t0=$(now)
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$OWNER" -f "$WORK/create.sql" >/dev/null
  t1=$(now)
  elapsed_ms "$t0" "$t1" >>"$WORK/create_psql"
done
LOOP_TOTAL=$(awk '{ s += $1 } END { printf "%.3f\n", s }' "$WORK/create_psql") # psql time only, not the script's

# --- 2. one new migration across every tenant ---------------------------------------------------
NEWFILE="$WORK/migrations/tenant/9000_bench_priority.sql"
printf -- '-- benchmark migration\nALTER TABLE orders ADD COLUMN bench_priority integer NOT NULL DEFAULT 0;\nCREATE INDEX orders_bench_priority_idx ON orders (bench_priority);\n' >"$NEWFILE"
NEWSUM=$(sha256sum "$NEWFILE" | cut -c1-64)
say "2/4 one new migration over $N tenants: tenantctl migrate --jobs $JOBS"
t0=$(now)
"$CTL" migrate --jobs "$JOBS" >"$WORK/migrate.out"
t1=$(now)
MIG_CTL=$(elapsed_ms "$t0" "$t1")
applied=$(q "$OWNER" "SELECT count(*) FROM tenantd.schema_migrations WHERE version = 9000")
[[ $applied == "$N" ]] || { say "tenantctl applied the migration to $applied of $N tenants"; exit 1; }
say "2/4 one new migration over $N tenants: psql loop"
t0=$(now)
for ((i = 1; i <= N; i++)); do
  s="bb_${RUN}_$i"
  "$PSQL" -X -q -v ON_ERROR_STOP=1 -d "$OWNER" >/dev/null <<SQL
BEGIN;
SET LOCAL search_path TO $s;
\\i $NEWFILE
INSERT INTO bench_base.ledger (schema_name, version, name, checksum) VALUES ('$s', 9000, 'bench_priority', '$NEWSUM');
COMMIT;
SQL
done
t1=$(now)
MIG_PSQL=$(elapsed_ms "$t0" "$t1")

# --- 3. nothing to do ---------------------------------------------------------------------------
say "3/4 no-op: tenantctl migrate"
best_noop=""
for _ in 1 2 3; do
  t0=$(now)
  "$CTL" migrate >"$WORK/noop.out"
  t1=$(now)
  ms=$(elapsed_ms "$t0" "$t1")
  grep -q 'nothing to migrate' "$WORK/noop.out" || { say "the no-op run did work: $(cat "$WORK/noop.out")"; exit 1; }
  best_noop=$(awk -v a="$ms" -v b="${best_noop:-$ms}" 'BEGIN { print (a < b ? a : b) }')
done
NOOP_CTL=$best_noop
say "3/4 no-op: psql loop (one ledger check per tenant)"
t0=$(now)
for ((i = 1; i <= N; i++)); do
  "$PSQL" -X -q -A -t -d "$OWNER" -c "SELECT count(*) FROM bench_base.ledger WHERE schema_name = 'bb_${RUN}_$i' AND version = 9000" >/dev/null
done
t1=$(now)
NOOP_PSQL=$(elapsed_ms "$t0" "$t1")

# --- 4. batched creation ------------------------------------------------------------------------
new_db() { # new_db NAME: a fresh database like $DB with the control schema and no tenants
  local d=$1
  DBS+=("$d")
  q "$PG_ADMIN_URL" "CREATE DATABASE \"$d\" OWNER \"$OWNER_ROLE\"" >/dev/null
  q "$(with_db "$PG_ADMIN_URL" "$d")" "GRANT CONNECT ON DATABASE \"$d\" TO \"$APP_ROLE\"" >/dev/null
  DATABASE_URL=$(with_db "$APP" "$d") DATABASE_OWNER_URL=$(with_db "$OWNER" "$d") \
    TENANTD_MIGRATIONS=$WORK/migrations4 "$CTL" migrate >/dev/null
}
for ((i = 1; i <= N; i++)); do printf 'batch-%d\tBatch %d\n' "$i" "$i"; done >"$WORK/batch.tsv"
batch_jobs=(1)
[[ $JOBS == 1 ]] || batch_jobs+=("$JOBS")
declare -A BATCH_TOTAL
for j in "${batch_jobs[@]}"; do
  d=${DB}_j$j
  new_db "$d"
  say "4/4 batched creation of $N tenants: tenantctl tenant create --from-file --jobs $j"
  t0=$(now)
  DATABASE_URL=$(with_db "$APP" "$d") DATABASE_OWNER_URL=$(with_db "$OWNER" "$d") TENANTD_MIGRATIONS=$WORK/migrations4 \
    "$CTL" tenant create --from-file "$WORK/batch.tsv" --jobs "$j" --timings "$WORK/batch_$j.times" >"$WORK/batch_$j.out"
  t1=$(now)
  BATCH_TOTAL[$j]=$(elapsed_ms "$t0" "$t1")
  awk -F'\t' '$4 == "ok" { print $3 }' "$WORK/batch_$j.times" >"$WORK/batch_$j.ms"
  created=$(wc -l <"$WORK/batch_$j.ms")
  [[ $created == "$N" ]] || { say "--jobs $j created $created of $N tenants"; exit 1; }
  say "$(tail -n 1 "$WORK/batch_$j.out")"
done
say "4/4 batched creation of $N tenants: one psql session"
d=${DB}_s
new_db "$d"
SESSION=$(with_db "$OWNER" "$d")
q "$SESSION" "CREATE SCHEMA bench_base; CREATE TABLE bench_base.ledger (schema_name text, version int, name text,
  checksum text, applied_at timestamptz DEFAULT now(), PRIMARY KEY (schema_name, version))" >/dev/null
tenant_files=("$WORK"/migrations4/tenant/*.sql)
stamp="SELECT 'stamp', extract(epoch FROM clock_timestamp());"
{
  for ((i = 1; i <= N; i++)); do
    echo "$stamp"
    baseline_create_sql "bb_${RUN}_s$i"
  done
  echo "$stamp"
} >"$WORK/session.sql"
t0=$(now)
"$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -d "$SESSION" -f "$WORK/session.sql" >"$WORK/session.out"
t1=$(now)
SESSION_TOTAL=$(elapsed_ms "$t0" "$t1")
awk -F'|' '$1 == "stamp" { if (n++) printf "%.3f\n", ($2 - prev) * 1000; prev = $2 }' "$WORK/session.out" >"$WORK/session.ms"
[[ $(wc -l <"$WORK/session.ms") == "$N" ]] || { say "the psql session gave $(wc -l <"$WORK/session.ms") times for $N tenants"; exit 1; }

# --- report -------------------------------------------------------------------------------------
C50=$(pct "$WORK/create_ctl" 50); C99=$(pct "$WORK/create_ctl" 99)
P50=$(pct "$WORK/create_psql" 50); P99=$(pct "$WORK/create_psql" 99)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f×", (b > 0 ? a / b : 0) }'; }
fmt() { awk -v v="$1" 'BEGIN { if (v >= 1000) printf "%.2f s", v / 1000; else printf "%.1f ms", v }'; }
echo
echo "tenantctl with $N tenants, $STARTED_UTC ($(nproc) cores, Postgres $(q "$OWNER" 'SHOW server_version');"
echo "load average before/after: $LOAD_BEFORE / $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "| measurement | target | tenantctl | psql loop | psql loop ÷ tenantctl |"
echo "|---|---|---|---|---|"
echo "| tenant creation p50 | ≤ 50 ms | $(fmt "$C50") | $(fmt "$P50") | $(ratio "$P50" "$C50") |"
echo "| tenant creation p99 | | $(fmt "$C99") | $(fmt "$P99") | $(ratio "$P99" "$C99") |"
echo "| new migration, all tenants (--jobs $JOBS) | ≤ 5 s, ≥ 5× | $(fmt "$MIG_CTL") | $(fmt "$MIG_PSQL") | $(ratio "$MIG_PSQL" "$MIG_CTL") |"
echo "| no-op migrate (best of 3) | ≤ 0.5 s, ≥ 5× | $(fmt "$NOOP_CTL") | $(fmt "$NOOP_PSQL") | $(ratio "$NOOP_PSQL" "$NOOP_CTL") |"
echo
echo "Batched creation, $N tenants (each measurement in a fresh database; tenantctl's total is the whole command,"
echo "the psql loop's the sum of its processes' times (step 1), the session's the whole psql run)"
echo
echo "| batched creation | target | tenantctl | psql loop | loop ÷ tenantctl | one psql session | session ÷ tenantctl |"
echo "|---|---|---|---|---|---|---|"
S50=$(pct "$WORK/session.ms" 50); S99=$(pct "$WORK/session.ms" 99)
for j in "${batch_jobs[@]}"; do
  B50=$(pct "$WORK/batch_$j.ms" 50); B99=$(pct "$WORK/batch_$j.ms" 99); BT=${BATCH_TOTAL[$j]}
  echo "| \`--from-file --jobs $j\`, all $N tenants | ≥ 5× | $(fmt "$BT") | $(fmt "$LOOP_TOTAL") | $(ratio "$LOOP_TOTAL" "$BT") | $(fmt "$SESSION_TOTAL") | $(ratio "$SESSION_TOTAL" "$BT") |"
  echo "| \`--jobs $j\` per tenant p50 | ≤ 50 ms | $(fmt "$B50") | $(fmt "$P50") | $(ratio "$P50" "$B50") | $(fmt "$S50") | $(ratio "$S50" "$B50") |"
  echo "| \`--jobs $j\` per tenant p99 | | $(fmt "$B99") | $(fmt "$P99") | $(ratio "$P99" "$B99") | $(fmt "$S99") | $(ratio "$S99" "$B99") |"
done
echo
echo "Creation in step 1 is one process per tenant on both sides (tenantctl: connect, release check, create_tenant();"
echo "psql: the same DDL from the files). The psql loops start one psql per tenant, sequentially."
