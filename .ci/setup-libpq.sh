#!/usr/bin/env bash
# Provides a libpq of version 18 or newer for the integration tests of psql with sslnegotiation=direct
# (PostgreSQL 17's direct TLS) and max_protocol_version=3.2 (libpq 18), on machines whose own psql/libpq
# is older (Debian 12 ships 15).
#
# psql reads sslnegotiation through libpq, so the machine's psql runs with a newer libpq put first on
# LD_LIBRARY_PATH. The newer libpq comes from PyPI's psycopg-binary wheel, which bundles libpq and its
# OpenSSL; its libraries are copied to $LIBPQ_DIR (default /opt/connguard-it/libpq) with a libpq.so.5
# link. Safe to run any number of times. Nothing is installed when the system libpq is new enough.
set -euo pipefail

LIBPQ_DIR=${CONNGUARD_IT_LIBPQ:-/opt/connguard-it/libpq}
log() { printf 'setup-libpq: %s\n' "$*"; }

system_version=$(psql --version | sed -E 's/.* ([0-9]+)(\.[0-9]+)*.*/\1/')
if [ "$system_version" -ge 18 ] 2>/dev/null; then
  log "psql $system_version knows sslnegotiation and max_protocol_version; nothing to do"
  exit 0
fi

works() {  # an older libpq refuses the option itself; a newer one fails later, on the missing server
  [ -e "$LIBPQ_DIR/libpq.so.5" ] || return 1
  local said
  said=$(LD_LIBRARY_PATH=$LIBPQ_DIR psql "host=/nonexistent sslmode=require sslnegotiation=direct max_protocol_version=3.2" \
    -c '' 2>&1 || true)
  ! grep -q 'invalid connection option' <<<"$said"
}

if ! works; then
  command -v python3 >/dev/null || { apt-get update -qq && apt-get install -y -qq python3 python3-venv; }
  venv=$(mktemp -d)
  python3 -m venv "$venv" || { apt-get update -qq && apt-get install -y -qq python3-venv && python3 -m venv "$venv"; }
  "$venv/bin/pip" install -q --retries 1 --disable-pip-version-check 'psycopg-binary>=3.3'
  libs=$(echo "$venv"/lib/python3*/site-packages/psycopg_binary.libs)
  mkdir -p "$LIBPQ_DIR"
  cp "$libs"/* "$LIBPQ_DIR"/
  ln -sf "$(cd "$LIBPQ_DIR" && ls libpq-*.so.* | head -n 1)" "$LIBPQ_DIR/libpq.so.5"
  rm -rf "$venv"
fi
works || { echo "setup-libpq: $LIBPQ_DIR/libpq.so.5 does not accept sslnegotiation and max_protocol_version" >&2; exit 1; }
log "ready: psql $system_version with the libpq in $LIBPQ_DIR understands sslnegotiation and max_protocol_version"
