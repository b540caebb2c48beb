/**
 * The adapter against the sandbox over HTTP, for every entity QuickBooks
 * supports: create, read back, update, a stale update refused without
 * overwriting, list, and remove where QuickBooks allows it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Canonical } from "@concord/core"
import { Effect, Stream } from "effect"
import { supportedEntities } from "../../src/Provider.ts"
import { capabilities, QuickBooks } from "../../src/quickbooks/Adapter.ts"
import * as Mapping from "../../src/quickbooks/Mapping.ts"
import { start } from "../../src/quickbooks/Sandbox.ts"
import { changed, connect, sample, written } from "./support.ts"

const writable = supportedEntities(QuickBooks).filter((e) => capabilities[e]?.create === true)

describe("QuickBooks adapter contract", () => {
  it("supports every canonical entity QuickBooks has", () => {
    expect([...supportedEntities(QuickBooks)].sort()).toEqual([...Canonical.entityTypes].sort())
  })

  for (const entity of writable) {
    it.live(`${entity}: create, read, update, stale update refused, list`, () =>
      Effect.gen(function*() {
        const sb = yield* start({ limits: false })
        const { client } = yield* connect(sb)
        const deps: { invoiceId?: string; billId?: string; paymentId?: string } = {}
        if (entity === "payment" || entity === "deposit") {
          deps.invoiceId = written((yield* client.write([{ _tag: "Create", entity: "invoice", record: sample("invoice"), idempotencyKey: "dep-inv" }]))[0]).externalId
        }
        if (entity === "bill_payment") {
          deps.billId = written((yield* client.write([{ _tag: "Create", entity: "bill", record: sample("bill"), idempotencyKey: "dep-bill" }]))[0]).externalId
        }
        if (entity === "deposit") {
          deps.paymentId = written((yield* client.write([{ _tag: "Create", entity: "payment", record: sample("payment", deps), idempotencyKey: "dep-pay" }]))[0]).externalId
        }
        const input = sample(entity, deps)
        expect(Canonical.validate(entity, input).ok).toBe(true)

        const since = new Date(Date.now() - 1000).toISOString()

        // create, two at once: a /batch request
        const batches: Array<string> = []
        sb.onRequest((e) => batches.push(e.path))
        const [created, second] = yield* client.write([
          { _tag: "Create", entity, record: input, idempotencyKey: `create-${entity}` },
          { _tag: "Create", entity, record: sample(entity, deps), idempotencyKey: `create-2-${entity}` }
        ])
        if (created?._tag !== "Written") throw new Error(`create failed: ${JSON.stringify(created)}`)
        expect(second?._tag).toBe("Written")
        expect(batches.filter((p) => p.endsWith("/batch")).length).toBe(1)
        const id = created.record.externalId
        expect(created.record.version).toBe("0")
        expect(created.record.entity).toBe(entity)
        const { id: _ignored, ...expected } = Mapping.project(input)
        const { id: gotId, ...got } = Mapping.project(created.record.record)
        expect(gotId).toBe(id)
        // lineIds are assigned by QuickBooks; everything else comes back as sent.
        expect(stripLineIds(got)).toEqual(stripLineIds(expected))

        // read
        const read = yield* client.read(entity, id)
        expect(read.version).toBe("0")
        expect(Mapping.project(read.record)).toEqual(Mapping.project(created.record.record))

        // update with the current SyncToken
        const next = changed(read.record)
        const [updated] = yield* client.write([{ _tag: "Update", entity, externalId: id, version: read.version, record: next, idempotencyKey: `update-${entity}` }])
        const after = written(updated)
        expect(after.version).toBe("1")
        expect(Mapping.project(after.record)).toEqual(Mapping.project(next))

        // update with the stale SyncToken: refused, nothing overwritten
        const clobber = changed(read.record)
        const [stale] = yield* client.write([{ _tag: "Update", entity, externalId: id, version: "0", record: clobber, idempotencyKey: `stale-${entity}` }])
        expect(stale?._tag).toBe("Failed")
        if (stale?._tag === "Failed") {
          expect(stale.error._tag).toBe("StaleVersion")
          expect(stale.error.message).toContain("re-read")
        }
        const reread = yield* client.read(entity, id)
        expect(reread.version).toBe("1")
        expect(Mapping.project(reread.record)).toEqual(Mapping.project(after.record))

        // list finds it, one record a page (every page a query with STARTPOSITION)
        const queries: Array<string> = []
        sb.onRequest((e) => {
          if (e.path.endsWith("/query")) queries.push(new URLSearchParams(e.query).get("query") ?? "")
        })
        const listed = yield* Stream.runCollect(client.list(entity, { pageSize: 1 }))
        expect(listed.map((r) => r.externalId)).toContain(id)
        expect(new Set(listed.map((r) => r.externalId)).size).toBe(listed.length)
        expect(listed.length).toBeGreaterThanOrEqual(2)
        expect(queries.filter((q) => / STARTPOSITION \d+ MAXRESULTS 1$/.test(q)).length).toBeGreaterThan(listed.length)

        // change data capture reports both records
        const feed = yield* client.changes([entity], undefined, since)
        const upserted = feed.changes.flatMap((c) => (c._tag === "Upserted" ? [c.record.externalId] : []))
        expect(upserted).toEqual(expect.arrayContaining([id, second?._tag === "Written" ? second.record.externalId : "?"]))

        // remove, as QuickBooks allows for this entity
        const [removed] = yield* client.write([{ _tag: "Remove", entity, externalId: id, version: reread.version, idempotencyKey: `remove-${entity}` }])
        expect(removed?._tag).toBe("Removed")
        const mode = capabilities[entity]?.remove
        const removal = yield* client.changes([entity], feed.cursor)
        if (mode === "delete") {
          const gone = yield* Effect.flip(client.read(entity, id))
          expect(gone._tag).toBe("NotFound")
          expect(removal.changes.some((c) => c._tag === "Deleted" && c.externalId === id && c.entity === entity)).toBe(true)
        } else {
          const status = mode === "archive" ? "archived" : "voided"
          expect((yield* client.read(entity, id)).record.status).toBe(status)
          expect(removal.changes.some((c) => c._tag === "Upserted" && c.record.externalId === id && c.record.record.status === status)).toBe(true)
        }
      }))
  }

  it.live("tax_rate: read and list the company's tax codes; writing them is refused", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const listed = yield* Stream.runCollect(client.list("tax_rate"))
      const sales = listed.find((r) => r.record.entity === "tax_rate" && r.record.name === "Sales tax 8.25%")
      expect(sales?.record).toMatchObject({ rate: "8.25", appliesTo: "sales", components: [{ name: "State sales tax", rate: "6.25" }, { name: "City sales tax", rate: "2" }] })
      const read = yield* client.read("tax_rate", sales?.externalId ?? "?")
      expect(read.record).toEqual(sales?.record)
      const [refused] = yield* client.write([{ _tag: "Create", entity: "tax_rate", record: sample("tax_rate"), idempotencyKey: "tax" }])
      expect(refused?._tag === "Failed" && refused.error._tag).toBe("Unsupported")
    }))

  it.live("reading a record that does not exist is NotFound", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const e = yield* Effect.flip(client.read("invoice", "999999"))
      expect(e._tag).toBe("NotFound")
      const c = yield* Effect.flip(client.read("contact", "customer:424242"))
      expect(c._tag).toBe("NotFound")
    }))
})

const stripLineIds = (r: Record<string, unknown>): Record<string, unknown> =>
  Array.isArray(r.lines)
    ? { ...r, lines: (r.lines as Array<Record<string, unknown>>).map(({ lineId: _l, ...rest }) => rest) }
    : r
