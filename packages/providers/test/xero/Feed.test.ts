/**
 * Paging, the If-Modified-Since change feed, batches with bad elements,
 * Idempotency-Key, and Xero's invoice status rules — adapter against sandbox.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Canonical, Entities } from "@concord/core"
import { Effect, Stream } from "effect"
import type { ProviderRecord, WriteOp } from "../../src/Provider.ts"
import { type Harness, harness, key } from "./harness.ts"

const accountIds = (h: Harness) =>
  Stream.runCollect(h.client.list("account")).pipe(
    Effect.map((all) => new Map(all.flatMap((a) => (a.record.entity === "account" ? [[a.record.code, a.externalId] as const] : []))))
  )

const contactOp = (name: string, idempotencyKey = key("contact")): WriteOp => ({
  _tag: "Create", entity: "contact", idempotencyKey,
  record: { entity: "contact", schemaVersion: 1, id: name, name, roles: ["customer"], status: "active" }
})

const invoice = (contactId: string, salesAccount: string, n: number, extra: Partial<Canonical.RecordOf<"invoice">> = {}): Canonical.RecordOf<"invoice"> => ({
  entity: "invoice", schemaVersion: 1, id: `inv-${n}`, number: `B-${n}`, contactId, date: "2026-02-01", dueDate: "2026-02-28", currency: "USD",
  lineAmountTypes: "no_tax", lines: [{ description: `Order ${n}`, amount: 10_00 + n, accountId: salesAccount }], status: "authorised", ...extra
})

const createOne = (h: Harness, op: WriteOp) =>
  h.client.write([op]).pipe(Effect.map(([r]) => {
    if (r?._tag !== "Written") throw new Error(`expected Written: ${JSON.stringify(r)}`)
    return r.record
  }))

/** Raw request to the sandbox with a fresh token (to check what a plain Xero client sees). */
const raw = (h: Harness, method: string, path: string, body?: unknown) =>
  Effect.promise(async () => {
    const token = h.sandbox.issueTokens([h.tenant]).access_token
    const res = await fetch(`${h.sandbox.baseUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, "xero-tenant-id": h.tenant, "content-type": "application/json", accept: "application/json" },
      ...(body === undefined ? {} : { body: JSON.stringify(body) })
    })
    return { status: res.status, headers: res.headers, body: (await res.json().catch(() => undefined)) as Record<string, unknown> | undefined }
  })

describe("Xero reads: paging and the change feed", () => {
  it.live("lists across pages, with If-Modified-Since, and the feed delivers every change exactly once", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const seeded = h.sandbox.seed(h.tenant, "Contacts", Array.from({ length: 250 }, (_, i) => ({ Name: `Customer ${String(i).padStart(3, "0")}` })))
      const before = h.sandbox.stats.requests
      const all = yield* Stream.runCollect(h.client.list("contact", { pageSize: 100 }))
      expect(all.length).toBe(250)
      expect(new Set(all.map((c) => c.externalId)).size).toBe(250)
      expect(h.sandbox.stats.requests - before).toBeGreaterThanOrEqual(3)

      // Only what changed after the 200th record was written.
      const cut = (seeded[199] as { UpdatedDateUTC: string }).UpdatedDateUTC.replace(/\D+/g, " ").trim().split(" ")[0] as string
      const later = yield* Stream.runCollect(h.client.list("contact", { modifiedSince: new Date(Number(cut) + 1).toISOString() }))
      expect(later.length).toBe(50)

      // The feed: page by page until caught up, nothing twice.
      const seen: Array<string> = []
      let cursor: string | undefined
      let calls = 0
      while (true) {
        const page = yield* h.client.changes(["contact"], cursor)
        calls++
        for (const c of page.changes) if (c._tag === "Upserted") seen.push(c.record.externalId)
        cursor = page.cursor
        if (!page.hasMore) break
      }
      expect(calls).toBe(3)
      expect(seen.length).toBe(250)
      expect(new Set(seen).size).toBe(250)

      // Nothing new: an empty page. Then an accountant edits two and archives one.
      expect((yield* h.client.changes(["contact"], cursor)).changes).toEqual([])
      const [a, b, c] = all as [ProviderRecord, ProviderRecord, ProviderRecord]
      h.sandbox.accountantEdit(h.tenant, "contact", a.externalId)
      h.sandbox.accountantEdit(h.tenant, "contact", b.externalId)
      h.sandbox.accountantDelete(h.tenant, "contact", c.externalId)
      const next = yield* h.client.changes(["contact"], cursor)
      const changed = next.changes.flatMap((x) => (x._tag === "Upserted" ? [x.record] : []))
      expect(changed.map((r) => r.externalId).sort()).toEqual([a.externalId, b.externalId, c.externalId].sort())
      expect((changed.find((r) => r.externalId === c.externalId)?.record as { status: string }).status).toBe("archived")
      // Archived contacts stay in the list (includeArchived) with their status.
      const again = yield* Stream.runCollect(h.client.list("contact"))
      expect(again.length).toBe(250)
    }))

  it.live("listPage resumes from its cursor: the pages together are the list, each record once", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      h.sandbox.seed(h.tenant, "Contacts", Array.from({ length: 230 }, (_, i) => ({ Name: `Paged ${String(i).padStart(3, "0")}` })))
      const seen: Array<string> = []
      let cursor: string | undefined
      let pages = 0
      do {
        const page = yield* h.client.listPage("contact", cursor === undefined ? { pageSize: 100 } : { pageSize: 100, cursor })
        pages++
        seen.push(...page.records.map((r) => r.externalId))
        cursor = page.next
      } while (cursor !== undefined)
      expect(pages).toBe(3)
      expect(seen.length).toBe(230)
      expect(new Set(seen).size).toBe(230)
      const bad = yield* Effect.flip(h.client.listPage("contact", { cursor: "nope" }))
      expect(bad._tag).toBe("ProviderProtocolError")
    }))

  it.live("the feed covers several entities, and voided invoices arrive with their status", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const acc = yield* accountIds(h)
      const contact = yield* createOne(h, contactOp("Feed Co"))
      const inv = yield* createOne(h, { _tag: "Create", entity: "invoice", idempotencyKey: key("i"), record: invoice(contact.externalId, acc.get("200") as string, 1) })
      const start = yield* h.client.changes(["invoice", "bill", "contact"], undefined)
      let cursor = start.cursor
      let more = start.hasMore
      while (more) {
        const p = yield* h.client.changes(["invoice", "bill", "contact"], cursor)
        cursor = p.cursor
        more = p.hasMore
      }
      h.sandbox.accountantDelete(h.tenant, "invoice", inv.externalId)
      const found: Array<ProviderRecord> = []
      do {
        const p = yield* h.client.changes(["invoice", "bill", "contact"], cursor)
        cursor = p.cursor
        more = p.hasMore
        for (const c of p.changes) if (c._tag === "Upserted") found.push(c.record)
      } while (more)
      expect(found.map((r) => [r.entity, r.externalId, (r.record as { status: string }).status])).toEqual([["invoice", inv.externalId, "voided"]])
    }))
})

describe("Xero writes: batches, idempotency, status rules", () => {
  it.live("a batch of 50 with bad elements: one request, the bad ones fail alone with Xero's messages", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const acc = yield* accountIds(h)
      const contact = yield* createOne(h, contactOp("Batch Co"))
      const sales = acc.get("200") as string
      const bad = new Set([3, 17, 29, 41])
      const ops: Array<WriteOp> = Array.from({ length: 50 }, (_, n) => ({
        _tag: "Create", entity: "invoice", idempotencyKey: key("b"),
        record: n === 3 || n === 29
          ? invoice("00000000-0000-0000-0000-00000000dead", sales, n)
          : n === 17 ? invoice(contact.externalId, sales, n, { number: "B-0" })
          : n === 41 ? invoice(contact.externalId, sales, n, { status: "paid" })
          : invoice(contact.externalId, sales, n)
      }))
      const before = h.sandbox.stats.requests
      const countBefore = h.sandbox.records(h.tenant, "invoice").length
      const results = yield* h.client.write(ops)
      expect(h.sandbox.stats.requests - before).toBe(1)
      results.forEach((r, n) => {
        if (!bad.has(n)) {
          expect(r._tag).toBe("Written")
          return
        }
        expect(r._tag).toBe("Failed")
        if (r._tag !== "Failed" || r.error._tag !== "ProviderRejected") throw new Error(`expected ProviderRejected at ${n}`)
        expect(r.error.code).toBe("ValidationException")
        expect(r.error.recordId).toBe(`inv-${n}`)
        expect(r.error.detail).toContain(`"Order ${n}"`)
      })
      const message = (n: number) => {
        const r = results[n]
        return r?._tag === "Failed" && r.error._tag === "ProviderRejected" ? r.error.providerMessage : ""
      }
      expect(message(3)).toMatch(/contact .* could not be found/)
      expect(message(17)).toBe("Invoice # must be unique.")
      expect(message(41)).toMatch(/cannot be set to PAID/)
      expect(h.sandbox.records(h.tenant, "invoice").length).toBe(countBefore + 46)
    }))

  it.live("without summarizeErrors=false one bad element fails the whole request (400 ValidationException) and nothing is saved", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const before = h.sandbox.records(h.tenant, "contact").length
      const res = yield* raw(h, "PUT", "/Contacts", { Contacts: [{ Name: "Good One" }, { Name: "" }] })
      expect(res.status).toBe(400)
      expect(res.body).toMatchObject({ ErrorNumber: 10, Type: "ValidationException", Message: "A validation exception occurred" })
      expect(JSON.stringify(res.body?.Elements)).toContain("The contact name must be specified.")
      expect(h.sandbox.records(h.tenant, "contact").length).toBe(before)
      const ok = yield* raw(h, "PUT", "/Contacts?summarizeErrors=false", { Contacts: [{ Name: "Good One" }, { Name: "" }] })
      expect(ok.status).toBe(200)
      const elements = ok.body?.Contacts as Array<Record<string, unknown>>
      expect(elements[0]?.ContactID).toBeTypeOf("string")
      expect(elements[1]).toMatchObject({ HasValidationErrors: true, StatusAttributeString: "ERROR" })
      expect(h.sandbox.records(h.tenant, "contact").length).toBe(before + 1)
    }))

  it.live("Idempotency-Key: a retried create returns the same record and writes nothing twice", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const k = key("idem")
      const first = yield* createOne(h, contactOp("Once Only Ltd", k))
      const count = h.sandbox.records(h.tenant, "contact").length
      const second = yield* createOne(h, contactOp("Once Only Ltd", k))
      expect(second.externalId).toBe(first.externalId)
      expect(second.version).toBe(first.version)
      expect(h.sandbox.records(h.tenant, "contact").length).toBe(count)
      expect(h.sandbox.stats.idempotentReplays).toBe(1)
      // A batch retried as a whole replays too.
      const ops = [contactOp("Batch A", key("a")), contactOp("Batch B", key("b"))]
      const r1 = yield* h.client.write(ops)
      const r2 = yield* h.client.write(ops)
      expect(r2.map((r) => r._tag === "Written" && r.record.externalId)).toEqual(r1.map((r) => r._tag === "Written" && r.record.externalId))
      expect(h.sandbox.records(h.tenant, "contact").length).toBe(count + 2)
    }))

  it.live("invoice status transitions: the ones Xero allows pass, the others are refused with Xero's message", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const acc = yield* accountIds(h)
      const contact = yield* createOne(h, contactOp("Status Co"))
      const sales = acc.get("200") as string
      const draft = yield* createOne(h, { _tag: "Create", entity: "invoice", idempotencyKey: key("s"), record: invoice(contact.externalId, sales, 1, { status: "draft" }) })
      const move = (rec: ProviderRecord, status: Entities.DocumentStatus) =>
        h.client.write([{ _tag: "Update", entity: "invoice", externalId: rec.externalId, version: rec.version, record: { ...(rec.record as Canonical.RecordOf<"invoice">), status }, idempotencyKey: key("m") }]).pipe(Effect.map(([r]) => r))
      const submitted = yield* move(draft, "submitted")
      if (submitted?._tag !== "Written") throw new Error(JSON.stringify(submitted))
      const authorised = yield* move(submitted.record, "authorised")
      if (authorised?._tag !== "Written") throw new Error(JSON.stringify(authorised))
      const back = yield* move(authorised.record, "draft")
      expect(back?._tag === "Failed" && back.error._tag === "ProviderRejected" && back.error.providerMessage).toBe("Invoice status cannot be changed from AUTHORISED to DRAFT")
      const paid = yield* move(authorised.record, "paid")
      expect(paid?._tag === "Failed" && paid.error._tag === "ProviderRejected" && paid.error.providerMessage).toMatch(/apply payments/)
      // Paying it in full makes it PAID; a paid invoice cannot be voided or edited.
      const inv = authorised.record.record as Canonical.RecordOf<"invoice">
      const pay = yield* h.client.write([{
        _tag: "Create", entity: "payment", idempotencyKey: key("p"),
        record: { entity: "payment", schemaVersion: 1, id: "p", contactId: contact.externalId, date: "2026-02-10", currency: "USD", amount: inv.total ?? 0, accountId: acc.get("090") as string, allocations: [{ documentType: "invoice", documentId: inv.id, amount: inv.total ?? 0 }], status: "active" }
      }])
      expect(pay[0]?._tag).toBe("Written")
      const nowPaid = yield* h.client.read("invoice", inv.id)
      expect((nowPaid.record as { status: string }).status).toBe("paid")
      const voidPaid = yield* move(nowPaid, "voided")
      expect(voidPaid?._tag === "Failed" && voidPaid.error._tag === "ProviderRejected" && voidPaid.error.providerMessage).toBe("Invoice not of valid status for modification")
      const rm = yield* h.client.write([{ _tag: "Remove", entity: "invoice", externalId: inv.id, version: nowPaid.version, idempotencyKey: key("r") }])
      expect(rm[0]?._tag === "Failed" && rm[0].error._tag).toBe("ProviderRejected")
      // A draft is deleted, an authorised one voided.
      const d2 = yield* createOne(h, { _tag: "Create", entity: "invoice", idempotencyKey: key("d2"), record: invoice(contact.externalId, sales, 2, { status: "draft" }) })
      const a2 = yield* createOne(h, { _tag: "Create", entity: "invoice", idempotencyKey: key("a2"), record: invoice(contact.externalId, sales, 3) })
      yield* h.client.write([
        { _tag: "Remove", entity: "invoice", externalId: d2.externalId, version: d2.version, idempotencyKey: key("rd") },
        { _tag: "Remove", entity: "invoice", externalId: a2.externalId, version: a2.version, idempotencyKey: key("ra") }
      ])
      expect(((yield* h.client.read("invoice", d2.externalId)).record as { status: string }).status).toBe("deleted")
      expect(((yield* h.client.read("invoice", a2.externalId)).record as { status: string }).status).toBe("voided")
      const reopen = yield* move(yield* h.client.read("invoice", a2.externalId), "authorised")
      expect(reopen?._tag === "Failed" && reopen.error._tag).toBe("ProviderRejected")
    }))

  it.live("contacts become customers and suppliers from their documents, as Xero derives it", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const acc = yield* accountIds(h)
      const contact = yield* createOne(h, contactOp("Role Co"))
      expect((contact.record as Canonical.RecordOf<"contact">).roles).toEqual(["customer", "vendor"])
      yield* createOne(h, { _tag: "Create", entity: "invoice", idempotencyKey: key("r"), record: invoice(contact.externalId, acc.get("200") as string, 1) })
      expect(((yield* h.client.read("contact", contact.externalId)).record as Canonical.RecordOf<"contact">).roles).toEqual(["customer"])
    }))
})
