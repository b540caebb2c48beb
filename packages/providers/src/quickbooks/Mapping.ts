/**
 * QuickBooks Online wire records ↔ canonical records. Pure: no I/O.
 *
 * Id space: canonical records here are in QuickBooks' id space. Ids that
 * QuickBooks keeps in two separate lists carry the list in the id:
 * contacts are `customer:58` / `vendor:12` and tracking categories are
 * `class:5` / `department:3`; every other id is QuickBooks' own `Id`.
 *
 * What maps to what (canonical → QuickBooks):
 * - account → Account; contact → Customer or Vendor (one role each);
 *   item → Item; tax_rate → TaxCode (its components are the TaxRates it
 *   lists; read only through the API); currency → CompanyCurrency;
 *   tracking_category → Class (kind `class`) or Department (`department`,
 *   and `location`, which QuickBooks shows as "Location");
 * - invoice → Invoice, credit_note → CreditMemo, sales_receipt →
 *   SalesReceipt, refund → RefundReceipt (lines: SalesItemLineDetail);
 *   bill → Bill, vendor_credit → VendorCredit, expense → Purchase (lines:
 *   ItemBasedExpenseLineDetail with an item, AccountBasedExpenseLineDetail
 *   without); payment → Payment, bill_payment → BillPayment (allocations:
 *   lines with LinkedTxn); journal_entry → JournalEntry
 *   (JournalEntryLineDetail, PostingType); deposit → Deposit
 *   (DepositLineDetail, or a LinkedTxn to a Payment); transfer → Transfer.
 * - Amounts: integer minor units of the record's currency ↔ JSON numbers in
 *   major units (`Money.fromDecimal` / `Money.toMajorNumber`); quantities,
 *   prices and rates: decimal strings ↔ JSON numbers.
 * - Line tracking: a line's class is its `ClassRef`; QuickBooks keeps the
 *   department (location) on the transaction, so every line of a document
 *   must carry the same department (journal lines have their own).
 *
 * Values QuickBooks computes (totals, balances, paid/voided status) are read
 * but never written; `fields` lists only what round-trips.
 */
import { type Canonical, Decimal, type Entities, Money } from "@concord/core"
import type { EntityType } from "../Provider.ts"
import type * as Wire from "./Wire.ts"

type CanonicalRecord = Canonical.CanonicalRecord
type Json = Record<string, unknown>

/** Why a record cannot be expressed on the other side. */
export class Unmappable {
  readonly reason: string
  constructor(reason: string) {
    this.reason = reason
  }
}

export type Mapped<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly reason: string }

const fail = (reason: string): never => {
  throw new Unmappable(reason)
}

const guard = <A>(f: () => A): Mapped<A> => {
  try {
    return { ok: true, value: f() }
  } catch (e) {
    if (e instanceof Unmappable) return { ok: false, reason: e.reason }
    if (e instanceof RangeError) return { ok: false, reason: e.message }
    throw e
  }
}

export interface MappingContext {
  /** The company's home currency, for records that carry no CurrencyRef. */
  readonly homeCurrency: string
  /** TaxRates by Id, to resolve a TaxCode's components. */
  readonly taxRates?: ReadonlyMap<string, Wire.TaxRate>
}

export const defaultContext: MappingContext = { homeCurrency: "USD" }

// ---------------------------------------------------------------------------
// Entity names and ids

/** The QuickBooks entities behind each canonical entity, in listing order. */
export const wireEntitiesOf: Readonly<Record<EntityType, ReadonlyArray<Wire.EntityName>>> = {
  account: ["Account"],
  contact: ["Customer", "Vendor"],
  item: ["Item"],
  tax_rate: ["TaxCode"],
  currency: ["CompanyCurrency"],
  tracking_category: ["Class", "Department"],
  invoice: ["Invoice"],
  bill: ["Bill"],
  payment: ["Payment"],
  bill_payment: ["BillPayment"],
  credit_note: ["CreditMemo"],
  vendor_credit: ["VendorCredit"],
  journal_entry: ["JournalEntry"],
  sales_receipt: ["SalesReceipt"],
  refund: ["RefundReceipt"],
  deposit: ["Deposit"],
  transfer: ["Transfer"],
  expense: ["Purchase"]
}

const canonicalByWire = new Map<Wire.EntityName, EntityType>(
  (Object.entries(wireEntitiesOf) as Array<[EntityType, ReadonlyArray<Wire.EntityName>]>).flatMap(([e, ns]) =>
    ns.map((n): [Wire.EntityName, EntityType] => [n, e])
  )
)

/** The canonical entity a QuickBooks entity maps to (TaxRate maps to none: it is a TaxCode's component). */
export const canonicalEntityOf = (name: Wire.EntityName): EntityType | undefined => canonicalByWire.get(name)

const prefixed: Partial<Record<Wire.EntityName, string>> = {
  Customer: "customer",
  Vendor: "vendor",
  Class: "class",
  Department: "department"
}

/** The external id of a QuickBooks object: `customer:58` for contacts and tracking, the `Id` otherwise. */
export const externalIdOf = (name: Wire.EntityName, id: string): string => {
  const p = prefixed[name]
  return p === undefined ? id : `${p}:${id}`
}

/** Which QuickBooks entity and Id an external id names. */
export const parseExternalId = (entity: EntityType, externalId: string): Mapped<{ readonly name: Wire.EntityName; readonly id: string }> =>
  guard(() => {
    const names = wireEntitiesOf[entity]
    if (names.length === 1) return { name: names[0] as Wire.EntityName, id: externalId }
    const i = externalId.indexOf(":")
    const kind = i < 0 ? "" : externalId.slice(0, i)
    const name = names.find((n) => prefixed[n] === kind)
    if (name === undefined || i === externalId.length - 1) {
      return fail(`${entity} id '${externalId}' must name its QuickBooks list, e.g. '${prefixed[names[0] as Wire.EntityName]}:58'`)
    }
    return { name, id: externalId.slice(i + 1) }
  })

const refTo = (id: string, expected: Wire.EntityName, path: string): string => {
  const p = prefixed[expected]
  if (p === undefined) return id
  const i = id.indexOf(":")
  if (i < 0) return id
  const kind = id.slice(0, i)
  if (kind !== p) fail(`${path} '${id}' must be a ${expected}${expected === "Customer" ? " (customer:…)" : expected === "Vendor" ? " (vendor:…)" : ""}`)
  return id.slice(i + 1)
}

/** A contact id on either list: `{ value, type }` as QuickBooks' EntityRef. */
const contactRef = (id: string, path: string): { value: string; type: "Customer" | "Vendor" } => {
  const i = id.indexOf(":")
  const kind = i < 0 ? "" : id.slice(0, i)
  if (kind === "customer") return { value: id.slice(i + 1), type: "Customer" }
  if (kind === "vendor") return { value: id.slice(i + 1), type: "Vendor" }
  return fail(`${path} '${id}' must say whether it is a customer or a vendor ('customer:58', 'vendor:12')`)
}

const contactIdOf = (ref: { readonly value: string; readonly type?: string | undefined }, fallback?: "Customer" | "Vendor"): string => {
  const type = ref.type ?? fallback
  if (type === "Customer") return `customer:${ref.value}`
  if (type === "Vendor") return `vendor:${ref.value}`
  return fail(`a ${type ?? "untyped"} reference (${ref.value}) is not a customer or vendor`)
}

// ---------------------------------------------------------------------------
// Small helpers

/** Drops undefined members (exactOptionalPropertyTypes). */
const compact = <T extends Json>(o: T): T => {
  // A fresh object rather than `delete`, which would put the object in slow dictionary mode.
  const out: Json = {}
  for (const k in o) {
    const v = o[k]
    if (v !== undefined) out[k] = v
  }
  return out as T
}

const ref = (value: string | undefined): { value: string } | undefined => (value === undefined ? undefined : { value })

const major = (minor: number, currency: string): number => Money.toMajorNumber(minor, currency)
const minor = (n: number | undefined, currency: string): number => Money.fromDecimal(n ?? 0, currency)
const minorOpt = (n: number | undefined, currency: string): number | undefined => (n === undefined ? undefined : Money.fromDecimal(n, currency))

const decOut = (d: string | undefined): number | undefined => (d === undefined ? undefined : Number(d))
const decIn = (n: number | undefined): string | undefined => (n === undefined ? undefined : Decimal.fromNumber(n))

const activeOut = (status: string): boolean => status === "active"
const activeIn = (active: boolean | undefined): "active" | "archived" => (active === false ? "archived" : "active")

const envelope = (entity: EntityType, id: string) => ({ entity, schemaVersion: 1 as const, id })

const currencyOf = (w: { readonly CurrencyRef?: Wire.Ref | undefined }, ctx: MappingContext): string => w.CurrencyRef?.value ?? ctx.homeCurrency

/** Accounts and contacts in the home currency carry no currency (QuickBooks fills in the home one). */
const foreign = (ref: Wire.Ref | undefined, ctx: MappingContext): string | undefined =>
  ref === undefined || ref.value === ctx.homeCurrency ? undefined : ref.value

const nonEmpty = <A>(xs: ReadonlyArray<A> | undefined): ReadonlyArray<A> | undefined => (xs === undefined || xs.length === 0 ? undefined : xs)

// ---------------------------------------------------------------------------
// Addresses and custom fields

const addressOut = (a: Canonical.RecordOf<"contact">["billingAddress"]): Json | undefined =>
  a === undefined ? undefined : compact({
    Line1: a.line1,
    Line2: a.line2,
    City: a.city,
    CountrySubDivisionCode: a.region,
    PostalCode: a.postalCode,
    Country: a.country
  })

const addressIn = (a: Wire.PhysicalAddress | undefined): Json | undefined => {
  if (a === undefined) return undefined
  const out = compact({
    line1: a.Line1,
    line2: a.Line2,
    city: a.City,
    region: a.CountrySubDivisionCode,
    postalCode: a.PostalCode,
    country: a.Country
  })
  return Object.keys(out).length === 0 ? undefined : out
}

const customFieldsOut = (cf: Readonly<Record<string, string | number | boolean | null>> | undefined): Array<Json> | undefined => {
  if (cf === undefined) return undefined
  const out: Array<Json> = []
  let n = 0
  for (const [name, value] of Object.entries(cf)) {
    if (value === null) continue
    n++
    const base = { DefinitionId: String(n), Name: name }
    if (typeof value === "string") out.push({ ...base, Type: "StringType", StringValue: value })
    else if (typeof value === "number") out.push({ ...base, Type: "NumberType", NumberValue: value })
    else out.push({ ...base, Type: "BooleanType", BooleanValue: value })
  }
  return out.length === 0 ? undefined : out
}

const customFieldsIn = (cf: ReadonlyArray<Wire.CustomField> | undefined): Json | undefined => {
  if (cf === undefined) return undefined
  const entries: Array<[string, unknown]> = []
  for (const f of cf) {
    if (f.Name === undefined) continue
    const v = f.StringValue ?? f.NumberValue ?? f.BooleanValue ?? f.DateValue
    if (v !== undefined) entries.push([f.Name, v])
  }
  // fromEntries defines own properties, so a field named "__proto__" stays a field.
  return entries.length === 0 ? undefined : Object.fromEntries(entries)
}

// ---------------------------------------------------------------------------
// Tracking (classes per line, department per transaction)

const splitTracking = (ids: ReadonlyArray<string> | undefined, path: string): { cls?: string; dept?: string } => {
  const out: { cls?: string; dept?: string } = {}
  for (const id of ids ?? []) {
    const i = id.indexOf(":")
    const kind = id.slice(0, Math.max(0, i))
    const value = id.slice(i + 1)
    if (kind === "class") {
      if (out.cls !== undefined) fail(`${path}: QuickBooks takes one class per line`)
      out.cls = value
    } else if (kind === "department") {
      if (out.dept !== undefined) fail(`${path}: QuickBooks takes one department (location) per line`)
      out.dept = value
    } else {
      fail(`${path} '${id}' must be 'class:…' or 'department:…'`)
    }
  }
  return out
}

/** The single department all lines share (QuickBooks keeps it on the transaction). */
const sharedDepartment = (lines: ReadonlyArray<{ readonly trackingIds?: ReadonlyArray<string> }>): string | undefined => {
  const depts = lines.map((l, i) => splitTracking(l.trackingIds, `lines[${i}].trackingIds`).dept)
  const first = depts[0]
  if (depts.some((d) => d !== first)) {
    fail("QuickBooks keeps the department (location) on the transaction: every line must carry the same one")
  }
  return first
}

const trackingIn = (cls: Wire.Ref | undefined, dept: Wire.Ref | undefined): Array<string> | undefined => {
  const out: Array<string> = []
  if (cls !== undefined) out.push(`class:${cls.value}`)
  if (dept !== undefined) out.push(`department:${dept.value}`)
  return out.length === 0 ? undefined : out
}

// ---------------------------------------------------------------------------
// Status

const isVoided = (w: { readonly PrivateNote?: string | undefined; readonly TotalAmt?: number | undefined; readonly status?: string | undefined }): boolean =>
  w.status === "Voided" || ((w.TotalAmt ?? 0) === 0 && (w.PrivateNote ?? "").startsWith("Voided"))

const documentStatus = (w: { readonly PrivateNote?: string | undefined; readonly TotalAmt?: number | undefined; readonly status?: string | undefined }, open: number | undefined) =>
  isVoided(w) ? "voided" : open !== undefined && open === 0 && (w.TotalAmt ?? 0) > 0 ? "paid" : "authorised"

const txnStatus = (w: { readonly PrivateNote?: string | undefined; readonly TotalAmt?: number | undefined; readonly status?: string | undefined }) =>
  isVoided(w) ? "voided" : "active"

// ---------------------------------------------------------------------------
// Tax calculation

const taxCalcOut = (t: Canonical.RecordOf<"invoice">["lineAmountTypes"]): string =>
  t === "exclusive" ? "TaxExcluded" : t === "inclusive" ? "TaxInclusive" : "NotApplicable"

const taxCalcIn = (t: string | undefined): "exclusive" | "inclusive" | "no_tax" =>
  t === "TaxExcluded" ? "exclusive" : t === "TaxInclusive" ? "inclusive" : "no_tax"

const totalTaxOut = (totalTax: number | undefined, currency: string): Json | undefined =>
  totalTax === undefined ? undefined : { TotalTax: major(totalTax, currency) }

// ---------------------------------------------------------------------------
// Document lines

type DocLine = Entities.DocumentLine

const salesLineOut = (l: DocLine, i: number, currency: string): Json => {
  const { cls } = splitTracking(l.trackingIds, `lines[${i}].trackingIds`)
  return compact({
    Id: l.lineId,
    Description: l.description,
    Amount: major(l.amount, currency),
    DetailType: "SalesItemLineDetail",
    SalesItemLineDetail: compact({
      ItemRef: ref(l.itemId),
      Qty: decOut(l.quantity),
      UnitPrice: decOut(l.unitPrice),
      DiscountAmt: l.discountAmount === undefined ? undefined : major(l.discountAmount, currency),
      ItemAccountRef: ref(l.accountId),
      TaxCodeRef: ref(l.taxRateId),
      ClassRef: ref(cls)
    })
  })
}

const purchaseLineOut = (l: DocLine, i: number, currency: string): Json => {
  const { cls } = splitTracking(l.trackingIds, `lines[${i}].trackingIds`)
  if (l.discountAmount !== undefined) fail(`lines[${i}].discountAmount: QuickBooks purchase lines have no discount`)
  if (l.itemId !== undefined) {
    if (l.taxAmount !== undefined) fail(`lines[${i}].taxAmount: QuickBooks item lines carry no tax amount`)
    return compact({
      Id: l.lineId,
      Description: l.description,
      Amount: major(l.amount, currency),
      DetailType: "ItemBasedExpenseLineDetail",
      ItemBasedExpenseLineDetail: compact({
        ItemRef: { value: l.itemId },
        Qty: decOut(l.quantity),
        UnitPrice: decOut(l.unitPrice),
        ItemAccountRef: ref(l.accountId),
        TaxCodeRef: ref(l.taxRateId),
        ClassRef: ref(cls)
      })
    })
  }
  if (l.accountId === undefined) fail(`lines[${i}]: a purchase line needs an itemId or an accountId`)
  if (l.quantity !== undefined || l.unitPrice !== undefined) fail(`lines[${i}]: quantity and unit price need an item in QuickBooks`)
  return compact({
    Id: l.lineId,
    Description: l.description,
    Amount: major(l.amount, currency),
    DetailType: "AccountBasedExpenseLineDetail",
    AccountBasedExpenseLineDetail: compact({
      AccountRef: ref(l.accountId),
      TaxCodeRef: ref(l.taxRateId),
      TaxAmount: l.taxAmount === undefined ? undefined : major(l.taxAmount, currency),
      ClassRef: ref(cls)
    })
  })
}

const docLineIn = (l: Wire.Line, currency: string, dept: Wire.Ref | undefined): Json | undefined => {
  const base = { lineId: l.Id, description: l.Description, amount: minor(l.Amount, currency) }
  switch (l.DetailType) {
    case "SalesItemLineDetail": {
      const d = l.SalesItemLineDetail ?? {}
      return compact({
        ...base,
        itemId: d.ItemRef?.value,
        quantity: decIn(d.Qty),
        unitPrice: decIn(d.UnitPrice),
        discountAmount: minorOpt(d.DiscountAmt, currency),
        accountId: d.ItemAccountRef?.value,
        taxRateId: d.TaxCodeRef?.value,
        trackingIds: trackingIn(d.ClassRef, dept)
      })
    }
    case "ItemBasedExpenseLineDetail": {
      const d = l.ItemBasedExpenseLineDetail ?? {}
      return compact({
        ...base,
        itemId: d.ItemRef?.value,
        quantity: decIn(d.Qty),
        unitPrice: decIn(d.UnitPrice),
        accountId: d.ItemAccountRef?.value,
        taxRateId: d.TaxCodeRef?.value,
        trackingIds: trackingIn(d.ClassRef, dept)
      })
    }
    case "AccountBasedExpenseLineDetail": {
      const d = l.AccountBasedExpenseLineDetail ?? {}
      return compact({
        ...base,
        accountId: d.AccountRef?.value,
        taxRateId: d.TaxCodeRef?.value,
        taxAmount: minorOpt(d.TaxAmount, currency),
        trackingIds: trackingIn(d.ClassRef, dept)
      })
    }
    case "DiscountLineDetail":
      // A document-level discount: a negative line on the discount account.
      return compact({ ...base, amount: -base.amount, accountId: l.DiscountLineDetail?.DiscountAccountRef?.value })
    case "DescriptionOnly":
      return compact({ ...base, amount: 0 })
    case "SubTotalLineDetail":
    case "TaxLineDetail":
      return undefined
    default:
      return fail(`line ${l.Id ?? "?"} has detail type ${l.DetailType ?? "(none)"}, which has no canonical form`)
  }
}

const linesIn = (w: { readonly Line?: ReadonlyArray<Wire.Line> | undefined; readonly DepartmentRef?: Wire.Ref | undefined }, currency: string) =>
  (w.Line ?? []).flatMap((l) => {
    const m = docLineIn(l, currency, w.DepartmentRef)
    return m === undefined ? [] : [m]
  })

type SalesDoc = Canonical.RecordOf<"invoice"> | Canonical.RecordOf<"credit_note">
type PurchaseDoc = Canonical.RecordOf<"bill"> | Canonical.RecordOf<"vendor_credit">

const documentCommonOut = (r: { readonly number?: string; readonly date: string; readonly currency: string; readonly exchangeRate?: string; readonly lineAmountTypes: Canonical.RecordOf<"invoice">["lineAmountTypes"]; readonly totalTax?: number; readonly memo?: string; readonly lines: ReadonlyArray<DocLine> }) =>
  compact({
    DocNumber: r.number,
    TxnDate: r.date,
    CurrencyRef: { value: r.currency },
    ExchangeRate: decOut(r.exchangeRate),
    GlobalTaxCalculation: taxCalcOut(r.lineAmountTypes),
    TxnTaxDetail: totalTaxOut(r.totalTax, r.currency),
    PrivateNote: r.memo,
    DepartmentRef: ref(sharedDepartment(r.lines))
  })

const documentCommonIn = (w: Wire.Invoice | Wire.Bill | Wire.Purchase, currency: string) => {
  const lines = linesIn(w, currency)
  const subtotal = lines.reduce((s, l) => s + (l.amount as number), 0)
  return compact({
    number: w.DocNumber,
    date: w.TxnDate ?? "1970-01-01",
    currency,
    exchangeRate: decIn(w.ExchangeRate),
    lineAmountTypes: taxCalcIn(w.GlobalTaxCalculation),
    lines,
    subtotal,
    // QuickBooks answers TotalTax 0 for untaxed documents: zero tax reads as no tax amount.
    totalTax: w.TxnTaxDetail?.TotalTax === undefined || w.TxnTaxDetail.TotalTax === 0 ? undefined : minor(w.TxnTaxDetail.TotalTax, currency),
    total: minorOpt(w.TotalAmt, currency),
    memo: w.PrivateNote
  })
}

/** QuickBooks totals can disagree with canonical checks (tax on inclusive lines): keep them only when they agree. */
const consistentTotals = (r: Json): Json => {
  const lines = r.lines as ReadonlyArray<{ amount: number }>
  const sum = lines.reduce((s, l) => s + l.amount, 0)
  const expected = r.lineAmountTypes === "exclusive" ? sum + ((r.totalTax as number | undefined) ?? 0) : sum
  return r.total !== undefined && r.total !== expected ? { ...r, total: undefined } : r
}

// ---------------------------------------------------------------------------
// Canonical → wire

export interface WireBody {
  readonly name: Wire.EntityName
  /** The entity body without Id and SyncToken. */
  readonly body: Json
}

/** The QuickBooks body for a canonical record (its `id` is not sent). */
export const toWire = (record: CanonicalRecord): Mapped<WireBody> => guard(() => toWireUnsafe(record))

const toWireUnsafe = (r: CanonicalRecord): WireBody => {
  switch (r.entity) {
    case "account":
      return {
        name: "Account",
        body: compact({
          Name: r.name,
          AcctNum: r.code,
          ...accountTypeOut(r.type),
          Description: r.description,
          CurrencyRef: ref(r.currency),
          TaxCodeRef: ref(r.taxRateId),
          BankNum: r.bankAccountNumber,
          Active: activeOut(r.status)
        })
      }
    case "contact": {
      if (r.roles.length !== 1) fail("QuickBooks keeps customers and vendors in separate lists: a contact must have exactly one role")
      const vendor = r.roles[0] === "vendor"
      return {
        name: vendor ? "Vendor" : "Customer",
        body: compact({
          DisplayName: r.name,
          CompanyName: r.companyName,
          GivenName: r.firstName,
          FamilyName: r.lastName,
          PrimaryEmailAddr: r.email === undefined ? undefined : { Address: r.email },
          PrimaryPhone: r.phone === undefined ? undefined : { FreeFormNumber: r.phone },
          ...(vendor ? { TaxIdentifier: r.taxNumber } : { PrimaryTaxIdentifier: r.taxNumber }),
          CurrencyRef: ref(r.currency),
          BillAddr: addressOut(r.billingAddress),
          ShipAddr: addressOut(r.shippingAddress),
          Active: activeOut(r.status)
        })
      }
    }
    case "item":
      return {
        name: "Item",
        body: compact({
          Name: r.name,
          Sku: r.code,
          Description: r.description,
          Type: r.type === "inventory" ? "Inventory" : r.type === "service" ? "Service" : "NonInventory",
          UnitPrice: decOut(r.salesPrice),
          IncomeAccountRef: ref(r.salesAccountId),
          PurchaseCost: decOut(r.purchasePrice),
          ExpenseAccountRef: ref(r.purchaseAccountId),
          AssetAccountRef: ref(r.inventoryAccountId),
          SalesTaxCodeRef: ref(r.taxRateId),
          TrackQtyOnHand: r.type === "inventory" ? true : undefined,
          QtyOnHand: decOut(r.quantityOnHand),
          Active: activeOut(r.status)
        })
      }
    case "tax_rate":
      return { name: "TaxCode", body: taxCodeOut(r).TaxCode }
    case "currency":
      return { name: "CompanyCurrency", body: compact({ Code: r.code, Name: r.name, Active: activeOut(r.status) }) }
    case "tracking_category": {
      if (r.kind === "custom") fail("QuickBooks tracks by class and department (location) only")
      const name: Wire.EntityName = r.kind === "class" ? "Class" : "Department"
      const parent = r.parentId === undefined ? undefined : refTo(r.parentId, name, "parentId")
      return {
        name,
        body: compact({
          Name: r.name,
          ParentRef: ref(parent),
          ...(name === "Class" ? { SubClass: parent !== undefined } : { SubDepartment: parent !== undefined }),
          Active: activeOut(r.status)
        })
      }
    }
    case "invoice":
    case "credit_note":
      return { name: r.entity === "invoice" ? "Invoice" : "CreditMemo", body: salesDocOut(r) }
    case "sales_receipt":
    case "refund": {
      const body = compact({
        ...documentCommonOut(r),
        CustomerRef: r.contactId === undefined ? undefined : { value: refTo(r.contactId, "Customer", "contactId") },
        DepositToAccountRef: { value: r.entity === "sales_receipt" ? r.depositAccountId : r.refundFromAccountId },
        PaymentRefNum: r.reference,
        CustomField: customFieldsOut(r.customFields),
        Line: r.lines.map((l, i) => salesLineOut(l, i, r.currency))
      })
      return { name: r.entity === "sales_receipt" ? "SalesReceipt" : "RefundReceipt", body }
    }
    case "bill":
    case "vendor_credit":
      return { name: r.entity === "bill" ? "Bill" : "VendorCredit", body: purchaseDocOut(r) }
    case "expense":
      return {
        name: "Purchase",
        body: compact({
          ...documentCommonOut(r),
          AccountRef: { value: r.paymentAccountId },
          PaymentType: r.paymentType === "cash" ? "Cash" : r.paymentType === "check" ? "Check" : "CreditCard",
          EntityRef: r.contactId === undefined ? undefined : contactRef(r.contactId, "contactId"),
          PaymentRefNum: r.reference,
          Line: r.lines.map((l, i) => purchaseLineOut(l, i, r.currency))
        })
      }
    case "payment":
      return {
        name: "Payment",
        body: compact({
          CustomerRef: { value: refTo(r.contactId, "Customer", "contactId") },
          TxnDate: r.date,
          CurrencyRef: { value: r.currency },
          ExchangeRate: decOut(r.exchangeRate),
          TotalAmt: major(r.amount, r.currency),
          DepositToAccountRef: { value: r.accountId },
          PaymentRefNum: r.reference,
          PrivateNote: r.memo,
          Line: r.allocations.map((a) => ({
            Amount: major(a.amount, r.currency),
            LinkedTxn: [{ TxnId: a.documentId, TxnType: a.documentType === "invoice" ? "Invoice" : "CreditMemo" }]
          }))
        })
      }
    case "bill_payment": {
      const type = r.paymentType ?? "check"
      if (type !== "check" && type !== "credit_card") fail(`QuickBooks pays bills by check or credit card, not ${type}`)
      return {
        name: "BillPayment",
        body: compact({
          VendorRef: { value: refTo(r.contactId, "Vendor", "contactId") },
          TxnDate: r.date,
          CurrencyRef: { value: r.currency },
          ExchangeRate: decOut(r.exchangeRate),
          TotalAmt: major(r.amount, r.currency),
          PayType: type === "check" ? "Check" : "CreditCard",
          ...(type === "check" ? { CheckPayment: { BankAccountRef: { value: r.accountId } } } : { CreditCardPayment: { CCAccountRef: { value: r.accountId } } }),
          DocNumber: r.reference,
          PrivateNote: r.memo,
          Line: r.allocations.map((a) => ({
            Amount: major(a.amount, r.currency),
            LinkedTxn: [{ TxnId: a.documentId, TxnType: a.documentType === "bill" ? "Bill" : "VendorCredit" }]
          }))
        })
      }
    }
    case "journal_entry":
      return {
        name: "JournalEntry",
        body: compact({
          DocNumber: r.number,
          TxnDate: r.date,
          CurrencyRef: { value: r.currency },
          ExchangeRate: decOut(r.exchangeRate),
          Adjustment: r.adjustment,
          PrivateNote: r.memo,
          Line: r.lines.map((l, i) => {
            if (l.currency !== undefined && l.currency !== r.currency) {
              fail(`lines[${i}].currency: a QuickBooks journal entry has one currency (${r.currency})`)
            }
            const t = splitTracking(l.trackingIds, `lines[${i}].trackingIds`)
            return compact({
              Id: l.lineId,
              Description: l.description,
              Amount: major(l.amount, r.currency),
              DetailType: "JournalEntryLineDetail",
              JournalEntryLineDetail: compact({
                PostingType: l.postingType === "debit" ? "Debit" : "Credit",
                AccountRef: { value: l.accountId },
                Entity: l.contactId === undefined ? undefined : (() => {
                  const c = contactRef(l.contactId, `lines[${i}].contactId`)
                  return { Type: c.type, EntityRef: { value: c.value } }
                })(),
                ClassRef: ref(t.cls),
                DepartmentRef: ref(t.dept),
                TaxCodeRef: ref(l.taxRateId),
                TaxAmount: l.taxAmount === undefined ? undefined : major(l.taxAmount, r.currency)
              })
            })
          })
        })
      }
    case "deposit":
      return {
        name: "Deposit",
        body: compact({
          TxnDate: r.date,
          CurrencyRef: { value: r.currency },
          DepositToAccountRef: { value: r.accountId },
          PrivateNote: r.memo,
          DepartmentRef: ref(sharedDepartment(r.lines)),
          Line: r.lines.map((l, i) => {
            const t = splitTracking(l.trackingIds, `lines[${i}].trackingIds`)
            if (l.paymentId !== undefined) {
              if (l.accountId !== undefined || l.contactId !== undefined || t.cls !== undefined) {
                fail(`lines[${i}]: a line depositing a payment takes its account, customer and class from the payment`)
              }
              return compact({
                Id: l.lineId,
                Description: l.description,
                Amount: major(l.amount, r.currency),
                LinkedTxn: [{ TxnId: l.paymentId, TxnType: "Payment", TxnLineId: "0" }]
              })
            }
            return compact({
              Id: l.lineId,
              Description: l.description,
              Amount: major(l.amount, r.currency),
              DetailType: "DepositLineDetail",
              DepositLineDetail: compact({
                AccountRef: ref(l.accountId),
                Entity: l.contactId === undefined ? undefined : contactRef(l.contactId, `lines[${i}].contactId`),
                ClassRef: ref(t.cls)
              })
            })
          })
        })
      }
    case "transfer":
      return {
        name: "Transfer",
        body: compact({
          TxnDate: r.date,
          CurrencyRef: { value: r.currency },
          FromAccountRef: { value: r.fromAccountId },
          ToAccountRef: { value: r.toAccountId },
          Amount: major(r.amount, r.currency),
          PrivateNote: r.memo
        })
      }
  }
}

const salesDocOut = (r: SalesDoc): Json =>
  compact({
    ...documentCommonOut(r),
    CustomerRef: { value: refTo(r.contactId, "Customer", "contactId") },
    DueDate: r.dueDate,
    CustomField: customFieldsOut(r.customFields),
    Line: r.lines.map((l, i) => salesLineOut(l, i, r.currency))
  })

const purchaseDocOut = (r: PurchaseDoc): Json =>
  compact({
    ...documentCommonOut(r),
    VendorRef: { value: refTo(r.contactId, "Vendor", "contactId") },
    DueDate: r.entity === "bill" ? r.dueDate : undefined,
    Line: r.lines.map((l, i) => purchaseLineOut(l, i, r.currency))
  })

const accountTypes: Readonly<Record<Entities.AccountType, { AccountType: Wire.AccountType; AccountSubType?: string }>> = {
  bank: { AccountType: "Bank" },
  accounts_receivable: { AccountType: "Accounts Receivable" },
  current_asset: { AccountType: "Other Current Asset" },
  fixed_asset: { AccountType: "Fixed Asset" },
  non_current_asset: { AccountType: "Other Asset" },
  inventory: { AccountType: "Other Current Asset", AccountSubType: "Inventory" },
  prepayment: { AccountType: "Other Current Asset", AccountSubType: "PrepaidExpenses" },
  accounts_payable: { AccountType: "Accounts Payable" },
  credit_card: { AccountType: "Credit Card" },
  current_liability: { AccountType: "Other Current Liability" },
  non_current_liability: { AccountType: "Long Term Liability" },
  equity: { AccountType: "Equity" },
  revenue: { AccountType: "Income" },
  other_income: { AccountType: "Other Income" },
  cost_of_sales: { AccountType: "Cost of Goods Sold" },
  expense: { AccountType: "Expense" },
  other_expense: { AccountType: "Other Expense" },
  depreciation: { AccountType: "Other Expense", AccountSubType: "Depreciation" }
}

const accountTypeOut = (t: Entities.AccountType) => accountTypes[t]

const accountTypeIn = (type: Wire.AccountType | undefined, sub: string | undefined): Entities.AccountType => {
  switch (type) {
    case "Bank":
      return "bank"
    case "Accounts Receivable":
      return "accounts_receivable"
    case "Other Current Asset":
      return sub === "Inventory" ? "inventory" : sub === "PrepaidExpenses" ? "prepayment" : "current_asset"
    case "Fixed Asset":
      return "fixed_asset"
    case "Other Asset":
      return "non_current_asset"
    case "Accounts Payable":
      return "accounts_payable"
    case "Credit Card":
      return "credit_card"
    case "Other Current Liability":
      return "current_liability"
    case "Long Term Liability":
      return "non_current_liability"
    case "Equity":
      return "equity"
    case "Income":
      return "revenue"
    case "Other Income":
      return "other_income"
    case "Cost of Goods Sold":
      return "cost_of_sales"
    case "Expense":
      return "expense"
    case "Other Expense":
      return sub === "Depreciation" ? "depreciation" : "other_expense"
    default:
      return fail(`account type ${type ?? "(none)"} has no canonical form`)
  }
}

/** A tax_rate as QuickBooks holds it: a TaxCode listing TaxRates (component Ids are generated). */
export const taxCodeOut = (r: Canonical.RecordOf<"tax_rate">): { TaxCode: Json; TaxRates: Array<Json> } => {
  const rates = (r.components ?? []).map((c, i) => ({ Id: `${r.id}-${i + 1}`, Name: c.name, RateValue: Number(c.rate), Active: true }))
  const list = rates.length === 0 ? undefined : {
    TaxRateDetail: rates.map((t, i) => ({ TaxRateRef: { value: t.Id, name: t.Name }, TaxTypeApplicable: "TaxOnAmount", TaxOrder: i }))
  }
  const sales = r.appliesTo === undefined || r.appliesTo === "sales" || r.appliesTo === "both"
  const purchases = r.appliesTo === "purchases" || r.appliesTo === "both"
  return {
    TaxCode: compact({
      Name: r.name,
      Active: activeOut(r.status),
      Taxable: Decimal.compare(r.rate, "0") !== 0,
      TaxGroup: rates.length > 1,
      SalesTaxRateList: sales ? list : undefined,
      PurchaseTaxRateList: purchases ? list : undefined
    }),
    TaxRates: rates
  }
}

const sumDecimals = (ds: ReadonlyArray<string>): string => {
  const scale = Math.max(0, ...ds.map((d) => Decimal.parts(d).frac.length))
  return Decimal.fromScaledBigInt(ds.reduce((s, d) => s + Decimal.toScaledBigInt(d, scale), 0n), scale)
}

// ---------------------------------------------------------------------------
// Wire → canonical

/**
 * The canonical record for a QuickBooks object (`wire` already decoded with
 * the entity's schema from Wire.ts).
 */
export const fromWire = (name: Wire.EntityName, wire: unknown, ctx: MappingContext = defaultContext): Mapped<CanonicalRecord> =>
  guard(() => fromWireUnsafe(name, wire, ctx))

const fromWireUnsafe = (name: Wire.EntityName, wire: unknown, ctx: MappingContext): CanonicalRecord => {
  const out = (entity: EntityType, id: string, body: Json): CanonicalRecord =>
    compact({ ...envelope(entity, externalIdOf(name, id)), ...body }) as unknown as CanonicalRecord
  switch (name) {
    case "Account": {
      const w = wire as Wire.Account
      return out("account", w.Id, {
        code: w.AcctNum !== undefined && w.AcctNum.trim() !== "" ? w.AcctNum : w.Id,
        name: w.Name,
        type: accountTypeIn(w.AccountType, w.AccountSubType),
        description: w.Description,
        currency: foreign(w.CurrencyRef, ctx),
        taxRateId: w.TaxCodeRef?.value,
        bankAccountNumber: w.BankNum,
        status: activeIn(w.Active)
      })
    }
    case "Customer":
    case "Vendor": {
      const w = wire as Wire.Customer & Wire.Vendor
      return out("contact", w.Id, {
        name: w.DisplayName,
        roles: [name === "Customer" ? "customer" : "vendor"],
        companyName: w.CompanyName,
        firstName: w.GivenName,
        lastName: w.FamilyName,
        email: w.PrimaryEmailAddr?.Address,
        phone: w.PrimaryPhone?.FreeFormNumber,
        taxNumber: name === "Customer" ? w.PrimaryTaxIdentifier : w.TaxIdentifier,
        currency: foreign(w.CurrencyRef, ctx),
        billingAddress: addressIn(w.BillAddr),
        shippingAddress: addressIn(w.ShipAddr),
        status: activeIn(w.Active)
      })
    }
    case "Item": {
      const w = wire as Wire.Item
      const type = w.Type === "Inventory" ? "inventory" : w.Type === "Service" ? "service" : w.Type === "NonInventory" ? "non_inventory" : undefined
      if (type === undefined) fail(`item type ${w.Type ?? "(none)"} has no canonical form`)
      return out("item", w.Id, {
        code: w.Sku,
        name: w.Name,
        description: w.Description,
        type,
        salesPrice: decIn(w.UnitPrice),
        salesAccountId: w.IncomeAccountRef?.value,
        purchasePrice: decIn(w.PurchaseCost),
        purchaseAccountId: w.ExpenseAccountRef?.value,
        inventoryAccountId: w.AssetAccountRef?.value,
        taxRateId: w.SalesTaxCodeRef?.value,
        quantityOnHand: decIn(w.QtyOnHand),
        status: activeIn(w.Active)
      })
    }
    case "TaxCode": {
      const w = wire as Wire.TaxCode
      const sales = w.SalesTaxRateList?.TaxRateDetail ?? []
      const purchases = w.PurchaseTaxRateList?.TaxRateDetail ?? []
      const seen = new Set<string>()
      const components: Array<{ name: string; rate: string }> = []
      for (const d of [...sales, ...purchases]) {
        if (seen.has(d.TaxRateRef.value)) continue
        seen.add(d.TaxRateRef.value)
        const rate = ctx.taxRates?.get(d.TaxRateRef.value)
        if (rate === undefined) fail(`TaxCode ${w.Id} lists TaxRate ${d.TaxRateRef.value}, which was not supplied`)
        components.push({ name: (rate as Wire.TaxRate).Name, rate: decIn((rate as Wire.TaxRate).RateValue ?? 0) ?? "0" })
      }
      const basis = (sales.length > 0 ? sales : purchases).map((d) => ctx.taxRates?.get(d.TaxRateRef.value)?.RateValue ?? 0)
      return out("tax_rate", w.Id, {
        name: w.Name,
        rate: sumDecimals(basis.map((n) => decIn(n) ?? "0")),
        appliesTo: sales.length > 0 && purchases.length > 0 ? "both" : sales.length > 0 ? "sales" : purchases.length > 0 ? "purchases" : undefined,
        components: nonEmpty(components),
        status: activeIn(w.Active)
      })
    }
    case "TaxRate":
      return fail("a TaxRate is a component of a TaxCode; read the TaxCode")
    case "CompanyCurrency": {
      const w = wire as Wire.CompanyCurrency
      return out("currency", w.Id, { code: w.Code, name: w.Name, status: activeIn(w.Active) })
    }
    case "Class":
    case "Department": {
      const w = wire as Wire.Class
      const p = name === "Class" ? "class" : "department"
      return out("tracking_category", w.Id, {
        name: w.Name,
        kind: p,
        parentId: w.ParentRef === undefined ? undefined : `${p}:${w.ParentRef.value}`,
        status: activeIn(w.Active)
      })
    }
    case "Invoice":
    case "CreditMemo": {
      const w = wire as Wire.Invoice & Wire.CreditMemo
      const currency = currencyOf(w, ctx)
      const open = name === "Invoice" ? w.Balance : w.RemainingCredit
      return out(name === "Invoice" ? "invoice" : "credit_note", w.Id, consistentTotals({
        ...documentCommonIn(w, currency),
        contactId: w.CustomerRef === undefined ? fail(`${name} ${w.Id} has no CustomerRef`) : `customer:${w.CustomerRef.value}`,
        dueDate: w.DueDate,
        amountDue: minorOpt(open, currency),
        customFields: customFieldsIn(w.CustomField),
        status: documentStatus(w, open)
      }))
    }
    case "SalesReceipt":
    case "RefundReceipt": {
      const w = wire as Wire.SalesReceipt
      const currency = currencyOf(w, ctx)
      const account = w.DepositToAccountRef?.value ?? fail(`${name} ${w.Id} has no DepositToAccountRef`)
      return out(name === "SalesReceipt" ? "sales_receipt" : "refund", w.Id, consistentTotals({
        ...documentCommonIn(w, currency),
        contactId: w.CustomerRef === undefined ? undefined : `customer:${w.CustomerRef.value}`,
        ...(name === "SalesReceipt" ? { depositAccountId: account } : { refundFromAccountId: account }),
        reference: w.PaymentRefNum,
        customFields: customFieldsIn(w.CustomField),
        status: txnStatus(w)
      }))
    }
    case "Bill":
    case "VendorCredit": {
      const w = wire as Wire.Bill
      const currency = currencyOf(w, ctx)
      return out(name === "Bill" ? "bill" : "vendor_credit", w.Id, consistentTotals({
        ...documentCommonIn(w, currency),
        contactId: w.VendorRef === undefined ? fail(`${name} ${w.Id} has no VendorRef`) : `vendor:${w.VendorRef.value}`,
        dueDate: w.DueDate,
        amountDue: minorOpt(w.Balance, currency),
        status: documentStatus(w, w.Balance)
      }))
    }
    case "Purchase": {
      const w = wire as Wire.Purchase
      if (w.Credit === true) fail(`Purchase ${w.Id} is a credit-card credit, which has no canonical form`)
      const currency = currencyOf(w, ctx)
      return out("expense", w.Id, consistentTotals({
        ...documentCommonIn(w, currency),
        contactId: w.EntityRef === undefined ? undefined : contactIdOf(w.EntityRef),
        paymentAccountId: w.AccountRef?.value ?? fail(`Purchase ${w.Id} has no AccountRef`),
        paymentType: w.PaymentType === "Cash" ? "cash" : w.PaymentType === "Check" ? "check" : "credit_card",
        reference: w.PaymentRefNum,
        status: txnStatus(w)
      }))
    }
    case "Payment": {
      const w = wire as Wire.Payment
      const currency = currencyOf(w, ctx)
      return out("payment", w.Id, {
        contactId: w.CustomerRef === undefined ? fail(`Payment ${w.Id} has no CustomerRef`) : `customer:${w.CustomerRef.value}`,
        date: w.TxnDate ?? "1970-01-01",
        currency,
        exchangeRate: decIn(w.ExchangeRate),
        amount: minor(w.TotalAmt, currency),
        accountId: w.DepositToAccountRef?.value ?? fail(`Payment ${w.Id} has no DepositToAccountRef`),
        reference: w.PaymentRefNum,
        memo: w.PrivateNote,
        allocations: allocationsIn(w.Line, currency, { Invoice: "invoice", CreditMemo: "credit_note" }),
        status: txnStatus(w)
      })
    }
    case "BillPayment": {
      const w = wire as Wire.BillPayment
      const currency = currencyOf(w, ctx)
      const check = w.PayType !== "CreditCard"
      return out("bill_payment", w.Id, {
        contactId: w.VendorRef === undefined ? fail(`BillPayment ${w.Id} has no VendorRef`) : `vendor:${w.VendorRef.value}`,
        date: w.TxnDate ?? "1970-01-01",
        currency,
        exchangeRate: decIn(w.ExchangeRate),
        amount: minor(w.TotalAmt, currency),
        accountId: (check ? w.CheckPayment?.BankAccountRef?.value : w.CreditCardPayment?.CCAccountRef?.value) ??
          fail(`BillPayment ${w.Id} has no paying account`),
        paymentType: check ? "check" : "credit_card",
        reference: w.DocNumber,
        memo: w.PrivateNote,
        allocations: allocationsIn(w.Line, currency, { Bill: "bill", VendorCredit: "vendor_credit" }),
        status: txnStatus(w)
      })
    }
    case "JournalEntry": {
      const w = wire as Wire.JournalEntry
      const currency = currencyOf(w, ctx)
      return out("journal_entry", w.Id, {
        number: w.DocNumber,
        date: w.TxnDate ?? "1970-01-01",
        currency,
        exchangeRate: decIn(w.ExchangeRate),
        lines: (w.Line ?? []).filter((l) => l.DetailType === "JournalEntryLineDetail").map((l) => {
          const d = l.JournalEntryLineDetail ?? fail(`journal line ${l.Id ?? "?"} has no JournalEntryLineDetail`)
          return compact({
            lineId: l.Id,
            postingType: d.PostingType === "Debit" ? "debit" : "credit",
            accountId: d.AccountRef.value,
            amount: minor(l.Amount, currency),
            description: l.Description,
            contactId: d.Entity === undefined ? undefined : contactIdOf({ value: d.Entity.EntityRef.value, type: d.Entity.Type ?? d.Entity.EntityRef.type }),
            taxRateId: d.TaxCodeRef?.value,
            taxAmount: minorOpt(d.TaxAmount, currency),
            trackingIds: trackingIn(d.ClassRef, d.DepartmentRef)
          })
        }),
        adjustment: w.Adjustment,
        memo: w.PrivateNote,
        status: "posted"
      })
    }
    case "Deposit": {
      const w = wire as Wire.Deposit
      const currency = currencyOf(w, ctx)
      const lines = (w.Line ?? []).map((l) => {
        const payment = l.LinkedTxn?.find((t) => t.TxnType === "Payment")
        const d = l.DepositLineDetail
        return compact({
          lineId: l.Id,
          amount: minor(l.Amount, currency),
          accountId: d?.AccountRef?.value,
          contactId: d?.Entity === undefined ? undefined : contactIdOf(d.Entity),
          paymentId: payment?.TxnId,
          description: l.Description,
          trackingIds: trackingIn(d?.ClassRef, w.DepartmentRef)
        })
      })
      return out("deposit", w.Id, {
        date: w.TxnDate ?? "1970-01-01",
        currency,
        accountId: w.DepositToAccountRef?.value ?? fail(`Deposit ${w.Id} has no DepositToAccountRef`),
        lines,
        total: w.TotalAmt === undefined ? undefined : lines.reduce((s, l) => s + (l.amount as number), 0) === minor(w.TotalAmt, currency) ? minor(w.TotalAmt, currency) : undefined,
        memo: w.PrivateNote,
        status: txnStatus(w)
      })
    }
    case "Transfer": {
      const w = wire as Wire.Transfer
      const currency = currencyOf(w, ctx)
      return out("transfer", w.Id, {
        date: w.TxnDate ?? "1970-01-01",
        currency,
        fromAccountId: w.FromAccountRef?.value ?? fail(`Transfer ${w.Id} has no FromAccountRef`),
        toAccountId: w.ToAccountRef?.value ?? fail(`Transfer ${w.Id} has no ToAccountRef`),
        amount: minor(w.Amount, currency),
        memo: w.PrivateNote,
        status: w.status === "Voided" || (w.Amount === 0 && (w.PrivateNote ?? "").startsWith("Voided")) ? "voided" : "active"
      })
    }
  }
}

const allocationsIn = (
  lines: ReadonlyArray<Wire.Line> | undefined,
  currency: string,
  types: Readonly<Record<string, string>>
): Array<Json> =>
  (lines ?? []).flatMap((l) => {
    const t = (l.LinkedTxn ?? []).find((x) => types[x.TxnType] !== undefined)
    return t === undefined ? [] : [{ documentType: types[t.TxnType], documentId: t.TxnId, amount: minor(l.Amount, currency) }]
  })

// ---------------------------------------------------------------------------
// What round-trips

const common = ["entity", "schemaVersion", "id"]
const docFields = ["number", "date", "currency", "exchangeRate", "lineAmountTypes", "lines", "totalTax", "memo", "status"]

/** The top-level canonical fields QuickBooks stores, per entity (EntityCapabilities.fields). */
export const fields: Readonly<Record<EntityType, ReadonlyArray<string>>> = {
  account: [...common, "code", "name", "type", "description", "currency", "taxRateId", "bankAccountNumber", "status"],
  contact: [...common, "name", "roles", "companyName", "firstName", "lastName", "email", "phone", "taxNumber", "currency", "billingAddress", "shippingAddress", "status"],
  item: [...common, "code", "name", "description", "type", "salesPrice", "salesAccountId", "purchasePrice", "purchaseAccountId", "inventoryAccountId", "taxRateId", "quantityOnHand", "status"],
  tax_rate: [...common, "name", "rate", "appliesTo", "components", "status"],
  currency: [...common, "code", "name", "status"],
  tracking_category: [...common, "name", "kind", "parentId", "status"],
  invoice: [...common, ...docFields, "contactId", "dueDate", "customFields"],
  credit_note: [...common, ...docFields, "contactId", "dueDate", "customFields"],
  sales_receipt: [...common, ...docFields, "contactId", "depositAccountId", "reference", "customFields"],
  refund: [...common, ...docFields, "contactId", "refundFromAccountId", "reference", "customFields"],
  bill: [...common, ...docFields, "contactId", "dueDate"],
  vendor_credit: [...common, ...docFields, "contactId"],
  expense: [...common, ...docFields, "contactId", "paymentAccountId", "paymentType", "reference"],
  payment: [...common, "contactId", "date", "currency", "exchangeRate", "amount", "accountId", "reference", "memo", "allocations", "status"],
  bill_payment: [...common, "contactId", "date", "currency", "exchangeRate", "amount", "accountId", "paymentType", "reference", "memo", "allocations", "status"],
  journal_entry: [...common, "number", "date", "currency", "exchangeRate", "lines", "adjustment", "memo", "status"],
  deposit: [...common, "date", "currency", "accountId", "lines", "memo", "status"],
  transfer: [...common, "date", "currency", "fromAccountId", "toAccountId", "amount", "memo", "status"]
}

/** A record reduced to the fields QuickBooks stores for its entity. */
export const project = (record: CanonicalRecord): Json => {
  const keep = fields[record.entity]
  const out: Json = {}
  for (const k of keep) {
    const v = (record as unknown as Json)[k]
    if (v !== undefined) out[k] = v
  }
  return out
}

/** The `LastUpdatedTime` (or creation time) of a wire object, RFC 3339. */
export const updatedAtOf = (w: { readonly MetaData?: Wire.MetaData | undefined }): string =>
  w.MetaData?.LastUpdatedTime ?? w.MetaData?.CreateTime ?? new Date(0).toISOString()
