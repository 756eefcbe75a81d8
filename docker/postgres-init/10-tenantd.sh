#!/bin/bash
# Runs once, when the postgres container initialises an empty data volume: the tenantd roles and
# database, as ./dev provisions them for the dev stack (DESIGN.md §3). tenantd_owner owns the
# database and every schema (tenantctl migrates with it); tenantd_app is the server's login and
# owns nothing.
set -eo pipefail
: "${TENANTD_OWNER_PASSWORD:?}" "${TENANTD_APP_PASSWORD:?}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
     -v owner_pw="$TENANTD_OWNER_PASSWORD" -v app_pw="$TENANTD_APP_PASSWORD" <<'SQL'
CREATE ROLE tenantd_owner LOGIN CREATEROLE PASSWORD :'owner_pw';
CREATE ROLE tenantd_app LOGIN PASSWORD :'app_pw' NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
CREATE DATABASE tenantd OWNER tenantd_owner;
REVOKE ALL ON DATABASE tenantd FROM PUBLIC;
GRANT CONNECT ON DATABASE tenantd TO tenantd_app, tenantd_owner;
\connect tenantd
REVOKE ALL ON SCHEMA public FROM PUBLIC;
SQL
