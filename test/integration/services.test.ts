import { PgClient } from "@effect/sql-pg"
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { AckPolicy, connect, headers, StringCodec } from "nats"
import { afterAll, beforeAll } from "vitest"
import { deleteStreams, freshDatabase, natsUrl, servicesAvailable, uniqueName } from "../support/services.ts"

describe.skipIf(!servicesAvailable)("real services round trip", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const stream = uniqueName("CONCORD_T").toUpperCase()

  beforeAll(async () => {
    db = await freshDatabase()
  })
  afterAll(async () => {
    await db?.drop()
    await deleteStreams(stream)
  })

  it.effect("writes a row to a fresh Postgres database and reads it back", () =>
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`CREATE TABLE roundtrip (id text PRIMARY KEY, body jsonb NOT NULL)`
      yield* sql`INSERT INTO roundtrip ${sql.insert({ id: "r1", body: JSON.stringify({ amount: 1050, currency: "USD" }) })}`
      const rows = yield* sql<{ id: string; body: { amount: number } }>`SELECT id, body FROM roundtrip`
      expect(rows).toHaveLength(1)
      expect(rows[0]?.body.amount).toBe(1050)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 2 }))))

  it("publishes to a JetStream stream, drops a duplicate Nats-Msg-Id and consumes the message", async () => {
    const nc = await connect({ servers: natsUrl })
    try {
      const jsm = await nc.jetstreamManager()
      await jsm.streams.add({ name: stream, subjects: [`${stream.toLowerCase()}.>`] })
      const js = nc.jetstream()
      const sc = StringCodec()
      const h = headers()
      const first = await js.publish(`${stream.toLowerCase()}.in`, sc.encode("hello"), { msgID: "m-1", headers: h })
      const dup = await js.publish(`${stream.toLowerCase()}.in`, sc.encode("hello"), { msgID: "m-1" })
      expect(first.duplicate).toBe(false)
      expect(dup.duplicate).toBe(true)
      await jsm.consumers.add(stream, { durable_name: "reader", ack_policy: AckPolicy.Explicit })
      const consumer = await js.consumers.get(stream, "reader")
      const msg = await consumer.next({ expires: 2000 })
      expect(msg && sc.decode(msg.data)).toBe("hello")
      msg?.ack()
      const info = await jsm.streams.info(stream)
      expect(info.state.messages).toBe(1)
    } finally {
      await nc.close()
    }
  })
})
