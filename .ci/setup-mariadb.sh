#!/usr/bin/env bash
# Prepares the local MariaDB (127.0.0.1:3306, root without password, database `test`) for
# protocol-mysql's integration tests. Run as root; safe to run any number of times; leaves the
# server running. What it does:
#   - starts the server if it is down and waits until it answers;
#   - drops anonymous accounts (they would shadow the test users);
#   - creates the test users (prefix cg_my_): a mysql_native_password user, a second one for
#     COM_CHANGE_USER, and an ed25519 user when the auth_ed25519 plugin can be installed;
#   - makes LOCAL INFILE available and raises max_connections for the 200-session test;
#   - enables TLS with a self-signed CA and a server certificate (restarting the server once when
#     TLS was not on yet), so upstreamTls can be tested; the CA is /etc/mysql/cg-tls/ca.pem;
#   - installs sysbench.
set -euo pipefail

HOST=127.0.0.1
PORT=3306
TLS_DIR=/etc/mysql/cg-tls
CONF_DIR=/etc/mysql/mariadb.conf.d
CONF_FILE=$CONF_DIR/60-connguard-tests.cnf
MY_CNF=/etc/mysql/my.cnf

log() { echo "setup-mariadb: $*"; }

sql() { mariadb --protocol=tcp -h "$HOST" -P "$PORT" -uroot --batch --skip-column-names -e "$1"; }

answers() { mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -uroot --connect-timeout=2 ping >/dev/null 2>&1; }

wait_until_up() {
  for _ in $(seq 1 120); do
    if answers; then return 0; fi
    sleep 0.5
  done
  log "the server did not answer on $HOST:$PORT within 60s; see /var/log/mysql/error.log" >&2
  tail -n 20 /var/log/mysql/error.log >&2 || true
  exit 1
}

start_server() {
  mkdir -p /run/mysqld && chown mysql:mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_until_up
}

stop_server() {
  mariadb-admin --protocol=tcp -h "$HOST" -P "$PORT" -uroot shutdown || true
  for _ in $(seq 1 120); do
    if ! pgrep -x mariadbd >/dev/null; then return 0; fi
    sleep 0.5
  done
  log "the server did not stop within 60s" >&2
  exit 1
}

# ---------------------------------------------------------------- server up
if ! answers; then
  log "server down: starting it"
  start_server
fi

# ---------------------------------------------------------------- TLS material and configuration
mkdir -p "$TLS_DIR"
if [[ ! -s $TLS_DIR/ca.pem || ! -s $TLS_DIR/server-cert.pem || ! -s $TLS_DIR/server-key.pem ]]; then
  log "creating a self-signed CA and server certificate in $TLS_DIR"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=connguard test CA" \
    -keyout "$TLS_DIR/ca-key.pem" -out "$TLS_DIR/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
    -keyout "$TLS_DIR/server-key.pem" -out "$TLS_DIR/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$TLS_DIR/server.ext"
  openssl x509 -req -days 3650 -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca-key.pem" \
    -CAcreateserial -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server-cert.pem" 2>/dev/null
fi
chown -R mysql:mysql "$TLS_DIR" 2>/dev/null || true
chmod 0644 "$TLS_DIR/ca.pem" "$TLS_DIR/server-cert.pem"
chmod 0600 "$TLS_DIR/server-key.pem" "$TLS_DIR/ca-key.pem"

mkdir -p "$CONF_DIR"
desired_conf="# Written by connguard's .ci/setup-mariadb.sh for protocol-mysql's integration tests.
[mysqld]
ssl_ca = $TLS_DIR/ca.pem
ssl_cert = $TLS_DIR/server-cert.pem
ssl_key = $TLS_DIR/server-key.pem
local_infile = 1
max_connections = 600
max_allowed_packet = 256M
"
if [[ ! -f $CONF_FILE ]] || [[ "$(cat "$CONF_FILE")" != "${desired_conf%$'\n'}" ]]; then
  log "writing $CONF_FILE"
  printf '%s' "$desired_conf" >"$CONF_FILE"
fi
# Debian's stock my.cnf includes mariadb.conf.d; a minimal one may not.
if [[ -f $MY_CNF ]] && ! grep -q "^!includedir $CONF_DIR" "$MY_CNF"; then
  log "adding !includedir $CONF_DIR to $MY_CNF"
  printf '\n!includedir %s/\n' "$CONF_DIR" >>"$MY_CNF"
fi

if [[ "$(sql "SELECT @@have_ssl")" != "YES" ]]; then
  log "TLS is not on: restarting the server to load $CONF_FILE"
  stop_server
  start_server
  if [[ "$(sql "SELECT @@have_ssl")" != "YES" ]]; then
    log "TLS still not on after the restart; see /var/log/mysql/error.log" >&2
    exit 1
  fi
fi

# Dynamic settings, so a server started with other files still fits the tests.
sql "SET GLOBAL local_infile = 1"
sql "SET GLOBAL max_connections = GREATEST(@@max_connections, 600)"
sql "SET GLOBAL max_allowed_packet = GREATEST(@@max_allowed_packet, 268435456)"

# ---------------------------------------------------------------- accounts
sql "CREATE DATABASE IF NOT EXISTS test"
while read -r host; do
  [[ -z $host ]] && continue
  log "dropping anonymous account ''@'$host'"
  sql "DROP USER ''@'$host'"
done < <(sql "SELECT Host FROM mysql.user WHERE User = ''")

create_native_user() {
  local user=$1 password=$2
  sql "CREATE USER IF NOT EXISTS '$user'@'%' IDENTIFIED BY '$password'"
  sql "ALTER USER '$user'@'%' IDENTIFIED VIA mysql_native_password USING PASSWORD('$password')"
  sql "GRANT ALL PRIVILEGES ON test.* TO '$user'@'%'"
  sql "GRANT PROCESS ON *.* TO '$user'@'%'"
}
create_native_user cg_my_native cg_my_native_pw
create_native_user cg_my_other cg_my_other_pw
# Fleet budgets (proxy-app FleetIT) count their connections on the server by this user.
create_native_user cg_fleet cg_fleet_pw

if [[ "$(sql "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE'")" != "1" ]]; then
  if sql "INSTALL SONAME 'auth_ed25519'" 2>/dev/null; then
    log "installed the ed25519 authentication plugin"
  else
    log "the ed25519 plugin is not available; the ed25519 test will report it"
  fi
fi
if [[ "$(sql "SELECT COUNT(*) FROM information_schema.PLUGINS WHERE PLUGIN_NAME = 'ed25519' AND PLUGIN_STATUS = 'ACTIVE'")" == "1" ]]; then
  sql "CREATE USER IF NOT EXISTS 'cg_my_ed25519'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('cg_my_ed25519_pw')"
  sql "ALTER USER 'cg_my_ed25519'@'%' IDENTIFIED VIA ed25519 USING PASSWORD('cg_my_ed25519_pw')"
  sql "GRANT ALL PRIVILEGES ON test.* TO 'cg_my_ed25519'@'%'"
fi
sql "FLUSH PRIVILEGES"

# ---------------------------------------------------------------- tools
if ! command -v sysbench >/dev/null; then
  log "installing sysbench"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq sysbench >/dev/null
fi

answers || { log "the server is not answering at the end" >&2; exit 1; }
log "ready: TLS $(sql "SELECT @@have_ssl"), local_infile $(sql "SELECT @@local_infile"), max_connections $(sql "SELECT @@max_connections")"
