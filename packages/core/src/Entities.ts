/**
 * The canonical vocabulary, version 1: one Effect Schema per entity type.
 *
 * Every record carries `entity`, `schemaVersion` and the app's `id`, optional
 * `customFields` (name → value) and `externalRefs` (the record's ids in other
 * systems the app knows). References to other records hold the referenced
 * record's app id (`contactId`, `accountId`, `lines[].itemId`, …); see
 * `Refs.ts`. For chart-of-accounts data the app id is normally the natural key
 * (an account's id is its code, "4000"), which is what GL rules name.
 *
 * Amounts are integer minor units of the record's `currency`; quantities,
 * prices and rates are exact decimal strings.
 */
import { Schema } from "effect"
import * as Decimal from "./Decimal.ts"
import { ActiveStatus, Address, CustomFields, ExternalRef, Id, LocalDate, Text } from "./Fields.ts"
import { CurrencyCode, MinorUnits, NonNegativeMinorUnits } from "./Money.ts"

export const SCHEMA_VERSION = 1 as const

const envelope = <E extends string>(entity: E) => ({
  entity: Schema.Literal(entity),
  schemaVersion: Schema.Literal(SCHEMA_VERSION),
  id: Id,
  customFields: Schema.optionalKey(CustomFields),
  externalRefs: Schema.optionalKey(Schema.Array(ExternalRef))
})

const NonEmptyText = (max: number) =>
  Text(max).check(Schema.makeFilter((s: string) => s.trim().length > 0 || "Expected a non-empty text"))

const Ids = Schema.Array(Id)

// ---------------------------------------------------------------------------
// Chart of accounts and master data

export const AccountType = Schema.Literals([
  "bank",
  "accounts_receivable",
  "current_asset",
  "fixed_asset",
  "non_current_asset",
  "inventory",
  "prepayment",
  "accounts_payable",
  "credit_card",
  "current_liability",
  "non_current_liability",
  "equity",
  "revenue",
  "other_income",
  "cost_of_sales",
  "expense",
  "other_expense",
  "depreciation"
])
export type AccountType = typeof AccountType.Type

/** The five classes every account type belongs to. */
export const accountClass = (type: AccountType): "asset" | "liability" | "equity" | "revenue" | "expense" => {
  switch (type) {
    case "bank":
    case "accounts_receivable":
    case "current_asset":
    case "fixed_asset":
    case "non_current_asset":
    case "inventory":
    case "prepayment":
      return "asset"
    case "accounts_payable":
    case "credit_card":
    case "current_liability":
    case "non_current_liability":
      return "liability"
    case "equity":
      return "equity"
    case "revenue":
    case "other_income":
      return "revenue"
    case "cost_of_sales":
    case "expense":
    case "other_expense":
    case "depreciation":
      return "expense"
  }
}

export const Account = Schema.Struct({
  ...envelope("account"),
  code: NonEmptyText(30),
  name: NonEmptyText(150),
  type: AccountType,
  description: Schema.optionalKey(Text(4000)),
  currency: Schema.optionalKey(CurrencyCode),
  taxRateId: Schema.optionalKey(Id),
  bankAccountNumber: Schema.optionalKey(Text(60)),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "Account", description: "A ledger account of the chart of accounts" }))
export type Account = typeof Account.Type

export const ContactRole = Schema.Literals(["customer", "vendor"])

export const Contact = Schema.Struct({
  ...envelope("contact"),
  name: NonEmptyText(255),
  roles: Schema.Array(ContactRole).check(
    Schema.makeFilter((roles: ReadonlyArray<string>) =>
      (roles.length > 0 && new Set(roles).size === roles.length) || "Expected one or more distinct roles (customer, vendor)"
    )
  ),
  companyName: Schema.optionalKey(Text(255)),
  firstName: Schema.optionalKey(Text(255)),
  lastName: Schema.optionalKey(Text(255)),
  email: Schema.optionalKey(
    Text(255).check(Schema.makeFilter((s: string) => /^[^\s@]+@[^\s@]+$/.test(s) || "Expected an email address"))
  ),
  phone: Schema.optionalKey(Text(50)),
  taxNumber: Schema.optionalKey(Text(50)),
  currency: Schema.optionalKey(CurrencyCode),
  billingAddress: Schema.optionalKey(Address),
  shippingAddress: Schema.optionalKey(Address),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "Contact", description: "A customer, a vendor, or both" }))
export type Contact = typeof Contact.Type

export const Item = Schema.Struct({
  ...envelope("item"),
  code: Schema.optionalKey(Text(30)),
  name: NonEmptyText(100),
  description: Schema.optionalKey(Text(4000)),
  type: Schema.Literals(["inventory", "non_inventory", "service"]),
  salesPrice: Schema.optionalKey(Decimal.Decimal),
  salesAccountId: Schema.optionalKey(Id),
  purchasePrice: Schema.optionalKey(Decimal.Decimal),
  purchaseAccountId: Schema.optionalKey(Id),
  inventoryAccountId: Schema.optionalKey(Id),
  taxRateId: Schema.optionalKey(Id),
  quantityOnHand: Schema.optionalKey(Decimal.Decimal),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "Item", description: "A product or service that is bought or sold" }))
export type Item = typeof Item.Type

export const TaxRate = Schema.Struct({
  ...envelope("tax_rate"),
  name: NonEmptyText(100),
  code: Schema.optionalKey(Text(30)),
  /** Percent, e.g. "8.875". */
  rate: Decimal.Decimal,
  appliesTo: Schema.optionalKey(Schema.Literals(["sales", "purchases", "both"])),
  components: Schema.optionalKey(Schema.Array(Schema.Struct({ name: NonEmptyText(100), rate: Decimal.Decimal }))),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "TaxRate" }))
export type TaxRate = typeof TaxRate.Type

export const Currency = Schema.Struct({
  ...envelope("currency"),
  code: CurrencyCode,
  name: Schema.optionalKey(Text(100)),
  /** Units of home currency per one unit of this currency. */
  exchangeRate: Schema.optionalKey(Decimal.Decimal),
  isHome: Schema.optionalKey(Schema.Boolean),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "Currency" }))
export type Currency = typeof Currency.Type

export const TrackingCategory = Schema.Struct({
  ...envelope("tracking_category"),
  name: NonEmptyText(100),
  kind: Schema.Literals(["class", "department", "location", "custom"]),
  parentId: Schema.optionalKey(Id),
  status: ActiveStatus
}).pipe(Schema.annotate({ title: "TrackingCategory", description: "A class, department, location or custom tracking option" }))
export type TrackingCategory = typeof TrackingCategory.Type

// ---------------------------------------------------------------------------
// Documents with lines

/** Invoice-like status lifecycle. */
export const DocumentStatus = Schema.Literals(["draft", "submitted", "authorised", "paid", "voided", "deleted"])
export type DocumentStatus = typeof DocumentStatus.Type

/** Status of a cash transaction (receipts, refunds, payments, transfers). */
export const TransactionStatus = Schema.Literals(["active", "voided", "deleted"])
export type TransactionStatus = typeof TransactionStatus.Type

/** Whether line amounts exclude tax, include tax, or carry none. */
export const LineAmountTypes = Schema.Literals(["exclusive", "inclusive", "no_tax"])
export type LineAmountTypes = typeof LineAmountTypes.Type

export const DocumentLine = Schema.Struct({
  lineId: Schema.optionalKey(Id),
  description: Schema.optionalKey(Text(4000)),
  itemId: Schema.optionalKey(Id),
  quantity: Schema.optionalKey(Decimal.Decimal),
  unitPrice: Schema.optionalKey(Decimal.Decimal),
  discountAmount: Schema.optionalKey(NonNegativeMinorUnits),
  /** Line amount in minor units, after discount, before or including tax per `lineAmountTypes`. */
  amount: MinorUnits,
  accountId: Schema.optionalKey(Id),
  taxRateId: Schema.optionalKey(Id),
  taxAmount: Schema.optionalKey(MinorUnits),
  trackingIds: Schema.optionalKey(Ids)
})
export type DocumentLine = typeof DocumentLine.Type

const Lines = Schema.Array(DocumentLine).check(
  Schema.makeFilter((lines: ReadonlyArray<DocumentLine>) => lines.length > 0 || "Expected at least one line")
)

interface Totals {
  readonly lines: ReadonlyArray<{ readonly amount: number }>
  readonly lineAmountTypes?: LineAmountTypes
  readonly subtotal?: number
  readonly totalTax?: number
  readonly total?: number
  readonly date?: string
  readonly dueDate?: string
}

/** Totals, when given, must agree with the lines; a due date cannot precede the date. */
const checkTotals = Schema.makeFilter((d: Totals) => {
  const issues: Array<Schema.FilterIssue> = []
  const sum = d.lines.reduce((s, l) => s + l.amount, 0)
  if (d.subtotal !== undefined && d.subtotal !== sum) {
    issues.push({ path: ["subtotal"], issue: `subtotal ${d.subtotal} does not equal the sum of line amounts ${sum}` })
  }
  if (d.total !== undefined) {
    const expected = d.lineAmountTypes === "exclusive" ? sum + (d.totalTax ?? 0) : sum
    if (d.total !== expected) {
      issues.push({
        path: ["total"],
        issue: d.lineAmountTypes === "exclusive"
          ? `total ${d.total} does not equal line amounts ${sum} plus tax ${d.totalTax ?? 0}`
          : `total ${d.total} does not equal the sum of line amounts ${sum}`
      })
    }
  }
  if (d.dueDate !== undefined && d.date !== undefined && d.dueDate < d.date) {
    issues.push({ path: ["dueDate"], issue: `due date ${d.dueDate} is before the document date ${d.date}` })
  }
  return issues
})

const documentFields = {
  number: Schema.optionalKey(Text(50)),
  date: LocalDate,
  currency: CurrencyCode,
  /** Units of home currency per one unit of `currency`. */
  exchangeRate: Schema.optionalKey(Decimal.Decimal),
  lineAmountTypes: LineAmountTypes,
  lines: Lines,
  subtotal: Schema.optionalKey(MinorUnits),
  totalTax: Schema.optionalKey(MinorUnits),
  total: Schema.optionalKey(MinorUnits),
  reference: Schema.optionalKey(Text(255)),
  memo: Schema.optionalKey(Text(4000))
}

const receivable = {
  ...documentFields,
  contactId: Id,
  dueDate: Schema.optionalKey(LocalDate),
  amountDue: Schema.optionalKey(MinorUnits),
  status: DocumentStatus
}

export const Invoice = Schema.Struct({ ...envelope("invoice"), ...receivable }).check(checkTotals).pipe(
  Schema.annotate({ title: "Invoice", description: "A sales invoice (accounts receivable)" })
)
export type Invoice = typeof Invoice.Type

export const Bill = Schema.Struct({ ...envelope("bill"), ...receivable }).check(checkTotals).pipe(
  Schema.annotate({ title: "Bill", description: "A purchase bill (accounts payable)" })
)
export type Bill = typeof Bill.Type

export const CreditNote = Schema.Struct({ ...envelope("credit_note"), ...receivable }).check(checkTotals).pipe(
  Schema.annotate({ title: "CreditNote", description: "A credit issued to a customer" })
)
export type CreditNote = typeof CreditNote.Type

export const VendorCredit = Schema.Struct({ ...envelope("vendor_credit"), ...receivable }).check(checkTotals).pipe(
  Schema.annotate({ title: "VendorCredit", description: "A credit received from a vendor" })
)
export type VendorCredit = typeof VendorCredit.Type

export const PaymentMethod = Schema.Literals(["cash", "card", "check", "bank_transfer", "wallet", "other"])

export const SalesReceipt = Schema.Struct({
  ...envelope("sales_receipt"),
  ...documentFields,
  contactId: Schema.optionalKey(Id),
  depositAccountId: Id,
  paymentMethod: Schema.optionalKey(PaymentMethod),
  status: TransactionStatus
}).check(checkTotals).pipe(Schema.annotate({ title: "SalesReceipt", description: "A sale paid on the spot" }))
export type SalesReceipt = typeof SalesReceipt.Type

export const Refund = Schema.Struct({
  ...envelope("refund"),
  ...documentFields,
  contactId: Schema.optionalKey(Id),
  /** The account the money leaves from. */
  refundFromAccountId: Id,
  paymentMethod: Schema.optionalKey(PaymentMethod),
  /** The receipt or invoice refunded, when known. */
  originalDocumentId: Schema.optionalKey(Id),
  status: TransactionStatus
}).check(checkTotals).pipe(Schema.annotate({ title: "Refund", description: "Money paid back to a customer" }))
export type Refund = typeof Refund.Type

export const Expense = Schema.Struct({
  ...envelope("expense"),
  ...documentFields,
  /** The payee. */
  contactId: Schema.optionalKey(Id),
  /** The bank or credit-card account paid from. */
  paymentAccountId: Id,
  paymentType: Schema.Literals(["cash", "check", "credit_card"]),
  status: TransactionStatus
}).check(checkTotals).pipe(Schema.annotate({ title: "Expense", description: "A purchase paid on the spot" }))
export type Expense = typeof Expense.Type

// ---------------------------------------------------------------------------
// Payments and bank movements

const Allocation = <T extends string>(types: ReadonlyArray<T>) =>
  Schema.Struct({
    documentType: Schema.Literals(types),
    documentId: Id,
    amount: NonNegativeMinorUnits
  })

const checkAllocations = Schema.makeFilter((p: { readonly amount: number; readonly allocations: ReadonlyArray<{ readonly amount: number }> }) => {
  const allocated = p.allocations.reduce((s, a) => s + a.amount, 0)
  return allocated <= p.amount ||
    { path: ["allocations"], issue: `allocations total ${allocated}, more than the payment amount ${p.amount}` }
})

export const Payment = Schema.Struct({
  ...envelope("payment"),
  contactId: Id,
  date: LocalDate,
  currency: CurrencyCode,
  exchangeRate: Schema.optionalKey(Decimal.Decimal),
  amount: NonNegativeMinorUnits,
  /** The account the money is deposited to. */
  accountId: Id,
  paymentMethod: Schema.optionalKey(PaymentMethod),
  reference: Schema.optionalKey(Text(255)),
  memo: Schema.optionalKey(Text(4000)),
  allocations: Schema.Array(Allocation(["invoice", "credit_note"] as const)),
  status: TransactionStatus
}).check(checkAllocations).pipe(Schema.annotate({ title: "Payment", description: "A customer payment applied to invoices" }))
export type Payment = typeof Payment.Type

export const BillPayment = Schema.Struct({
  ...envelope("bill_payment"),
  contactId: Id,
  date: LocalDate,
  currency: CurrencyCode,
  exchangeRate: Schema.optionalKey(Decimal.Decimal),
  amount: NonNegativeMinorUnits,
  /** The account the money is paid from. */
  accountId: Id,
  paymentType: Schema.optionalKey(Schema.Literals(["check", "credit_card", "bank_transfer", "cash"])),
  reference: Schema.optionalKey(Text(255)),
  memo: Schema.optionalKey(Text(4000)),
  allocations: Schema.Array(Allocation(["bill", "vendor_credit"] as const)),
  status: TransactionStatus
}).check(checkAllocations).pipe(Schema.annotate({ title: "BillPayment", description: "A payment to a vendor applied to bills" }))
export type BillPayment = typeof BillPayment.Type

export const DepositLine = Schema.Struct({
  lineId: Schema.optionalKey(Id),
  amount: MinorUnits,
  accountId: Schema.optionalKey(Id),
  contactId: Schema.optionalKey(Id),
  paymentId: Schema.optionalKey(Id),
  description: Schema.optionalKey(Text(4000)),
  trackingIds: Schema.optionalKey(Ids)
})

export const Deposit = Schema.Struct({
  ...envelope("deposit"),
  date: LocalDate,
  currency: CurrencyCode,
  /** The bank account deposited to. */
  accountId: Id,
  lines: Schema.Array(DepositLine).check(
    Schema.makeFilter((l: ReadonlyArray<unknown>) => l.length > 0 || "Expected at least one line")
  ),
  total: Schema.optionalKey(MinorUnits),
  memo: Schema.optionalKey(Text(4000)),
  status: TransactionStatus
}).check(
  Schema.makeFilter((d: { readonly lines: ReadonlyArray<{ readonly amount: number }>; readonly total?: number }) => {
    const sum = d.lines.reduce((s, l) => s + l.amount, 0)
    return d.total === undefined || d.total === sum || { path: ["total"], issue: `total ${d.total} does not equal the sum of line amounts ${sum}` }
  })
).pipe(Schema.annotate({ title: "Deposit", description: "A bank deposit, e.g. a processor payout" }))
export type Deposit = typeof Deposit.Type

export const Transfer = Schema.Struct({
  ...envelope("transfer"),
  date: LocalDate,
  currency: CurrencyCode,
  fromAccountId: Id,
  toAccountId: Id,
  amount: MinorUnits.check(Schema.makeFilter((n: number) => n > 0 || "Expected a positive amount")),
  reference: Schema.optionalKey(Text(255)),
  memo: Schema.optionalKey(Text(4000)),
  status: TransactionStatus
}).check(
  Schema.makeFilter((t: { readonly fromAccountId: string; readonly toAccountId: string }) =>
    t.fromAccountId !== t.toAccountId || { path: ["toAccountId"], issue: "a transfer needs two different accounts" }
  )
).pipe(Schema.annotate({ title: "Transfer", description: "Money moved between two of the tenant's own accounts" }))
export type Transfer = typeof Transfer.Type

// ---------------------------------------------------------------------------
// Journal entries

export const PostingType = Schema.Literals(["debit", "credit"])
export type PostingType = typeof PostingType.Type

export const JournalLine = Schema.Struct({
  lineId: Schema.optionalKey(Id),
  postingType: PostingType,
  accountId: Id,
  amount: NonNegativeMinorUnits,
  /** Overrides the entry's currency for this line (multi-currency journals). */
  currency: Schema.optionalKey(CurrencyCode),
  description: Schema.optionalKey(Text(4000)),
  contactId: Schema.optionalKey(Id),
  taxRateId: Schema.optionalKey(Id),
  taxAmount: Schema.optionalKey(MinorUnits),
  trackingIds: Schema.optionalKey(Ids)
})
export type JournalLine = typeof JournalLine.Type

/** Debit and credit totals per currency of a journal's lines. */
export const journalBalances = (
  entry: { readonly currency: string; readonly lines: ReadonlyArray<JournalLine> }
): Map<string, { debit: number; credit: number }> => {
  const totals = new Map<string, { debit: number; credit: number }>()
  for (const line of entry.lines) {
    const currency = line.currency ?? entry.currency
    const t = totals.get(currency) ?? { debit: 0, credit: 0 }
    if (line.postingType === "debit") t.debit += line.amount
    else t.credit += line.amount
    totals.set(currency, t)
  }
  return totals
}

/** The currencies in which a journal's debits and credits differ. */
export const unbalancedCurrencies = (
  entry: { readonly currency: string; readonly lines: ReadonlyArray<JournalLine> }
): Array<{ currency: string; debit: number; credit: number }> =>
  [...journalBalances(entry)].filter(([, t]) => t.debit !== t.credit).map(([currency, t]) => ({ currency, ...t }))

export const JournalEntry = Schema.Struct({
  ...envelope("journal_entry"),
  number: Schema.optionalKey(Text(50)),
  date: LocalDate,
  currency: CurrencyCode,
  exchangeRate: Schema.optionalKey(Decimal.Decimal),
  lines: Schema.Array(JournalLine).check(
    Schema.makeFilter((l: ReadonlyArray<unknown>) => l.length >= 2 || "Expected at least two lines (a debit and a credit)")
  ),
  adjustment: Schema.optionalKey(Schema.Boolean),
  reference: Schema.optionalKey(Text(255)),
  memo: Schema.optionalKey(Text(4000)),
  status: Schema.Literals(["draft", "posted", "voided", "deleted"])
}).check(
  Schema.makeFilter((e: { readonly currency: string; readonly lines: ReadonlyArray<JournalLine> }) =>
    unbalancedCurrencies(e).map(({ currency, debit, credit }) => ({
      path: ["lines"],
      issue: `debits (${debit}) do not equal credits (${credit}) in ${currency}; difference ${debit - credit} minor units`
    }))
  )
).pipe(Schema.annotate({ title: "JournalEntry", description: "A manual journal; debits equal credits per currency" }))
export type JournalEntry = typeof JournalEntry.Type
