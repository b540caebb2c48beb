import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Canonical from "../src/Canonical.ts"
import * as Refs from "../src/Refs.ts"

export const sampleInvoice = {
  entity: "invoice",
  schemaVersion: 1,
  id: "inv-1001",
  number: "INV-1001",
  contactId: "cust-7",
  date: "2026-03-01",
  dueDate: "2026-03-31",
  currency: "USD",
  lineAmountTypes: "exclusive",
  lines: [
    { lineId: "l1", itemId: "widget", quantity: "2", unitPrice: "12.50", amount: 2500, accountId: "4000", taxRateId: "tx-ny", taxAmount: 222, trackingIds: ["loc-bk"] },
    { lineId: "l2", description: "Shipping", amount: 500, accountId: "4010" }
  ],
  subtotal: 3000,
  totalTax: 222,
  total: 3222,
  status: "authorised",
  customFields: { "Order ID": "A-77", rush: true }
}

const journal = (lines: Array<Record<string, unknown>>) => ({
  entity: "journal_entry",
  schemaVersion: 1,
  id: "je-1",
  date: "2026-03-01",
  currency: "USD",
  lines,
  status: "posted"
})

describe("canonical vocabulary v1", () => {
  it("has at least 18 entity types, each with a schema", () => {
    expect(Canonical.entityTypes.length).toBeGreaterThanOrEqual(18)
    for (const e of Canonical.entityTypes) expect(Canonical.schemas[e]).toBeDefined()
  })

  it.effect("accepts a valid invoice and normalises its decimals", () =>
    Effect.gen(function*() {
      const inv = yield* Canonical.decodeRecord(sampleInvoice)
      expect(inv.entity).toBe("invoice")
      if (inv.entity === "invoice") expect(inv.lines[0]?.unitPrice).toBe("12.5")
    }))

  it.effect("refuses a record with the path of every bad field", () =>
    Effect.gen(function*() {
      const bad = {
        ...sampleInvoice,
        currency: "DOLLARS",
        date: "2026-02-30",
        lines: [{ ...sampleInvoice.lines[0], amount: 12.5 }, { amount: "x" }],
        status: "open",
        colour: "red"
      }
      const error = yield* Effect.flip(Canonical.decodeRecord(bad, "invoice inv-1001"))
      const paths = error.issues.map((i) => i.path).sort()
      expect(paths).toEqual(["colour", "currency", "date", "lines[0].amount", "lines[1].amount", "status"])
      expect(error.message).toContain("invoice inv-1001 is invalid")
      expect(error.message).toContain("ISO 4217")
    }))

  it.effect("checks totals against the lines", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Canonical.decodeRecord({ ...sampleInvoice, total: 9999 }))
      expect(error.issues).toEqual([{ path: "total", message: "total 9999 does not equal line amounts 3000 plus tax 222" }])
    }))

  it.effect("refuses a journal whose debits do not equal its credits, per currency", () =>
    Effect.gen(function*() {
      const ok = journal([
        { postingType: "debit", accountId: "1200", amount: 1000 },
        { postingType: "credit", accountId: "4000", amount: 1000 },
        { postingType: "debit", accountId: "1210", amount: 500, currency: "EUR" },
        { postingType: "credit", accountId: "4000", amount: 500, currency: "EUR" }
      ])
      yield* Canonical.decodeRecord(ok)
      const bad = journal([
        { postingType: "debit", accountId: "1200", amount: 1000 },
        { postingType: "credit", accountId: "4000", amount: 1000 },
        { postingType: "debit", accountId: "1210", amount: 500, currency: "EUR" },
        { postingType: "credit", accountId: "4000", amount: 400, currency: "EUR" }
      ])
      const error = yield* Effect.flip(Canonical.decodeRecord(bad))
      expect(error.issues).toEqual([
        { path: "lines", message: "debits (500) do not equal credits (400) in EUR; difference 100 minor units" }
      ])
    }))

  it.effect("names an unknown entity type", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(Canonical.decodeRecord({ entity: "purchase_order" }))
      expect(error.issues[0]?.path).toBe("entity")
    }))

  it.effect("validates every entity type with a representative record", () =>
    Effect.gen(function*() {
      const v = { schemaVersion: 1 } as const
      const records: Array<Record<string, unknown>> = [
        { ...v, entity: "account", id: "4000", code: "4000", name: "Sales", type: "revenue", status: "active" },
        { ...v, entity: "contact", id: "c1", name: "Ada", roles: ["customer"], email: "ada@example.com", status: "active" },
        { ...v, entity: "item", id: "i1", name: "Widget", type: "inventory", salesPrice: "12.5", salesAccountId: "4000", status: "active" },
        { ...v, entity: "tax_rate", id: "t1", name: "NY", rate: "8.875", status: "active" },
        { ...v, entity: "currency", id: "EUR", code: "EUR", exchangeRate: "1.08", status: "active" },
        { ...v, entity: "tracking_category", id: "k1", name: "Brooklyn", kind: "location", status: "active" },
        sampleInvoice,
        { ...sampleInvoice, entity: "bill", id: "b1" },
        { ...sampleInvoice, entity: "credit_note", id: "cn1" },
        { ...sampleInvoice, entity: "vendor_credit", id: "vc1" },
        { ...v, entity: "payment", id: "p1", contactId: "c1", date: "2026-03-02", currency: "USD", amount: 3222, accountId: "1000", allocations: [{ documentType: "invoice", documentId: "inv-1001", amount: 3222 }], status: "active" },
        { ...v, entity: "bill_payment", id: "bp1", contactId: "c1", date: "2026-03-02", currency: "USD", amount: 100, accountId: "1000", allocations: [{ documentType: "bill", documentId: "b1", amount: 100 }], status: "active" },
        journal([{ postingType: "debit", accountId: "1", amount: 1 }, { postingType: "credit", accountId: "2", amount: 1 }]),
        { ...v, entity: "sales_receipt", id: "sr1", date: "2026-03-01", currency: "USD", lineAmountTypes: "exclusive", lines: [{ amount: 100, accountId: "4000" }], depositAccountId: "1200", status: "active" },
        { ...v, entity: "refund", id: "r1", date: "2026-03-01", currency: "USD", lineAmountTypes: "exclusive", lines: [{ amount: 100, accountId: "4000" }], refundFromAccountId: "1200", status: "active" },
        { ...v, entity: "deposit", id: "d1", date: "2026-03-01", currency: "USD", accountId: "1000", lines: [{ amount: 100, accountId: "1200" }], total: 100, status: "active" },
        { ...v, entity: "transfer", id: "tr1", date: "2026-03-01", currency: "USD", fromAccountId: "1000", toAccountId: "1010", amount: 100, status: "active" },
        { ...v, entity: "expense", id: "e1", date: "2026-03-01", currency: "USD", lineAmountTypes: "no_tax", lines: [{ amount: 100, accountId: "6000" }], paymentAccountId: "1000", paymentType: "credit_card", status: "active" }
      ]
      const seen = new Set<string>()
      for (const r of records) {
        const decoded = yield* Canonical.decodeRecord(r)
        seen.add(decoded.entity)
      }
      expect([...seen].sort()).toEqual([...Canonical.entityTypes].sort())
    }))

  it.effect("lists and rewrites references", () =>
    Effect.gen(function*() {
      const inv = yield* Canonical.decodeRecord(sampleInvoice)
      expect(Refs.refsOf(inv).map((r) => `${r.entity}:${r.id}@${r.path}`)).toEqual([
        "contact:cust-7@contactId",
        "item:widget@lines[0].itemId",
        "account:4000@lines[0].accountId",
        "account:4010@lines[1].accountId",
        "tax_rate:tx-ny@lines[0].taxRateId",
        "tracking_category:loc-bk@lines[0].trackingIds[0]"
      ])
      const mapped = Refs.mapRefs(inv, (entity, id) => `${entity}/${id}`)
      expect(Refs.refsOf(mapped).map((r) => r.id)).toContain("account/4010")
      expect(Refs.refsOf(inv).map((r) => r.id)).toContain("4010")
      expect(Refs.mapRefs(inv, (_e, id) => id)).toBe(inv)
      expect(Refs.dependenciesOf("payment")).toEqual(expect.arrayContaining(["contact", "account", "invoice", "credit_note"]))
    }))
})
