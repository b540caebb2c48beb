#!/usr/bin/env bash
# npm start: runs a Concord node. Without DATABASE_URL it runs an embedded
# PostgreSQL in ./.concord; without NATS_URL a local `nats-server -js` child,
# installed here with apt-get (as root) when the machine has none.
set -u
cd "$(dirname "$0")/.."
. scripts/services.sh
if [ -z "${NATS_URL:-}" ] && ! command -v nats-server >/dev/null 2>&1 && [ ! -x /usr/sbin/nats-server ]; then
  concord_apt_install nats-server || { concord_log "install nats-server or set NATS_URL to a NATS server with JetStream"; exit 1; }
fi
exec node bin/concord.js serve "$@"
