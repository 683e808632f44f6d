#!/usr/bin/env bash
# Starts (or reuses) a throwaway S3-compatible server (moto, from PyPI: `pip install
# 'moto[server]'`) on loopback for the test suite and prints its endpoint URL.
# Its state is in memory only: this server is for tests only.
set -euo pipefail
port=${TENANTFLOW_S3_PORT:-55433}
endpoint="http://127.0.0.1:$port"
if ! curl -fsS -o /dev/null "$endpoint/moto-api/" 2>/dev/null; then
  if ! command -v moto_server >/dev/null; then
    echo "moto_server not found: python3 -m pip install 'moto[server]'" >&2
    exit 1
  fi
  log=${TMPDIR:-/tmp}/tenantflow-moto.log
  nohup moto_server -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
  for _ in $(seq 100); do
    curl -fsS -o /dev/null "$endpoint/moto-api/" 2>/dev/null && break
    sleep 0.1
  done
  curl -fsS -o /dev/null "$endpoint/moto-api/" || { echo "moto did not start; see $log" >&2; exit 1; }
fi
echo "$endpoint"
