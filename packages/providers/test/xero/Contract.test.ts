/**
 * Contract tests: the Xero adapter against the Xero sandbox over HTTP, for
 * every entity Xero supports — create, read, update, a stale update that must
 * not overwrite a concurrent (accountant's) edit, remove, and the change feed.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Canonical } from "@concord/core"
import { Effect, Stream } from "effect"
import type { ProviderClient, ProviderRecord, WriteResult } from "../../src/Provider.ts"
import { capabilities, Xero } from "../../src/xero/Adapter.ts"
import * as M from "../../src/xero/Mapping.ts"
import { type Harness, harness, key } from "./harness.ts"

type Rec = Canonical.CanonicalRecord

const written = (r: WriteResult | undefined): ProviderRecord => {
  if (r?._tag !== "Written") throw new Error(`expected Written, got ${JSON.stringify(r)}`)
  return r.record
}

const create = (client: ProviderClient, record: Rec) =>
  client.write([{ _tag: "Create", entity: record.entity, record, idempotencyKey: key(`create-${record.entity}`) }]).pipe(Effect.map((rs) => written(rs[0])))

interface World {
  readonly accounts: Map<string, string>
  readonly customer: string
  readonly vendor: string
  readonly item: string
  readonly category: string
  readonly option: string
  readonly invoice: string
  readonly bill: string
  readonly creditNote: string
  readonly vendorCredit: string
}

/** Master data and open documents the other entities reference. */
const world = (h: Harness) =>
  Effect.gen(function*() {
    const accounts = new Map<string, string>()
    for (const a of yield* Stream.runCollect(h.client.list("account"))) if (a.record.entity === "account") accounts.set(a.record.code, a.externalId)
    const acc = (code: string) => accounts.get(code) as string
    const customer = (yield* create(h.client, { entity: "contact", schemaVersion: 1, id: "c1", name: "Bluebird Café", roles: ["customer"], status: "active" })).externalId
    const vendor = (yield* create(h.client, { entity: "contact", schemaVersion: 1, id: "v1", name: "Paper Supplies Ltd", roles: ["vendor"], status: "active" })).externalId
    const item = (yield* create(h.client, { entity: "item", schemaVersion: 1, id: "i1", code: "BEANS", name: "Coffee beans", type: "non_inventory", salesPrice: "12.5", salesAccountId: acc("200"), status: "active" })).externalId
    const category = (yield* create(h.client, { entity: "tracking_category", schemaVersion: 1, id: "t1", name: "Region", kind: "custom", status: "active" })).externalId
    const option = (yield* create(h.client, { entity: "tracking_category", schemaVersion: 1, id: "t2", name: "North", kind: "custom", parentId: category, status: "active" })).externalId
    const doc = (entity: "invoice" | "bill" | "credit_note" | "vendor_credit", contactId: string, account: string) =>
      create(h.client, {
        entity, schemaVersion: 1, id: `${entity}-1`, contactId, date: "2026-03-01", dueDate: "2026-03-31", currency: "USD", lineAmountTypes: "no_tax",
        lines: [{ description: "Open document", amount: 100_00, accountId: acc(account) }], status: "authorised"
      } as Rec).pipe(Effect.map((r) => r.externalId))
    return {
      accounts, customer, vendor, item, category, option,
      invoice: yield* doc("invoice", customer, "200"),
      bill: yield* doc("bill", vendor, "300"),
      creditNote: yield* doc("credit_note", customer, "200"),
      vendorCredit: yield* doc("vendor_credit", vendor, "300")
    } satisfies World
  })

interface Case {
  readonly sample: (w: World) => Rec
  /** A change an app would make (absent: the entity cannot be updated in Xero). */
  readonly change?: (r: Rec) => Rec
  /** Fields that must read back as written. */
  readonly check: ReadonlyArray<string>
  /** The status a removed record reads back with (absent: it is gone). */
  readonly removed?: string
}

const acc = (w: World, code: string) => w.accounts.get(code) as string

const documentCase = (entity: "invoice" | "bill" | "credit_note" | "vendor_credit", contact: (w: World) => string, account: string): Case => ({
  sample: (w) => ({
    entity, schemaVersion: 1, id: "app-1", contactId: contact(w), date: "2026-04-01", dueDate: "2026-04-30", currency: "USD", lineAmountTypes: "exclusive",
    lines: [
      { description: "Line one", quantity: "2", unitPrice: "12.5", amount: 25_00, accountId: acc(w, account), taxRateId: "NONE", taxAmount: 0, trackingIds: [w.option] },
      ...(entity === "invoice" ? [{ description: "Beans", itemId: w.item, quantity: "1", unitPrice: "12.5", amount: 12_50, accountId: acc(w, account), taxRateId: "OUTPUT", taxAmount: 125 }] : [])
    ],
    status: "draft",
    ...(entity === "invoice" || entity === "credit_note" ? { reference: "PO-1" } : {})
  } as Rec),
  change: (r) => ({ ...r, dueDate: "2026-05-15", status: "authorised" } as Rec),
  check: ["contactId", "date", "dueDate", "currency", "lineAmountTypes", "lines", "status", "reference"],
  // Authorised by the update, so removing voids it (a draft would be deleted).
  removed: "voided"
})

const cases: Readonly<Record<M.Supported, Case>> = {
  account: {
    sample: () => ({ entity: "account", schemaVersion: 1, id: "a", code: "4100", name: "Online Sales", type: "revenue", description: "Web shop", taxRateId: "OUTPUT", status: "active" }),
    change: (r) => ({ ...r, name: "Online Sales (EU)" } as Rec),
    check: ["code", "name", "type", "description", "taxRateId", "status"],
    removed: "archived"
  },
  contact: {
    sample: () => ({
      entity: "contact", schemaVersion: 1, id: "c", name: "Harbour Bakery", roles: ["customer"], firstName: "Ana", lastName: "Silva", email: "ana@harbour.example",
      phone: "555-0100", taxNumber: "12-345", currency: "USD", billingAddress: { line1: "1 Quay St", city: "Auckland", postalCode: "1010", country: "NZ" }, status: "active"
    }),
    change: (r) => ({ ...r, email: "accounts@harbour.example" } as Rec),
    check: ["name", "firstName", "lastName", "email", "phone", "taxNumber", "currency", "billingAddress", "status"],
    removed: "archived"
  },
  item: {
    sample: (w) => ({ entity: "item", schemaVersion: 1, id: "i", code: "MUG", name: "Mug", description: "Stoneware mug", type: "non_inventory", salesPrice: "9.5", salesAccountId: acc(w, "200"), purchasePrice: "3.25", purchaseAccountId: acc(w, "300"), taxRateId: "OUTPUT", status: "active" }),
    change: (r) => ({ ...r, salesPrice: "10" } as Rec),
    check: ["code", "name", "description", "salesPrice", "salesAccountId", "purchasePrice", "purchaseAccountId", "taxRateId"]
  },
  tax_rate: {
    sample: () => ({ entity: "tax_rate", schemaVersion: 1, id: "t", name: "City Tax", rate: "8.875", components: [{ name: "State", rate: "4" }, { name: "City", rate: "4.875" }], status: "active" }),
    change: (r) => ({ ...r, name: "City Sales Tax" } as Rec),
    check: ["name", "rate", "components", "status"],
    removed: "archived"
  },
  currency: {
    sample: () => ({ entity: "currency", schemaVersion: 1, id: "EUR", code: "EUR", name: "Euro", status: "active" }),
    check: ["code", "name"]
  },
  tracking_category: {
    sample: (w) => ({ entity: "tracking_category", schemaVersion: 1, id: "tc", name: "South", kind: "custom", parentId: w.category, status: "active" }),
    change: (r) => ({ ...r, name: "South Island" } as Rec),
    check: ["name", "parentId", "status"],
    removed: "archived"
  },
  invoice: documentCase("invoice", (w) => w.customer, "200"),
  bill: documentCase("bill", (w) => w.vendor, "300"),
  credit_note: documentCase("credit_note", (w) => w.customer, "200"),
  vendor_credit: documentCase("vendor_credit", (w) => w.vendor, "300"),
  payment: {
    sample: (w) => ({ entity: "payment", schemaVersion: 1, id: "p", contactId: w.customer, date: "2026-03-10", currency: "USD", amount: 40_00, accountId: acc(w, "090"), reference: "card batch 7", allocations: [{ documentType: "invoice", documentId: w.invoice, amount: 40_00 }], status: "active" }),
    check: ["contactId", "date", "currency", "amount", "accountId", "reference", "allocations", "status"],
    removed: "deleted"
  },
  bill_payment: {
    sample: (w) => ({ entity: "bill_payment", schemaVersion: 1, id: "bp", contactId: w.vendor, date: "2026-03-11", currency: "USD", amount: 25_00, accountId: acc(w, "090"), allocations: [{ documentType: "vendor_credit", documentId: w.vendorCredit, amount: 25_00 }], status: "active" }),
    check: ["contactId", "date", "amount", "accountId", "allocations", "status"],
    removed: "deleted"
  },
  journal_entry: {
    sample: (w) => ({
      entity: "journal_entry", schemaVersion: 1, id: "j", date: "2026-03-31", currency: "USD", memo: "Month-end accrual",
      lines: [
        { postingType: "debit", accountId: acc(w, "429"), amount: 150_00, description: "Accrued expenses", trackingIds: [w.option] },
        { postingType: "credit", accountId: acc(w, "820"), amount: 150_00 }
      ],
      status: "draft"
    }),
    change: (r) => ({ ...r, memo: "Month-end accrual (revised)", status: "posted" } as Rec),
    check: ["date", "currency", "lines", "memo", "status"],
    // Posted by the update, so removing voids it.
    removed: "voided"
  },
  sales_receipt: {
    sample: (w) => ({
      entity: "sales_receipt", schemaVersion: 1, id: "sr", contactId: w.customer, depositAccountId: acc(w, "090"), date: "2026-03-05", currency: "USD", lineAmountTypes: "inclusive",
      lines: [{ description: "Counter sale", amount: 55_00, accountId: acc(w, "200"), taxRateId: "OUTPUT", taxAmount: 500 }], reference: "POS 1", status: "active"
    }),
    change: (r) => ({ ...r, reference: "POS 1 (corrected)" } as Rec),
    check: ["contactId", "depositAccountId", "date", "currency", "lineAmountTypes", "lines", "reference", "status"],
    removed: "deleted"
  },
  expense: {
    sample: (w) => ({
      entity: "expense", schemaVersion: 1, id: "e", contactId: w.vendor, paymentAccountId: acc(w, "092"), paymentType: "credit_card", date: "2026-03-06", currency: "USD", lineAmountTypes: "no_tax",
      lines: [{ description: "Ads", amount: 80_00, accountId: acc(w, "400") }], status: "active"
    }),
    change: (r) => ({ ...r, reference: "Receipt 44" } as Rec),
    check: ["contactId", "paymentAccountId", "date", "lines", "status"],
    removed: "deleted"
  },
  transfer: {
    sample: (w) => ({ entity: "transfer", schemaVersion: 1, id: "tr", date: "2026-03-07", currency: "USD", fromAccountId: acc(w, "090"), toAccountId: acc(w, "091"), amount: 500_00, reference: "to savings", status: "active" }),
    check: ["date", "fromAccountId", "toAccountId", "amount", "reference", "status"],
    removed: "deleted"
  }
}

const pick = (r: Rec, fields: ReadonlyArray<string>) => {
  const out: Record<string, unknown> = {}
  for (const f of fields) {
    const v = (r as Record<string, unknown>)[f]
    if (v !== undefined) out[f] = f === "lines" ? (v as Array<Record<string, unknown>>).map(({ lineId: _l, ...rest }) => rest) : v
  }
  return out
}

describe("Xero contract: every supported entity", () => {
  it("supports the entities Xero has, and says why not the others", () => {
    expect(Object.keys(Xero.entities).sort()).toEqual([...M.supported].sort())
    expect(M.unsupportedReasons.refund).toMatch(/credit_note/)
    expect(M.unsupportedReasons.deposit).toMatch(/Xero has no deposit/)
  })

  for (const entity of M.supported) {
    const c = cases[entity]
    it.live(`${entity}: create, read, update, stale update keeps the concurrent edit, remove`, () =>
      Effect.gen(function*() {
        const h = yield* harness()
        const w = yield* world(h)
        const sample = c.sample(w)
        const created = yield* create(h.client, sample)
        expect(created.entity).toBe(entity)
        expect(pick(created.record, c.check)).toEqual(pick(sample, c.check))
        const again = yield* h.client.read(entity, created.externalId)
        expect(again.version).toBe(created.version)
        expect(again.record).toEqual(created.record)

        if (c.change !== undefined) {
          const desired = c.change(created.record)
          const [u] = yield* h.client.write([{ _tag: "Update", entity, externalId: created.externalId, version: created.version, record: desired, idempotencyKey: key("upd") }])
          const updated = written(u)
          expect(pick(updated.record, c.check)).toEqual(pick(desired, c.check))
          expect(updated.version).not.toBe(created.version)

          // An accountant edits the record in Xero; our update based on the older version must not overwrite it.
          h.sandbox.accountantEdit(h.tenant, entity, created.externalId)
          const edited = yield* h.client.read(entity, created.externalId)
          expect(edited.version).not.toBe(updated.version)
          const [stale] = yield* h.client.write([{ _tag: "Update", entity, externalId: created.externalId, version: updated.version, record: c.change(desired), idempotencyKey: key("stale") }])
          expect(stale?._tag).toBe("Failed")
          if (stale?._tag === "Failed") {
            expect(stale.error._tag).toBe("StaleVersion")
            if (stale.error._tag === "StaleVersion") expect(stale.error.currentVersion).toBe(edited.version)
          }
          const after = yield* h.client.read(entity, created.externalId)
          expect(after.version).toBe(edited.version)
          expect(after.record).toEqual(edited.record)
        } else {
          const [u] = yield* h.client.write([{ _tag: "Update", entity, externalId: created.externalId, version: created.version, record: created.record, idempotencyKey: key("upd") }])
          expect(u?._tag === "Failed" && u.error._tag).toBe("Unsupported")
        }

        const current = yield* h.client.read(entity, created.externalId)
        const [r] = yield* h.client.write([{ _tag: "Remove", entity, externalId: created.externalId, version: current.version, idempotencyKey: key("rm") }])
        if (capabilities[entity].remove === "none") {
          expect(r?._tag === "Failed" && r.error._tag).toBe("Unsupported")
        } else if (c.removed === undefined) {
          expect(r?._tag).toBe("Removed")
          const gone = yield* Effect.flip(h.client.read(entity, created.externalId))
          expect(gone._tag).toBe("NotFound")
        } else {
          expect(r?._tag).toBe("Removed")
          const removed = yield* h.client.read(entity, created.externalId)
          expect((removed.record as { status: string }).status).toBe(c.removed)
        }
      }))
  }

  it.live("a stale remove is refused and the record stays", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const w = yield* world(h)
      const inv = yield* h.client.read("invoice", w.invoice)
      h.sandbox.accountantEdit(h.tenant, "invoice", w.invoice)
      const [r] = yield* h.client.write([{ _tag: "Remove", entity: "invoice", externalId: w.invoice, version: inv.version, idempotencyKey: key("rm") }])
      expect(r?._tag === "Failed" && r.error._tag).toBe("StaleVersion")
      expect(((yield* h.client.read("invoice", w.invoice)).record as { status: string }).status).toBe("authorised")
    }))

  it.live("removing a record that is removed already succeeds without asking Xero to void it again", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const w = yield* world(h)
      const inv = yield* h.client.read("invoice", w.invoice)
      const [first] = yield* h.client.write([{ _tag: "Remove", entity: "invoice", externalId: w.invoice, version: inv.version, idempotencyKey: key("rm1") }])
      expect(first?._tag).toBe("Removed")
      // Our first answer was lost: the retry, under another key, finds it voided.
      const voided = yield* h.client.read("invoice", w.invoice)
      const [again] = yield* h.client.write([{ _tag: "Remove", entity: "invoice", externalId: w.invoice, version: voided.version, idempotencyKey: key("rm2") }])
      expect(again?._tag).toBe("Removed")
      expect(((yield* h.client.read("invoice", w.invoice)).record as { status: string }).status).toBe("voided")
    }))

  it.live("an id of another kind: reading an invoice id that is a bill answers the bill", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const w = yield* world(h)
      const r = yield* h.client.read("invoice", w.bill)
      expect(r.entity).toBe("bill")
      const missing = yield* Effect.flip(h.client.read("contact", "00000000-0000-0000-0000-000000000000"))
      expect(missing._tag).toBe("NotFound")
    }))

  it.live("entities Xero lacks are refused with the reason, without a request", () =>
    Effect.gen(function*() {
      const h = yield* harness()
      const before = h.sandbox.stats.requests
      const [r] = yield* h.client.write([{
        _tag: "Create", entity: "deposit", idempotencyKey: key("dep"),
        record: { entity: "deposit", schemaVersion: 1, id: "d", date: "2026-01-01", currency: "USD", accountId: "x", lines: [{ amount: 100 }], status: "active" }
      }])
      expect(r?._tag === "Failed" && r.error._tag).toBe("Unsupported")
      expect(h.sandbox.stats.requests).toBe(before)
      const err = yield* Effect.flip(Stream.runCollect(h.client.list("refund")))
      expect(err._tag).toBe("Unsupported")
    }))
})
