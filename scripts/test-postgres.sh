#!/usr/bin/env bash
# Starts (or reuses) a throwaway PostgreSQL on loopback for the test suite and prints its URL.
# Needs Debian's `postgresql` package. Data lives in $TENANTFLOW_PG_DIR (default /tmp/tenantflow-pg);
# fsync is off: this server is for tests only.
set -euo pipefail
pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$pgbin" ]; then
  echo "PostgreSQL server binaries not found: apt-get install -y postgresql" >&2
  exit 1
fi
dir=${TENANTFLOW_PG_DIR:-/tmp/tenantflow-pg}
port=${TENANTFLOW_PG_PORT:-55432}
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if ! as_pg "$pgbin/pg_ctl" -D "$dir" status >/dev/null 2>&1; then
  rm -rf "$dir"
  mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  as_pg "$pgbin/initdb" -D "$dir" -A trust -U postgres >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$dir" -l "$dir/server.log" -w start \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400" >/dev/null
fi
psql -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'tenantflow') THEN
    CREATE ROLE tenantflow LOGIN CREATEDB PASSWORD 'tenantflow';
  END IF;
END \$\$;
SQL
echo "postgres://tenantflow:tenantflow@127.0.0.1:$port/postgres"
