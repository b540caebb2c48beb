/**
 * Duplicates are found in SQL (`concord_natural_key`, indexed) for provider
 * records classified in TypeScript (`Drift.naturalKey`): the two must agree
 * on every record, or a duplicate is missed (or a record called a duplicate
 * of the wrong one). Property-tested against the real Postgres.
 */
import * as Drift from "@concord/reconciler/Drift"
import { Effect, ManagedRuntime } from "effect"
import { SqlClient } from "effect/sql"
import fc from "fast-check"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { migratedDatabase } from "../support/db.ts"
import { freshDatabase, servicesAvailable } from "../support/services.ts"

const entities = ["invoice", "journal_entry", "bill", "contact", "item", "tax_rate", "account", "currency", "payment", "transfer"] as const

const text = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.constantFrom("", " ", "  INV-1 ", "inv-1", "Ada Ltd", "ADA LTD ", "4000", " 4000", "\t x \n", "\u000bv\u000b", "ÉCOLE", "\u00a0x\u00a0", "\f\r"),
  // Any code point but NUL (Postgres text cannot hold it, so no stored record has one).
  fc.string({ maxLength: 8, unit: "binary" }).map((x) => x.replace(/\u0000/g, "")),
  fc.stringMatching(/^[ A-Za-z0-9-]{0,10}$/)
)

const record = fc.record({
  number: fc.option(text, { nil: undefined }),
  name: fc.option(text, { nil: undefined }),
  code: fc.option(text, { nil: undefined })
}, { requiredKeys: [] })

describe.skipIf(!servicesAvailable)("natural keys: SQL and TypeScript agree", () => {
  let db: Awaited<ReturnType<typeof freshDatabase>>
  let runtime: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown>

  beforeAll(async () => {
    db = await freshDatabase()
    runtime = ManagedRuntime.make(migratedDatabase(db.url))
  }, 60_000)

  afterAll(async () => {
    await runtime?.dispose()
    await db?.drop()
  })

  it("concord_natural_key(entity, data) = Drift.naturalKey(entity, data) for every record", async () => {
    const samples = fc.sample(fc.tuple(fc.constantFrom(...entities), record), 2000)
    const rows = await runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql<{ i: number; key: string | null }>`
        SELECT i::int AS i, concord_natural_key(e, d::jsonb) AS key
        FROM unnest(${samples.map(([e]) => e)}::text[], ${samples.map(([, r]) => JSON.stringify(r))}::text[]) WITH ORDINALITY AS t(e, d, i)
        ORDER BY i`
    }))
    expect(rows).toHaveLength(samples.length)
    rows.forEach((row, i) => {
      const [entity, r] = samples[i] as [string, Record<string, unknown>]
      expect(row.key ?? undefined, `${entity} ${JSON.stringify(r)}`).toBe(Drift.naturalKey(entity, r))
    })
  })

  it("the duplicate lookup uses the index, not a scan of the entity", async () => {
    const plan = await runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql`SET enable_seqscan = off`
      const rows = yield* sql<{ "QUERY PLAN": string }>`
        EXPLAIN SELECT record_id FROM records r WHERE r.tenant_id = 't' AND r.entity = 'invoice' AND NOT r.deleted
          AND concord_natural_key(r.entity, r.data) IS NOT NULL AND concord_natural_key(r.entity, r.data) = ANY(${["inv-1", "inv-2"]}::text[])`
      yield* sql`RESET enable_seqscan`
      return rows.map((r) => r["QUERY PLAN"]).join("\n")
    }))
    expect(plan).toContain("records_natural_key")
  })
})
