/**
 * Field types shared by the canonical entities.
 */
import { Schema } from "effect"

/** An identifier: 1–128 printable characters without surrounding whitespace. */
export const Id = Schema.String.check(
  Schema.makeFilter((s: string) =>
    (s.length >= 1 && s.length <= 128 && s.trim() === s && !/[\u0000-\u001f]/.test(s)) ||
    "Expected an id of 1-128 printable characters without surrounding spaces"
  )
).pipe(Schema.annotate({ title: "Id" }))
export type Id = typeof Id.Type

/** Free text up to `max` characters. */
export const Text = (max: number) =>
  Schema.String.check(Schema.makeFilter((s: string) => s.length <= max || `Expected at most ${max} characters, got ${s.length}`))

const isValidDate = (s: string): boolean => {
  const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s)
  if (m === null) return false
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])]
  const date = new Date(Date.UTC(y, mo - 1, d))
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d
}

/** A calendar date, `YYYY-MM-DD` (accounting dates have no time of day). */
export const LocalDate = Schema.String.check(
  Schema.makeFilter((s: string) => isValidDate(s) || `Expected a date as YYYY-MM-DD, got ${JSON.stringify(s)}`)
).pipe(Schema.annotate({ title: "LocalDate", format: "date" }))
export type LocalDate = typeof LocalDate.Type

/** An instant as an RFC 3339 string with a zone offset. */
export const Timestamp = Schema.String.check(
  Schema.makeFilter((s: string) =>
    (/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/.test(s) && !Number.isNaN(Date.parse(s))) ||
    `Expected an RFC 3339 timestamp such as 2026-01-31T12:00:00Z, got ${JSON.stringify(s)}`
  )
).pipe(Schema.annotate({ title: "Timestamp", format: "date-time" }))

/** A custom field value: text, number, boolean or null (cleared). */
export const CustomFieldValue = Schema.Union([Schema.String, Schema.Finite, Schema.Boolean, Schema.Null])
export type CustomFieldValue = typeof CustomFieldValue.Type

/** Custom fields by name. */
export const CustomFields = Schema.Record(Schema.String, CustomFieldValue).pipe(
  Schema.annotate({ title: "CustomFields", description: "Custom field values by field name" })
)
export type CustomFields = typeof CustomFields.Type

/** The record's identity in another system the app knows about (a POS order, a Stripe charge). */
export const ExternalRef = Schema.Struct({
  system: Id,
  id: Id,
  url: Schema.optionalKey(Schema.String)
})
export type ExternalRef = typeof ExternalRef.Type

export const Address = Schema.Struct({
  line1: Schema.optionalKey(Text(500)),
  line2: Schema.optionalKey(Text(500)),
  city: Schema.optionalKey(Text(255)),
  region: Schema.optionalKey(Text(255)),
  postalCode: Schema.optionalKey(Text(30)),
  country: Schema.optionalKey(Text(60))
})
export type Address = typeof Address.Type

/** Active or archived (master data is archived, never hard-deleted, in most ledgers). */
export const ActiveStatus = Schema.Literals(["active", "archived"])
