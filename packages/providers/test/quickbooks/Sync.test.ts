/**
 * Paging, change data capture, batches, idempotent retries, throttling,
 * transient failures and Fault mapping — the adapter against the sandbox
 * over HTTP.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Canonical, Entities } from "@concord/core"
import { Effect, Fiber, Stream } from "effect"
import type { WriteOp } from "../../src/Provider.ts"
import { start } from "../../src/quickbooks/Sandbox.ts"
import { connect, sample, unique, written } from "./support.ts"

const customer = (name: string): Canonical.RecordOf<"contact"> => ({ entity: "contact", schemaVersion: 1, id: "new", name, roles: ["customer"], status: "active" })

const journal = (amount: number, debit = "13", credit = "1"): Canonical.CanonicalRecord => ({
  entity: "journal_entry",
  schemaVersion: 1,
  id: "new",
  date: "2026-02-01",
  currency: "USD",
  lines: [
    { postingType: "debit", accountId: debit, amount },
    { postingType: "credit", accountId: credit, amount }
  ],
  status: "posted"
})

describe("QuickBooks adapter: reading at scale", () => {
  it.live("lists page by page through the query endpoint (STARTPOSITION / MAXRESULTS)", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const ops: Array<WriteOp> = Array.from({ length: 25 }, (_, i) => ({ _tag: "Create", entity: "contact", record: customer(`Paged ${i}`), idempotencyKey: `paged-${i}` }))
      const results = yield* client.write(ops)
      expect(results.every((r) => r._tag === "Written")).toBe(true)
      const queries: Array<string> = []
      sb.onRequest((e) => {
        if (e.path.endsWith("/query")) queries.push(new URLSearchParams(e.query).get("query") ?? "")
      })
      const listed = yield* Stream.runCollect(client.list("contact", { pageSize: 10 }))
      // 25 new customers, the seeded customer and the seeded vendor, each once.
      expect(listed.length).toBe(27)
      expect(new Set(listed.map((r) => r.externalId)).size).toBe(27)
      const customerPages = queries.filter((q) => q.includes("from Customer"))
      expect(customerPages.map((q) => /STARTPOSITION (\d+)/.exec(q)?.[1])).toEqual(["1", "11", "21"])
      expect(customerPages.every((q) => q.includes("MAXRESULTS 10"))).toBe(true)
      // Archived records are listed too (QuickBooks hides inactive names unless asked).
      const first = listed.find((r) => r.record.entity === "contact" && r.record.name === "Paged 0")
      yield* client.write([{ _tag: "Remove", entity: "contact", externalId: first?.externalId ?? "?", version: first?.version ?? "?", idempotencyKey: "archive" }])
      const again = yield* Stream.runCollect(client.list("contact"))
      expect(again.find((r) => r.externalId === first?.externalId)?.record.status).toBe("archived")
    }))

  it.live("listPage resumes from its cursor: the pages together are the list, each record once", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const ops: Array<WriteOp> = Array.from({ length: 23 }, (_, i) => ({ _tag: "Create", entity: "contact", record: customer(`Page ${i}`), idempotencyKey: `page-${i}` }))
      yield* client.write(ops)
      const seen: Array<string> = []
      let cursor: string | undefined
      let pages = 0
      do {
        const page = yield* client.listPage("contact", cursor === undefined ? { pageSize: 10 } : { pageSize: 10, cursor })
        pages++
        seen.push(...page.records.map((r) => r.externalId))
        cursor = page.next
      } while (cursor !== undefined)
      // 23 customers plus the seeded customer and vendor, in pages of 10 (customers, then vendors).
      expect(seen.length).toBe(25)
      expect(new Set(seen).size).toBe(25)
      expect(pages).toBeGreaterThanOrEqual(3)
      const bad = yield* Effect.flip(client.listPage("contact", { cursor: "garbage" }))
      expect(bad._tag).toBe("ProviderProtocolError")
    }))

  it.live("lists only what changed since an instant", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      yield* client.write([{ _tag: "Create", entity: "journal_entry", record: journal(100), idempotencyKey: "old" }])
      yield* Effect.sleep("5 millis")
      const since = new Date().toISOString()
      yield* Effect.sleep("5 millis")
      const fresh = written((yield* client.write([{ _tag: "Create", entity: "journal_entry", record: journal(200), idempotencyKey: "new" }]))[0])
      const listed = yield* Stream.runCollect(client.list("journal_entry", { modifiedSince: since }))
      expect(listed.map((r) => r.externalId)).toEqual([fresh.externalId])
    }))

  it.live("reports changes through CDC, deletes included, and resumes from the cursor", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const since = new Date(Date.now() - 1000).toISOString()
      const [a, b] = yield* client.write([
        { _tag: "Create", entity: "journal_entry", record: journal(100), idempotencyKey: "a" },
        { _tag: "Create", entity: "journal_entry", record: journal(200), idempotencyKey: "b" }
      ])
      const ja = written(a)
      const jb = written(b)
      const [removed] = yield* client.write([{ _tag: "Remove", entity: "journal_entry", externalId: jb.externalId, version: jb.version, idempotencyKey: "rm-b" }])
      expect(removed?._tag).toBe("Removed")
      const inv = written((yield* client.write([{ _tag: "Create", entity: "invoice", record: sample("invoice"), idempotencyKey: "inv" }]))[0])

      const page = yield* client.changes(["journal_entry", "invoice"], undefined, since)
      const upserts = page.changes.flatMap((c) => (c._tag === "Upserted" ? [c.record.externalId] : []))
      const deletes = page.changes.flatMap((c) => (c._tag === "Deleted" ? [`${c.entity}:${c.externalId}`] : []))
      expect(upserts).toEqual(expect.arrayContaining([ja.externalId, inv.externalId]))
      expect(upserts).not.toContain(jb.externalId)
      expect(deletes).toEqual([`journal_entry:${jb.externalId}`])
      expect(page.hasMore).toBe(false)

      // An accountant edits the journal and deletes the invoice in QuickBooks.
      sb.accountantEdit(sb.realmId, "journal_entry", ja.externalId, { PrivateNote: "fixed by the accountant" })
      sb.accountantDelete(sb.realmId, "invoice", inv.externalId)
      const next = yield* client.changes(["journal_entry", "invoice"], page.cursor)
      const edited = next.changes.find((c) => c._tag === "Upserted" && c.record.externalId === ja.externalId)
      expect(edited?._tag === "Upserted" && edited.record.version).toBe("1")
      expect(edited?._tag === "Upserted" && edited.record.record.entity === "journal_entry" && edited.record.record.memo).toBe("fixed by the accountant")
      expect(next.changes.some((c) => c._tag === "Deleted" && c.entity === "invoice" && c.externalId === inv.externalId)).toBe(true)
      expect(Date.parse(next.cursor)).toBeGreaterThanOrEqual(Date.parse(page.cursor))
    }))

  it.live("a quiet feed's cursor keeps up with QuickBooks' clock: a change is reported once it has settled, not on every poll", () =>
    Effect.gen(function*() {
      // The sandbox's clock runs ahead on demand (QuickBooks' clock, as the answers' `time` shows it).
      let ahead = 0
      const sb = yield* start({ limits: false, now: () => Date.now() + ahead })
      const { client } = yield* connect(sb)
      const since = new Date(Date.now() - 1000).toISOString()
      const made = written((yield* client.write([{ _tag: "Create", entity: "contact", record: customer("Quiet Ltd"), idempotencyKey: "quiet" }]))[0])
      const first = yield* client.changes(["contact"], undefined, since)
      expect(first.changes.map((c) => c._tag === "Upserted" && c.record.externalId)).toContain(made.externalId)
      // Read again while it settles (the feed may show a commit a moment late), then never again.
      ahead += 6_000
      const second = yield* client.changes(["contact"], first.cursor)
      expect(second.changes.every((c) => c._tag === "Upserted" && c.record.externalId === made.externalId)).toBe(true)
      expect(Date.parse(second.cursor)).toBeGreaterThan(Date.parse(made.updatedAt))
      ahead += 60_000
      const third = yield* client.changes(["contact"], second.cursor)
      expect(third.changes).toEqual([])
      expect(Date.parse(third.cursor)).toBeGreaterThan(Date.parse(second.cursor))
      expect(Date.parse(third.cursor)).toBeGreaterThan(Date.now() + ahead - 10_000)
      // The next change is reported.
      sb.accountantEdit(sb.realmId, "contact", made.externalId, { CompanyName: "Quiet and Sons" })
      const fourth = yield* client.changes(["contact"], third.cursor)
      expect(fourth.changes.map((c) => c._tag === "Upserted" && c.record.externalId)).toEqual([made.externalId])
    }))

  it.live("never asks /cdc for more than its 30 days: an older cursor is read from inside the window, where the sandbox refuses the raw request", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const monthAgo = new Date(Date.now() - 31 * 86_400_000).toISOString()
      const fresh = written((yield* client.write([{ _tag: "Create", entity: "contact", record: customer("Back from holiday"), idempotencyKey: "old-cursor" }]))[0])
      const page = yield* client.changes(["contact"], monthAgo)
      expect(page.changes.map((c) => c._tag === "Upserted" && c.record.externalId)).toContain(fresh.externalId)
      expect(Date.parse(page.cursor)).toBeGreaterThan(Date.parse(monthAgo))
      // The page says which stretch it could not read, so the engine can reconcile it.
      expect(page.gap?.from).toBe(monthAgo)
      expect(Date.parse(page.gap?.to ?? "")).toBeGreaterThan(Date.now() - 30 * 86_400_000)
      expect(Date.parse(page.gap?.to ?? "")).toBeLessThan(Date.parse(fresh.updatedAt))
      // A cursor inside the window has no gap.
      expect((yield* client.changes(["contact"], page.cursor)).gap).toBeUndefined()
      // QuickBooks itself refuses a look-back past 30 days (a ValidationFault naming changedSince).
      const token = sb.issueTokens().access_token
      const raw = yield* Effect.promise(() =>
        fetch(`${sb.baseUrl}/v3/company/${sb.realmId}/cdc?entities=Customer&changedSince=${encodeURIComponent(monthAgo)}`, {
          headers: { authorization: `Bearer ${token}`, accept: "application/json" }
        }).then(async (r) => ({ status: r.status, body: await r.json() as { Fault?: { type?: string; Error?: Array<{ element?: string }> } } }))
      )
      expect(raw.status).toBe(400)
      expect(raw.body.Fault?.type).toBe("ValidationFault")
      expect(raw.body.Fault?.Error?.[0]?.element).toBe("changedSince")
    }))

  it.live("pages CDC past its 1000-object limit without losing a change", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const since = new Date(Date.now() - 1000).toISOString()
      for (let i = 0; i < 1100; i++) sb.insert(sb.realmId, "Class", { Name: `Bulk class ${i}` })
      const seen = new Set<string>()
      let cursor: string | undefined
      let calls = 0
      let more = true
      while (more && calls < 10) {
        const page = yield* client.changes(["tracking_category"], cursor, since)
        calls++
        if (calls === 1) expect(page.hasMore).toBe(true)
        for (const c of page.changes) if (c._tag === "Upserted") seen.add(c.record.externalId)
        cursor = page.cursor
        more = page.hasMore
      }
      expect(seen.size).toBe(1100)
      expect(calls).toBeLessThan(10)
    }))
})

describe("QuickBooks adapter: writing", () => {
  it.live("batches mixed operations: results in input order, a bad item fails alone", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const inv = written((yield* client.write([{ _tag: "Create", entity: "invoice", record: sample("invoice"), idempotencyKey: "inv-0" }]))[0])
      const batches: Array<string> = []
      sb.onRequest((e) => batches.push(e.path))
      const ops: Array<WriteOp> = [
        { _tag: "Create", entity: "journal_entry", record: journal(1000), idempotencyKey: "good-1" },
        { _tag: "Create", entity: "journal_entry", record: journal(1000, "9999"), idempotencyKey: "bad-account" },
        { _tag: "Create", entity: "contact", record: customer(unique("Batch")), idempotencyKey: "good-2" },
        { _tag: "Update", entity: "invoice", externalId: inv.externalId, version: "7", record: inv.record, idempotencyKey: "stale" },
        { _tag: "Create", entity: "contact", record: { ...customer("x"), roles: ["customer", "vendor"] }, idempotencyKey: "unmappable" },
        { _tag: "Create", entity: "transfer", record: sample("transfer"), idempotencyKey: "good-3" }
      ]
      const results = yield* client.write(ops)
      expect(results.map((r) => r._tag)).toEqual(["Written", "Failed", "Written", "Failed", "Failed", "Written"])
      expect(results[0]?._tag === "Written" && results[0].record.entity).toBe("journal_entry")
      expect(results[2]?._tag === "Written" && results[2].record.entity).toBe("contact")
      expect(results[5]?._tag === "Written" && results[5].record.entity).toBe("transfer")
      const bad = results[1]
      if (bad?._tag !== "Failed" || bad.error._tag !== "ProviderRejected") throw new Error(`expected ProviderRejected, got ${JSON.stringify(bad)}`)
      expect(bad.error.code).toBe("2500")
      expect(bad.error.field).toBe("Line.JournalEntryLineDetail.AccountRef")
      expect(bad.error.detail).toContain("9999")
      expect(bad.error.message).toContain("9999")
      expect(results[3]?._tag === "Failed" && results[3].error._tag).toBe("StaleVersion")
      expect(results[4]?._tag === "Failed" && results[4].error._tag).toBe("Unsupported")
      // One /batch request carried the five mappable operations.
      expect(batches.filter((p) => p.endsWith("/batch")).length).toBe(1)
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(1)
    }))

  it.live("splits large writes into batches of the configured size", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, batchMax: 10 })
      const { client } = yield* connect(sb, { batchSize: 10 })
      let batches = 0
      sb.onRequest((e) => {
        if (e.path.endsWith("/batch")) batches++
      })
      const ops: Array<WriteOp> = Array.from({ length: 45 }, (_, i) => ({ _tag: "Create", entity: "journal_entry", record: journal(100 + i), idempotencyKey: `split-${i}` }))
      const results = yield* client.write(ops)
      expect(results.every((r) => r._tag === "Written")).toBe(true)
      expect(results.map((r) => (r._tag === "Written" && r.record.record.entity === "journal_entry" ? r.record.record.lines[0]?.amount : -1))).toEqual(ops.map((_, i) => 100 + i))
      expect(batches).toBe(5)
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(45)
    }))

  it.live("voids invoices, payments, sales receipts and bill payments in one batch, each the way QuickBooks wants", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const entities = ["invoice", "payment", "sales_receipt", "bill_payment"] as const
      const created = (yield* client.write(entities.map((entity) => ({ _tag: "Create" as const, entity, record: sample(entity), idempotencyKey: `v-${entity}` })))).map(written)
      const removed = yield* client.write(created.map((r) => ({ _tag: "Remove" as const, entity: r.entity, externalId: r.externalId, version: r.version, idempotencyKey: `void-${r.entity}` })))
      expect(removed.map((r) => r._tag)).toEqual(["Removed", "Removed", "Removed", "Removed"])
      for (const r of created) {
        const after = yield* client.read(r.entity, r.externalId)
        expect(after.record.status).toBe("voided")
        expect(after.version).toBe("1")
      }
    }))

  it.live("a batch QuickBooks refuses as a whole fails each of its operations, not the call", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, batchMax: 3 })
      const { client } = yield* connect(sb, { batchSize: 5 })
      const ops: Array<WriteOp> = Array.from({ length: 5 }, (_, i) => ({ _tag: "Create", entity: "journal_entry", record: journal(50 + i), idempotencyKey: `whole-${i}` }))
      const results = yield* client.write(ops)
      expect(results.map((r) => (r._tag === "Failed" && r.error._tag === "ProviderRejected" ? r.error.code : r._tag))).toEqual(["1040", "1040", "1040", "1040", "1040"])
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(0)
    }))

  it.live("a retried create with the same idempotency key returns the same record and creates nothing", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const op: WriteOp = { _tag: "Create", entity: "invoice", record: sample("invoice"), idempotencyKey: "conn-1/inv-42/base-0/abc123" }
      const first = written((yield* client.write([op]))[0])
      // Even after the invoice changed, the retry gets the answer the first request got.
      sb.accountantEdit(sb.realmId, "invoice", first.externalId)
      const again = written((yield* client.write([op]))[0])
      expect(again.externalId).toBe(first.externalId)
      expect(again.version).toBe(first.version)
      expect(sb.count(sb.realmId, "Invoice")).toBe(1)
      // The same for a whole batch.
      const batch: Array<WriteOp> = [0, 1, 2].map((i) => ({ _tag: "Create", entity: "journal_entry", record: journal(10 + i), idempotencyKey: `batch-key-${i}` }))
      const r1 = yield* client.write(batch)
      const r2 = yield* client.write(batch)
      expect(r2.map((r) => written(r).externalId)).toEqual(r1.map((r) => written(r).externalId))
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(3)
    }))

  it.live("inventory items start tracking today; one without an asset account is refused naming the field", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const item: Canonical.RecordOf<"item"> = { entity: "item", schemaVersion: 1, id: "new", name: "Gadget", type: "inventory", salesPrice: "30", salesAccountId: "10", purchaseAccountId: "12", inventoryAccountId: "5", quantityOnHand: "12", status: "active" }
      const created = written((yield* client.write([{ _tag: "Create", entity: "item", record: item, idempotencyKey: "inv-item" }]))[0])
      expect(created.record).toMatchObject({ type: "inventory", quantityOnHand: "12", inventoryAccountId: "5" })
      expect(sb.records(sb.realmId, "item").find((i) => i.Name === "Gadget")?.InvStartDate).toBe(new Date().toISOString().slice(0, 10))
      const { inventoryAccountId: _drop, ...noAsset } = item
      const [refused] = yield* client.write([{ _tag: "Create", entity: "item", record: { ...noAsset, name: "Gizmo" }, idempotencyKey: "inv-item-2" }])
      expect(refused?._tag === "Failed" && refused.error._tag === "ProviderRejected" && refused.error.field).toBe("AssetAccountRef")
    }))

  it.live("a missing account is refused with QuickBooks' code, message and detail naming the account", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const invoice = sample("invoice") as Canonical.RecordOf<"invoice">
      const record = { ...invoice, lines: [{ ...invoice.lines[0], accountId: "4242" } as Entities.DocumentLine] }
      const [r] = yield* client.write([{ _tag: "Create", entity: "invoice", record, idempotencyKey: "missing-account" }])
      if (r?._tag !== "Failed" || r.error._tag !== "ProviderRejected") throw new Error(`expected ProviderRejected, got ${JSON.stringify(r)}`)
      expect(r.error).toMatchObject({ code: "2500", providerMessage: "Invalid Reference Id", field: "Line.SalesItemLineDetail.ItemAccountRef" })
      expect(r.error.detail).toBe("Invalid Reference Id : Accounts element id 4242 not found")
      expect(r.error.message).toContain("Accounts element id 4242")
      expect(sb.count(sb.realmId, "Invoice")).toBe(0)
    }))
})

describe("QuickBooks adapter: limits and failures", () => {
  it.live("rides out a 429 storm: every write lands once", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      sb.faults.storm(1500)
      const results = yield* Effect.forEach(
        Array.from({ length: 20 }, (_, i) => i),
        (i) => client.write([{ _tag: "Create", entity: "journal_entry", record: journal(500 + i), idempotencyKey: `storm-${i}` }]),
        { concurrency: 10 }
      )
      expect(results.every(([r]) => r?._tag === "Written")).toBe(true)
      expect(sb.faults.stats.storms).toBeGreaterThan(0)
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(20)
      expect(new Set(results.map(([r]) => written(r).externalId)).size).toBe(20)
    }))

  it.live("stays under the sandbox's real limits: 10 concurrent requests at most, never a 429", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: true })
      const { client } = yield* connect(sb)
      yield* Effect.forEach(Array.from({ length: 40 }, (_, i) => i), () => client.read("account", "1"), { concurrency: "unbounded" })
      expect(sb.limits.stats.throttled).toBe(0)
      expect(sb.limits.stats.admitted).toBe(40)
    }))

  it.live("an unlimited connection does no client-side pacing (the sandbox's limits then answer 429, and the adapter retries)", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: true })
      const { client } = yield* connect(sb, { unlimited: true })
      sb.faults.set({ latencyMs: 40 })
      const reads = yield* Effect.forEach(Array.from({ length: 25 }), () => client.read("account", "1"), { concurrency: "unbounded" })
      expect(reads.length).toBe(25)
      expect(sb.limits.stats.throttled).toBeGreaterThan(0)
    }))

  it.live("background work yields to live traffic when requests queue for a slot", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      sb.faults.set({ latencyMs: 30 })
      const arrivals: Array<string> = []
      sb.onRequest((e) => arrivals.push(e.path.endsWith("/account/2") ? "live" : "background"))
      const background = yield* Effect.forkChild(
        client.withPriority("background", Effect.forEach(Array.from({ length: 30 }), () => client.read("account", "1"), { concurrency: "unbounded" }))
      )
      yield* Effect.sleep("10 millis")
      yield* Effect.forEach(Array.from({ length: 5 }), () => client.read("account", "2"), { concurrency: "unbounded" })
      yield* Fiber.join(background)
      const live = arrivals.flatMap((a, i) => (a === "live" ? [i] : []))
      expect(live.length).toBe(5)
      // Ten background requests were already in flight; the live ones go next, ahead of the other twenty.
      expect(Math.max(...live)).toBeLessThan(20)
    }))

  it.live("retries 500s, hung requests and tokens expiring mid-call, without duplicating writes", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false, seed: 7 })
      const { client } = yield* connect(sb, { timeoutMs: 150, maxRetries: 8 })
      sb.faults.set({ errorRate: 0.25, timeoutRate: 0.1, hangMs: 400, tokenExpiryRate: 0.1 })
      const ops: Array<WriteOp> = Array.from({ length: 12 }, (_, i) => ({ _tag: "Create", entity: "journal_entry", record: journal(900 + i), idempotencyKey: `flaky-${i}` }))
      const results = yield* Effect.forEach(ops, (op) => client.write([op]), { concurrency: 4 })
      expect(results.every(([r]) => r?._tag === "Written")).toBe(true)
      expect(sb.faults.stats.errors + sb.faults.stats.hangs + sb.faults.stats.expiries).toBeGreaterThan(0)
      expect(sb.count(sb.realmId, "JournalEntry")).toBe(12)
    }))

  it.live("a response that breaks the wire format is a ProviderProtocolError naming the field", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb)
      const t = written((yield* client.write([{ _tag: "Create", entity: "transfer", record: sample("transfer"), idempotencyKey: "proto" }]))[0])
      sb.accountantEdit(sb.realmId, "transfer", t.externalId, { Amount: "a lot" })
      const e = yield* Effect.flip(client.read("transfer", t.externalId))
      expect(e._tag).toBe("ProviderProtocolError")
      expect(e.message).toContain("Amount")
    }))

  it.live("gives up on a provider that keeps failing with ProviderUnavailable", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client } = yield* connect(sb, { maxRetries: 2 })
      sb.faults.set({ errorRate: 1 })
      const e = yield* Effect.flip(client.read("account", "1"))
      expect(e._tag).toBe("ProviderUnavailable")
      expect(e.message).toContain("500")
    }))
})
