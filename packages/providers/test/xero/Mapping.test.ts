/**
 * Mapping round trips, property-based: for every entity Xero supports,
 * canonical → wire → canonical gives back the record's projection to the
 * fields Xero stores (and the result is a valid canonical record).
 */
import { describe, expect, it } from "@effect/vitest"
import { Canonical, Money } from "@concord/core"
import fc from "fast-check"
import * as M from "../../src/xero/Mapping.ts"
import * as W from "../../src/xero/Wire.ts"

const guid = fc.uuid()
const accounts: ReadonlyArray<W.Account> = [
  { AccountID: "a-bank", Code: "090", Name: "Bank", Type: "BANK", BankAccountType: "BANK", CurrencyCode: "USD" },
  { AccountID: "a-bank2", Code: "091", Name: "Savings", Type: "BANK", BankAccountType: "BANK", CurrencyCode: "USD" },
  { AccountID: "a-sales", Code: "200", Name: "Sales", Type: "REVENUE" },
  { AccountID: "a-cogs", Code: "310", Name: "COGS", Type: "DIRECTCOSTS" },
  { AccountID: "a-inv", Code: "630", Name: "Inventory", Type: "INVENTORY" },
  { AccountID: "a-exp", Code: "429", Name: "General", Type: "OVERHEADS" }
]
const items: ReadonlyArray<W.Item> = [{ ItemID: "i-1", Code: "BEANS" }, { ItemID: "i-2", Code: "MUG" }]
const lookup = M.makeLookup(accounts, items, "USD")
const accountId = fc.constantFrom(...accounts.map((a) => a.AccountID as string))
const bankId = fc.constantFrom("a-bank", "a-bank2")
const text = (max: number) => fc.string({ minLength: 1, maxLength: max }).filter((s) => s.trim() === s && s.length > 0 && !/[\u0000-\u001f]/.test(s))
const date = fc.date({ min: new Date("2000-01-01"), max: new Date("2035-12-31"), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10))
const currency = fc.constantFrom("USD", "EUR", "JPY", "KWD", "GBP")
const decimal = fc.tuple(fc.integer({ min: 0, max: 99_999 }), fc.integer({ min: 0, max: 9_999 })).map(([i, f]) => `${i}.${String(f).padStart(4, "0")}`.replace(/\.?0+$/, "") || "0")
const status = <T extends string>(...s: ReadonlyArray<T>) => fc.constantFrom(...s)
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined })
const option = fc.tuple(guid, guid).map(([c, o]) => M.optionId(c, o))

const clean = <T extends Record<string, unknown>>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T

const line = (discounts: boolean) =>
  fc.record({
    lineId: optional(guid),
    description: optional(text(40)),
    itemId: optional(fc.constantFrom("i-1", "i-2")),
    quantity: optional(decimal),
    unitPrice: optional(decimal),
    discountAmount: discounts ? optional(fc.integer({ min: 1, max: 10_000 })) : fc.constant(undefined),
    amount: fc.integer({ min: 0, max: 10_000_000 }),
    accountId: optional(accountId),
    taxRateId: optional(fc.constantFrom("OUTPUT", "INPUT", "TAX001")),
    taxAmount: optional(fc.integer({ min: 1, max: 100_000 })),
    trackingIds: optional(fc.array(option, { minLength: 1, maxLength: 2 }))
  }).map((l) => clean(l))

const document = (entity: "invoice" | "bill" | "credit_note" | "vendor_credit") =>
  fc.record({
    id: guid, number: optional(text(20)), contactId: guid, date, dueDate: optional(fc.constant("2036-01-01")), currency,
    exchangeRate: optional(decimal.filter((d) => d !== "0")), lineAmountTypes: fc.constantFrom("exclusive", "inclusive", "no_tax"),
    lines: fc.array(line(entity === "invoice"), { minLength: 1, maxLength: 4 }),
    reference: entity === "invoice" || entity === "credit_note" ? optional(text(30)) : fc.constant(undefined),
    status: status("draft", "submitted", "authorised", "paid", "voided", "deleted"),
    withTotals: fc.boolean(), totalTax: fc.integer({ min: 0, max: 100_000 })
  }).map(({ withTotals, totalTax, ...d }) => {
    const sum = d.lines.reduce((s, l) => s + l.amount, 0)
    return clean({
      entity, schemaVersion: 1, ...d,
      ...(withTotals ? { subtotal: sum, totalTax, total: d.lineAmountTypes === "exclusive" ? sum + totalTax : sum } : {})
    })
  })

const journalLine = fc.record({
  postingType: fc.constant("debit" as const), accountId, amount: fc.integer({ min: 1, max: 1_000_000 }),
  description: optional(text(40)), taxRateId: optional(fc.constantFrom("OUTPUT", "INPUT")), taxAmount: optional(fc.integer({ min: 1, max: 1000 })),
  trackingIds: optional(fc.array(option, { minLength: 1, maxLength: 2 }))
}).map((l) => clean(l))

const arbitraries: Readonly<Record<M.Supported, fc.Arbitrary<Record<string, unknown>>>> = {
  account: fc.record({
    id: guid, code: text(10), name: text(60), type: fc.constantFrom("bank", "credit_card", "current_asset", "fixed_asset", "non_current_asset", "inventory", "prepayment", "current_liability", "non_current_liability", "equity", "revenue", "other_income", "cost_of_sales", "expense", "other_expense", "depreciation"),
    description: optional(text(60)), taxRateId: optional(fc.constantFrom("OUTPUT", "NONE")), status: status("active", "archived"), cur: optional(currency), num: optional(text(20))
  }).map(({ cur, num, ...a }) => clean({ entity: "account", schemaVersion: 1, ...a, ...(a.type === "bank" || a.type === "credit_card" ? { currency: cur, bankAccountNumber: num } : {}) })),
  contact: fc.record({
    id: guid, name: text(60), firstName: optional(text(20)), lastName: optional(text(20)), email: optional(fc.constantFrom("a@b.co", "x.y@example.com")), phone: optional(text(15)),
    taxNumber: optional(text(15)), currency: optional(currency), status: status("active", "archived"),
    billingAddress: optional(fc.record({ line1: optional(text(30)), city: optional(text(20)), postalCode: optional(text(8)), country: optional(text(10)) }).map(clean).filter((a) => Object.keys(a).length > 0)),
    shippingAddress: optional(fc.record({ line1: optional(text(30)), line2: optional(text(30)), region: optional(text(20)) }).map(clean).filter((a) => Object.keys(a).length > 0))
  }).map((c) => clean({ entity: "contact", schemaVersion: 1, roles: ["customer"], ...c })),
  item: fc.record({
    id: guid, code: text(30), name: text(50), description: optional(text(60)), salesPrice: optional(decimal), salesAccountId: optional(accountId),
    purchasePrice: optional(decimal), purchaseAccountId: optional(accountId), inventoryAccountId: optional(fc.constant("a-inv")), taxRateId: optional(fc.constantFrom("OUTPUT"))
  }).map((i) => clean({ entity: "item", schemaVersion: 1, type: "non_inventory", status: "active", ...i })),
  tax_rate: fc.record({
    id: fc.constantFrom("TAX001", "TAX002", "OUTPUT"), name: text(40), status: status("active", "archived"),
    components: optional(fc.array(fc.record({ name: text(20), rate: decimal }), { minLength: 2, maxLength: 3 }))
  }).map(({ components, ...t }) => {
    const rate = components === undefined ? "7.5" : components.reduce((s, c) => s + Number(c.rate), 0).toFixed(4).replace(/\.?0+$/, "")
    return clean({ entity: "tax_rate", schemaVersion: 1, ...t, rate, components })
  }),
  currency: fc.record({ code: currency, name: optional(text(30)) }).map((c) => clean({ entity: "currency", schemaVersion: 1, id: c.code, status: "active", ...c })),
  tracking_category: fc.record({ id: guid, name: text(40), status: status("active", "archived") }).map((t) => ({ entity: "tracking_category", schemaVersion: 1, kind: "custom", ...t })),
  invoice: document("invoice"),
  bill: document("bill"),
  credit_note: document("credit_note"),
  vendor_credit: document("vendor_credit"),
  payment: fc.record({ id: guid, contactId: guid, date, currency, exchangeRate: optional(decimal.filter((d) => d !== "0")), amount: fc.integer({ min: 1, max: 10_000_000 }), accountId: bankId, reference: optional(text(30)), doc: guid, onInvoice: fc.boolean(), status: status("active", "deleted") })
    .map(({ doc, onInvoice, ...p }) => clean({ entity: "payment", schemaVersion: 1, ...p, allocations: [{ documentType: onInvoice ? "invoice" : "credit_note", documentId: doc, amount: p.amount }] })),
  bill_payment: fc.record({ id: guid, contactId: guid, date, currency, amount: fc.integer({ min: 1, max: 10_000_000 }), accountId: bankId, reference: optional(text(30)), doc: guid, onBill: fc.boolean(), status: status("active", "deleted") })
    .map(({ doc, onBill, ...p }) => clean({ entity: "bill_payment", schemaVersion: 1, ...p, allocations: [{ documentType: onBill ? "bill" : "vendor_credit", documentId: doc, amount: p.amount }] })),
  journal_entry: fc.record({ id: guid, date, memo: text(60), debits: fc.array(journalLine, { minLength: 1, maxLength: 3 }), credit: accountId, status: status("draft", "posted", "voided", "deleted") })
    .map(({ debits, credit, ...j }) => ({
      entity: "journal_entry", schemaVersion: 1, currency: "USD", ...j,
      lines: [...debits, { postingType: "credit", accountId: credit, amount: debits.reduce((s, l) => s + l.amount, 0) }]
    })),
  sales_receipt: fc.record({ id: guid, contactId: guid, depositAccountId: bankId, date, currency, lineAmountTypes: fc.constantFrom("exclusive", "inclusive", "no_tax"), lines: fc.array(line(false), { minLength: 1, maxLength: 3 }), reference: optional(text(30)), status: status("active", "voided", "deleted") })
    .map((r) => clean({ entity: "sales_receipt", schemaVersion: 1, ...r })),
  expense: fc.record({ id: guid, contactId: guid, paymentAccountId: bankId, date, currency, lineAmountTypes: fc.constantFrom("exclusive", "no_tax"), lines: fc.array(line(false), { minLength: 1, maxLength: 3 }), reference: optional(text(30)), status: status("active", "voided", "deleted") })
    .map((r) => clean({ entity: "expense", schemaVersion: 1, paymentType: "cash", ...r })),
  transfer: fc.record({ id: guid, date, amount: fc.integer({ min: 1, max: 10_000_000 }), reference: optional(text(30)), status: status("active", "deleted"), forward: fc.boolean() })
    .map(({ forward, ...t }) => clean({ entity: "transfer", schemaVersion: 1, currency: "USD", fromAccountId: forward ? "a-bank" : "a-bank2", toAccountId: forward ? "a-bank2" : "a-bank", ...t }))
}

/** Wire JSON as Xero echoes it: the body through JSON, with the id set, decoded by the response schema. */
const echo = (collection: W.Collection, body: Record<string, unknown>, id: string) => {
  const withId = M.withId(collection, JSON.parse(JSON.stringify(body)) as Record<string, unknown>, id)
  const decoded = W.Responses[collection]
  return ((decodedSync(decoded, { [collection]: [withId] }) as Record<string, unknown>)[collection] as Array<Record<string, unknown>>)[0] as Record<string, unknown>
}
import { Schema } from "effect"
const decodedSync = (schema: Schema.Top, input: unknown) => Schema.decodeUnknownSync(schema as Schema.Codec<unknown>)(input)

describe("Xero mapping round trips (property-based)", () => {
  for (const entity of M.supported) {
    it(`${entity}: canonical → wire → canonical keeps every field Xero stores`, () => {
      fc.assert(fc.property(arbitraries[entity], (input) => {
        const valid = Canonical.validate(entity, input)
        if (!valid.ok) throw new Error(`generator made an invalid ${entity}: ${JSON.stringify(valid.issues)}`)
        const record = valid.value as Canonical.CanonicalRecord
        const out = M.toWire(record, lookup)
        if (!out.ok) throw new Error(`toWire failed: ${out.reason}`)
        const wire = echo(out.value.collection, out.value.body, record.id)
        const back = entity === "tracking_category" ? M.fromWire("TrackingCategories", wire, lookup, "2026-01-01T00:00:00.000Z") : M.fromWire(out.value.collection, wire, lookup, "2026-01-01T00:00:00.000Z")
        if (!back.ok) throw new Error(`fromWire failed: ${back.reason}`)
        expect(M.projection(back.value.record)).toEqual(M.projection(record))
        expect(Canonical.validate(entity, back.value.record).ok).toBe(true)
      }), { numRuns: 150 })
    })
  }

  it("tracking options round-trip under their category", () => {
    fc.assert(fc.property(guid, guid, text(40), fc.constantFrom("ACTIVE", "ARCHIVED"), (cat, opt, name, st) => {
      const back = M.fromWireOption(cat, { TrackingOptionID: opt, Name: name, Status: st as "ACTIVE" }, "2026-01-01T00:00:00.000Z")
      expect(back.ok && back.value.record).toEqual({ entity: "tracking_category", schemaVersion: 1, id: `${cat}:${opt}`, name, kind: "custom", parentId: cat, status: st === "ACTIVE" ? "active" : "archived" })
    }))
  })

  it("things Xero cannot hold are refused with the reason, never silently dropped", () => {
    const pay = { entity: "payment", schemaVersion: 1, id: "p", contactId: "c", date: "2026-01-01", currency: "USD", amount: 300, accountId: "a-bank", allocations: [{ documentType: "invoice", documentId: "i1", amount: 100 }, { documentType: "invoice", documentId: "i2", amount: 200 }], status: "active" } as const
    expect(M.toWire(pay, lookup)).toMatchObject({ ok: false, reason: expect.stringMatching(/exactly one/) })
    const je = { entity: "journal_entry", schemaVersion: 1, id: "j", date: "2026-01-01", currency: "EUR", memo: "x", lines: [{ postingType: "debit", accountId: "a-sales", amount: 1 }, { postingType: "credit", accountId: "a-exp", amount: 1 }], status: "draft" } as const
    expect(M.toWire(je, lookup)).toMatchObject({ ok: false, reason: expect.stringMatching(/base currency USD/) })
    expect(M.toWire({ ...je, currency: "USD", memo: undefined } as never, lookup)).toMatchObject({ ok: false, reason: expect.stringMatching(/narration/) })
    const unknownAccount = { ...je, currency: "USD", lines: [{ postingType: "debit", accountId: "nope", amount: 1 }, { postingType: "credit", accountId: "a-exp", amount: 1 }] } as never
    expect(M.toWire(unknownAccount, lookup)).toMatchObject({ ok: false, missing: "account" })
    expect(M.toWire({ entity: "refund" } as never, lookup)).toMatchObject({ ok: false, reason: expect.stringMatching(/no refund document/) })
    // Amounts follow the currency's minor unit.
    expect(Money.toMajorNumber(1234, "JPY")).toBe(1234)
  })

  it("reads Xero's own dates and versions", () => {
    expect(W.localDateOf("/Date(1539993600000+0000)/")).toBe("2018-10-20")
    expect(W.localDateOf("2019-03-11T00:00:00")).toBe("2019-03-11")
    expect(W.isoOfMsDate("/Date(1541176290160+0000)/")).toBe("2018-11-02T16:31:30.160Z")
    expect(M.versionOf({ UpdatedDateUTC: "/Date(1541176290160+0000)/" })).toBe("2018-11-02T16:31:30.160Z")
    expect(M.versionOf({ Code: "EUR" })).toMatch(/^h:[0-9a-f]{32}$/)
  })
})
