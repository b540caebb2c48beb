#!/usr/bin/env bash
# Makes sure a PostgreSQL server and a NATS server with JetStream are reachable
# for the tests, installing (apt-get, as root) and starting whatever is missing.
# Source it to get DATABASE_URL / NATS_URL exported, or run it for a report.
#
#   DATABASE_URL  default postgres://postgres:postgres@127.0.0.1:5432/postgres
#   NATS_URL      default nats://127.0.0.1:4222
set -u

concord_log() { printf '[services] %s\n' "$*" >&2; }

concord_port_open() { # host port
  # the descriptor is opened (and closed again) inside the subshell
  (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

concord_wait_port() { # host port seconds
  local i
  for ((i = 0; i < $3 * 10; i++)); do
    concord_port_open "$1" "$2" && return 0
    sleep 0.1
  done
  return 1
}

concord_as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo -n "$@"
  else concord_log "need root to run: $*"; return 1
  fi
}

concord_apt_install() {
  concord_log "installing $* with apt-get"
  if ! command -v apt-get >/dev/null 2>&1; then
    concord_log "apt-get not found: install $* yourself, or set DATABASE_URL / NATS_URL to running servers"
    return 1
  fi
  concord_as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null &&
    concord_as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

concord_url_host() { # url -> host
  local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}; printf '%s' "${rest%%:*}"
}
concord_url_port() { # url default -> port
  local rest=${1#*://}; rest=${rest#*@}; rest=${rest%%/*}
  case "$rest" in *:*) printf '%s' "${rest##*:}" ;; *) printf '%s' "$2" ;; esac
}

concord_ensure_postgres() {
  export DATABASE_URL="${DATABASE_URL:-postgres://postgres:postgres@127.0.0.1:5432/postgres}"
  local host port
  host=$(concord_url_host "$DATABASE_URL"); port=$(concord_url_port "$DATABASE_URL" 5432)
  if concord_port_open "$host" "$port"; then return 0; fi
  case "$host" in 127.0.0.1|localhost) ;; *) concord_log "PostgreSQL at $host:$port is not reachable"; return 1 ;; esac
  if ! command -v pg_ctlcluster >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    concord_apt_install postgresql || return 1
  fi
  local version
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  if ! ls "/etc/postgresql/$version/main" >/dev/null 2>&1; then
    concord_as_root pg_createcluster "$version" main >/dev/null || return 1
  fi
  concord_log "starting PostgreSQL $version on port $port"
  concord_as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start -o "-p $port" >/dev/null 2>&1 ||
    concord_as_root pg_ctlcluster "$version" main start >/dev/null || return 1
  concord_wait_port "$host" "$port" 30 || { concord_log "PostgreSQL did not open port $port"; return 1; }
  # The Debian cluster authenticates TCP clients by password: give the postgres
  # role the password our default URL uses (a no-op under trust auth).
  concord_as_root su postgres -c "psql -q -p $port -c \"ALTER ROLE postgres PASSWORD 'postgres'\"" >/dev/null 2>&1 || true
}

concord_ensure_nats() {
  export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
  local host port
  host=$(concord_url_host "$NATS_URL"); port=$(concord_url_port "$NATS_URL" 4222)
  if concord_port_open "$host" "$port"; then return 0; fi
  case "$host" in 127.0.0.1|localhost) ;; *) concord_log "NATS at $host:$port is not reachable"; return 1 ;; esac
  if ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
    concord_apt_install nats-server || return 1
  fi
  local bin dir
  bin=$(command -v nats-server || echo /usr/sbin/nats-server)
  dir="${TMPDIR:-/tmp}/concord-nats-$port"
  mkdir -p "$dir"
  concord_log "starting nats-server -js on port $port (store $dir)"
  setsid nohup "$bin" -js -a "$host" -p "$port" -sd "$dir" >"$dir/server.log" 2>&1 </dev/null &
  concord_wait_port "$host" "$port" 30 || { concord_log "nats-server did not open port $port; see $dir/server.log"; return 1; }
}

concord_ensure_services() {
  local ok=0
  concord_ensure_postgres || ok=1
  concord_ensure_nats || ok=1
  return $ok
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  concord_ensure_services && concord_log "PostgreSQL at $DATABASE_URL, NATS at $NATS_URL"
fi
