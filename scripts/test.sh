#!/usr/bin/env bash
# Runs the whole test suite: unit tests, and integration tests on SQLite and PostgreSQL.
# PostgreSQL and the task sandbox come from Debian's `postgresql` and `bubblewrap` packages
# (installed here when running as root with apt), the S3-compatible server from PyPI's
# `moto[server]`; without them the tests needing them skip with a note, unless
# TENANTFLOW_REQUIRE_ALL=1.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || ! command -v bwrap >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing PostgreSQL and bubblewrap for the tests" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq postgresql bubblewrap >/dev/null
  fi
fi
if [ -z "${TENANTFLOW_TEST_DATABASE_URL:-}" ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  TENANTFLOW_TEST_DATABASE_URL=$(scripts/test-postgres.sh)
  export TENANTFLOW_TEST_DATABASE_URL
fi

if [ -z "${TENANTFLOW_TEST_S3_ENDPOINT:-}" ] && command -v moto_server >/dev/null; then
  TENANTFLOW_TEST_S3_ENDPOINT=$(scripts/test-s3.sh)
  export TENANTFLOW_TEST_S3_ENDPOINT
fi

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --no-fail-fast "$@"
else
  cargo test --workspace --no-fail-fast "$@"
fi
