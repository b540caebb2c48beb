/**
 * Xero wire ↔ canonical records. Pure: no I/O, no clock.
 *
 * Records are in Xero's id space (record.id = the Xero GUID; references hold
 * Xero ids). Where the wire references by a natural key instead of an id —
 * accounts by `Code` on line items, items by `ItemCode` — the caller passes
 * a `Lookup` built from the tenant's chart of accounts and items.
 *
 * Every entity's `fields` lists the canonical top-level fields Xero stores;
 * `toWire` then `fromWire` gives back exactly the projection of a record to
 * those fields (tested property-based). Fields not listed are either derived
 * by Xero (totals due, contact roles, item quantity) or have no Xero home
 * (memo on invoices, payment methods); see the notes per entity.
 */
import { type Canonical, Currency as CurrencyTable, Decimal, Entities, Hash, Money } from "@concord/core"
import * as W from "./Wire.ts"


/** The canonical entity types Xero has a home for. */
export const supported = [
  "account",
  "contact",
  "item",
  "tax_rate",
  "currency",
  "tracking_category",
  "invoice",
  "bill",
  "credit_note",
  "vendor_credit",
  "payment",
  "bill_payment",
  "journal_entry",
  "sales_receipt",
  "expense",
  "transfer"
] as const satisfies ReadonlyArray<Canonical.EntityType>
export type Supported = (typeof supported)[number]

export const isSupported = (e: string): e is Supported => (supported as ReadonlyArray<string>).includes(e)

/** Why Xero has no home for the others. */
export const unsupportedReasons: Readonly<Partial<Record<Canonical.EntityType, string>>> = {
  refund: "Xero has no refund document: record a credit_note and a payment allocated to it (a cash refund, Xero ARCREDITPAYMENT)",
  deposit: "Xero has no deposit document: bank deposits come from bank feeds and reconciliation; post payouts as transfers or sales receipts"
}

const envelopeFields = ["entity", "schemaVersion", "id"] as const
const documentFields = [
  "number", "date", "dueDate", "currency", "exchangeRate", "lineAmountTypes", "lines", "subtotal", "totalTax", "total", "status", "contactId"
] as const

/** The top-level canonical fields each entity round-trips through Xero. */
export const fields: Readonly<Record<Supported, ReadonlyArray<string>>> = {
  account: [...envelopeFields, "code", "name", "type", "description", "currency", "taxRateId", "bankAccountNumber", "status"],
  // roles: Xero derives IsCustomer/IsSupplier from the invoices and bills a contact has; they cannot be written.
  // companyName: Xero's Name is the organisation name; there is no separate company field.
  contact: [...envelopeFields, "name", "firstName", "lastName", "email", "phone", "taxNumber", "currency", "billingAddress", "shippingAddress", "status"],
  // type and quantityOnHand are derived (tracked items are inventory); Xero items have no status (they are deleted).
  item: [...envelopeFields, "code", "name", "description", "salesPrice", "salesAccountId", "purchasePrice", "purchaseAccountId", "inventoryAccountId", "taxRateId"],
  // code is the Xero-assigned TaxType (the record id); appliesTo is derived from the components' report types.
  tax_rate: [...envelopeFields, "name", "rate", "components", "status"],
  currency: [...envelopeFields, "code", "name"],
  tracking_category: [...envelopeFields, "name", "parentId", "status"],
  // memo and amountDue have no writable Xero field.
  invoice: [...envelopeFields, ...documentFields, "reference"],
  // Xero keeps Reference for sales documents only.
  bill: [...envelopeFields, ...documentFields],
  credit_note: [...envelopeFields, ...documentFields, "reference"],
  vendor_credit: [...envelopeFields, ...documentFields],
  // paymentMethod and memo have no Xero field.
  payment: [...envelopeFields, "contactId", "date", "currency", "exchangeRate", "amount", "accountId", "reference", "allocations", "status"],
  bill_payment: [...envelopeFields, "contactId", "date", "currency", "exchangeRate", "amount", "accountId", "reference", "allocations", "status"],
  // number, reference and exchangeRate: manual journals have none (they post in the base currency).
  journal_entry: [...envelopeFields, "date", "currency", "lines", "memo", "status"],
  sales_receipt: [...envelopeFields, "contactId", "depositAccountId", "date", "currency", "exchangeRate", "lineAmountTypes", "lines", "subtotal", "totalTax", "total", "reference", "status"],
  // paymentType is derived from the bank account (credit card or not).
  expense: [...envelopeFields, "contactId", "paymentAccountId", "date", "currency", "exchangeRate", "lineAmountTypes", "lines", "subtotal", "totalTax", "total", "reference", "status"],
  // currency is the from-account's currency: a transfer has none of its own.
  transfer: [...envelopeFields, "date", "fromAccountId", "toAccountId", "amount", "reference", "status"]
}

/** The Xero collection each entity lives in. */
export const collectionOf: Readonly<Record<Supported, W.Collection>> = {
  account: "Accounts",
  contact: "Contacts",
  item: "Items",
  tax_rate: "TaxRates",
  currency: "Currencies",
  tracking_category: "TrackingCategories",
  invoice: "Invoices",
  bill: "Invoices",
  credit_note: "CreditNotes",
  vendor_credit: "CreditNotes",
  payment: "Payments",
  bill_payment: "Payments",
  journal_entry: "ManualJournals",
  sales_receipt: "BankTransactions",
  expense: "BankTransactions",
  transfer: "BankTransfers"
}

// ---------------------------------------------------------------------------
// Lookups and results

/** Natural-key ↔ id tables for wire fields that reference by code. */
export interface Lookup {
  readonly accountCodeById: ReadonlyMap<string, string>
  readonly accountIdByCode: ReadonlyMap<string, string>
  /** AccountID → the account's wire record (type, currency). */
  readonly accounts: ReadonlyMap<string, W.Account>
  readonly itemCodeById: ReadonlyMap<string, string>
  readonly itemIdByCode: ReadonlyMap<string, string>
  /** The organisation's base currency. */
  readonly baseCurrency: string
}

export const makeLookup = (accounts: ReadonlyArray<W.Account>, items: ReadonlyArray<W.Item>, baseCurrency: string): Lookup => {
  const accountCodeById = new Map<string, string>()
  const accountIdByCode = new Map<string, string>()
  const byId = new Map<string, W.Account>()
  for (const a of accounts) {
    if (a.AccountID === undefined) continue
    byId.set(a.AccountID, a)
    if (a.Code !== undefined && a.Code !== "") {
      accountCodeById.set(a.AccountID, a.Code)
      accountIdByCode.set(a.Code, a.AccountID)
    }
  }
  const itemCodeById = new Map<string, string>()
  const itemIdByCode = new Map<string, string>()
  for (const i of items) {
    if (i.ItemID === undefined || i.Code === undefined) continue
    itemCodeById.set(i.ItemID, i.Code)
    itemIdByCode.set(i.Code, i.ItemID)
  }
  return { accountCodeById, accountIdByCode, accounts: byId, itemCodeById, itemIdByCode, baseCurrency }
}

export const emptyLookup = (baseCurrency: string): Lookup => makeLookup([], [], baseCurrency)

export type Mapped<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly reason: string; readonly missing?: "account" | "item" }

class MappingFailure {
  readonly reason: string
  readonly missing: "account" | "item" | undefined
  constructor(reason: string, missing?: "account" | "item") {
    this.reason = reason
    this.missing = missing
  }
}

const fail = (reason: string, missing?: "account" | "item"): never => {
  throw new MappingFailure(reason, missing)
}

const attempt = <A>(f: () => A): Mapped<A> => {
  try {
    return { ok: true, value: f() }
  } catch (e) {
    if (e instanceof MappingFailure) return e.missing === undefined ? { ok: false, reason: e.reason } : { ok: false, reason: e.reason, missing: e.missing }
    return { ok: false, reason: e instanceof Error ? e.message : String(e) }
  }
}

// ---------------------------------------------------------------------------
// Small helpers

/** Drops undefined values (exactOptionalPropertyTypes: absent, never undefined). */
const clean = <T extends Record<string, unknown>>(o: T): T => {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(o)) if (v !== undefined) out[k] = v
  return out as T
}

const nonEmpty = (s: string | undefined): string | undefined => (s === undefined || s === "" ? undefined : s)

const major = (minor: number, currency: string): number => Money.toMajorNumber(minor, currency)
const minor = (amount: number, currency: string): number => Money.fromDecimal(amount, currency)

const decimalToNumber = (d: string): number => Number(d)
const numberToDecimal = (n: number): string => Decimal.fromNumber(n) ?? String(n)

const dateOut = (d: string): string => d
const dateIn = (s: string | undefined, field: string): string => {
  const d = s === undefined ? undefined : W.localDateOf(s)
  return d ?? fail(`${field} is missing or not a Xero date`)
}

const currencyOf = (code: string | undefined, lookup: Lookup): string => {
  const c = nonEmpty(code) ?? lookup.baseCurrency
  return CurrencyTable.isCode(c) ? c : fail(`CurrencyCode ${JSON.stringify(c)} is not an ISO 4217 code`)
}

const accountCode = (id: string, lookup: Lookup, where: string): string =>
  lookup.accountCodeById.get(id) ?? fail(`${where}: account ${id} has no code in this Xero organisation (unknown account)`, "account")

const accountIdOf = (ref: { readonly AccountID?: string; readonly AccountCode?: string; readonly Code?: string }, lookup: Lookup, where: string): string => {
  const id = nonEmpty(ref.AccountID)
  if (id !== undefined) return id
  const code = nonEmpty(ref.AccountCode ?? ref.Code)
  if (code === undefined) return fail(`${where}: no account`)
  return lookup.accountIdByCode.get(code) ?? fail(`${where}: account code ${code} is unknown`, "account")
}

/** Tracking option ids are "<TrackingCategoryID>:<TrackingOptionID>". */
export const optionId = (categoryId: string, optionIdPart: string): string => `${categoryId}:${optionIdPart}`
export const splitOptionId = (id: string): { readonly categoryId: string; readonly optionId: string } | undefined => {
  const i = id.indexOf(":")
  return i <= 0 || i === id.length - 1 ? undefined : { categoryId: id.slice(0, i), optionId: id.slice(i + 1) }
}

const trackingOut = (ids: ReadonlyArray<string> | undefined, where: string): Array<W.Tracking> | undefined =>
  ids === undefined ? undefined : ids.map((id) => {
    const parts = splitOptionId(id) ?? fail(`${where}: tracking ${id} is not a tracking option (expected "<categoryId>:<optionId>"; Xero lines carry options, not categories)`)
    return { TrackingCategoryID: parts.categoryId, TrackingOptionID: parts.optionId }
  })

const trackingIn = (t: ReadonlyArray<W.Tracking> | undefined): Array<string> | undefined => {
  if (t === undefined || t.length === 0) return undefined
  return t.flatMap((x) => (x.TrackingCategoryID !== undefined && x.TrackingOptionID !== undefined ? [optionId(x.TrackingCategoryID, x.TrackingOptionID)] : []))
}

const lineAmountTypesOut = (t: Entities.LineAmountTypes): W.LineAmountTypes =>
  t === "exclusive" ? "Exclusive" : t === "inclusive" ? "Inclusive" : "NoTax"
const lineAmountTypesIn = (t: W.LineAmountTypes | undefined): Entities.LineAmountTypes =>
  t === "Inclusive" ? "inclusive" : t === "NoTax" ? "no_tax" : "exclusive"

const lineOut = (l: Entities.DocumentLine, currency: string, lookup: Lookup, i: number, discounts: boolean): W.LineItem => {
  const where = `lines[${i}]`
  if (l.discountAmount !== undefined && !discounts) fail(`${where}.discountAmount: Xero supports discounts on sales documents (ACCREC) only`)
  return clean({
    LineItemID: l.lineId,
    Description: l.description,
    Quantity: l.quantity === undefined ? undefined : decimalToNumber(l.quantity),
    UnitAmount: l.unitPrice === undefined ? undefined : decimalToNumber(l.unitPrice),
    ItemCode: l.itemId === undefined ? undefined : (lookup.itemCodeById.get(l.itemId) ?? fail(`${where}.itemId: item ${l.itemId} is unknown in this Xero organisation`, "item")),
    AccountCode: l.accountId === undefined ? undefined : accountCode(l.accountId, lookup, `${where}.accountId`),
    AccountID: l.accountId,
    TaxType: l.taxRateId,
    TaxAmount: l.taxAmount === undefined ? undefined : major(l.taxAmount, currency),
    LineAmount: major(l.amount, currency),
    DiscountAmount: l.discountAmount === undefined ? undefined : major(l.discountAmount, currency),
    Tracking: trackingOut(l.trackingIds, `${where}.trackingIds`)
  }) as W.LineItem
}

/**
 * Xero writes TaxType NONE and TaxAmount 0 on lines that carry no tax (every
 * line of a NoTax document, untaxed lines elsewhere): that is the absence of
 * tax, not a tax rate the app chose.
 */
const taxOf = (l: { readonly TaxType?: string; readonly TaxAmount?: number }, noTax: boolean, currency: string) => {
  const taxRateId = noTax && l.TaxType === "NONE" ? undefined : nonEmpty(l.TaxType)
  const taxAmount = l.TaxAmount === undefined || (l.TaxAmount === 0 && taxRateId === undefined) ? undefined : minor(l.TaxAmount, currency)
  return { taxRateId, taxAmount }
}

const lineIn = (l: W.LineItem, currency: string, lookup: Lookup, i: number, noTax: boolean): Entities.DocumentLine => {
  const where = `LineItems[${i}]`
  const itemId = nonEmpty(l.Item?.ItemID) ?? (nonEmpty(l.ItemCode) === undefined ? undefined : (lookup.itemIdByCode.get(l.ItemCode as string) ?? fail(`${where}: item code ${l.ItemCode} is unknown`, "item")))
  const hasAccount = nonEmpty(l.AccountID) !== undefined || nonEmpty(l.AccountCode) !== undefined
  return clean({
    lineId: nonEmpty(l.LineItemID),
    description: nonEmpty(l.Description),
    itemId,
    quantity: l.Quantity === undefined ? undefined : numberToDecimal(l.Quantity),
    unitPrice: l.UnitAmount === undefined ? undefined : numberToDecimal(l.UnitAmount),
    discountAmount: l.DiscountAmount === undefined || l.DiscountAmount === 0 ? undefined : minor(l.DiscountAmount, currency),
    amount: minor(l.LineAmount ?? 0, currency),
    accountId: hasAccount ? accountIdOf(l, lookup, where) : undefined,
    ...taxOf(l, noTax, currency),
    trackingIds: trackingIn(l.Tracking)
  }) as Entities.DocumentLine
}

/**
 * Canonical subtotal is the sum of line amounts; Xero's SubTotal excludes tax,
 * which for tax-inclusive lines is the line sum minus the tax.
 */
const totalsOut = (r: { readonly subtotal?: number; readonly totalTax?: number; readonly total?: number; readonly lineAmountTypes: Entities.LineAmountTypes }, currency: string) =>
  clean({
    SubTotal: r.subtotal === undefined ? undefined : major(r.lineAmountTypes === "inclusive" ? r.subtotal - (r.totalTax ?? 0) : r.subtotal, currency),
    TotalTax: r.totalTax === undefined ? undefined : major(r.totalTax, currency),
    Total: r.total === undefined ? undefined : major(r.total, currency)
  })

const totalsIn = (w: { readonly SubTotal?: number; readonly TotalTax?: number; readonly Total?: number; readonly LineAmountTypes?: W.LineAmountTypes }, currency: string) => {
  const tax = w.TotalTax === undefined ? undefined : minor(w.TotalTax, currency)
  return clean({
    subtotal: w.SubTotal === undefined ? undefined : minor(w.SubTotal, currency) + (w.LineAmountTypes === "Inclusive" ? (tax ?? 0) : 0),
    totalTax: tax,
    total: w.Total === undefined ? undefined : minor(w.Total, currency)
  })
}

const base = <K extends Canonical.EntityType>(entity: K, id: string) => ({ entity, schemaVersion: 1 as const, id })

// ---------------------------------------------------------------------------
// Accounts

const accountTypeOut = (t: Entities.AccountType): { Type: W.AccountType; BankAccountType?: string } => {
  switch (t) {
    case "bank": return { Type: "BANK", BankAccountType: "BANK" }
    case "credit_card": return { Type: "BANK", BankAccountType: "CREDITCARD" }
    case "current_asset": return { Type: "CURRENT" }
    case "fixed_asset": return { Type: "FIXED" }
    case "non_current_asset": return { Type: "NONCURRENT" }
    case "inventory": return { Type: "INVENTORY" }
    case "prepayment": return { Type: "PREPAYMENT" }
    case "current_liability": return { Type: "CURRLIAB" }
    case "non_current_liability": return { Type: "TERMLIAB" }
    case "equity": return { Type: "EQUITY" }
    case "revenue": return { Type: "REVENUE" }
    case "other_income": return { Type: "OTHERINCOME" }
    case "cost_of_sales": return { Type: "DIRECTCOSTS" }
    case "expense": return { Type: "EXPENSE" }
    case "other_expense": return { Type: "OVERHEADS" }
    case "depreciation": return { Type: "DEPRECIATN" }
    case "accounts_receivable":
    case "accounts_payable":
      return fail(`Xero creates its ${t === "accounts_receivable" ? "Accounts Receivable" : "Accounts Payable"} system account itself; it cannot be created or changed through the API`)
  }
  return fail(`unknown account type ${String(t)}`)
}

const accountTypeIn = (a: W.Account): Entities.AccountType => {
  if (a.SystemAccount === "DEBTORS") return "accounts_receivable"
  if (a.SystemAccount === "CREDITORS") return "accounts_payable"
  switch (a.Type) {
    case "BANK": return a.BankAccountType === "CREDITCARD" ? "credit_card" : "bank"
    case "CURRENT": return "current_asset"
    case "FIXED": return "fixed_asset"
    case "NONCURRENT": return "non_current_asset"
    case "INVENTORY": return "inventory"
    case "PREPAYMENT": return "prepayment"
    case "CURRLIAB":
    case "LIABILITY":
    case "PAYG":
      return "current_liability"
    case "TERMLIAB": return "non_current_liability"
    case "EQUITY": return "equity"
    case "REVENUE":
    case "SALES":
      return "revenue"
    case "OTHERINCOME": return "other_income"
    case "DIRECTCOSTS": return "cost_of_sales"
    case "EXPENSE": return "expense"
    case "OVERHEADS": return "other_expense"
    case "DEPRECIATN": return "depreciation"
  }
  return fail("Type is missing")
}

const isBankType = (t: Entities.AccountType) => t === "bank" || t === "credit_card"

const accountOut = (r: Entities.Account): W.Account =>
  clean({
    ...accountTypeOut(r.type),
    Code: r.code,
    Name: r.name,
    Description: r.description,
    CurrencyCode: r.currency === undefined ? undefined : isBankType(r.type) ? r.currency : fail("currency: Xero keeps a currency on bank and credit card accounts only"),
    TaxType: r.taxRateId,
    BankAccountNumber: r.bankAccountNumber === undefined ? undefined : isBankType(r.type) ? r.bankAccountNumber : fail("bankAccountNumber: only bank and credit card accounts have one"),
    Status: r.status === "archived" ? "ARCHIVED" : "ACTIVE"
  }) as W.Account

const accountIn = (w: W.Account): Entities.Account => {
  const type = accountTypeIn(w)
  return clean({
    ...base("account", w.AccountID ?? fail("AccountID is missing")),
    code: nonEmpty(w.Code) ?? fail("Code is missing"),
    name: nonEmpty(w.Name) ?? fail("Name is missing"),
    type,
    description: nonEmpty(w.Description),
    currency: isBankType(type) ? nonEmpty(w.CurrencyCode) : undefined,
    taxRateId: nonEmpty(w.TaxType),
    bankAccountNumber: nonEmpty(w.BankAccountNumber),
    status: w.Status === "ACTIVE" || w.Status === undefined ? "active" : "archived"
  }) as Entities.Account
}

// ---------------------------------------------------------------------------
// Contacts

const addressOut = (a: NonNullable<Entities.Contact["billingAddress"]>, type: "POBOX" | "STREET"): W.Address =>
  clean({ AddressType: type, AddressLine1: a.line1, AddressLine2: a.line2, City: a.city, Region: a.region, PostalCode: a.postalCode, Country: a.country }) as W.Address

const addressIn = (a: W.Address | undefined): NonNullable<Entities.Contact["billingAddress"]> | undefined => {
  if (a === undefined) return undefined
  const out = clean({
    line1: nonEmpty(a.AddressLine1),
    line2: nonEmpty(a.AddressLine2),
    city: nonEmpty(a.City),
    region: nonEmpty(a.Region),
    postalCode: nonEmpty(a.PostalCode),
    country: nonEmpty(a.Country)
  })
  return Object.keys(out).length === 0 ? undefined : (out as NonNullable<Entities.Contact["billingAddress"]>)
}

const contactOut = (r: Entities.Contact): W.Contact => {
  const addresses: Array<W.Address> = []
  if (r.billingAddress !== undefined) addresses.push(addressOut(r.billingAddress, "POBOX"))
  if (r.shippingAddress !== undefined) addresses.push(addressOut(r.shippingAddress, "STREET"))
  return clean({
    Name: r.name,
    FirstName: r.firstName,
    LastName: r.lastName,
    EmailAddress: r.email,
    TaxNumber: r.taxNumber,
    DefaultCurrency: r.currency,
    Addresses: addresses.length > 0 ? addresses : undefined,
    Phones: r.phone === undefined ? undefined : [{ PhoneType: "DEFAULT", PhoneNumber: r.phone }],
    ContactStatus: r.status === "archived" ? "ARCHIVED" : "ACTIVE"
  }) as W.Contact
}

const contactIn = (w: W.Contact): Entities.Contact => {
  const roles: Array<"customer" | "vendor"> = []
  if (w.IsCustomer === true) roles.push("customer")
  if (w.IsSupplier === true) roles.push("vendor")
  return clean({
    ...base("contact", w.ContactID ?? fail("ContactID is missing")),
    name: nonEmpty(w.Name) ?? fail("Name is missing"),
    // Neither flag yet (no invoices or bills): the contact can be used either way.
    roles: roles.length > 0 ? roles : ["customer", "vendor"],
    firstName: nonEmpty(w.FirstName),
    lastName: nonEmpty(w.LastName),
    email: nonEmpty(w.EmailAddress),
    phone: nonEmpty(w.Phones?.find((p) => p.PhoneType === "DEFAULT")?.PhoneNumber),
    taxNumber: nonEmpty(w.TaxNumber),
    currency: nonEmpty(w.DefaultCurrency),
    billingAddress: addressIn(w.Addresses?.find((a) => a.AddressType === "POBOX")),
    shippingAddress: addressIn(w.Addresses?.find((a) => a.AddressType === "STREET")),
    status: w.ContactStatus === "ARCHIVED" ? "archived" : "active"
  }) as Entities.Contact
}

// ---------------------------------------------------------------------------
// Items

const itemOut = (r: Entities.Item, lookup: Lookup): W.Item => {
  const tracked = r.inventoryAccountId !== undefined
  const code = r.code ?? fail("code: Xero items need a code (Item Code, at most 30 characters)")
  return clean({
    Code: code,
    Name: r.name,
    Description: r.description,
    InventoryAssetAccountCode: r.inventoryAccountId === undefined ? undefined : accountCode(r.inventoryAccountId, lookup, "inventoryAccountId"),
    SalesDetails: clean({
      UnitPrice: r.salesPrice === undefined ? undefined : decimalToNumber(r.salesPrice),
      AccountCode: r.salesAccountId === undefined ? undefined : accountCode(r.salesAccountId, lookup, "salesAccountId"),
      TaxType: r.taxRateId
    }),
    PurchaseDetails: clean({
      UnitPrice: r.purchasePrice === undefined ? undefined : decimalToNumber(r.purchasePrice),
      AccountCode: r.purchaseAccountId === undefined || tracked ? undefined : accountCode(r.purchaseAccountId, lookup, "purchaseAccountId"),
      COGSAccountCode: r.purchaseAccountId === undefined || !tracked ? undefined : accountCode(r.purchaseAccountId, lookup, "purchaseAccountId")
    })
  }) as W.Item
}

const codeToId = (code: string | undefined, lookup: Lookup, where: string): string | undefined => {
  const c = nonEmpty(code)
  return c === undefined ? undefined : (lookup.accountIdByCode.get(c) ?? fail(`${where}: account code ${c} is unknown`, "account"))
}

const itemIn = (w: W.Item, lookup: Lookup): Entities.Item => {
  const tracked = w.IsTrackedAsInventory === true || nonEmpty(w.InventoryAssetAccountCode) !== undefined
  return clean({
    ...base("item", w.ItemID ?? fail("ItemID is missing")),
    code: nonEmpty(w.Code),
    name: nonEmpty(w.Name) ?? nonEmpty(w.Code) ?? fail("Name is missing"),
    description: nonEmpty(w.Description),
    type: tracked ? "inventory" : "non_inventory",
    salesPrice: w.SalesDetails?.UnitPrice === undefined ? undefined : numberToDecimal(w.SalesDetails.UnitPrice),
    salesAccountId: codeToId(w.SalesDetails?.AccountCode, lookup, "SalesDetails.AccountCode"),
    purchasePrice: w.PurchaseDetails?.UnitPrice === undefined ? undefined : numberToDecimal(w.PurchaseDetails.UnitPrice),
    purchaseAccountId: codeToId(tracked ? w.PurchaseDetails?.COGSAccountCode : w.PurchaseDetails?.AccountCode, lookup, "PurchaseDetails.AccountCode"),
    inventoryAccountId: codeToId(w.InventoryAssetAccountCode, lookup, "InventoryAssetAccountCode"),
    taxRateId: nonEmpty(w.SalesDetails?.TaxType),
    quantityOnHand: w.QuantityOnHand === undefined ? undefined : numberToDecimal(w.QuantityOnHand),
    status: "active"
  }) as Entities.Item
}

// ---------------------------------------------------------------------------
// Tax rates, currencies, tracking

const taxRateOut = (r: Entities.TaxRate): W.TaxRate =>
  clean({
    Name: r.name,
    TaxComponents: (r.components ?? [{ name: r.name, rate: r.rate }]).map((c) => ({ Name: c.name, Rate: decimalToNumber(c.rate), IsCompound: false, IsNonRecoverable: false })),
    DisplayTaxRate: decimalToNumber(r.rate),
    EffectiveRate: decimalToNumber(r.rate),
    Status: r.status === "archived" ? "ARCHIVED" : "ACTIVE"
  }) as W.TaxRate

const taxRateIn = (w: W.TaxRate): Entities.TaxRate => {
  const name = nonEmpty(w.Name) ?? fail("Name is missing")
  const components = (w.TaxComponents ?? []).map((c) => ({ name: c.Name ?? "", rate: numberToDecimal(c.Rate ?? 0) }))
  const sum = components.reduce((s, c) => s + Number(c.rate), 0)
  const rate = numberToDecimal(w.DisplayTaxRate ?? w.EffectiveRate ?? sum)
  // One component carrying the rate's own name and rate is Xero's way of writing a simple rate.
  const simple = components.length === 0 || (components.length === 1 && components[0]?.name === name && components[0].rate === rate)
  return clean({
    ...base("tax_rate", w.TaxType ?? fail("TaxType is missing")),
    name,
    code: w.TaxType,
    rate,
    appliesTo: w.CanApplyToRevenue === true && w.CanApplyToExpenses === true ? "both" : w.CanApplyToRevenue === true ? "sales" : w.CanApplyToExpenses === true ? "purchases" : undefined,
    components: simple ? undefined : components,
    status: w.Status === "ACTIVE" || w.Status === undefined || w.Status === "PENDING" ? "active" : "archived"
  }) as Entities.TaxRate
}

const currencyOut = (r: Entities.Currency): W.Currency => clean({ Code: r.code, Description: r.name }) as W.Currency

const currencyIn = (w: W.Currency, lookup: Lookup): Entities.Currency => {
  const code = currencyOf(w.Code, lookup)
  return clean({
    ...base("currency", code),
    code,
    name: nonEmpty(w.Description),
    isHome: code === lookup.baseCurrency,
    status: "active"
  }) as Entities.Currency
}

const trackingOutOf = (r: Entities.TrackingCategory): W.TrackingCategory | W.TrackingOption =>
  clean({ Name: r.name, Status: r.status === "archived" ? "ARCHIVED" : "ACTIVE" }) as W.TrackingCategory

const trackingCategoryIn = (w: W.TrackingCategory): Entities.TrackingCategory =>
  clean({
    ...base("tracking_category", w.TrackingCategoryID ?? fail("TrackingCategoryID is missing")),
    name: nonEmpty(w.Name) ?? fail("Name is missing"),
    kind: "custom",
    status: w.Status === "ACTIVE" || w.Status === undefined ? "active" : "archived"
  }) as Entities.TrackingCategory

const trackingOptionIn = (categoryId: string, w: W.TrackingOption): Entities.TrackingCategory =>
  clean({
    ...base("tracking_category", optionId(categoryId, w.TrackingOptionID ?? fail("TrackingOptionID is missing"))),
    name: nonEmpty(w.Name) ?? fail("Name is missing"),
    kind: "custom",
    parentId: categoryId,
    status: w.Status === "ACTIVE" || w.Status === undefined ? "active" : "archived"
  }) as Entities.TrackingCategory

// ---------------------------------------------------------------------------
// Invoices, bills, credit notes

type Receivable = Entities.Invoice | Entities.Bill | Entities.CreditNote | Entities.VendorCredit

const docStatusOut = (s: Entities.DocumentStatus): W.InvoiceStatus => s.toUpperCase() as W.InvoiceStatus
const docStatusIn = (s: W.InvoiceStatus | undefined): Entities.DocumentStatus =>
  s === undefined ? "draft" : (s.toLowerCase() as Entities.DocumentStatus)

const isSales = (e: string) => e === "invoice" || e === "credit_note"

const receivableOut = (r: Receivable, lookup: Lookup) => {
  if (!isSales(r.entity) && r.reference !== undefined) fail("reference: Xero keeps a reference on sales invoices and credit notes only")
  return clean({
    Contact: { ContactID: r.contactId },
    Date: dateOut(r.date),
    DueDate: r.dueDate === undefined ? undefined : dateOut(r.dueDate),
    Status: docStatusOut(r.status),
    LineAmountTypes: lineAmountTypesOut(r.lineAmountTypes),
    LineItems: r.lines.map((l, i) => lineOut(l, r.currency, lookup, i, r.entity === "invoice")),
    Reference: r.reference,
    CurrencyCode: r.currency,
    CurrencyRate: r.exchangeRate === undefined ? undefined : decimalToNumber(r.exchangeRate),
    ...totalsOut(r, r.currency)
  })
}

const invoiceOut = (r: Entities.Invoice | Entities.Bill, lookup: Lookup): W.Invoice =>
  clean({ Type: r.entity === "invoice" ? "ACCREC" : "ACCPAY", InvoiceNumber: r.number, ...receivableOut(r, lookup) }) as W.Invoice

const creditNoteOut = (r: Entities.CreditNote | Entities.VendorCredit, lookup: Lookup): W.CreditNote =>
  clean({ Type: r.entity === "credit_note" ? "ACCRECCREDIT" : "ACCPAYCREDIT", CreditNoteNumber: r.number, ...receivableOut(r, lookup) }) as W.CreditNote

const receivableIn = <K extends Receivable["entity"]>(
  entity: K,
  id: string,
  number: string | undefined,
  amountDue: number | undefined,
  w: W.Invoice | W.CreditNote,
  lookup: Lookup
) => {
  const currency = currencyOf(w.CurrencyCode, lookup)
  return clean({
    ...base(entity, id),
    number: nonEmpty(number),
    contactId: nonEmpty(w.Contact?.ContactID) ?? fail("Contact.ContactID is missing"),
    date: dateIn(w.Date, "Date"),
    dueDate: w.DueDate === undefined ? undefined : dateIn(w.DueDate, "DueDate"),
    currency,
    exchangeRate: w.CurrencyRate === undefined || (w.CurrencyRate === 1 && currency === lookup.baseCurrency) ? undefined : numberToDecimal(w.CurrencyRate),
    lineAmountTypes: lineAmountTypesIn(w.LineAmountTypes),
    lines: (w.LineItems ?? []).map((l, i) => lineIn(l, currency, lookup, i, w.LineAmountTypes === "NoTax")),
    ...totalsIn(w, currency),
    amountDue: amountDue === undefined ? undefined : minor(amountDue, currency),
    reference: isSales(entity) ? nonEmpty(w.Reference) : undefined,
    status: docStatusIn(w.Status)
  })
}

const invoiceIn = (w: W.Invoice, lookup: Lookup): Entities.Invoice | Entities.Bill =>
  receivableIn(w.Type === "ACCPAY" ? "bill" : "invoice", w.InvoiceID ?? fail("InvoiceID is missing"), w.InvoiceNumber, w.AmountDue, w, lookup) as Entities.Invoice | Entities.Bill

const creditNoteIn = (w: W.CreditNote, lookup: Lookup): Entities.CreditNote | Entities.VendorCredit =>
  receivableIn(w.Type === "ACCPAYCREDIT" ? "vendor_credit" : "credit_note", w.CreditNoteID ?? fail("CreditNoteID is missing"), w.CreditNoteNumber, w.RemainingCredit, w, lookup) as Entities.CreditNote | Entities.VendorCredit

// ---------------------------------------------------------------------------
// Payments

const paymentOut = (r: Entities.Payment | Entities.BillPayment): W.Payment => {
  const allocation = r.allocations.length === 1 ? r.allocations[0] : undefined
  if (allocation === undefined) {
    fail(`allocations: a Xero payment applies to exactly one ${r.entity === "payment" ? "invoice or credit note" : "bill or vendor credit"}; split it into one payment per document (got ${r.allocations.length})`)
  }
  const a = allocation as NonNullable<typeof allocation>
  if (a.amount !== r.amount) fail(`allocations[0].amount: a Xero payment's amount is what it applies to its document (${a.amount} ≠ amount ${r.amount})`)
  const isInvoice = a.documentType === "invoice" || a.documentType === "bill"
  const sales = r.entity === "payment"
  // The document's type is informational on a request (Xero finds the document by id) and tells payments from bill payments.
  const doc = { Contact: { ContactID: r.contactId }, CurrencyCode: r.currency, Type: isInvoice ? (sales ? "ACCREC" : "ACCPAY") : (sales ? "ACCRECCREDIT" : "ACCPAYCREDIT") }
  return clean({
    Invoice: isInvoice ? { InvoiceID: a.documentId, ...doc } : undefined,
    CreditNote: isInvoice ? undefined : { CreditNoteID: a.documentId, ...doc },
    Account: { AccountID: r.accountId },
    Date: dateOut(r.date),
    Amount: major(r.amount, r.currency),
    CurrencyRate: r.exchangeRate === undefined ? undefined : decimalToNumber(r.exchangeRate),
    Reference: r.reference,
    Status: r.status === "active" ? "AUTHORISED" : r.status === "deleted" ? "DELETED" : fail("status: Xero payments are AUTHORISED or DELETED (there is no voided payment)")
  }) as W.Payment
}

/** Which canonical entity a Xero payment is. */
export const paymentEntityOf = (w: W.Payment): "payment" | "bill_payment" => {
  switch (w.PaymentType) {
    case "ACCPAYPAYMENT":
    case "APCREDITPAYMENT":
    case "APOVERPAYMENTPAYMENT":
    case "APPREPAYMENTPAYMENT":
      return "bill_payment"
    case undefined:
      return w.Invoice?.Type === "ACCPAY" || w.CreditNote?.Type === "ACCPAYCREDIT" ? "bill_payment" : "payment"
    default:
      return "payment"
  }
}

const paymentIn = (w: W.Payment, lookup: Lookup): Entities.Payment | Entities.BillPayment => {
  const entity = paymentEntityOf(w)
  const doc = w.Invoice ?? w.CreditNote
  const currency = currencyOf(doc?.CurrencyCode, lookup)
  const amount = minor(w.Amount ?? fail("Amount is missing"), currency)
  const onInvoice = w.Invoice?.InvoiceID !== undefined
  const documentId = onInvoice ? (w.Invoice?.InvoiceID as string) : (w.CreditNote?.CreditNoteID ?? fail("Invoice or CreditNote is missing"))
  const documentType = entity === "payment" ? (onInvoice ? "invoice" : "credit_note") : (onInvoice ? "bill" : "vendor_credit")
  return clean({
    ...base(entity, w.PaymentID ?? fail("PaymentID is missing")),
    contactId: nonEmpty(doc?.Contact?.ContactID) ?? fail("the payment's document has no Contact.ContactID"),
    date: dateIn(w.Date, "Date"),
    currency,
    exchangeRate: w.CurrencyRate === undefined || (w.CurrencyRate === 1 && currency === lookup.baseCurrency) ? undefined : numberToDecimal(w.CurrencyRate),
    amount,
    accountId: accountIdOf(w.Account ?? {}, lookup, "Account"),
    reference: nonEmpty(w.Reference),
    allocations: [{ documentType, documentId, amount }],
    status: w.Status === "DELETED" ? "deleted" : "active"
  }) as Entities.Payment | Entities.BillPayment
}

// ---------------------------------------------------------------------------
// Manual journals

const journalStatusOut = (s: Entities.JournalEntry["status"]) => s.toUpperCase() as "DRAFT" | "POSTED" | "VOIDED" | "DELETED"

const journalOut = (r: Entities.JournalEntry, lookup: Lookup): W.ManualJournal => {
  if (r.currency !== lookup.baseCurrency) fail(`currency: Xero manual journals post in the organisation's base currency ${lookup.baseCurrency}, not ${r.currency}`)
  const narration = r.memo ?? fail("memo: Xero requires a narration on every manual journal; set memo")
  const taxed = r.lines.some((l) => l.taxRateId !== undefined)
  return clean({
    Narration: narration,
    Date: dateOut(r.date),
    Status: journalStatusOut(r.status),
    LineAmountTypes: taxed ? "Exclusive" : "NoTax",
    JournalLines: r.lines.map((l, i) => {
      const where = `lines[${i}]`
      if (l.currency !== undefined && l.currency !== lookup.baseCurrency) fail(`${where}.currency: Xero manual journal lines are in the base currency ${lookup.baseCurrency}`)
      if (l.contactId !== undefined) fail(`${where}.contactId: Xero manual journal lines have no contact`)
      if (l.postingType === "credit" && l.amount === 0) fail(`${where}.amount: a zero line is a debit in Xero (the sign of LineAmount is the posting type)`)
      return clean({
        LineAmount: major(l.postingType === "debit" ? l.amount : -l.amount, r.currency),
        AccountCode: accountCode(l.accountId, lookup, `${where}.accountId`),
        AccountID: l.accountId,
        Description: l.description,
        TaxType: l.taxRateId,
        TaxAmount: l.taxAmount === undefined ? undefined : major(l.taxAmount, r.currency),
        Tracking: trackingOut(l.trackingIds, `${where}.trackingIds`)
      }) as W.JournalLine
    })
  }) as W.ManualJournal
}

const journalIn = (w: W.ManualJournal, lookup: Lookup): Entities.JournalEntry => {
  const currency = lookup.baseCurrency
  return clean({
    ...base("journal_entry", w.ManualJournalID ?? fail("ManualJournalID is missing")),
    date: dateIn(w.Date, "Date"),
    currency,
    lines: (w.JournalLines ?? []).map((l, i) => {
      const amount = minor(l.LineAmount ?? 0, currency)
      return clean({
        postingType: amount >= 0 ? "debit" : "credit",
        accountId: accountIdOf(l, lookup, `JournalLines[${i}]`),
        amount: Math.abs(amount),
        description: nonEmpty(l.Description),
        ...taxOf(l, w.LineAmountTypes !== "Exclusive" && w.LineAmountTypes !== "Inclusive", currency),
        trackingIds: trackingIn(l.Tracking)
      }) as Entities.JournalLine
    }),
    memo: nonEmpty(w.Narration),
    status: w.Status === undefined ? "draft" : w.Status === "ARCHIVED" ? "voided" : (w.Status.toLowerCase() as Entities.JournalEntry["status"])
  }) as Entities.JournalEntry
}

// ---------------------------------------------------------------------------
// Bank transactions and transfers

const txnStatusOut = (s: Entities.TransactionStatus): "AUTHORISED" | "VOIDED" | "DELETED" =>
  s === "active" ? "AUTHORISED" : s === "voided" ? "VOIDED" : "DELETED"
const txnStatusIn = (s: string | undefined): Entities.TransactionStatus =>
  s === "VOIDED" ? "voided" : s === "DELETED" ? "deleted" : "active"

const bankTxnOut = (r: Entities.SalesReceipt | Entities.Expense, lookup: Lookup): W.BankTransaction => {
  const contactId = r.contactId ?? fail(`contactId: Xero bank transactions need a contact (${r.entity === "sales_receipt" ? "the customer" : "the payee"})`)
  const account = r.entity === "sales_receipt" ? r.depositAccountId : r.paymentAccountId
  return clean({
    Type: r.entity === "sales_receipt" ? "RECEIVE" : "SPEND",
    Contact: { ContactID: contactId },
    BankAccount: { AccountID: account },
    Date: dateOut(r.date),
    Reference: r.reference,
    Status: txnStatusOut(r.status),
    LineAmountTypes: lineAmountTypesOut(r.lineAmountTypes),
    LineItems: r.lines.map((l, i) => lineOut(l, r.currency, lookup, i, false)),
    CurrencyCode: r.currency,
    CurrencyRate: r.exchangeRate === undefined ? undefined : decimalToNumber(r.exchangeRate),
    ...totalsOut(r, r.currency)
  }) as W.BankTransaction
}

/** Which canonical entity a bank transaction is (undefined: one Concord does not map, e.g. an overpayment). */
export const bankTransactionEntityOf = (w: W.BankTransaction): "sales_receipt" | "expense" | undefined =>
  w.Type === "RECEIVE" ? "sales_receipt" : w.Type === "SPEND" ? "expense" : undefined

const bankTxnIn = (w: W.BankTransaction, lookup: Lookup): Entities.SalesReceipt | Entities.Expense => {
  const entity = bankTransactionEntityOf(w) ?? fail(`Type ${String(w.Type)} is not a sales receipt (RECEIVE) or expense (SPEND)`)
  const currency = currencyOf(w.CurrencyCode, lookup)
  const accountId = accountIdOf(w.BankAccount ?? {}, lookup, "BankAccount")
  const common = {
    ...base(entity, w.BankTransactionID ?? fail("BankTransactionID is missing")),
    contactId: nonEmpty(w.Contact?.ContactID),
    date: dateIn(w.Date, "Date"),
    currency,
    exchangeRate: w.CurrencyRate === undefined || (w.CurrencyRate === 1 && currency === lookup.baseCurrency) ? undefined : numberToDecimal(w.CurrencyRate),
    lineAmountTypes: lineAmountTypesIn(w.LineAmountTypes),
    lines: (w.LineItems ?? []).map((l, i) => lineIn(l, currency, lookup, i, w.LineAmountTypes === "NoTax")),
    ...totalsIn(w, currency),
    reference: nonEmpty(w.Reference),
    status: txnStatusIn(w.Status)
  }
  if (entity === "sales_receipt") return clean({ ...common, depositAccountId: accountId }) as Entities.SalesReceipt
  const account = lookup.accounts.get(accountId)
  const creditCard = account?.BankAccountType === "CREDITCARD" || w.BankAccount?.Type === "CREDITCARD"
  return clean({ ...common, paymentAccountId: accountId, paymentType: creditCard ? "credit_card" : "cash" }) as Entities.Expense
}

const accountCurrency = (id: string, lookup: Lookup): string => {
  const c = nonEmpty(lookup.accounts.get(id)?.CurrencyCode)
  return c !== undefined && CurrencyTable.isCode(c) ? c : lookup.baseCurrency
}

const transferOut = (r: Entities.Transfer, lookup: Lookup): W.BankTransfer => {
  const currency = accountCurrency(r.fromAccountId, lookup)
  if (r.currency !== currency) fail(`currency: a Xero bank transfer moves money in the from-account's currency ${currency}, not ${r.currency}`)
  if (r.status === "voided") fail("status: Xero bank transfers are AUTHORISED or DELETED (there is no voided transfer)")
  return clean({
    FromBankAccount: { AccountID: r.fromAccountId },
    ToBankAccount: { AccountID: r.toAccountId },
    Amount: major(r.amount, currency),
    Date: dateOut(r.date),
    Reference: r.reference,
    Status: r.status === "deleted" ? "DELETED" : "AUTHORISED"
  }) as W.BankTransfer
}

const transferIn = (w: W.BankTransfer, lookup: Lookup): Entities.Transfer => {
  const fromAccountId = accountIdOf(w.FromBankAccount ?? {}, lookup, "FromBankAccount")
  const currency = nonEmpty(w.FromBankAccount?.CurrencyCode) ?? accountCurrency(fromAccountId, lookup)
  return clean({
    ...base("transfer", w.BankTransferID ?? fail("BankTransferID is missing")),
    date: dateIn(w.Date, "Date"),
    currency,
    fromAccountId,
    toAccountId: accountIdOf(w.ToBankAccount ?? {}, lookup, "ToBankAccount"),
    amount: minor(w.Amount ?? fail("Amount is missing"), currency),
    reference: nonEmpty(w.Reference),
    status: w.Status === "DELETED" ? "deleted" : "active"
  }) as Entities.Transfer
}

// ---------------------------------------------------------------------------
// Public API

/** The wire body for a canonical record, without its id. */
export const toWire = (record: Canonical.CanonicalRecord, lookup: Lookup): Mapped<{ readonly collection: W.Collection; readonly body: Record<string, unknown> }> =>
  attempt(() => {
    const r = record
    const body: object = (() => {
      switch (r.entity) {
        case "account": return accountOut(r)
        case "contact": return contactOut(r)
        case "item": return itemOut(r, lookup)
        case "tax_rate": return taxRateOut(r)
        case "currency": return currencyOut(r)
        case "tracking_category": return trackingOutOf(r)
        case "invoice":
        case "bill":
          return invoiceOut(r, lookup)
        case "credit_note":
        case "vendor_credit":
          return creditNoteOut(r, lookup)
        case "payment":
        case "bill_payment":
          return paymentOut(r)
        case "journal_entry": return journalOut(r, lookup)
        case "sales_receipt":
        case "expense":
          return bankTxnOut(r, lookup)
        case "transfer": return transferOut(r, lookup)
        case "refund":
        case "deposit":
          return fail(unsupportedReasons[r.entity] as string)
      }
    })()
    return { collection: collectionOf[r.entity as Supported], body: body as Record<string, unknown> }
  })

/** The wire body with the record's Xero id set (for an update). */
export const withId = (collection: W.Collection, body: Record<string, unknown>, id: string): Record<string, unknown> =>
  ({ ...body, [W.idField[collection]]: id })

/** A record as Xero has it: the canonical record plus its version and change time. */
export interface FromWire {
  readonly record: Canonical.CanonicalRecord
  /** UpdatedDateUTC (RFC 3339), or a content hash where Xero keeps no modification time. */
  readonly version: string
  /** RFC 3339. */
  readonly updatedAt: string
}

/** Version of a wire record: its UpdatedDateUTC, else a hash of what Xero returned. */
export const versionOf = (wire: Record<string, unknown>): string => {
  const u = wire.UpdatedDateUTC
  if (typeof u === "string") {
    const iso = W.isoOfMsDate(u)
    if (iso !== undefined) return iso
  }
  const { ValidationErrors: _v, Warnings: _w, StatusAttributeString: _s, HasErrors: _h, HasValidationErrors: _hv, ...content } = wire
  return `h:${Hash.contentHash(content).slice(0, 32)}`
}

const updatedAtOf = (wire: Record<string, unknown>, observedAt: string): string => {
  for (const k of ["UpdatedDateUTC", "CreatedDateUTC"]) {
    const v = wire[k]
    if (typeof v === "string") {
      const iso = W.isoOfMsDate(v)
      if (iso !== undefined) return iso
    }
  }
  return observedAt
}

/**
 * The canonical record of a wire element of `collection`. The entity comes
 * from the element (an ACCPAY invoice is a bill). `observedAt` stands in for
 * the change time of resources without one.
 */
export const fromWire = (collection: W.Collection, wire: Record<string, unknown>, lookup: Lookup, observedAt: string): Mapped<FromWire> =>
  attempt(() => {
    const w = wire as never
    const record: Canonical.CanonicalRecord = (() => {
      switch (collection) {
        case "Accounts": return accountIn(w)
        case "Contacts": return contactIn(w)
        case "Items": return itemIn(w, lookup)
        case "TaxRates": return taxRateIn(w)
        case "Currencies": return currencyIn(w, lookup)
        case "TrackingCategories": return trackingCategoryIn(w)
        case "Invoices": return invoiceIn(w, lookup)
        case "CreditNotes": return creditNoteIn(w, lookup)
        case "Payments": return paymentIn(w, lookup)
        case "ManualJournals": return journalIn(w, lookup)
        case "BankTransactions": return bankTxnIn(w, lookup)
        case "BankTransfers": return transferIn(w, lookup)
        case "Options":
        case "Organisations":
          return fail(`${collection} are not records on their own`)
      }
    })()
    return { record, version: versionOf(wire), updatedAt: updatedAtOf(wire, observedAt) }
  })

/** A tracking option as a canonical tracking_category whose parent is its category. */
export const fromWireOption = (categoryId: string, option: W.TrackingOption, observedAt: string): Mapped<FromWire> =>
  attempt(() => ({
    record: trackingOptionIn(categoryId, option),
    version: versionOf(option as Record<string, unknown>),
    updatedAt: observedAt
  }))

/** The fields of a record that Xero stores (what a round trip preserves). */
export const projection = (record: Canonical.CanonicalRecord): Record<string, unknown> => {
  const keep = fields[record.entity as Supported] ?? []
  const out: Record<string, unknown> = {}
  for (const f of keep) {
    const v = (record as Record<string, unknown>)[f]
    if (v !== undefined) out[f] = v
  }
  return out
}

