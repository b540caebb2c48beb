/**
 * The Xero Accounting API (`/api.xro/2.0`) wire format as Effect Schemas:
 * PascalCase JSON, MS-JSON dates (`/Date(1439434356790+0000)/`), decimal
 * amounts as JSON numbers, GUID ids assigned by Xero.
 *
 * Only the fields Concord reads or writes are declared; anything else Xero
 * sends is ignored when decoding (Xero adds fields over time). Enumerations
 * that drive behaviour (statuses, types) are closed, so an unknown value is
 * a protocol error naming the field rather than a silent mis-mapping.
 *
 * Canonical entity ↔ Xero resource (see `Mapping.ts` for the field rules):
 *
 * | canonical         | Xero                                                  |
 * |-------------------|-------------------------------------------------------|
 * | account           | Accounts (id = AccountID; lines reference by Code)    |
 * | contact           | Contacts (IsCustomer/IsSupplier → roles, read only)   |
 * | item              | Items                                                 |
 * | tax_rate          | TaxRates (id = TaxType, e.g. "OUTPUT", "TAX001")      |
 * | currency          | Currencies (id = Code)                                |
 * | tracking_category | TrackingCategories (id = TrackingCategoryID) and their|
 * |                   | Options (id = "<TrackingCategoryID>:<TrackingOptionID>",|
 * |                   | parentId = the category)                              |
 * | invoice / bill    | Invoices, Type ACCREC / ACCPAY                        |
 * | credit_note /     | CreditNotes, Type ACCRECCREDIT / ACCPAYCREDIT         |
 * |   vendor_credit   |                                                       |
 * | payment           | Payments on an ACCREC invoice or ACCRECCREDIT note    |
 * | bill_payment      | Payments on an ACCPAY invoice or ACCPAYCREDIT note    |
 * | journal_entry     | ManualJournals (LineAmount > 0 debit, < 0 credit)     |
 * | sales_receipt     | BankTransactions, Type RECEIVE                        |
 * | expense           | BankTransactions, Type SPEND                          |
 * | transfer          | BankTransfers                                         |
 * | refund            | not a Xero document: a refund is a credit_note plus a |
 * |                   | payment allocated to it (Xero ARCREDITPAYMENT)        |
 * | deposit           | not a Xero document (bank deposits are bank feeds /   |
 * |                   | reconciliation in Xero; post payouts as transfers or  |
 * |                   | sales receipts)                                       |
 */
import { Schema } from "effect"

// ---------------------------------------------------------------------------
// Dates

const msDatePattern = /^\/Date\((-?\d+)([+-]\d{4})?\)\/$/

/** Milliseconds of a Xero `/Date(ms+zzzz)/` value (the ms are UTC; the offset is informational). */
export const parseMsDate = (s: string): number | undefined => {
  const m = msDatePattern.exec(s)
  return m === null ? undefined : Number(m[1])
}

/** `/Date(ms+0000)/` for an epoch-ms instant. */
export const formatMsDate = (ms: number): string => `/Date(${ms}+0000)/`

/**
 * The calendar date of a Xero date field. Xero answers `/Date(ms+0000)/`
 * (midnight UTC of the date); requests may send `YYYY-MM-DD` or
 * `YYYY-MM-DDT00:00:00`.
 */
export const localDateOf = (s: string): string | undefined => {
  const ms = parseMsDate(s)
  if (ms !== undefined) return new Date(ms).toISOString().slice(0, 10)
  const m = /^(\d{4}-\d{2}-\d{2})(T[\d:.]+Z?)?$/.exec(s)
  return m === null ? undefined : m[1]
}

/** Midnight UTC of a `YYYY-MM-DD` date as a Xero date value. */
export const msDateOfLocal = (date: string): string => formatMsDate(Date.parse(`${date}T00:00:00Z`))

/** RFC 3339 (UTC, millisecond precision) of a Xero timestamp. */
export const isoOfMsDate = (s: string): string | undefined => {
  const ms = parseMsDate(s)
  return ms === undefined ? undefined : new Date(ms).toISOString()
}

/** A Xero date or timestamp field (MS-JSON, or an ISO date where Xero echoes request dates). */
export const XeroDate = Schema.String.check(
  Schema.makeFilter((s: string) => localDateOf(s) !== undefined || `Expected a Xero date such as /Date(1439434356790+0000)/, got ${JSON.stringify(s)}`)
)

/** A Xero timestamp: always MS-JSON. */
export const XeroTimestamp = Schema.String.check(
  Schema.makeFilter((s: string) => parseMsDate(s) !== undefined || `Expected a Xero timestamp such as /Date(1439434356790+0000)/, got ${JSON.stringify(s)}`)
)

const opt = Schema.optionalKey
const Str = Schema.String
const Num = Schema.Number
const Bool = Schema.Boolean

// ---------------------------------------------------------------------------
// Errors

export const ValidationError = Schema.Struct({ Message: Str })
export type ValidationError = typeof ValidationError.Type

/** The body of a 400 `ValidationException` (and other Xero API exceptions). */
export const ApiException = Schema.Struct({
  ErrorNumber: opt(Num),
  Type: opt(Str),
  Message: opt(Str),
  Elements: opt(Schema.Array(Schema.Record(Str, Schema.Unknown)))
})
export type ApiException = typeof ApiException.Type

// ---------------------------------------------------------------------------
// Shared pieces

export const LineAmountTypes = Schema.Literals(["Exclusive", "Inclusive", "NoTax"])
export type LineAmountTypes = typeof LineAmountTypes.Type

export const Tracking = Schema.Struct({
  TrackingCategoryID: opt(Str),
  TrackingOptionID: opt(Str),
  Name: opt(Str),
  Option: opt(Str)
})
export type Tracking = typeof Tracking.Type

export const LineItem = Schema.Struct({
  LineItemID: opt(Str),
  Description: opt(Str),
  Quantity: opt(Num),
  UnitAmount: opt(Num),
  ItemCode: opt(Str),
  Item: opt(Schema.Struct({ ItemID: opt(Str), Code: opt(Str), Name: opt(Str) })),
  AccountCode: opt(Str),
  AccountID: opt(Str),
  TaxType: opt(Str),
  TaxAmount: opt(Num),
  LineAmount: opt(Num),
  DiscountRate: opt(Num),
  DiscountAmount: opt(Num),
  Tracking: opt(Schema.Array(Tracking))
})
export type LineItem = typeof LineItem.Type

/** A reference to a contact inside a document. */
export const ContactRef = Schema.Struct({ ContactID: opt(Str), Name: opt(Str) })
export type ContactRef = typeof ContactRef.Type

/** A reference to an account (by id or code) inside a document. */
export const AccountRef = Schema.Struct({ AccountID: opt(Str), Code: opt(Str), Name: opt(Str), Type: opt(Str), CurrencyCode: opt(Str) })
export type AccountRef = typeof AccountRef.Type

const Validation = {
  HasErrors: opt(Bool),
  HasValidationErrors: opt(Bool),
  StatusAttributeString: opt(Str),
  ValidationErrors: opt(Schema.Array(ValidationError)),
  Warnings: opt(Schema.Array(ValidationError))
}

export const Pagination = Schema.Struct({ page: opt(Num), pageSize: opt(Num), pageCount: opt(Num), itemCount: opt(Num) })

// ---------------------------------------------------------------------------
// Master data

export const AccountType = Schema.Literals([
  "BANK", "CURRENT", "CURRLIAB", "DEPRECIATN", "DIRECTCOSTS", "EQUITY", "EXPENSE", "FIXED", "INVENTORY",
  "LIABILITY", "NONCURRENT", "OTHERINCOME", "OVERHEADS", "PREPAYMENT", "REVENUE", "SALES", "TERMLIAB", "PAYG"
])
export type AccountType = typeof AccountType.Type

export const Account = Schema.Struct({
  AccountID: opt(Str),
  Code: opt(Str),
  Name: opt(Str),
  Type: opt(AccountType),
  Status: opt(Schema.Literals(["ACTIVE", "ARCHIVED", "DELETED"])),
  Description: opt(Str),
  BankAccountNumber: opt(Str),
  BankAccountType: opt(Str),
  CurrencyCode: opt(Str),
  TaxType: opt(Str),
  Class: opt(Str),
  SystemAccount: opt(Str),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type Account = typeof Account.Type

export const Address = Schema.Struct({
  AddressType: opt(Schema.Literals(["POBOX", "STREET", "DELIVERY"])),
  AddressLine1: opt(Str),
  AddressLine2: opt(Str),
  AddressLine3: opt(Str),
  AddressLine4: opt(Str),
  City: opt(Str),
  Region: opt(Str),
  PostalCode: opt(Str),
  Country: opt(Str),
  AttentionTo: opt(Str)
})
export type Address = typeof Address.Type

export const Phone = Schema.Struct({
  PhoneType: opt(Schema.Literals(["DEFAULT", "DDI", "MOBILE", "FAX", "OFFICE"])),
  PhoneNumber: opt(Str),
  PhoneAreaCode: opt(Str),
  PhoneCountryCode: opt(Str)
})
export type Phone = typeof Phone.Type

export const Contact = Schema.Struct({
  ContactID: opt(Str),
  ContactNumber: opt(Str),
  ContactStatus: opt(Schema.Literals(["ACTIVE", "ARCHIVED", "GDPRREQUEST"])),
  Name: opt(Str),
  FirstName: opt(Str),
  LastName: opt(Str),
  EmailAddress: opt(Str),
  TaxNumber: opt(Str),
  DefaultCurrency: opt(Str),
  Addresses: opt(Schema.Array(Address)),
  Phones: opt(Schema.Array(Phone)),
  IsSupplier: opt(Bool),
  IsCustomer: opt(Bool),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type Contact = typeof Contact.Type

export const ItemDetails = Schema.Struct({
  UnitPrice: opt(Num),
  AccountCode: opt(Str),
  COGSAccountCode: opt(Str),
  TaxType: opt(Str)
})

export const Item = Schema.Struct({
  ItemID: opt(Str),
  Code: opt(Str),
  Name: opt(Str),
  Description: opt(Str),
  PurchaseDescription: opt(Str),
  IsSold: opt(Bool),
  IsPurchased: opt(Bool),
  IsTrackedAsInventory: opt(Bool),
  InventoryAssetAccountCode: opt(Str),
  SalesDetails: opt(ItemDetails),
  PurchaseDetails: opt(ItemDetails),
  QuantityOnHand: opt(Num),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type Item = typeof Item.Type

export const TaxComponent = Schema.Struct({ Name: opt(Str), Rate: opt(Num), IsCompound: opt(Bool), IsNonRecoverable: opt(Bool) })

export const TaxRate = Schema.Struct({
  TaxType: opt(Str),
  Name: opt(Str),
  TaxComponents: opt(Schema.Array(TaxComponent)),
  Status: opt(Schema.Literals(["ACTIVE", "DELETED", "ARCHIVED", "PENDING"])),
  ReportTaxType: opt(Str),
  CanApplyToRevenue: opt(Bool),
  CanApplyToExpenses: opt(Bool),
  DisplayTaxRate: opt(Num),
  EffectiveRate: opt(Num),
  ...Validation
})
export type TaxRate = typeof TaxRate.Type

export const Currency = Schema.Struct({ Code: opt(Str), Description: opt(Str), ...Validation })
export type Currency = typeof Currency.Type

export const TrackingOption = Schema.Struct({
  TrackingOptionID: opt(Str),
  Name: opt(Str),
  Status: opt(Schema.Literals(["ACTIVE", "ARCHIVED", "DELETED"])),
  TrackingCategoryID: opt(Str),
  ...Validation
})
export type TrackingOption = typeof TrackingOption.Type

export const TrackingCategory = Schema.Struct({
  TrackingCategoryID: opt(Str),
  Name: opt(Str),
  Status: opt(Schema.Literals(["ACTIVE", "ARCHIVED", "DELETED"])),
  Options: opt(Schema.Array(TrackingOption)),
  ...Validation
})
export type TrackingCategory = typeof TrackingCategory.Type

// ---------------------------------------------------------------------------
// Documents

export const InvoiceType = Schema.Literals(["ACCREC", "ACCPAY"])
export const InvoiceStatus = Schema.Literals(["DRAFT", "SUBMITTED", "DELETED", "AUTHORISED", "PAID", "VOIDED"])
export type InvoiceStatus = typeof InvoiceStatus.Type

export const Invoice = Schema.Struct({
  InvoiceID: opt(Str),
  Type: opt(InvoiceType),
  InvoiceNumber: opt(Str),
  Reference: opt(Str),
  Contact: opt(ContactRef),
  Date: opt(XeroDate),
  DueDate: opt(XeroDate),
  Status: opt(InvoiceStatus),
  LineAmountTypes: opt(LineAmountTypes),
  LineItems: opt(Schema.Array(LineItem)),
  SubTotal: opt(Num),
  TotalTax: opt(Num),
  Total: opt(Num),
  AmountDue: opt(Num),
  AmountPaid: opt(Num),
  CurrencyCode: opt(Str),
  CurrencyRate: opt(Num),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type Invoice = typeof Invoice.Type

export const CreditNote = Schema.Struct({
  CreditNoteID: opt(Str),
  Type: opt(Schema.Literals(["ACCRECCREDIT", "ACCPAYCREDIT"])),
  CreditNoteNumber: opt(Str),
  Reference: opt(Str),
  Contact: opt(ContactRef),
  Date: opt(XeroDate),
  DueDate: opt(XeroDate),
  Status: opt(InvoiceStatus),
  LineAmountTypes: opt(LineAmountTypes),
  LineItems: opt(Schema.Array(LineItem)),
  SubTotal: opt(Num),
  TotalTax: opt(Num),
  Total: opt(Num),
  RemainingCredit: opt(Num),
  CurrencyCode: opt(Str),
  CurrencyRate: opt(Num),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type CreditNote = typeof CreditNote.Type

export const PaymentType = Schema.Literals([
  "ACCRECPAYMENT", "ACCPAYPAYMENT", "ARCREDITPAYMENT", "APCREDITPAYMENT",
  "AROVERPAYMENTPAYMENT", "ARPREPAYMENTPAYMENT", "APPREPAYMENTPAYMENT", "APOVERPAYMENTPAYMENT"
])
export type PaymentType = typeof PaymentType.Type

const PaymentDocument = Schema.Struct({
  InvoiceID: opt(Str),
  CreditNoteID: opt(Str),
  InvoiceNumber: opt(Str),
  CreditNoteNumber: opt(Str),
  Type: opt(Str),
  CurrencyCode: opt(Str),
  Contact: opt(ContactRef)
})

export const Payment = Schema.Struct({
  PaymentID: opt(Str),
  Invoice: opt(PaymentDocument),
  CreditNote: opt(PaymentDocument),
  Account: opt(AccountRef),
  Date: opt(XeroDate),
  Amount: opt(Num),
  CurrencyRate: opt(Num),
  Reference: opt(Str),
  Status: opt(Schema.Literals(["AUTHORISED", "DELETED"])),
  PaymentType: opt(PaymentType),
  IsReconciled: opt(Bool),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type Payment = typeof Payment.Type

export const JournalLine = Schema.Struct({
  LineAmount: opt(Num),
  AccountCode: opt(Str),
  AccountID: opt(Str),
  Description: opt(Str),
  TaxType: opt(Str),
  TaxAmount: opt(Num),
  Tracking: opt(Schema.Array(Tracking)),
  IsBlank: opt(Bool)
})
export type JournalLine = typeof JournalLine.Type

export const ManualJournal = Schema.Struct({
  ManualJournalID: opt(Str),
  Narration: opt(Str),
  JournalLines: opt(Schema.Array(JournalLine)),
  Date: opt(XeroDate),
  LineAmountTypes: opt(LineAmountTypes),
  Status: opt(Schema.Literals(["DRAFT", "POSTED", "DELETED", "VOIDED", "ARCHIVED"])),
  ShowOnCashBasisReports: opt(Bool),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type ManualJournal = typeof ManualJournal.Type

export const BankTransactionType = Schema.Literals([
  "RECEIVE", "RECEIVE-OVERPAYMENT", "RECEIVE-PREPAYMENT", "SPEND", "SPEND-OVERPAYMENT", "SPEND-PREPAYMENT",
  "RECEIVE-TRANSFER", "SPEND-TRANSFER"
])

export const BankTransaction = Schema.Struct({
  BankTransactionID: opt(Str),
  Type: opt(BankTransactionType),
  Contact: opt(ContactRef),
  BankAccount: opt(AccountRef),
  LineItems: opt(Schema.Array(LineItem)),
  Date: opt(XeroDate),
  Reference: opt(Str),
  Status: opt(Schema.Literals(["AUTHORISED", "DELETED", "VOIDED"])),
  LineAmountTypes: opt(LineAmountTypes),
  SubTotal: opt(Num),
  TotalTax: opt(Num),
  Total: opt(Num),
  CurrencyCode: opt(Str),
  CurrencyRate: opt(Num),
  IsReconciled: opt(Bool),
  UpdatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type BankTransaction = typeof BankTransaction.Type

export const BankTransfer = Schema.Struct({
  BankTransferID: opt(Str),
  FromBankAccount: opt(AccountRef),
  ToBankAccount: opt(AccountRef),
  Amount: opt(Num),
  Date: opt(XeroDate),
  Reference: opt(Str),
  CurrencyRate: opt(Num),
  Status: opt(Schema.Literals(["AUTHORISED", "DELETED"])),
  CreatedDateUTC: opt(XeroTimestamp),
  ...Validation
})
export type BankTransfer = typeof BankTransfer.Type

export const Organisation = Schema.Struct({
  OrganisationID: opt(Str),
  Name: opt(Str),
  BaseCurrency: opt(Str),
  CountryCode: opt(Str)
})

// ---------------------------------------------------------------------------
// Response envelopes: `{"Id", "Status", "ProviderName", "DateTimeUTC", "<Collection>": [...]}`

const common = {
  Id: opt(Str),
  Status: opt(Str),
  ProviderName: opt(Str),
  DateTimeUTC: opt(Str),
  pagination: opt(Pagination),
  Warnings: opt(Schema.Array(ValidationError))
}
const envelope = <F extends Schema.Struct.Fields>(fields: F) => Schema.Struct({ ...common, ...fields })

export const Responses = {
  Accounts: envelope({ Accounts: Schema.Array(Account) }),
  Contacts: envelope({ Contacts: Schema.Array(Contact) }),
  Items: envelope({ Items: Schema.Array(Item) }),
  TaxRates: envelope({ TaxRates: Schema.Array(TaxRate) }),
  Currencies: envelope({ Currencies: Schema.Array(Currency) }),
  TrackingCategories: envelope({ TrackingCategories: Schema.Array(TrackingCategory) }),
  Options: envelope({ Options: Schema.Array(TrackingOption) }),
  Invoices: envelope({ Invoices: Schema.Array(Invoice) }),
  CreditNotes: envelope({ CreditNotes: Schema.Array(CreditNote) }),
  Payments: envelope({ Payments: Schema.Array(Payment) }),
  ManualJournals: envelope({ ManualJournals: Schema.Array(ManualJournal) }),
  BankTransactions: envelope({ BankTransactions: Schema.Array(BankTransaction) }),
  BankTransfers: envelope({ BankTransfers: Schema.Array(BankTransfer) }),
  Organisations: envelope({ Organisations: Schema.Array(Organisation) })
} as const
export type Collection = keyof typeof Responses

/** One element of a collection. */
export interface WireTypes {
  Accounts: Account
  Contacts: Contact
  Items: Item
  TaxRates: TaxRate
  Currencies: Currency
  TrackingCategories: TrackingCategory
  Options: TrackingOption
  Invoices: Invoice
  CreditNotes: CreditNote
  Payments: Payment
  ManualJournals: ManualJournal
  BankTransactions: BankTransaction
  BankTransfers: BankTransfer
  Organisations: typeof Organisation.Type
}
export type WireOf<C extends Collection> = WireTypes[C]

/** The GUID (or natural key) field of each collection's elements. */
export const idField = {
  Accounts: "AccountID",
  Contacts: "ContactID",
  Items: "ItemID",
  TaxRates: "TaxType",
  Currencies: "Code",
  TrackingCategories: "TrackingCategoryID",
  Options: "TrackingOptionID",
  Invoices: "InvoiceID",
  CreditNotes: "CreditNoteID",
  Payments: "PaymentID",
  ManualJournals: "ManualJournalID",
  BankTransactions: "BankTransactionID",
  BankTransfers: "BankTransferID",
  Organisations: "OrganisationID"
} as const satisfies Record<Collection, string>

// ---------------------------------------------------------------------------
// OAuth, connections and webhooks

export const TokenResponse = Schema.Struct({
  access_token: Str,
  refresh_token: Str,
  expires_in: Num,
  token_type: opt(Str),
  scope: opt(Str),
  id_token: opt(Str)
})

export const TokenError = Schema.Struct({ error: Str, error_description: opt(Str) })

/** One element of `GET https://api.xero.com/connections`. */
export const Connection = Schema.Struct({
  id: Str,
  authEventId: opt(Str),
  tenantId: Str,
  tenantType: Str,
  tenantName: opt(Schema.NullOr(Str)),
  createdDateUtc: opt(Str),
  updatedDateUtc: opt(Str)
})
export const Connections = Schema.Array(Connection)

export const WebhookEvent = Schema.Struct({
  resourceUrl: Str,
  resourceId: Str,
  eventDateUtc: Str,
  eventType: Str,
  eventCategory: Str,
  tenantId: Str,
  tenantType: opt(Str)
})
export type WebhookEvent = typeof WebhookEvent.Type

export const WebhookPayload = Schema.Struct({
  events: Schema.Array(WebhookEvent),
  firstEventSequence: Num,
  lastEventSequence: Num,
  entropy: Str
})
export type WebhookPayload = typeof WebhookPayload.Type
