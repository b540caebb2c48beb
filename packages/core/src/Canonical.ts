/**
 * The canonical vocabulary as a whole: entity types, their schemas, and
 * decoding of any record with every bad field named.
 */
import { Effect, Schema } from "effect"
import * as E from "./Entities.ts"
import { type FieldIssue, ValidationError, decodeEither } from "./Validation.ts"

export const entityTypes = [
  "account",
  "contact",
  "item",
  "tax_rate",
  "currency",
  "tracking_category",
  "invoice",
  "bill",
  "payment",
  "bill_payment",
  "credit_note",
  "vendor_credit",
  "journal_entry",
  "sales_receipt",
  "refund",
  "deposit",
  "transfer",
  "expense"
] as const

export const EntityType = Schema.Literals(entityTypes).pipe(Schema.annotate({ title: "EntityType" }))
export type EntityType = typeof EntityType.Type

export const isEntityType = (s: string): s is EntityType => (entityTypes as ReadonlyArray<string>).includes(s)

/** The schema of each entity type. */
export const schemas = {
  account: E.Account,
  contact: E.Contact,
  item: E.Item,
  tax_rate: E.TaxRate,
  currency: E.Currency,
  tracking_category: E.TrackingCategory,
  invoice: E.Invoice,
  bill: E.Bill,
  payment: E.Payment,
  bill_payment: E.BillPayment,
  credit_note: E.CreditNote,
  vendor_credit: E.VendorCredit,
  journal_entry: E.JournalEntry,
  sales_receipt: E.SalesReceipt,
  refund: E.Refund,
  deposit: E.Deposit,
  transfer: E.Transfer,
  expense: E.Expense
} as const satisfies Record<EntityType, Schema.Top>

export type RecordOf<K extends EntityType> = (typeof schemas)[K]["Type"]

/** Any canonical record. */
export type CanonicalRecord = { [K in EntityType]: RecordOf<K> }[EntityType]

/** All entity schemas as one union, discriminated by `entity`. */
export const CanonicalRecord = Schema.Union(entityTypes.map((e) => schemas[e])).pipe(
  Schema.annotate({ title: "CanonicalRecord" })
)

/** Entity types whose records have document lines. */
export const documentEntities = [
  "invoice",
  "bill",
  "credit_note",
  "vendor_credit",
  "sales_receipt",
  "refund",
  "expense"
] as const satisfies ReadonlyArray<EntityType>

const decoders = Object.fromEntries(entityTypes.map((e) => [e, decodeEither(schemas[e])])) as {
  [K in EntityType]: (input: unknown) => { readonly ok: true; readonly value: RecordOf<K> } | { readonly ok: false; readonly issues: Array<FieldIssue> }
}

/** Validates a record of a known entity type, returning it or the list of bad fields. */
export const validate = <K extends EntityType>(entity: K, input: unknown) => decoders[entity](input)

/**
 * Decodes a record of any entity type (read from its `entity` field),
 * refusing it with the path of every bad field.
 */
export const decodeRecord = (input: unknown, subject = "record"): Effect.Effect<CanonicalRecord, ValidationError> => {
  const entity = typeof input === "object" && input !== null ? (input as { entity?: unknown }).entity : undefined
  if (typeof entity !== "string" || !isEntityType(entity)) {
    return Effect.fail(
      new ValidationError({
        subject,
        issues: [{ path: "entity", message: `Expected one of ${entityTypes.join(", ")}, got ${JSON.stringify(entity)}` }]
      })
    )
  }
  const result = decoders[entity](input)
  return result.ok ? Effect.succeed(result.value as CanonicalRecord) : Effect.fail(new ValidationError({ subject, issues: result.issues }))
}

/** Decodes a record of the given entity type. */
export const decodeEntity = <K extends EntityType>(entity: K, subject = entity as string) =>
  (input: unknown): Effect.Effect<RecordOf<K>, ValidationError> => {
    const result = decoders[entity](input)
    return result.ok ? Effect.succeed(result.value) : Effect.fail(new ValidationError({ subject, issues: result.issues }))
  }

/** Encodes a record to plain JSON (the schemas are JSON-shaped, so this is the identity on valid records). */
export const toJson = (record: CanonicalRecord): unknown => JSON.parse(JSON.stringify(record))
