#!/usr/bin/env bash
# Start (or reuse) a throwaway PostgreSQL on loopback for the request-log tests and print the URL.
#
#   eval "$(scripts/ci_postgres.sh)"     # exports RIGHTSIZE_TEST_PG_URL; idempotent, ~0.1 s when already up
#   scripts/ci_postgres.sh stop          # stops the cluster (the data directory is kept for the next start)
#
# Only the `export ...` line goes to stdout; progress goes to stderr. The cluster trades durability for
# speed (fsync off): it is for tests, never for data anyone wants to keep.
set -euo pipefail

PORT="${RIGHTSIZE_TEST_PG_PORT:-54329}"
DATA_DIR="${RIGHTSIZE_TEST_PG_DIR:-/tmp/rightsize-pg-${PORT}}"
DB_NAME="${RIGHTSIZE_TEST_PG_DB:-rightsize_test}"
DB_USER=postgres

log() { echo "ci_postgres: $*" >&2; }

find_bin() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

PG_BIN="$(find_bin)"
if [[ "${1:-start}" == stop && ! -f "${DATA_DIR}/postmaster.pid" ]]; then
    exit 0  # nothing running: in particular, never install PostgreSQL only to stop it
fi
if [[ -z "${PG_BIN}" || ! -x "${PG_BIN}/initdb" ]]; then
    log "installing the Debian package postgresql"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    PG_BIN="$(find_bin)"
fi

# PostgreSQL refuses to run as root: as root, run the server as the `postgres` system user.
if [[ "$(id -u)" == 0 ]]; then
    id -u postgres >/dev/null 2>&1 || useradd --system --home-dir /var/lib/postgresql postgres
    as_owner() { runuser -u postgres -- "$@"; }
else
    as_owner() { "$@"; }
fi

if [[ "${1:-start}" == stop ]]; then
    if [[ -f "${DATA_DIR}/postmaster.pid" ]]; then
        as_owner "${PG_BIN}/pg_ctl" -D "${DATA_DIR}" -m fast -w stop >&2
    fi
    exit 0
fi

if ! "${PG_BIN}/pg_isready" -q -h 127.0.0.1 -p "${PORT}"; then
    if [[ ! -f "${DATA_DIR}/PG_VERSION" ]]; then
        log "creating a cluster in ${DATA_DIR}"
        mkdir -p "${DATA_DIR}"
        [[ "$(id -u)" == 0 ]] && chown postgres: "${DATA_DIR}"
        chmod 700 "${DATA_DIR}"
        as_owner "${PG_BIN}/initdb" -D "${DATA_DIR}" -U "${DB_USER}" -A trust -E UTF8 --no-locale --no-sync >/dev/null
    fi
    log "starting PostgreSQL on 127.0.0.1:${PORT}"
    as_owner "${PG_BIN}/pg_ctl" -D "${DATA_DIR}" -l "${DATA_DIR}/server.log" -w -t 30 start \
        -o "-c listen_addresses=127.0.0.1 -p ${PORT} -k ${DATA_DIR} -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >&2
fi

psql_admin() { "${PG_BIN}/psql" -h 127.0.0.1 -p "${PORT}" -U "${DB_USER}" -d postgres -v ON_ERROR_STOP=1 -qtAc "$1"; }
if [[ "$(psql_admin "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != 1 ]]; then
    psql_admin "CREATE DATABASE ${DB_NAME}" >&2
fi

echo "export RIGHTSIZE_TEST_PG_URL=postgresql://${DB_USER}@127.0.0.1:${PORT}/${DB_NAME}"
