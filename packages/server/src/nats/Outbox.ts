/**
 * The outbox relay: publishes committed events to `CONCORD_EVENTS` (or any
 * subject — resyncs for sibling connections go to `CONCORD_IN`) with
 * `Nats-Msg-Id` = the outbox row id, then marks the rows published. A crash
 * between the two republishes the same ids, which JetStream drops as
 * duplicates: no event is lost and none is delivered twice. Rows are claimed
 * with `FOR UPDATE SKIP LOCKED`, so several nodes can relay side by side.
 */
import { Effect, Queue, Schedule } from "effect"
import { SqlClient } from "effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Metrics } from "../Observability.ts"
import { Nats } from "./Nats.ts"
import { crashPoint } from "../CrashPoints.ts"

const encoder = new TextEncoder()

/** Publishes one batch of pending rows; returns how many. */
export const relayOnce = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const nats = yield* Nats
  const metrics = yield* Metrics
  const n = yield* sql.withTransaction(Effect.gen(function*() {
    const rows = yield* sql<{ id: string; subject: string; payload: unknown }>`
      SELECT id, subject, payload FROM outbox WHERE published_at IS NULL ORDER BY id LIMIT 500 FOR UPDATE SKIP LOCKED`
    if (rows.length === 0) return 0
    yield* Effect.tryPromise(() =>
      Promise.all(rows.map((r) =>
        nats.js.publish(nats.names.subject(r.subject), encoder.encode(typeof r.payload === "string" ? r.payload : JSON.stringify(r.payload)), {
          msgID: `outbox-${r.id}`
        })
      ))
    )
    yield* crashPoint("after-publish")
    yield* sql`UPDATE outbox SET published_at = now() WHERE id IN ${sql.in(rows.map((r) => r.id))}`
    return rows.length
  }))
  if (n > 0) yield* metrics.eventPublished(n)
  return n
})

/** Relays forever: woken by `pg_notify('concord_outbox')`, and every second regardless. */
export const run = Effect.gen(function*() {
  const pg = yield* PgClient.PgClient
  const wake = yield* pg.listen("concord_outbox").pipe(Effect.option)
  const sql = yield* SqlClient.SqlClient
  let lastCleanup = 0
  for (;;) {
    const n = yield* relayOnce.pipe(
      Effect.retry({ schedule: Schedule.exponential("200 millis"), times: 5 }),
      Effect.catchCause((c) => Effect.logWarning("outbox relay failed; will retry", c).pipe(Effect.as(0)))
    )
    if (n > 0) continue
    if (Date.now() - lastCleanup > 600_000) {
      lastCleanup = Date.now()
      yield* sql`DELETE FROM outbox WHERE published_at < now() - interval '1 day'`.pipe(Effect.ignore)
    }
    if (wake._tag === "Some") {
      yield* Queue.take(wake.value).pipe(Effect.andThen(Queue.clear(wake.value)), Effect.timeout("1 second"), Effect.ignore)
    } else {
      yield* Effect.sleep("250 millis")
    }
  }
}).pipe(Effect.scoped)
