#!/usr/bin/env bash
# The project's test command (npm test): brings up PostgreSQL and NATS when they
# are missing, then runs the whole vitest suite. Extra arguments go to vitest.
set -u
cd "$(dirname "$0")/.."
. scripts/services.sh
if ! concord_ensure_services; then
  if [ "${CONCORD_REQUIRE_SERVICES:-}" = 1 ]; then
    concord_log "PostgreSQL or NATS is unavailable and CONCORD_REQUIRE_SERVICES=1"
    exit 1
  fi
  concord_log "continuing without them: integration tests will be skipped"
fi
exec vitest run "$@"
