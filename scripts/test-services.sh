#!/usr/bin/env bash
# Installs (Debian, as root) and starts the system services colony's tests use:
# PostgreSQL and Redis on loopback. Idempotent: safe to run again.
# Prints the environment the tests read (COLONY_TEST_PG_URL, COLONY_TEST_REDIS_URL).
set -euo pipefail
# Only the KEY=value lines below go to stdout (callers eval them); everything the
# commands print (apt, pg_ctlcluster's "Removed stale pid file.", ...) goes to stderr.
exec 3>&1 1>&2  # (daemons started below get 3>&- so they do not hold the caller's pipe open)

need=()
command -v pg_ctlcluster >/dev/null || need+=(postgresql)
command -v redis-server >/dev/null || need+=(redis-server)
command -v perl >/dev/null || need+=(perl-base)
/usr/bin/python3 -c 'import websocket, requests, redis' 2>/dev/null || need+=(python3 python3-websocket python3-requests python3-redis)
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "missing packages: ${need[*]} (run as root to install)" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# PostgreSQL: the Debian cluster, a role and a database for the tests.
pgver=$(ls /etc/postgresql | sort -n | tail -1)
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
  pg_ctlcluster --skip-systemctl-redirect "$pgver" main start 3>&-
fi
for _ in $(seq 50); do su postgres -c 'pg_isready -q -h 127.0.0.1' && break; sleep 0.2; done
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_roles WHERE rolname='colony'\"" | grep -q 1 ||
  su postgres -c "psql -qc \"CREATE ROLE colony LOGIN SUPERUSER PASSWORD 'colony'\""
su postgres -c "psql -qtAc \"SELECT 1 FROM pg_database WHERE datname='colony_test'\"" | grep -q 1 ||
  su postgres -c "psql -qc 'CREATE DATABASE colony_test OWNER colony'"

# Redis: no persistence, loopback only.
if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null 3>&-
  for _ in $(seq 50); do redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break; sleep 0.1; done
fi

echo "COLONY_TEST_PG_URL=postgres://colony:colony@127.0.0.1:5432/colony_test" >&3
echo "COLONY_TEST_REDIS_URL=redis://127.0.0.1:6379" >&3
