#!/usr/bin/env bash
# Prepares the local Redis (127.0.0.1:6379) that fleet budgets' integration tests use as their shared
# store (proxy-core LeaseScriptsIT and FleetAdmissionIT, proxy-app FleetIT; FleetIT also starts
# redis-server processes of its own on free ports). Run as root; safe to run any number of times;
# leaves the server running. Installs redis-server when it is missing.
set -euo pipefail

log() { echo "setup-redis: $*"; }

if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  log "installing redis-server"
  apt-get update -qq
  apt-get install -y -qq redis-server
fi

if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
  log "Redis answers on 127.0.0.1:6379"
  exit 0
fi

log "starting redis-server on 127.0.0.1:6379"
redis-server --bind 127.0.0.1 --port 6379 --daemonize yes --save '' --appendonly no \
  --logfile /var/log/connguard-test-redis.log
for _ in $(seq 1 60); do
  if redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
    log "Redis answers on 127.0.0.1:6379"
    exit 0
  fi
  sleep 0.5
done
log "redis-server did not answer on 127.0.0.1:6379 within 30 s" >&2
exit 1
