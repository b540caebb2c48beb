import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import fc from "fast-check"
import * as Canonical from "../src/Canonical.ts"
import { unbalancedCurrencies } from "../src/Entities.ts"
import * as Ledger from "../src/Ledger.ts"
import { decodeEither } from "../src/Validation.ts"

const rules: ReadonlyArray<Ledger.GlRule> = [
  { name: "online-eur", match: { type: ["sale", "refund"], channel: "online", currency: "EUR" }, accounts: { clearing: "1220", revenue: "4001", tax: "2201" } },
  { name: "card-sales", match: { type: ["sale", "refund"], tender: "card" }, accounts: { clearing: "1210", revenue: "4000", refunds: "4090", tax: "2200", tips: "2300", discounts: "4050" } },
  { name: "cash-sales", match: { type: "sale", tender: "cash" }, post: "document", accounts: { clearing: "1000", revenue: "4000", tax: "2200", tips: "2300", discounts: "4050" } },
  { name: "processor", match: { type: ["fee", "payout", "chargeback"] }, accounts: { clearing: "1210", fees: "6100", bank: "1010", chargebacks: "4900" } }
]

const decodeTxn = decodeEither(Ledger.Transaction)
const txn = (t: Record<string, unknown>): Ledger.Transaction => {
  const r = decodeTxn({ date: "2026-03-01", currency: "USD", ...t })
  if (!r.ok) throw new Error(JSON.stringify(r.issues))
  return r.value
}

const sale = txn({
  id: "s1",
  type: "sale",
  tender: "card",
  channel: "in_store",
  lines: [{ description: "Latte", amount: 450 }, { description: "Bagel", amount: 350, accountId: "4010" }],
  discount: 100,
  tax: 62,
  tip: 150,
  total: 912
})

describe("transaction → ledger", () => {
  it.effect("posts a card sale with tax, tip and discount as a balanced journal", () =>
    Effect.gen(function*() {
      const r = Ledger.post(rules, sale)
      expect(r._tag).toBe("Ok")
      if (r._tag !== "Ok") return
      expect(r.rule).toBe("card-sales")
      const je = yield* Canonical.decodeRecord(r.record)
      if (je.entity !== "journal_entry") throw new Error("expected a journal")
      expect(je.id).toBe("txn-s1")
      expect(je.lines.map((l) => [l.postingType, l.accountId, l.amount])).toEqual([
        ["debit", "1210", 912],
        ["credit", "4000", 450],
        ["credit", "4010", 350],
        ["debit", "4050", 100],
        ["credit", "2200", 62],
        ["credit", "2300", 150]
      ])
    }))

  it("posts a refund in reverse, to the refunds account when the rule has one", () => {
    const r = Ledger.post(rules, txn({ id: "r1", type: "refund", tender: "card", lines: [{ amount: 450 }], tax: 40, total: 490 }))
    if (r._tag !== "Ok" || r.record.entity !== "journal_entry") throw new Error("expected a journal")
    expect(r.record.lines.map((l) => [l.postingType, l.accountId, l.amount])).toEqual([
      ["credit", "1210", 490],
      ["debit", "4090", 450],
      ["debit", "2200", 40]
    ])
  })

  it("matches on channel and currency before tender, and posts in the transaction's currency", () => {
    const r = Ledger.post(rules, txn({ id: "e1", type: "sale", tender: "card", channel: "online", currency: "EUR", lines: [{ amount: 1000 }], tax: 190, total: 1190 }))
    if (r._tag !== "Ok" || r.record.entity !== "journal_entry") throw new Error("expected a journal")
    expect(r.rule).toBe("online-eur")
    expect(r.record.currency).toBe("EUR")
  })

  it("posts fees, payouts and chargebacks against the clearing account", () => {
    const fee = Ledger.post(rules, txn({ id: "f1", type: "fee", amount: 29 }))
    const payout = Ledger.post(rules, txn({ id: "p1", type: "payout", amount: 10_000 }))
    const cb = Ledger.post(rules, txn({ id: "c1", type: "chargeback", amount: 912, fee: 1500 }))
    for (const r of [fee, payout, cb]) {
      if (r._tag !== "Ok" || r.record.entity !== "journal_entry") throw new Error("expected a journal")
      expect(unbalancedCurrencies(r.record)).toEqual([])
    }
    if (payout._tag === "Ok" && payout.record.entity === "journal_entry") {
      expect(payout.record.lines.map((l) => [l.postingType, l.accountId])).toEqual([["debit", "1010"], ["credit", "1210"]])
    }
  })

  it.effect("posts a cash sale as a sales receipt when the rule asks for a document", () =>
    Effect.gen(function*() {
      const r = Ledger.post(rules, txn({ id: "c2", type: "sale", tender: "cash", lines: [{ amount: 500, itemId: "latte", quantity: "1", unitPrice: "5" }], tax: 44, tip: 100, total: 644 }))
      if (r._tag !== "Ok") throw r.error
      const receipt = yield* Canonical.decodeRecord(r.record)
      expect(receipt).toMatchObject({ entity: "sales_receipt", depositAccountId: "1000", total: 644, totalTax: 44 })
    }))

  it("gives every posted journal a memo, so providers that require one (Xero's Narration) accept it", () => {
    const bare = Ledger.post(rules, txn({ id: "s9", type: "sale", tender: "card", lines: [{ amount: 1000 }], tax: 80, total: 1080 }))
    if (bare._tag !== "Ok" || bare.record.entity !== "journal_entry") throw new Error("expected a journal")
    expect(bare.record.memo).toBe("sale s9 (sale, tender card, currency USD)")
    const described = Ledger.post(rules, txn({ id: "s10", type: "sale", tender: "card", description: "Till 3", lines: [{ amount: 1000 }], total: 1000 }))
    if (described._tag !== "Ok" || described.record.entity !== "journal_entry") throw new Error("expected a journal")
    expect(described.record.memo).toBe("Till 3")
  })

  it("names the missing rule for an unmapped transaction, never guessing", () => {
    const r = Ledger.post(rules, txn({ id: "g1", type: "sale", tender: "gift_card", lines: [{ amount: 100 }], total: 100 }))
    expect(r._tag).toBe("Err")
    if (r._tag === "Err") {
      expect(r.error.missing).toBe("rule")
      expect(r.error.message).toContain("no GL rule matches transaction g1 (sale, tender gift_card, currency USD)")
    }
  })

  it("names the missing account when the matching rule lacks one", () => {
    const r = Ledger.post(rules, txn({ id: "e2", type: "sale", channel: "online", currency: "EUR", lines: [{ amount: 100 }], tip: 20, total: 120 }))
    expect(r._tag).toBe("Err")
    if (r._tag === "Err") {
      expect(r.error.missing).toBe("accounts.tips")
      expect(r.error.message).toContain("GL rule 'online-eur' has no tips account")
    }
  })

  it("refuses a transaction whose total does not add up, naming the field", () => {
    const r = decodeTxn({ id: "x", type: "sale", date: "2026-03-01", currency: "USD", lines: [{ amount: 100 }], tax: 10, total: 100 })
    expect(r.ok).toBe(false)
    if (!r.ok) expect(r.issues[0]?.path).toBe("total")
  })

  it("always produces a balanced journal for any valid sale or refund (property)", () => {
    const arb = fc.record({
      type: fc.constantFrom("sale", "refund"),
      lines: fc.array(fc.integer({ min: 0, max: 1e7 }), { minLength: 1, maxLength: 8 }),
      tax: fc.integer({ min: 0, max: 1e6 }),
      tip: fc.integer({ min: 0, max: 1e6 }),
      discountShare: fc.double({ min: 0, max: 1, noNaN: true }),
      currency: fc.constantFrom("USD", "JPY", "KWD")
    })
    fc.assert(
      fc.property(arb, (a) => {
        const sum = a.lines.reduce((s, x) => s + x, 0)
        const discount = Math.floor(sum * a.discountShare)
        const t = txn({
          id: "p",
          type: a.type,
          tender: "card",
          currency: a.currency,
          lines: a.lines.map((amount) => ({ amount })),
          tax: a.tax,
          tip: a.tip,
          discount,
          total: sum - discount + a.tax + a.tip
        })
        const r = Ledger.post(rules, t)
        if (r._tag !== "Ok" || r.record.entity !== "journal_entry") throw new Error("expected a journal")
        expect(unbalancedCurrencies(r.record)).toEqual([])
        expect(Canonical.validate("journal_entry", r.record).ok || r.record.lines.length < 2).toBe(true)
      }),
      { numRuns: 1000 }
    )
  })
})
