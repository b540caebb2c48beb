/**
 * Gauges that describe standing state rather than events: how many conflicts
 * wait for a person and how old the oldest is (per provider), how many were
 * opened since the last look, and how deep the DLQ is. Sampled from Postgres
 * and JetStream every `CONCORD_GAUGE_INTERVAL_MS` (default 15 s), so they are
 * right after a restart and whichever node opened the conflict.
 */
import { Duration, Effect, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { Nats } from "./nats/Nats.ts"
import { Metrics } from "./Observability.ts"

interface Row {
  readonly provider: string
  readonly open: number
  readonly oldest: number
}

export interface Sample {
  readonly open: ReadonlyArray<Row>
  readonly openedSince: ReadonlyArray<{ readonly provider: string; readonly n: number }>
  readonly dlqDepth: number
}

/** One sample: reads the state and updates the gauges; returns what it read. */
export const sampleOnce = (since: Date) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const nats = yield* Nats
    const metrics = yield* Metrics
    const open = yield* sql<Row>`
      SELECT k.provider, count(*)::int AS open,
             coalesce(max(extract(epoch FROM now() - c.opened_at)), 0)::float8 AS oldest
      FROM conflicts c JOIN connections k ON k.id = c.connection_id
      WHERE c.status = 'open' GROUP BY k.provider`
    const openedSince = yield* sql<{ provider: string; n: number }>`
      SELECT k.provider, count(*)::int AS n
      FROM conflicts c JOIN connections k ON k.id = c.connection_id
      WHERE c.opened_at > ${since} GROUP BY k.provider`
    const providers = yield* sql<{ provider: string }>`SELECT DISTINCT provider FROM connections`
    for (const { provider } of providers) {
      const row = open.find((r) => r.provider === provider)
      yield* metrics.conflictsWaiting(provider, row?.open ?? 0, row?.oldest ?? 0)
    }
    for (const r of openedSince) yield* metrics.conflictOpened(r.provider, r.n)
    const dlqDepth = yield* Effect.tryPromise(() => nats.jsm.streams.info(nats.names.dlq)).pipe(
      Effect.map((info) => info.state.messages),
      Effect.orElseSucceed(() => -1)
    )
    if (dlqDepth >= 0) yield* metrics.dlqDepth(dlqDepth)
    return { open, openedSince, dlqDepth } satisfies Sample
  })

/** Samples forever (fork it for the node's lifetime). */
export const run = Effect.gen(function*() {
  const every = Duration.millis(Number(process.env.CONCORD_GAUGE_INTERVAL_MS ?? 15_000))
  const sql = yield* SqlClient.SqlClient
  let since = (yield* sql<{ now: Date }>`SELECT now() AS now`)[0]?.now ?? new Date()
  yield* Effect.gen(function*() {
    const started = (yield* sql<{ now: Date }>`SELECT now() AS now`)[0]?.now ?? new Date()
    yield* sampleOnce(since)
    since = started
  }).pipe(
    Effect.catchCause((c) => Effect.logWarning("could not sample the gauges", c)),
    Effect.repeat(Schedule.spaced(every))
  )
})
