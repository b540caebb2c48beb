/**
 * Crash injection for recovery tests: with `CONCORD_CRASH_AT=<point>` the
 * process kills itself (SIGKILL, no cleanup) the first time it reaches that
 * point. Points: `after-provider-write`, `after-commit`, `after-publish`,
 * `after-backfill-page` (a backfill page committed, its activity result not
 * yet stored), `after-drift-app-step` (a reconciliation's app side of an
 * entity read and counted, its checkpoint not yet moved).
 * Unset in production, where this is a no-op.
 */
import { Effect } from "effect"

let fired = false

export const crashPoint = (name: string): Effect.Effect<void> =>
  Effect.sync(() => {
    if (fired || process.env.CONCORD_CRASH_AT !== name) return
    fired = true
    process.kill(process.pid, "SIGKILL")
  })
