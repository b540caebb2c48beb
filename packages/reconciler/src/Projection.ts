/**
 * The comparable projection of a record for one connection: only the fields
 * the provider stores (its capabilities), only the custom fields the tenant
 * maps, the tenant's defaults filled in, excluded fields dropped, and line
 * ids removed (app and provider number lines differently, so lines are
 * compared by position). Merging, hashing and drift detection all work on
 * this projection, so data only one side can hold never looks like a change.
 */
import type { Canonical, Config } from "@concord/core"
import { Hash } from "@concord/core"
import type { Provider } from "@concord/providers"

type Json = unknown
type Obj = Record<string, Json>

export interface ProjectionSpec {
  readonly fields: ReadonlyArray<string>
  /** App custom field name → provider custom field name. */
  readonly customFields: Readonly<Record<string, string>>
  readonly defaults: Readonly<Record<string, Json>>
}

const envelope = ["entity", "schemaVersion", "id"]

export const specFor = (
  capabilities: Provider.EntityCapabilities,
  mapping: Config.EntityMapping | undefined
): ProjectionSpec => {
  const exclude = new Set(mapping?.exclude ?? [])
  const fields = [...new Set([...envelope, ...capabilities.fields])].filter((f) => !exclude.has(f) || envelope.includes(f))
  return {
    fields: capabilities.customFields ? fields : fields.filter((f) => f !== "customFields"),
    customFields: capabilities.customFields ? (mapping?.customFields ?? {}) : {},
    defaults: mapping?.defaults ?? {}
  }
}

const isObject = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v)

const stripLineIds = (value: Json): Json =>
  Array.isArray(value)
    ? value.map((el) => {
      if (!isObject(el) || !("lineId" in el)) return el
      const { lineId: _drop, ...rest } = el
      return rest
    })
    : value

/** The projection of an app-space record (custom fields under app names). */
export const project = (record: Canonical.CanonicalRecord | Obj, spec: ProjectionSpec): Obj => {
  const source = record as Obj
  const out: Obj = {}
  for (const f of spec.fields) {
    let v = source[f]
    if (v === undefined && f in spec.defaults) v = spec.defaults[f]
    if (v === undefined) continue
    if (f === "customFields") {
      if (!isObject(v)) continue
      const cf: Obj = {}
      for (const name of Object.keys(spec.customFields).sort()) if (v[name] !== undefined) cf[name] = v[name]
      if (Object.keys(cf).length > 0) out[f] = cf
      continue
    }
    out[f] = f === "lines" || f === "allocations" ? stripLineIds(v) : v
  }
  return out
}

export const projectionHash = (projection: Obj): string => Hash.contentHash(projection)

/** Renames mapped custom fields to the provider's names (unmapped ones are not sent). */
export const toProviderNames = <R extends Obj>(record: R, spec: ProjectionSpec): R => {
  const cf = record.customFields
  if (!isObject(cf)) return record
  const out: Obj = {}
  for (const [app, provider] of Object.entries(spec.customFields)) if (cf[app] !== undefined) out[provider] = cf[app]
  const { customFields: _drop, ...rest } = record
  return (Object.keys(out).length > 0 ? { ...rest, customFields: out } : rest) as unknown as R
}

/** Renames the provider's custom fields to the app's names (unmapped ones are dropped). */
export const toAppNames = <R extends Obj>(record: R, spec: ProjectionSpec): R => {
  const cf = record.customFields
  if (!isObject(cf)) return record
  const out: Obj = {}
  for (const [app, provider] of Object.entries(spec.customFields)) if (cf[provider] !== undefined) out[app] = cf[provider]
  const { customFields: _drop, ...rest } = record
  return (Object.keys(out).length > 0 ? { ...rest, customFields: out } : rest) as unknown as R
}

/**
 * The full app record with the projection's fields replaced by `projection`
 * (fields of the projection set that the projection lacks are removed; app
 * custom fields that are not mapped, and app-only fields, are kept; line ids
 * the app gave are kept when the number of lines did not change).
 */
export const overlay = (full: Obj | undefined, projection: Obj, spec: ProjectionSpec): Obj => {
  const out: Obj = { ...(full ?? {}) }
  for (const f of spec.fields) {
    const v = projection[f]
    if (f === "customFields") {
      const mine: Obj = isObject(out.customFields) ? { ...out.customFields } : {}
      for (const name of Object.keys(spec.customFields)) delete mine[name]
      const merged = { ...mine, ...(isObject(v) ? v : {}) }
      if (Object.keys(merged).length > 0) out.customFields = merged
      else delete out.customFields
      continue
    }
    if (v === undefined) {
      delete out[f]
      continue
    }
    if ((f === "lines" || f === "allocations") && Array.isArray(v) && Array.isArray(out[f]) && (out[f] as Array<Json>).length === v.length) {
      const before = out[f] as Array<Json>
      out[f] = v.map((el, i) => {
        const old = before[i]
        return isObject(el) && isObject(old) && typeof old.lineId === "string" ? { lineId: old.lineId, ...el } : el
      })
      continue
    }
    out[f] = v
  }
  return out
}
