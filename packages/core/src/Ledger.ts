/**
 * POS and payment transactions, and the GL rules that post them.
 *
 * The app posts what happened — a sale with lines, tax, tip and discount; a
 * refund; a processor fee; a payout; a chargeback — in any currency. The
 * tenant's GL rules (first match wins, matching on type, channel, tender,
 * currency and location) say which accounts each part goes to, and `post`
 * turns the transaction into a balanced journal entry (or a sales receipt /
 * refund document). An unmapped transaction is an error that names the
 * missing rule or account — never a guess.
 */
import { Schema } from "effect"
import type { JournalEntry, JournalLine, Refund, SalesReceipt } from "./Entities.ts"
import { unbalancedCurrencies } from "./Entities.ts"
import * as Decimal from "./Decimal.ts"
import { Id, LocalDate, Text } from "./Fields.ts"
import { CurrencyCode, MinorUnits, NonNegativeMinorUnits } from "./Money.ts"

export const TransactionType = Schema.Literals(["sale", "refund", "fee", "payout", "chargeback"])
export type TransactionType = typeof TransactionType.Type

export const TransactionLine = Schema.Struct({
  lineId: Schema.optionalKey(Id),
  description: Schema.optionalKey(Text(4000)),
  itemId: Schema.optionalKey(Id),
  quantity: Schema.optionalKey(Decimal.Decimal),
  unitPrice: Schema.optionalKey(Decimal.Decimal),
  /** Line amount after any line discount, before tax. */
  amount: NonNegativeMinorUnits,
  /** Overrides the rule's revenue account for this line. */
  accountId: Schema.optionalKey(Id),
  taxRateId: Schema.optionalKey(Id),
  trackingIds: Schema.optionalKey(Schema.Array(Id))
})
export type TransactionLine = typeof TransactionLine.Type

const amountTypes = new Set<TransactionType>(["fee", "payout", "chargeback"])

export const Transaction = Schema.Struct({
  id: Id,
  type: TransactionType,
  date: LocalDate,
  currency: CurrencyCode,
  /** Sales channel, e.g. "in_store", "online". */
  channel: Schema.optionalKey(Text(60)),
  /** How it was paid, e.g. "card", "cash", "gift_card". */
  tender: Schema.optionalKey(Text(60)),
  location: Schema.optionalKey(Text(60)),
  contactId: Schema.optionalKey(Id),
  reference: Schema.optionalKey(Text(255)),
  description: Schema.optionalKey(Text(4000)),
  /** Sale and refund lines. */
  lines: Schema.optionalKey(Schema.Array(TransactionLine)),
  tax: Schema.optionalKey(NonNegativeMinorUnits),
  tip: Schema.optionalKey(NonNegativeMinorUnits),
  /** Order-level discount. */
  discount: Schema.optionalKey(NonNegativeMinorUnits),
  /** Fee, payout and chargeback amount; for a chargeback, `fee` is the processor's chargeback fee. */
  amount: Schema.optionalKey(MinorUnits.check(Schema.makeFilter((n: number) => n > 0 || "Expected a positive amount"))),
  fee: Schema.optionalKey(NonNegativeMinorUnits),
  /** What the customer paid (sale) or got back (refund). */
  total: Schema.optionalKey(MinorUnits),
  /** The sale a refund or chargeback reverses. */
  originalTransactionId: Schema.optionalKey(Id)
}).check(
  Schema.makeFilter((t: {
    readonly type: TransactionType
    readonly lines?: ReadonlyArray<{ readonly amount: number }>
    readonly tax?: number
    readonly tip?: number
    readonly discount?: number
    readonly amount?: number
    readonly total?: number
  }) => {
    const issues: Array<Schema.FilterIssue> = []
    if (t.type === "sale" || t.type === "refund") {
      if (t.lines === undefined || t.lines.length === 0) issues.push({ path: ["lines"], issue: `a ${t.type} needs at least one line` })
      if (t.total === undefined) issues.push({ path: ["total"], issue: `a ${t.type} needs its total` })
      if (t.lines !== undefined && t.total !== undefined) {
        const sum = t.lines.reduce((s, l) => s + l.amount, 0)
        const expected = sum - (t.discount ?? 0) + (t.tax ?? 0) + (t.tip ?? 0)
        if (expected !== t.total) {
          issues.push({
            path: ["total"],
            issue: `total ${t.total} does not equal lines ${sum} - discount ${t.discount ?? 0} + tax ${t.tax ?? 0} + tip ${t.tip ?? 0} = ${expected}`
          })
        }
      }
    }
    if (amountTypes.has(t.type) && t.amount === undefined) issues.push({ path: ["amount"], issue: `a ${t.type} needs its amount` })
    return issues
  })
).pipe(Schema.annotate({ title: "Transaction", description: "A POS or payment transaction to post to the ledger" }))
export type Transaction = typeof Transaction.Type

// ---------------------------------------------------------------------------
// Rules

const OneOrMany = Schema.Union([Text(60), Schema.Array(Text(60))])

export const GlMatch = Schema.Struct({
  type: Schema.optionalKey(Schema.Union([TransactionType, Schema.Array(TransactionType)])),
  channel: Schema.optionalKey(OneOrMany),
  tender: Schema.optionalKey(OneOrMany),
  currency: Schema.optionalKey(Schema.Union([CurrencyCode, Schema.Array(CurrencyCode)])),
  location: Schema.optionalKey(OneOrMany)
})
export type GlMatch = typeof GlMatch.Type

/** The account roles a rule can name. */
export const accountRoles = [
  "clearing",
  "revenue",
  "refunds",
  "tax",
  "tips",
  "discounts",
  "fees",
  "bank",
  "chargebacks"
] as const
export type AccountRole = (typeof accountRoles)[number]

export const GlAccounts = Schema.Struct(
  Object.fromEntries(accountRoles.map((r) => [r, Schema.optionalKey(Id)])) as {
    [K in AccountRole]: Schema.optionalKey<typeof Id>
  }
)
export type GlAccounts = typeof GlAccounts.Type

export const GlRule = Schema.Struct({
  name: Id,
  match: GlMatch,
  /** What to post: a journal entry (default) or a document (sales receipt for sales, refund for refunds). */
  post: Schema.optionalKey(Schema.Literals(["journal_entry", "document"])),
  accounts: GlAccounts
}).pipe(Schema.annotate({ identifier: "GlRule", description: "Which accounts a matching transaction posts to" }))
export type GlRule = typeof GlRule.Type

const matches = (value: string | undefined, want: string | ReadonlyArray<string> | undefined): boolean =>
  want === undefined || (value !== undefined && (typeof want === "string" ? value === want : want.includes(value)))

/** The first rule whose match covers the transaction. */
export const findRule = (rules: ReadonlyArray<GlRule>, t: Transaction): GlRule | undefined =>
  rules.find((r) =>
    matches(t.type, r.match.type) &&
    matches(t.channel, r.match.channel) &&
    matches(t.tender, r.match.tender) &&
    matches(t.currency, r.match.currency) &&
    matches(t.location, r.match.location)
  )

/** The transaction cannot be posted: no rule matches, or the rule lacks an account it needs. */
export class UnmappedTransaction extends Schema.TaggedError<UnmappedTransaction>()("UnmappedTransaction", {
  transactionId: Schema.String,
  /** The rule that matched, when one did. */
  rule: Schema.optionalKey(Schema.String),
  /** What is missing: "rule" or "accounts.<role>". */
  missing: Schema.String,
  description: Schema.String
}) {
  override get message(): string {
    return this.description
  }
}

const describe = (t: Transaction): string =>
  [t.type, t.channel === undefined ? undefined : `channel ${t.channel}`, t.tender === undefined ? undefined : `tender ${t.tender}`,
    `currency ${t.currency}`, t.location === undefined ? undefined : `location ${t.location}`].filter((x) => x !== undefined).join(", ")

export type Posting = JournalEntry | SalesReceipt | Refund

/** The app id of the record a transaction posts to (stable, so re-posting is idempotent). */
export const postingId = (t: Transaction): string => `txn-${t.id}`

/**
 * Posts a transaction with the tenant's rules: a balanced journal entry, or
 * the sales receipt / refund document the rule asks for.
 */
export const post = (rules: ReadonlyArray<GlRule>, t: Transaction): { readonly _tag: "Ok"; readonly record: Posting; readonly rule: string } | { readonly _tag: "Err"; readonly error: UnmappedTransaction } => {
  const rule = findRule(rules, t)
  if (rule === undefined) {
    return {
      _tag: "Err",
      error: new UnmappedTransaction({
        transactionId: t.id,
        missing: "rule",
        description: `no GL rule matches transaction ${t.id} (${describe(t)}): add a rule under glRules whose match covers it`
      })
    }
  }
  const need = (role: AccountRole, why: string): string | UnmappedTransaction =>
    rule.accounts[role] ??
      new UnmappedTransaction({
        transactionId: t.id,
        rule: rule.name,
        missing: `accounts.${role}`,
        description: `GL rule '${rule.name}' has no ${role} account, needed for ${why} of transaction ${t.id}: add accounts.${role} to the rule`
      })
  const lines: Array<JournalLine> = []
  const failures: Array<UnmappedTransaction> = []
  const add = (postingType: "debit" | "credit", role: AccountRole, amount: number, description: string, why: string, accountOverride?: string, extra?: Partial<JournalLine>) => {
    if (amount === 0) return
    const account = accountOverride ?? need(role, why)
    if (typeof account !== "string") {
      failures.push(account)
      return
    }
    lines.push({ postingType, accountId: account, amount, description, ...extra })
  }
  const sign = (reverse: boolean, p: "debit" | "credit"): "debit" | "credit" => (reverse ? (p === "debit" ? "credit" : "debit") : p)

  if (rule.post === "document" && (t.type === "sale" || t.type === "refund")) {
    return postDocument(rule, t, need)
  }

  switch (t.type) {
    case "sale":
    case "refund": {
      const reverse = t.type === "refund"
      const revenueRole: AccountRole = reverse && rule.accounts.refunds !== undefined ? "refunds" : "revenue"
      add(sign(reverse, "debit"), "clearing", t.total ?? 0, reverse ? "Refund paid" : "Payment received", `the ${t.type} total`)
      for (const [i, line] of (t.lines ?? []).entries()) {
        add(sign(reverse, "credit"), revenueRole, line.amount, line.description ?? (reverse ? "Refunded sales" : "Sales"), `line ${i + 1}`, line.accountId, line.trackingIds === undefined ? {} : { trackingIds: line.trackingIds })
      }
      add(sign(reverse, "debit"), "discounts", t.discount ?? 0, "Discounts", "the discount")
      add(sign(reverse, "credit"), "tax", t.tax ?? 0, "Sales tax", "the tax")
      add(sign(reverse, "credit"), "tips", t.tip ?? 0, "Tips", "the tip")
      break
    }
    case "fee":
      add("debit", "fees", t.amount ?? 0, "Processing fees", "the fee")
      add("credit", "clearing", t.amount ?? 0, "Processing fees", "the fee")
      break
    case "payout":
      add("debit", "bank", t.amount ?? 0, "Payout", "the payout")
      add("credit", "clearing", t.amount ?? 0, "Payout", "the payout")
      break
    case "chargeback":
      add("debit", "chargebacks", t.amount ?? 0, "Chargeback", "the chargeback")
      add("credit", "clearing", t.amount ?? 0, "Chargeback", "the chargeback")
      add("debit", "fees", t.fee ?? 0, "Chargeback fee", "the chargeback fee")
      add("credit", "clearing", t.fee ?? 0, "Chargeback fee", "the chargeback fee")
      break
  }
  if (failures.length > 0) return { _tag: "Err", error: failures[0] as UnmappedTransaction }
  const entry: JournalEntry = {
    entity: "journal_entry",
    schemaVersion: 1,
    id: postingId(t),
    date: t.date,
    currency: t.currency,
    lines: lines.map((l, i) => ({ lineId: String(i + 1), ...l })),
    reference: t.reference ?? t.id,
    // Always a memo: some providers refuse a journal without one (Xero's Narration is required).
    memo: t.description ?? `${t.type} ${t.id} (${describe(t)})`,
    externalRefs: [{ system: "transaction", id: t.id }],
    status: "posted"
  }
  if (unbalancedCurrencies(entry).length > 0) {
    // Unreachable for a decoded transaction (its total is checked), kept as a guard.
    return { _tag: "Err", error: new UnmappedTransaction({ transactionId: t.id, rule: rule.name, missing: "balance", description: `transaction ${t.id} does not balance` }) }
  }
  return { _tag: "Ok", record: entry, rule: rule.name }
}

const postDocument = (
  rule: GlRule,
  t: Transaction,
  need: (role: AccountRole, why: string) => string | UnmappedTransaction
): { readonly _tag: "Ok"; readonly record: Posting; readonly rule: string } | { readonly _tag: "Err"; readonly error: UnmappedTransaction } => {
  const refund = t.type === "refund"
  const revenue = (t.lines ?? []).some((l) => l.accountId === undefined) ? need(refund && rule.accounts.refunds !== undefined ? "refunds" : "revenue", "lines without an account") : undefined
  const clearing = need("clearing", `the ${t.type} total`)
  const tips = (t.tip ?? 0) > 0 ? need("tips", "the tip") : undefined
  const discounts = (t.discount ?? 0) > 0 ? need("discounts", "the discount") : undefined
  for (const r of [clearing, revenue, tips, discounts]) if (r instanceof UnmappedTransaction) return { _tag: "Err", error: r }
  const lines = (t.lines ?? []).map((l, i) => ({
    lineId: l.lineId ?? String(i + 1),
    amount: l.amount,
    accountId: l.accountId ?? (revenue as string),
    ...(l.description === undefined ? {} : { description: l.description }),
    ...(l.itemId === undefined ? {} : { itemId: l.itemId }),
    ...(l.quantity === undefined ? {} : { quantity: l.quantity }),
    ...(l.unitPrice === undefined ? {} : { unitPrice: l.unitPrice }),
    ...(l.taxRateId === undefined ? {} : { taxRateId: l.taxRateId }),
    ...(l.trackingIds === undefined ? {} : { trackingIds: l.trackingIds })
  }))
  if (tips !== undefined) lines.push({ lineId: "tip", amount: t.tip ?? 0, accountId: tips as string, description: "Tips" })
  if (discounts !== undefined) lines.push({ lineId: "discount", amount: -(t.discount ?? 0), accountId: discounts as string, description: "Discount" })
  const common = {
    schemaVersion: 1 as const,
    id: postingId(t),
    date: t.date,
    currency: t.currency,
    lineAmountTypes: "exclusive" as const,
    lines,
    subtotal: lines.reduce((s, l) => s + l.amount, 0),
    totalTax: t.tax ?? 0,
    total: t.total ?? 0,
    reference: t.reference ?? t.id,
    ...(t.description === undefined ? {} : { memo: t.description }),
    ...(t.contactId === undefined ? {} : { contactId: t.contactId }),
    externalRefs: [{ system: "transaction", id: t.id }],
    status: "active" as const
  }
  const record: Posting = refund
    ? { ...common, entity: "refund", refundFromAccountId: clearing as string, ...(t.originalTransactionId === undefined ? {} : { originalDocumentId: `txn-${t.originalTransactionId}` }) }
    : { ...common, entity: "sales_receipt", depositAccountId: clearing as string }
  return { _tag: "Ok", record, rule: rule.name }
}
