/**
 * QuickBooks Online Accounting API v3 wire format, as Effect Schemas.
 *
 * Field names follow Intuit's published schema (the `Finance.xsd` /
 * `IntuitRestServiceDef.xsd` of the V3 SDKs) in its JSON rendering: entity
 * bodies are PascalCase, XML attributes (`code`, `element`, `type`, `bId`,
 * `operation`, `status`, `startPosition`, `maxResults`, `totalCount`,
 * `time`) keep their camelCase names. Amounts are JSON numbers in major
 * units; dates are `YYYY-MM-DD`; instants are RFC 3339 with an offset.
 *
 * Only the members this adapter reads or writes are declared; decoding drops
 * anything else (QuickBooks adds fields with new minor versions).
 */
import { Schema } from "effect"

const opt = Schema.optionalKey

/** `ReferenceType`: the id of another object, with its display name and (for `EntityRef`) its type. */
export const Ref = Schema.Struct({
  value: Schema.String,
  name: opt(Schema.String),
  type: opt(Schema.String)
})
export type Ref = typeof Ref.Type

export const MetaData = Schema.Struct({
  CreateTime: opt(Schema.String),
  LastUpdatedTime: opt(Schema.String)
})
export type MetaData = typeof MetaData.Type

export const CustomField = Schema.Struct({
  DefinitionId: opt(Schema.String),
  Name: opt(Schema.String),
  Type: Schema.Literals(["StringType", "NumberType", "BooleanType", "DateType"]),
  StringValue: opt(Schema.String),
  NumberValue: opt(Schema.Number),
  BooleanValue: opt(Schema.Boolean),
  DateValue: opt(Schema.String)
})
export type CustomField = typeof CustomField.Type

export const LinkedTxn = Schema.Struct({
  TxnId: Schema.String,
  TxnType: Schema.String,
  TxnLineId: opt(Schema.String)
})
export type LinkedTxn = typeof LinkedTxn.Type

export const PhysicalAddress = Schema.Struct({
  Id: opt(Schema.String),
  Line1: opt(Schema.String),
  Line2: opt(Schema.String),
  City: opt(Schema.String),
  CountrySubDivisionCode: opt(Schema.String),
  PostalCode: opt(Schema.String),
  Country: opt(Schema.String)
})
export type PhysicalAddress = typeof PhysicalAddress.Type

/** The common envelope of every entity (`IntuitEntity`). */
const entity = {
  Id: Schema.String,
  SyncToken: Schema.String,
  MetaData: opt(MetaData),
  domain: opt(Schema.String),
  sparse: opt(Schema.Boolean),
  /** "Deleted" in change data capture for removed objects. */
  status: opt(Schema.String)
}

// ---------------------------------------------------------------------------
// Lines

export const SalesItemLineDetail = Schema.Struct({
  ItemRef: opt(Ref),
  ClassRef: opt(Ref),
  UnitPrice: opt(Schema.Number),
  Qty: opt(Schema.Number),
  ItemAccountRef: opt(Ref),
  TaxCodeRef: opt(Ref),
  ServiceDate: opt(Schema.String),
  DiscountAmt: opt(Schema.Number),
  TaxInclusiveAmt: opt(Schema.Number)
})

export const ItemBasedExpenseLineDetail = Schema.Struct({
  ItemRef: opt(Ref),
  ClassRef: opt(Ref),
  UnitPrice: opt(Schema.Number),
  Qty: opt(Schema.Number),
  ItemAccountRef: opt(Ref),
  TaxCodeRef: opt(Ref),
  CustomerRef: opt(Ref),
  BillableStatus: opt(Schema.String)
})

export const AccountBasedExpenseLineDetail = Schema.Struct({
  AccountRef: opt(Ref),
  ClassRef: opt(Ref),
  TaxCodeRef: opt(Ref),
  TaxAmount: opt(Schema.Number),
  CustomerRef: opt(Ref),
  BillableStatus: opt(Schema.String)
})

/** `EntityTypeRef`: the customer, vendor or employee a journal line is about. */
export const EntityTypeRef = Schema.Struct({
  Type: opt(Schema.String),
  EntityRef: Ref
})

export const JournalEntryLineDetail = Schema.Struct({
  PostingType: Schema.Literals(["Debit", "Credit"]),
  AccountRef: Ref,
  Entity: opt(EntityTypeRef),
  ClassRef: opt(Ref),
  DepartmentRef: opt(Ref),
  TaxCodeRef: opt(Ref),
  TaxAmount: opt(Schema.Number),
  TaxApplicableOn: opt(Schema.String)
})

export const DepositLineDetail = Schema.Struct({
  Entity: opt(Ref),
  ClassRef: opt(Ref),
  AccountRef: opt(Ref),
  PaymentMethodRef: opt(Ref),
  CheckNum: opt(Schema.String),
  TaxCodeRef: opt(Ref)
})

export const DiscountLineDetail = Schema.Struct({
  PercentBased: opt(Schema.Boolean),
  DiscountPercent: opt(Schema.Number),
  DiscountAccountRef: opt(Ref)
})

export const LineDetailType = Schema.Literals([
  "SalesItemLineDetail",
  "ItemBasedExpenseLineDetail",
  "AccountBasedExpenseLineDetail",
  "JournalEntryLineDetail",
  "DepositLineDetail",
  "DiscountLineDetail",
  "SubTotalLineDetail",
  "DescriptionOnly",
  "GroupLineDetail",
  "TaxLineDetail",
  "PaymentLineDetail"
])
export type LineDetailType = typeof LineDetailType.Type

export const Line = Schema.Struct({
  Id: opt(Schema.String),
  LineNum: opt(Schema.Number),
  Description: opt(Schema.String),
  Amount: opt(Schema.Number),
  DetailType: opt(LineDetailType),
  LinkedTxn: opt(Schema.Array(LinkedTxn)),
  SalesItemLineDetail: opt(SalesItemLineDetail),
  ItemBasedExpenseLineDetail: opt(ItemBasedExpenseLineDetail),
  AccountBasedExpenseLineDetail: opt(AccountBasedExpenseLineDetail),
  JournalEntryLineDetail: opt(JournalEntryLineDetail),
  DepositLineDetail: opt(DepositLineDetail),
  DiscountLineDetail: opt(DiscountLineDetail),
  CustomField: opt(Schema.Array(CustomField))
})
export type Line = typeof Line.Type

export const TxnTaxDetail = Schema.Struct({
  TxnTaxCodeRef: opt(Ref),
  TotalTax: opt(Schema.Number),
  TaxLine: opt(Schema.Array(Schema.Unknown))
})

const transaction = {
  ...entity,
  DocNumber: opt(Schema.String),
  TxnDate: opt(Schema.String),
  DepartmentRef: opt(Ref),
  CurrencyRef: opt(Ref),
  ExchangeRate: opt(Schema.Number),
  PrivateNote: opt(Schema.String),
  LinkedTxn: opt(Schema.Array(LinkedTxn)),
  Line: opt(Schema.Array(Line)),
  TxnTaxDetail: opt(TxnTaxDetail),
  CustomField: opt(Schema.Array(CustomField)),
  TotalAmt: opt(Schema.Number)
}

const GlobalTaxCalculation = Schema.Literals(["TaxExcluded", "TaxInclusive", "NotApplicable"])

// ---------------------------------------------------------------------------
// Name lists

export const AccountType = Schema.Literals([
  "Bank",
  "Accounts Receivable",
  "Other Current Asset",
  "Fixed Asset",
  "Other Asset",
  "Accounts Payable",
  "Credit Card",
  "Other Current Liability",
  "Long Term Liability",
  "Equity",
  "Income",
  "Cost of Goods Sold",
  "Expense",
  "Other Income",
  "Other Expense",
  "Non-Posting"
])
export type AccountType = typeof AccountType.Type

export const Account = Schema.Struct({
  ...entity,
  Name: Schema.String,
  AcctNum: opt(Schema.String),
  AccountType: opt(AccountType),
  AccountSubType: opt(Schema.String),
  Classification: opt(Schema.String),
  Description: opt(Schema.String),
  Active: opt(Schema.Boolean),
  SubAccount: opt(Schema.Boolean),
  ParentRef: opt(Ref),
  FullyQualifiedName: opt(Schema.String),
  CurrencyRef: opt(Ref),
  BankNum: opt(Schema.String),
  TaxCodeRef: opt(Ref),
  CurrentBalance: opt(Schema.Number)
})
export type Account = typeof Account.Type

const EmailAddress = Schema.Struct({ Address: opt(Schema.String) })
const TelephoneNumber = Schema.Struct({ FreeFormNumber: opt(Schema.String) })

const nameBase = {
  ...entity,
  DisplayName: Schema.String,
  CompanyName: opt(Schema.String),
  GivenName: opt(Schema.String),
  FamilyName: opt(Schema.String),
  Active: opt(Schema.Boolean),
  PrimaryEmailAddr: opt(EmailAddress),
  PrimaryPhone: opt(TelephoneNumber),
  BillAddr: opt(PhysicalAddress),
  ShipAddr: opt(PhysicalAddress),
  CurrencyRef: opt(Ref),
  Balance: opt(Schema.Number)
}

export const Customer = Schema.Struct({
  ...nameBase,
  PrimaryTaxIdentifier: opt(Schema.String),
  Taxable: opt(Schema.Boolean)
})
export type Customer = typeof Customer.Type

export const Vendor = Schema.Struct({
  ...nameBase,
  TaxIdentifier: opt(Schema.String)
})
export type Vendor = typeof Vendor.Type

export const Item = Schema.Struct({
  ...entity,
  Name: Schema.String,
  Sku: opt(Schema.String),
  Description: opt(Schema.String),
  Active: opt(Schema.Boolean),
  Type: opt(Schema.String),
  UnitPrice: opt(Schema.Number),
  PurchaseCost: opt(Schema.Number),
  IncomeAccountRef: opt(Ref),
  ExpenseAccountRef: opt(Ref),
  AssetAccountRef: opt(Ref),
  SalesTaxCodeRef: opt(Ref),
  TrackQtyOnHand: opt(Schema.Boolean),
  QtyOnHand: opt(Schema.Number),
  InvStartDate: opt(Schema.String)
})
export type Item = typeof Item.Type

export const TaxRate = Schema.Struct({
  ...entity,
  Name: Schema.String,
  Description: opt(Schema.String),
  Active: opt(Schema.Boolean),
  RateValue: opt(Schema.Number),
  AgencyRef: opt(Ref)
})
export type TaxRate = typeof TaxRate.Type

export const TaxRateDetail = Schema.Struct({
  TaxRateRef: Ref,
  TaxTypeApplicable: opt(Schema.String),
  TaxOrder: opt(Schema.Number)
})

export const TaxRateList = Schema.Struct({
  TaxRateDetail: opt(Schema.Array(TaxRateDetail))
})

export const TaxCode = Schema.Struct({
  ...entity,
  Name: Schema.String,
  Description: opt(Schema.String),
  Active: opt(Schema.Boolean),
  Taxable: opt(Schema.Boolean),
  TaxGroup: opt(Schema.Boolean),
  SalesTaxRateList: opt(TaxRateList),
  PurchaseTaxRateList: opt(TaxRateList)
})
export type TaxCode = typeof TaxCode.Type

export const CompanyCurrency = Schema.Struct({
  ...entity,
  Code: Schema.String,
  Name: opt(Schema.String),
  Active: opt(Schema.Boolean)
})
export type CompanyCurrency = typeof CompanyCurrency.Type

export const Class = Schema.Struct({
  ...entity,
  Name: Schema.String,
  SubClass: opt(Schema.Boolean),
  ParentRef: opt(Ref),
  FullyQualifiedName: opt(Schema.String),
  Active: opt(Schema.Boolean)
})
export type Class = typeof Class.Type

export const Department = Schema.Struct({
  ...entity,
  Name: Schema.String,
  SubDepartment: opt(Schema.Boolean),
  ParentRef: opt(Ref),
  FullyQualifiedName: opt(Schema.String),
  Active: opt(Schema.Boolean)
})
export type Department = typeof Department.Type

// ---------------------------------------------------------------------------
// Transactions

const salesTransaction = {
  ...transaction,
  CustomerRef: opt(Ref),
  CustomerMemo: opt(Schema.Struct({ value: Schema.String })),
  DueDate: opt(Schema.String),
  GlobalTaxCalculation: opt(GlobalTaxCalculation),
  Balance: opt(Schema.Number),
  DepositToAccountRef: opt(Ref),
  PaymentMethodRef: opt(Ref),
  PaymentRefNum: opt(Schema.String),
  PONumber: opt(Schema.String),
  ClassRef: opt(Ref)
}

export const Invoice = Schema.Struct(salesTransaction)
export type Invoice = typeof Invoice.Type

export const CreditMemo = Schema.Struct({ ...salesTransaction, RemainingCredit: opt(Schema.Number) })
export type CreditMemo = typeof CreditMemo.Type

export const SalesReceipt = Schema.Struct(salesTransaction)
export type SalesReceipt = typeof SalesReceipt.Type

export const RefundReceipt = Schema.Struct({ ...salesTransaction, RemainingCredit: opt(Schema.Number) })
export type RefundReceipt = typeof RefundReceipt.Type

const purchaseByVendor = {
  ...transaction,
  VendorRef: opt(Ref),
  APAccountRef: opt(Ref),
  GlobalTaxCalculation: opt(GlobalTaxCalculation),
  Balance: opt(Schema.Number)
}

export const Bill = Schema.Struct({ ...purchaseByVendor, DueDate: opt(Schema.String) })
export type Bill = typeof Bill.Type

export const VendorCredit = Schema.Struct(purchaseByVendor)
export type VendorCredit = typeof VendorCredit.Type

export const Purchase = Schema.Struct({
  ...transaction,
  AccountRef: opt(Ref),
  PaymentType: opt(Schema.Literals(["Cash", "Check", "CreditCard"])),
  EntityRef: opt(Ref),
  Credit: opt(Schema.Boolean),
  PaymentRefNum: opt(Schema.String),
  GlobalTaxCalculation: opt(GlobalTaxCalculation)
})
export type Purchase = typeof Purchase.Type

export const Payment = Schema.Struct({
  ...transaction,
  CustomerRef: opt(Ref),
  DepositToAccountRef: opt(Ref),
  PaymentMethodRef: opt(Ref),
  PaymentRefNum: opt(Schema.String),
  UnappliedAmt: opt(Schema.Number)
})
export type Payment = typeof Payment.Type

export const BillPayment = Schema.Struct({
  ...transaction,
  VendorRef: opt(Ref),
  PayType: opt(Schema.Literals(["Check", "CreditCard"])),
  CheckPayment: opt(Schema.Struct({ BankAccountRef: opt(Ref), PrintStatus: opt(Schema.String) })),
  CreditCardPayment: opt(Schema.Struct({ CCAccountRef: opt(Ref) }))
})
export type BillPayment = typeof BillPayment.Type

export const JournalEntry = Schema.Struct({
  ...transaction,
  Adjustment: opt(Schema.Boolean)
})
export type JournalEntry = typeof JournalEntry.Type

export const Deposit = Schema.Struct({
  ...transaction,
  DepositToAccountRef: opt(Ref)
})
export type Deposit = typeof Deposit.Type

export const Transfer = Schema.Struct({
  ...transaction,
  FromAccountRef: opt(Ref),
  ToAccountRef: opt(Ref),
  Amount: opt(Schema.Number)
})
export type Transfer = typeof Transfer.Type

// ---------------------------------------------------------------------------
// Entity names

/** Every QuickBooks entity this adapter and its sandbox speak, by wire name. */
export const entitySchemas = {
  Account,
  Customer,
  Vendor,
  Item,
  TaxRate,
  TaxCode,
  CompanyCurrency,
  Class,
  Department,
  Invoice,
  Bill,
  Payment,
  BillPayment,
  CreditMemo,
  VendorCredit,
  JournalEntry,
  SalesReceipt,
  RefundReceipt,
  Deposit,
  Transfer,
  Purchase
} as const

export type EntityName = keyof typeof entitySchemas
export const entityNames = Object.keys(entitySchemas) as ReadonlyArray<EntityName>

/** The URL segment of an entity (`/v3/company/{realm}/journalentry`). */
export const pathOf = (name: EntityName): string => name.toLowerCase()

const byLower = new Map(entityNames.map((n) => [n.toLowerCase(), n]))
/** The wire name for a URL segment or a query's FROM, case-insensitively. */
export const entityNameOf = (s: string): EntityName | undefined => byLower.get(s.toLowerCase())

/** Entities that are name lists (never deleted: made inactive). */
export const nameListEntities: ReadonlySet<EntityName> = new Set<EntityName>([
  "Account",
  "Customer",
  "Vendor",
  "Item",
  "Class",
  "Department",
  "TaxRate",
  "TaxCode",
  "CompanyCurrency"
])

/** Transactions QuickBooks can void (`?operation=void`). */
export const voidableEntities: ReadonlySet<EntityName> = new Set<EntityName>(["Invoice", "Payment", "SalesReceipt", "BillPayment"])

// ---------------------------------------------------------------------------
// Envelopes and errors

export const FaultError = Schema.Struct({
  Message: Schema.String,
  Detail: opt(Schema.String),
  code: Schema.String,
  element: opt(Schema.String)
})
export type FaultError = typeof FaultError.Type

export const Fault = Schema.Struct({
  Error: Schema.Array(FaultError),
  type: opt(Schema.String)
})
export type Fault = typeof Fault.Type

/** Any response that may carry a `Fault` (a 200 can). */
export const FaultEnvelope = Schema.Struct({ Fault: opt(Fault), time: opt(Schema.String) })

/** The answer to a delete: `{"Invoice": {"status": "Deleted", "Id": "…", "domain": "QBO"}}`. */
export const Deleted = Schema.Struct({
  Id: Schema.String,
  status: opt(Schema.String),
  domain: opt(Schema.String),
  MetaData: opt(MetaData)
})
export type Deleted = typeof Deleted.Type

export const QueryMeta = {
  startPosition: opt(Schema.Number),
  maxResults: opt(Schema.Number),
  totalCount: opt(Schema.Number)
}

/** The paging members of a `QueryResponse` (the entity array sits beside them under its name). */
export const QueryResponseMeta = Schema.Struct(QueryMeta)

/** One request of `/batch`. */
export const BatchItemRequest = Schema.Struct({
  bId: Schema.String,
  operation: opt(Schema.Literals(["create", "update", "delete", "void"])),
  optionsData: opt(Schema.String),
  Query: opt(Schema.String)
})
export type BatchItemRequest = typeof BatchItemRequest.Type & { readonly [entity: string]: unknown }

/** One answer of `/batch`: the entity (under its name), a Fault, or a QueryResponse. */
export const BatchItemResponse = Schema.Struct({
  bId: Schema.String,
  Fault: opt(Fault),
  QueryResponse: opt(Schema.Unknown)
})

export const BatchResponse = Schema.Struct({
  BatchItemResponse: Schema.Array(Schema.Record(Schema.String, Schema.Unknown)),
  Fault: opt(Fault),
  time: opt(Schema.String)
})

/** The answer to `/cdc`: one QueryResponse per requested entity. */
export const CdcResponse = Schema.Struct({
  CDCResponse: opt(Schema.Array(Schema.Struct({
    QueryResponse: opt(Schema.Array(Schema.Record(Schema.String, Schema.Unknown))),
    Fault: opt(Fault)
  }))),
  Fault: opt(Fault),
  time: opt(Schema.String)
})

/** The token endpoint's answer (RFC 6749 §5.1 plus Intuit's refresh-token lifetime). */
export const TokenResponse = Schema.Struct({
  access_token: Schema.String,
  refresh_token: Schema.String,
  token_type: Schema.String,
  expires_in: Schema.Number,
  x_refresh_token_expires_in: opt(Schema.Number)
})

export const TokenError = Schema.Struct({
  error: Schema.String,
  error_description: opt(Schema.String)
})

// ---------------------------------------------------------------------------
// Webhooks

export const LegacyNotification = Schema.Struct({
  eventNotifications: Schema.Array(Schema.Struct({
    realmId: Schema.String,
    dataChangeEvent: Schema.Struct({
      entities: Schema.Array(Schema.Struct({
        name: Schema.String,
        id: Schema.String,
        operation: Schema.String,
        lastUpdated: Schema.String,
        deletedId: opt(Schema.String)
      }))
    })
  }))
})
export type LegacyNotification = typeof LegacyNotification.Type

/** The CloudEvents 1.0 format (`type` is `qbo.<entity>.<created|updated|deleted|voided|merged>.v1`). */
export const CloudEvent = Schema.Struct({
  specversion: Schema.String,
  id: Schema.String,
  source: Schema.String,
  type: Schema.String,
  time: Schema.String,
  datacontenttype: opt(Schema.String),
  intuitentityid: Schema.String,
  intuitaccountid: Schema.String,
  data: opt(Schema.Unknown)
})
export type CloudEvent = typeof CloudEvent.Type

export const CloudEvents = Schema.Array(CloudEvent)
