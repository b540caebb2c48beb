/**
 * Canonical → QuickBooks wire → canonical is the identity on the fields
 * QuickBooks stores (`Mapping.fields`), for every entity, over generated
 * records. The wire value goes through JSON and the Wire schemas on the way,
 * exactly as the adapter receives it.
 */
import { describe, expect, it } from "@effect/vitest"
import { Canonical } from "@concord/core"
import { Schema } from "effect"
import fc from "fast-check"
import * as Mapping from "../../src/quickbooks/Mapping.ts"
import * as Wire from "../../src/quickbooks/Wire.ts"

type Rec = Canonical.CanonicalRecord

// --- building blocks ---------------------------------------------------------

const num = fc.integer({ min: 1, max: 99999 }).map(String)
const text = (max = 40) => fc.string({ minLength: 1, maxLength: max }).filter((s) => s.trim() === s && s.trim().length > 0 && !/[\u0000-\u001f]/.test(s))
const opt = <A>(arb: fc.Arbitrary<A>) => fc.option(arb, { nil: undefined })
const date = fc.date({ min: new Date("2000-01-01T00:00:00Z"), max: new Date("2035-12-31T00:00:00Z"), noInvalidDate: true }).map((d) => d.toISOString().slice(0, 10))
const currency = fc.constantFrom("USD", "EUR", "GBP", "JPY", "KWD", "CAD")
const decimal = fc.tuple(fc.integer({ min: 0, max: 999999 }), fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 0, max: 4 })).map(([i, f, scale]) =>
  scale === 0 ? String(i) : `${i}.${String(f).padStart(4, "0").slice(0, scale)}`.replace(/\.?0+$/, "") || "0"
)
const amount = fc.integer({ min: -50_000_000, max: 50_000_000 })
const positive = fc.integer({ min: 1, max: 50_000_000 })
const status = fc.constantFrom("active" as const, "archived" as const)
const contactId = fc.tuple(fc.constantFrom("customer", "vendor"), num).map(([k, n]) => `${k}:${n}`)
const customFields = opt(fc.dictionary(text(20), fc.oneof(text(30), fc.integer({ min: -1000, max: 1000 }), fc.boolean()), { minKeys: 1, maxKeys: 3 }))

/** Drops undefined members, as a decoded canonical record has none. */
const clean = <A extends object>(o: A): A => JSON.parse(JSON.stringify(o)) as A

const address = opt(
  fc.record({ line1: opt(text()), line2: opt(text()), city: opt(text()), region: opt(text(10)), postalCode: opt(text(10)), country: opt(text(20)) }).map(clean).filter((a) => Object.keys(a).length > 0)
)

/** Tracking ids: one optional class per line, one optional department shared by every line. */
const withTracking = <L extends object>(lines: fc.Arbitrary<Array<L>>): fc.Arbitrary<Array<L & { trackingIds?: Array<string> }>> =>
  fc.tuple(lines, opt(num)).chain(([ls, dept]) =>
    fc.tuple(...ls.map(() => opt(num))).map((classes) =>
      ls.map((l, i) => {
        const ids = [...(classes[i] === undefined ? [] : [`class:${classes[i]}`]), ...(dept === undefined ? [] : [`department:${dept}`])]
        return clean({ ...l, trackingIds: ids.length === 0 ? undefined : ids }) as L & { trackingIds?: Array<string> }
      })
    )
  )

const salesLine = fc.record({
  lineId: opt(num),
  description: opt(text()),
  itemId: opt(num),
  quantity: opt(decimal),
  unitPrice: opt(decimal),
  discountAmount: opt(fc.integer({ min: 0, max: 100000 })),
  amount,
  accountId: opt(num),
  taxRateId: opt(num)
})

const purchaseLine = fc.oneof(
  fc.record({ lineId: opt(num), description: opt(text()), itemId: num, quantity: opt(decimal), unitPrice: opt(decimal), amount, accountId: opt(num), taxRateId: opt(num) }),
  fc.record({ lineId: opt(num), description: opt(text()), amount, accountId: num, taxRateId: opt(num), taxAmount: opt(amount) })
)

const docBase = fc.record({
  schemaVersion: fc.constant(1 as const),
  id: num,
  number: opt(text(20)),
  date,
  currency,
  exchangeRate: opt(decimal.filter((d) => d !== "0")),
  lineAmountTypes: fc.constantFrom("exclusive" as const, "inclusive" as const, "no_tax" as const),
  totalTax: opt(positive),
  memo: opt(text(100))
})

const lines1 = <A>(arb: fc.Arbitrary<A>) => fc.array(arb, { minLength: 1, maxLength: 4 })

// --- one generator per entity -------------------------------------------------

const arbitraries: { [K in Canonical.EntityType]: fc.Arbitrary<Rec> } = {
  account: fc.record({
    entity: fc.constant("account" as const),
    schemaVersion: fc.constant(1 as const),
    id: num,
    code: text(30),
    name: text(100),
    type: fc.constantFrom(...(["bank", "accounts_receivable", "current_asset", "fixed_asset", "non_current_asset", "inventory", "prepayment", "accounts_payable", "credit_card", "current_liability", "non_current_liability", "equity", "revenue", "other_income", "cost_of_sales", "expense", "other_expense", "depreciation"] as const)),
    description: opt(text(200)),
    currency: opt(fc.constantFrom("EUR", "GBP", "JPY")),
    taxRateId: opt(num),
    bankAccountNumber: opt(text(20)),
    status
  }).map(clean),
  contact: fc.tuple(fc.constantFrom("customer" as const, "vendor" as const), num).chain(([role, n]) =>
    fc.record({
      entity: fc.constant("contact" as const),
      schemaVersion: fc.constant(1 as const),
      id: fc.constant(`${role}:${n}`),
      name: text(100),
      roles: fc.constant([role]),
      companyName: opt(text()),
      firstName: opt(text()),
      lastName: opt(text()),
      email: opt(fc.tuple(fc.stringMatching(/^[a-z0-9.]{1,10}$/), fc.stringMatching(/^[a-z]{1,8}\.[a-z]{2,3}$/)).map(([a, b]) => `${a}@${b}`)),
      phone: opt(text(20)),
      taxNumber: opt(text(20)),
      currency: opt(fc.constantFrom("EUR", "GBP")),
      billingAddress: address,
      shippingAddress: address,
      status
    }).map(clean)
  ),
  item: fc.record({
    entity: fc.constant("item" as const),
    schemaVersion: fc.constant(1 as const),
    id: num,
    code: opt(text(30)),
    name: text(100),
    description: opt(text()),
    type: fc.constantFrom("inventory" as const, "non_inventory" as const, "service" as const),
    salesPrice: opt(decimal),
    salesAccountId: opt(num),
    purchasePrice: opt(decimal),
    purchaseAccountId: opt(num),
    inventoryAccountId: opt(num),
    taxRateId: opt(num),
    quantityOnHand: opt(decimal),
    status
  }).map(clean),
  tax_rate: fc.record({
    entity: fc.constant("tax_rate" as const),
    schemaVersion: fc.constant(1 as const),
    id: num,
    name: text(100),
    components: fc.array(fc.record({ name: text(50), rate: decimal }), { minLength: 1, maxLength: 3 }),
    appliesTo: fc.constantFrom("sales" as const, "purchases" as const, "both" as const),
    status
  }).map((r) => {
    const scale = Math.max(...r.components.map((c) => (c.rate.split(".")[1] ?? "").length))
    const sum = r.components.reduce((s, c) => s + BigInt(c.rate.replace(".", "").padEnd(c.rate.split(".")[0]!.length + scale, "0")), 0n)
    const s = sum.toString().padStart(scale + 1, "0")
    const rate = scale === 0 ? s : `${s.slice(0, s.length - scale)}.${s.slice(s.length - scale)}`.replace(/\.?0+$/, "")
    return clean({ ...r, rate: rate.replace(/^0+(?=\d)/, "") || "0" })
  }),
  currency: fc.record({
    entity: fc.constant("currency" as const),
    schemaVersion: fc.constant(1 as const),
    id: num,
    code: fc.constantFrom("EUR", "GBP", "CAD", "JPY"),
    name: opt(text()),
    status
  }).map(clean),
  tracking_category: fc.constantFrom("class" as const, "department" as const).chain((kind) =>
    fc.record({
      entity: fc.constant("tracking_category" as const),
      schemaVersion: fc.constant(1 as const),
      id: num.map((n) => `${kind}:${n}`),
      name: text(100),
      kind: fc.constant(kind),
      parentId: opt(num.map((n) => `${kind}:${n}`)),
      status
    }).map(clean)
  ),
  invoice: fc.tuple(docBase, withTracking(lines1(salesLine)), num, opt(date), customFields).map(([d, lines, c, due, cf]) =>
    clean({ ...d, entity: "invoice" as const, lines, contactId: `customer:${c}`, dueDate: due === undefined || due < d.date ? undefined : due, customFields: cf, status: "authorised" as const })
  ),
  credit_note: fc.tuple(docBase, withTracking(lines1(salesLine)), num, customFields).map(([d, lines, c, cf]) =>
    clean({ ...d, entity: "credit_note" as const, lines, contactId: `customer:${c}`, customFields: cf, status: "authorised" as const })
  ),
  sales_receipt: fc.tuple(docBase, withTracking(lines1(salesLine)), opt(num), num, opt(text(20)), customFields).map(([d, lines, c, acct, ref, cf]) =>
    clean({ ...d, entity: "sales_receipt" as const, lines, contactId: c === undefined ? undefined : `customer:${c}`, depositAccountId: acct, reference: ref, customFields: cf, status: "active" as const })
  ),
  refund: fc.tuple(docBase, withTracking(lines1(salesLine)), opt(num), num, opt(text(20)), customFields).map(([d, lines, c, acct, ref, cf]) =>
    clean({ ...d, entity: "refund" as const, lines, contactId: c === undefined ? undefined : `customer:${c}`, refundFromAccountId: acct, reference: ref, customFields: cf, status: "active" as const })
  ),
  bill: fc.tuple(docBase, withTracking(lines1(purchaseLine)), num, opt(date)).map(([d, lines, v, due]) =>
    clean({ ...d, entity: "bill" as const, lines, contactId: `vendor:${v}`, dueDate: due === undefined || due < d.date ? undefined : due, status: "authorised" as const })
  ),
  vendor_credit: fc.tuple(docBase, withTracking(lines1(purchaseLine)), num).map(([d, lines, v]) =>
    clean({ ...d, entity: "vendor_credit" as const, lines, contactId: `vendor:${v}`, status: "authorised" as const })
  ),
  expense: fc.tuple(docBase, withTracking(lines1(purchaseLine)), opt(contactId), num, fc.constantFrom("cash" as const, "check" as const, "credit_card" as const), opt(text(20))).map(
    ([d, lines, c, acct, type, ref]) => clean({ ...d, entity: "expense" as const, lines, contactId: c, paymentAccountId: acct, paymentType: type, reference: ref, status: "active" as const })
  ),
  payment: fc.tuple(num, date, currency, opt(decimal.filter((d) => d !== "0")), fc.array(fc.record({ documentType: fc.constantFrom("invoice" as const, "credit_note" as const), documentId: num, amount: fc.integer({ min: 0, max: 1_000_000 }) }), { maxLength: 4 }), fc.integer({ min: 0, max: 1_000_000 }), num, opt(text(20)), opt(text(50)), num).map(
    ([id, d, cur, rate, allocations, extra, c, ref, memo, acct]) =>
      clean({
        entity: "payment" as const,
        schemaVersion: 1 as const,
        id,
        contactId: `customer:${c}`,
        date: d,
        currency: cur,
        exchangeRate: rate,
        amount: allocations.reduce((s, a) => s + a.amount, 0) + extra,
        accountId: acct,
        reference: ref,
        memo,
        allocations,
        status: "active" as const
      })
  ),
  bill_payment: fc.tuple(num, date, currency, fc.array(fc.record({ documentType: fc.constantFrom("bill" as const, "vendor_credit" as const), documentId: num, amount: fc.integer({ min: 0, max: 1_000_000 }) }), { maxLength: 4 }), fc.integer({ min: 0, max: 1_000_000 }), num, fc.constantFrom("check" as const, "credit_card" as const), opt(text(20)), opt(text(50)), num).map(
    ([id, d, cur, allocations, extra, v, type, ref, memo, acct]) =>
      clean({
        entity: "bill_payment" as const,
        schemaVersion: 1 as const,
        id,
        contactId: `vendor:${v}`,
        date: d,
        currency: cur,
        amount: allocations.reduce((s, a) => s + a.amount, 0) + extra,
        accountId: acct,
        paymentType: type,
        reference: ref,
        memo,
        allocations,
        status: "active" as const
      })
  ),
  journal_entry: fc.tuple(
    num,
    opt(text(20)),
    date,
    currency,
    fc.array(fc.record({ lineId: opt(num), accountId: num, amount: fc.integer({ min: 0, max: 10_000_000 }), description: opt(text()), contactId: opt(contactId), taxRateId: opt(num), taxAmount: opt(amount), cls: opt(num), dept: opt(num) }), { minLength: 1, maxLength: 4 }),
    opt(fc.boolean()),
    opt(text(60))
  ).map(([id, number, d, cur, debits, adjustment, memo]) => {
    const total = debits.reduce((s, l) => s + l.amount, 0)
    const line = (l: (typeof debits)[number], postingType: "debit" | "credit") => {
      const { cls, dept, ...rest } = l
      const ids = [...(cls === undefined ? [] : [`class:${cls}`]), ...(dept === undefined ? [] : [`department:${dept}`])]
      return clean({ ...rest, postingType, trackingIds: ids.length === 0 ? undefined : ids })
    }
    return clean({
      entity: "journal_entry" as const,
      schemaVersion: 1 as const,
      id,
      number,
      date: d,
      currency: cur,
      lines: [...debits.map((l) => line(l, "debit")), { postingType: "credit" as const, accountId: "1", amount: total }],
      adjustment,
      memo,
      status: "posted" as const
    })
  }),
  deposit: fc.tuple(
    num,
    date,
    currency,
    num,
    withTracking(lines1(fc.oneof(
      fc.record({ lineId: opt(num), amount, paymentId: num, description: opt(text()) }),
      fc.record({ lineId: opt(num), amount, accountId: opt(num), contactId: opt(contactId), description: opt(text()) })
    ))),
    opt(text(60))
  ).map(([id, d, cur, acct, lines, memo]) => {
    // A line that deposits a payment takes its class from the payment.
    const fixed = lines.map((l) => ("paymentId" in l && l.paymentId !== undefined ? clean({ ...l, trackingIds: l.trackingIds?.filter((t) => !t.startsWith("class:")) }) : l))
    const tidy = fixed.map((l) => (l.trackingIds !== undefined && l.trackingIds.length === 0 ? clean({ ...l, trackingIds: undefined }) : l))
    return clean({ entity: "deposit" as const, schemaVersion: 1 as const, id, date: d, currency: cur, accountId: acct, lines: tidy, memo, status: "active" as const })
  }),
  transfer: fc.tuple(num, date, currency, num, num, positive, opt(text(60))).filter(([, , , a, b]) => a !== b).map(([id, d, cur, from, to, amt, memo]) =>
    clean({ entity: "transfer" as const, schemaVersion: 1 as const, id, date: d, currency: cur, fromAccountId: from, toAccountId: to, amount: amt, memo, status: "active" as const })
  )
} as unknown as { [K in Canonical.EntityType]: fc.Arbitrary<Rec> }

// --- the round trip --------------------------------------------------------------

const decode = (name: Wire.EntityName, value: unknown): unknown => Schema.decodeUnknownSync(Wire.entitySchemas[name] as Schema.Codec<unknown, unknown>)(value)

const roundTrip = (record: Rec): Rec => {
  const wire = Mapping.toWire(record)
  if (!wire.ok) throw new Error(`toWire refused: ${wire.reason}`)
  const target = Mapping.parseExternalId(record.entity, record.id)
  if (!target.ok) throw new Error(target.reason)
  expect(target.value.name).toBe(wire.value.name)
  const sent = JSON.parse(JSON.stringify({ ...wire.value.body, Id: target.value.id, SyncToken: "0" }))
  let taxRates: Map<string, Wire.TaxRate> | undefined
  if (record.entity === "tax_rate") {
    taxRates = new Map(Mapping.taxCodeOut(record).TaxRates.map((t) => [String(t.Id), decode("TaxRate", { ...t, SyncToken: "0" }) as Wire.TaxRate]))
  }
  const back = Mapping.fromWire(wire.value.name, decode(wire.value.name, sent), { homeCurrency: "USD", ...(taxRates === undefined ? {} : { taxRates }) })
  if (!back.ok) throw new Error(`fromWire refused: ${back.reason}`)
  return back.value
}

describe("QuickBooks mapping round trip (canonical → wire → canonical)", () => {
  for (const entity of Canonical.entityTypes) {
    it(`${entity}: equals the projection to the fields QuickBooks stores`, () => {
      fc.assert(
        fc.property(arbitraries[entity], (record) => {
          const valid = Canonical.validate(entity, record)
          if (!valid.ok) throw new Error(`generator made an invalid ${entity}: ${JSON.stringify(valid.issues)}`)
          const back = roundTrip(record)
          expect(Canonical.validate(entity, back).ok).toBe(true)
          expect(Mapping.project(back)).toEqual(Mapping.project(record))
        }),
        { numRuns: 150 }
      )
    })
  }
})

describe("QuickBooks mapping rules", () => {
  it("encodes which list a contact or tracking category lives in", () => {
    expect(Mapping.externalIdOf("Customer", "58")).toBe("customer:58")
    expect(Mapping.externalIdOf("Vendor", "12")).toBe("vendor:12")
    expect(Mapping.externalIdOf("Department", "3")).toBe("department:3")
    expect(Mapping.externalIdOf("Invoice", "130")).toBe("130")
    expect(Mapping.parseExternalId("contact", "vendor:12")).toEqual({ ok: true, value: { name: "Vendor", id: "12" } })
    expect(Mapping.parseExternalId("contact", "12").ok).toBe(false)
  })

  it("writes money as major units of the record's currency and reads it back exactly", () => {
    const base = arbitraries.journal_entry
    fc.assert(fc.property(base, (r) => {
      const wire = Mapping.toWire(r)
      if (!wire.ok || r.entity !== "journal_entry") return
      const lines = wire.value.body.Line as Array<{ Amount: number }>
      r.lines.forEach((l, i) => {
        expect(lines[i]?.Amount).toBe(Number((l.amount / 10 ** (r.currency === "JPY" ? 0 : r.currency === "KWD" ? 3 : 2)).toFixed(r.currency === "JPY" ? 0 : r.currency === "KWD" ? 3 : 2)))
      })
    }), { numRuns: 50 })
  })

  it("refuses what QuickBooks cannot hold, saying why", () => {
    const both = Mapping.toWire({ entity: "contact", schemaVersion: 1, id: "x", name: "Both", roles: ["customer", "vendor"], status: "active" })
    expect(both).toMatchObject({ ok: false, reason: expect.stringContaining("exactly one role") })
    const wrongList = Mapping.toWire({ entity: "invoice", schemaVersion: 1, id: "1", contactId: "vendor:3", date: "2026-01-01", currency: "USD", lineAmountTypes: "no_tax", lines: [{ amount: 1 }], status: "authorised" })
    expect(wrongList).toMatchObject({ ok: false, reason: expect.stringContaining("must be a Customer") })
    const twoDepts = Mapping.toWire({ entity: "bill", schemaVersion: 1, id: "1", contactId: "vendor:3", date: "2026-01-01", currency: "USD", lineAmountTypes: "no_tax", lines: [{ amount: 1, accountId: "5", trackingIds: ["department:1"] }, { amount: 1, accountId: "5", trackingIds: ["department:2"] }], status: "authorised" })
    expect(twoDepts).toMatchObject({ ok: false, reason: expect.stringContaining("same one") })
    const multiCurrency = Mapping.toWire({ entity: "journal_entry", schemaVersion: 1, id: "1", date: "2026-01-01", currency: "USD", lines: [{ postingType: "debit", accountId: "1", amount: 1, currency: "EUR" }, { postingType: "credit", accountId: "2", amount: 1 }], status: "posted" })
    expect(multiCurrency).toMatchObject({ ok: false, reason: expect.stringContaining("one currency") })
  })

  it("reads QuickBooks-computed values: totals, balances, paid and voided status", () => {
    const invoice = decode("Invoice", {
      Id: "9", SyncToken: "3", CustomerRef: { value: "1" }, TxnDate: "2026-01-01", CurrencyRef: { value: "USD" }, GlobalTaxCalculation: "TaxExcluded",
      Line: [
        { Id: "1", Amount: 100, DetailType: "SalesItemLineDetail", SalesItemLineDetail: { ItemRef: { value: "1" } } },
        { Amount: 100, DetailType: "SubTotalLineDetail", SubTotalLineDetail: {} }
      ],
      TxnTaxDetail: { TotalTax: 8.25 }, TotalAmt: 108.25, Balance: 0
    })
    const r = Mapping.fromWire("Invoice", invoice)
    expect(r.ok && r.value).toMatchObject({ subtotal: 10000, totalTax: 825, total: 10825, amountDue: 0, status: "paid" })
    const voided = Mapping.fromWire("Invoice", decode("Invoice", { Id: "9", SyncToken: "4", CustomerRef: { value: "1" }, TxnDate: "2026-01-01", Line: [{ Amount: 0, DetailType: "SalesItemLineDetail", SalesItemLineDetail: {} }], TotalAmt: 0, Balance: 0, PrivateNote: "Voided" }))
    expect(voided.ok && voided.value.entity === "invoice" && voided.value.status).toBe("voided")
  })
})
