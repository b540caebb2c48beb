/**
 * Drift classification: what a full-state reconciliation calls a difference
 * between the app and the provider, decided one record at a time (pure; the
 * server streams both sides and feeds this page by page).
 *
 * Everything is compared on the comparable projection (`Projection.ts`): only
 * the fields the provider stores, in the app's id space, so app-only data and
 * provider-side decoration never look like drift.
 *
 * Kinds:
 *
 * - `missing_in_provider`: a linked app record whose provider record is gone
 *   (not listed, or deleted there), or a live app record of an entity the
 *   connection pushes (`push`/`both`) that was never linked.
 * - `missing_in_app`: a provider record linked to nothing and not a duplicate
 *   (below); or a linked record the app deleted while the provider still has
 *   it live.
 * - `field_mismatch`: linked, live on both sides, and the projections differ;
 *   `fields` lists each differing path with both values.
 * - `duplicate_in_provider`: a provider record linked to nothing whose natural
 *   key equals that of a live app record already linked to a *different*
 *   provider record of the same entity, i.e. two provider records that are the
 *   same app record. Natural keys: the document `number` of transactions
 *   (invoice, bill, credit note, journal, …), the `code` (else `name`) of
 *   accounts and currencies, the `name` of contacts, items, tax rates and
 *   tracking categories; compared trimmed of white space and ignoring the
 *   case of ASCII letters (as the SQL twin `concord_natural_key` does). Entities
 *   without a natural key (payments, transfers, …) never have duplicates.
 * - `unbalanced`: a journal entry whose debits differ from its credits in some
 *   currency, on either side (reported instead of a `field_mismatch`).
 * - `orphan_link`: a link whose app record no longer exists at all.
 */
import { Canonical, Entities, Hash, Merge } from "@concord/core"
import type { Policy } from "@concord/core"
import { Schema } from "effect"
import * as Projection from "./Projection.ts"
import type { EntityType } from "./Ports.ts"

type Obj = Record<string, unknown>

export const DriftKinds = [
  "missing_in_provider",
  "missing_in_app",
  "field_mismatch",
  "duplicate_in_provider",
  "unbalanced",
  "orphan_link"
] as const
export type DriftKind = (typeof DriftKinds)[number]

export type DriftCounts = Record<DriftKind, number>

export const emptyCounts = (): DriftCounts => ({
  missing_in_provider: 0,
  missing_in_app: 0,
  field_mismatch: 0,
  duplicate_in_provider: 0,
  unbalanced: 0,
  orphan_link: 0
})

export interface DriftField {
  readonly path: string
  readonly app: unknown
  readonly provider: unknown
}

export interface Finding {
  readonly kind: DriftKind
  readonly entity: EntityType
  readonly recordId: string | null
  readonly externalId: string | null
  /** Differing fields with both values (field_mismatch, duplicate_in_provider's key, unbalanced totals). */
  readonly fields: ReadonlyArray<DriftField>
  /** What else a person needs (the provider record a duplicate duplicates, why it is missing). */
  readonly detail?: Readonly<Record<string, unknown>>
}

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)

/** Entities whose records carry a document number. */
const numbered: ReadonlySet<string> = new Set([
  "invoice", "bill", "credit_note", "vendor_credit", "sales_receipt", "journal_entry", "refund", "expense", "deposit"
])
const named: ReadonlySet<string> = new Set(["contact", "item", "tax_rate", "tracking_category"])
const coded: ReadonlySet<string> = new Set(["account", "currency"])

/** The JSON path of an entity's natural key in a record, or undefined when it has none. */
export const naturalKeyField = (entity: string): "number" | "name" | "code" | undefined =>
  numbered.has(entity) ? "number" : named.has(entity) ? "name" : coded.has(entity) ? "code" : undefined

/**
 * Trimmed of ASCII white space and with ASCII letters in lower case: exactly
 * what `concord_natural_key` does in Postgres (whatever the database's locale).
 */
const norm = (v: unknown): string | undefined => {
  if (typeof v !== "string") return undefined
  const t = v.replace(/^[ \t\n\r\f\v]+|[ \t\n\r\f\v]+$/g, "").replace(/[A-Z]+/g, (c) => c.toLowerCase())
  return t.length > 0 ? t : undefined
}

/** A record's natural key, normalised (trimmed, lower case); undefined when it has none. */
export const naturalKey = (entity: string, record: unknown): string | undefined => {
  if (!isObj(record)) return undefined
  const field = naturalKeyField(entity)
  if (field === undefined) return undefined
  if (field === "code") return norm(record.code) ?? norm(record.name)
  return norm(record[field])
}

/** Per-currency debit/credit totals that differ, when `record` is a journal entry; empty otherwise. */
export const unbalanced = (entity: string, record: unknown): ReadonlyArray<{ currency: string; debit: number; credit: number }> => {
  if (entity !== "journal_entry" || !isObj(record) || !Array.isArray(record.lines) || typeof record.currency !== "string") return []
  const lines = record.lines.filter((l): l is Entities.JournalLine =>
    isObj(l) && (l.postingType === "debit" || l.postingType === "credit") && typeof l.amount === "number"
  )
  return Entities.unbalancedCurrencies({ currency: record.currency, lines })
}

/** The fields whose values differ between two projections, with both values. */
export const differingFields = (app: Obj, provider: Obj): ReadonlyArray<DriftField> => {
  const result = Merge.merge(app as Merge.Json, app as Merge.Json, provider as Merge.Json, "provider_wins")
  return Merge.changedFields(result).map((f) => ({ path: f.path, app: f.app, provider: f.provider }))
}

export interface LinkedInput {
  readonly entity: EntityType
  readonly recordId: string
  readonly externalId: string
  /** The app's record; undefined when there is no row at all. */
  readonly app: { readonly data: Obj; readonly deleted: boolean } | undefined
  /** The link says the provider deleted (or voided, archived) the record. */
  readonly providerDeleted: boolean
  /** The provider's record in the app's id space, custom fields under app names; null when the provider has none. */
  readonly provider: Obj | null
  readonly spec: Projection.ProjectionSpec
}

/** A linked record: what, if anything, is drift about it. */
export const classifyLinked = (input: LinkedInput): ReadonlyArray<Finding> => {
  const { entity, recordId, externalId, app, provider, spec } = input
  const at = { entity, recordId, externalId }
  if (app === undefined) {
    return [{ kind: "orphan_link", ...at, fields: [], detail: { provider: provider === null ? "missing" : "present" } }]
  }
  // A record the provider keeps with status "deleted" (Xero keeps deleted drafts) is gone all the same.
  if (provider === null || provider.status === "deleted") {
    if (app.deleted) return []
    const reason = provider !== null ? "deleted at the provider" : input.providerDeleted ? "deleted at the provider" : "not found at the provider"
    return [{ kind: "missing_in_provider", ...at, fields: [], detail: { reason } }]
  }
  if (app.deleted) {
    return input.providerDeleted ? [] : [{ kind: "missing_in_app", ...at, fields: [], detail: { reason: "deleted in the app, live at the provider" } }]
  }
  const appOff = unbalanced(entity, app.data)
  const providerOff = unbalanced(entity, provider)
  if (appOff.length > 0 || providerOff.length > 0) {
    return [{
      kind: "unbalanced",
      ...at,
      fields: [...new Set([...appOff, ...providerOff].map((u) => u.currency))].map((currency) => ({
        path: `balance.${currency}`,
        app: totals(app.data, currency),
        provider: totals(provider, currency)
      })),
      detail: { side: appOff.length > 0 && providerOff.length > 0 ? "both" : appOff.length > 0 ? "app" : "provider" }
    }]
  }
  const appProjection = Projection.project(app.data, spec)
  const providerProjection = Projection.project(provider, spec)
  // Equal content hashes of the canonical projections mean no drift. Structurally equal projections hash
  // alike, so the hashes (canonical JSON + SHA-256, which also equate the forms of one instant) are only
  // computed when a quick structural comparison says the two differ.
  if (Merge.equals(appProjection as Merge.Json, providerProjection as Merge.Json)) return []
  if (Hash.contentHash(appProjection) === Hash.contentHash(providerProjection)) return []
  const fields = differingFields(appProjection, providerProjection)
  return fields.length === 0 ? [] : [{ kind: "field_mismatch", ...at, fields }]
}

const totals = (record: Obj, currency: string) => {
  const lines = Array.isArray(record.lines) ? record.lines.filter((l): l is Entities.JournalLine => isObj(l) && typeof l.amount === "number") : []
  const t = Entities.journalBalances({ currency: typeof record.currency === "string" ? record.currency : currency, lines }).get(currency)
  return t === undefined ? { debit: 0, credit: 0 } : { debit: t.debit, credit: t.credit }
}

/**
 * A provider record linked to nothing. `sameKey` is a live app record with the
 * same natural key that is linked to another provider record, if any. A
 * record the provider keeps as deleted is nothing the app misses.
 */
export const classifyUnlinkedProvider = (input: {
  readonly entity: EntityType
  readonly externalId: string
  readonly provider: Obj
  readonly sameKey: { readonly recordId: string; readonly externalId: string } | undefined
}): Finding | undefined => {
  if (input.provider.status === "deleted") return undefined
  const key = naturalKey(input.entity, input.provider)
  if (input.sameKey !== undefined && key !== undefined) {
    const field = naturalKeyField(input.entity) as string
    return {
      kind: "duplicate_in_provider",
      entity: input.entity,
      recordId: input.sameKey.recordId,
      externalId: input.externalId,
      fields: [{ path: field, app: input.provider[field] ?? input.provider.name, provider: input.provider[field] ?? input.provider.name }],
      detail: { duplicates: input.sameKey.externalId }
    }
  }
  return { kind: "missing_in_app", entity: input.entity, recordId: null, externalId: input.externalId, fields: [], detail: { reason: "not linked to any app record" } }
}

/** An app record no link of this connection names. */
export const classifyUnlinkedApp = (input: {
  readonly entity: EntityType
  readonly recordId: string
  readonly deleted: boolean
  readonly direction: "push" | "pull" | "both" | undefined
}): ReadonlyArray<Finding> =>
  input.deleted || (input.direction !== "push" && input.direction !== "both")
    ? []
    : [{ kind: "missing_in_provider", entity: input.entity, recordId: input.recordId, externalId: null, fields: [], detail: { reason: "never synced to the provider" } }]

/**
 * How a finding is fixed without asking, under the entity's policy and direction:
 * `repush` (sync the app's state to the provider), `pull` (take the provider's),
 * `conflict` (open conflicts for review), `review` (recorded for a person).
 */
export type Resolution = "repush" | "pull" | "conflict" | "review"

export const resolutionFor = (
  finding: Finding,
  policy: Policy.PolicySpec | undefined,
  direction: "push" | "pull" | "both" | undefined
): Resolution => {
  const whole: Policy.Policy = policy === undefined ? "review" : typeof policy === "string" ? policy : policy.default
  const canPush = direction === "push" || direction === "both"
  const canPull = direction === "pull" || direction === "both"
  const push = canPush ? "repush" : "review"
  const pull = canPull ? "pull" : "review"
  switch (finding.kind) {
    case "field_mismatch":
      return whole === "app_wins" ? push : whole === "provider_wins" ? pull : "conflict"
    case "missing_in_provider":
      // Pulling a deletion only makes sense for a record the provider had (linked).
      return whole === "app_wins" ? push : whole === "provider_wins" && finding.externalId !== null ? pull : "review"
    case "missing_in_app":
      // A provider-only record: pull it; a record the app deleted: remove it at the provider.
      if (finding.recordId === null) return whole === "provider_wins" ? pull : "review"
      return whole === "app_wins" ? push : "review"
    default:
      return "review"
  }
}

/** Counts per kind. */
export const countKinds = (kinds: Iterable<DriftKind>): DriftCounts => {
  const out = emptyCounts()
  for (const k of kinds) out[k]++
  return out
}

export const isKind = (s: string): s is DriftKind => (DriftKinds as ReadonlyArray<string>).includes(s)

/** The entity types a reconciliation can cover. */
export const isEntity = (s: string): s is EntityType => Schema.is(Canonical.EntityType)(s)
