/**
 * Three-way diff and merge of canonical records.
 *
 * Given the last agreed `base` and the current `app` and `provider` states,
 * every field is classified:
 *
 * | kind            | meaning                                   | result          |
 * |-----------------|-------------------------------------------|-----------------|
 * | `unchanged`     | nobody changed it                         | kept            |
 * | `app_only`      | only the app changed it                   | app's value     |
 * | `provider_only` | only the provider changed it              | provider's value|
 * | `both_same`     | both changed it to the same value         | that value      |
 * | `conflict`      | both changed it, to different values      | the policy      |
 *
 * Plain objects (custom fields, addresses) are compared key by key. Arrays of
 * objects (lines, allocations) are compared element by element, matched by
 * `lineId` when every element on every side has one, else by position; an
 * element added or removed on one side is a change of that element. Arrays
 * of scalars (roles, tracking ids) are single values.
 *
 * With no base (the two records were never synced), a field that differs is a
 * conflict. The merge is pure and deterministic.
 */
import * as Path from "./Path.ts"
import { type Policy, type PolicySpec, policyFor } from "./Policy.ts"

export type Json = null | boolean | number | string | ReadonlyArray<Json> | { readonly [key: string]: Json }

export type FieldKind = "unchanged" | "app_only" | "provider_only" | "both_same" | "conflict"

/** `undefined` means the field is absent on that side. */
export interface FieldDiff {
  readonly path: string
  readonly segments: Path.Path
  readonly kind: FieldKind
  readonly base: Json | undefined
  readonly app: Json | undefined
  readonly provider: Json | undefined
  /** The values each side ends with for this field. */
  readonly merged: { readonly app: Json | undefined; readonly provider: Json | undefined }
}

export interface Resolution {
  readonly path: string
  readonly segments: Path.Path
  readonly policy: Policy
  /** Which value each side ends with: `app_wins` → "app", `provider_wins` → "provider", `review` → "open". */
  readonly outcome: "app" | "provider" | "open"
  readonly base: Json | undefined
  readonly app: Json | undefined
  readonly provider: Json | undefined
}

export interface MergeResult {
  /** Every compared field, in a stable order (changed and unchanged). */
  readonly fields: ReadonlyArray<FieldDiff>
  /** Fields both sides changed differently, with how the policy resolved each. */
  readonly resolutions: ReadonlyArray<Resolution>
  /** Conflicts left open for review (a subset of `resolutions`). */
  readonly conflicts: ReadonlyArray<Resolution>
  /** The app's record after the merge. */
  readonly app: Json | undefined
  /** The provider's record after the merge. */
  readonly provider: Json | undefined
  /** The app side needs writing (its merged value differs from its current one). */
  readonly appChanged: boolean
  /** The provider side needs writing. */
  readonly providerChanged: boolean
}

const isObject = (v: unknown): v is { readonly [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v)

/** Structural equality; object members that are `undefined` count as absent. */
export const equals = (a: Json | undefined, b: Json | undefined): boolean => {
  if (a === b) return true
  if (a === undefined || b === undefined || a === null || b === null) return false
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false
    for (let i = 0; i < a.length; i++) if (!equals(a[i], b[i])) return false
    return true
  }
  if (isObject(a)) {
    if (!isObject(b)) return false
    const ka = Object.keys(a).filter((k) => a[k] !== undefined)
    const kb = Object.keys(b).filter((k) => b[k] !== undefined)
    if (ka.length !== kb.length) return false
    for (const k of ka) if (!equals(a[k], b[k])) return false
    return true
  }
  return false
}

const isElementArray = (v: unknown): v is ReadonlyArray<Json> =>
  Array.isArray(v) && v.length > 0 && v.every(isObject)

const isEmptyArray = (v: unknown): boolean => Array.isArray(v) && v.length === 0

interface Ctx {
  readonly spec: PolicySpec | undefined
  readonly fields: Array<FieldDiff>
  readonly resolutions: Array<Resolution>
}

interface Pair {
  readonly app: Json | undefined
  readonly provider: Json | undefined
}

const leaf = (ctx: Ctx, segments: Path.Path, b: Json | undefined, a: Json | undefined, p: Json | undefined): Pair => {
  const path = Path.format(segments)
  const record = (kind: FieldKind, merged: Pair): Pair => {
    ctx.fields.push({ path, segments, kind, base: b, app: a, provider: p, merged })
    return merged
  }
  const appChanged = !equals(a, b)
  const providerChanged = !equals(p, b)
  if (!appChanged && !providerChanged) return record("unchanged", { app: a, provider: p })
  if (equals(a, p)) return record("both_same", { app: a, provider: p })
  if (!providerChanged) return record("app_only", { app: a, provider: a })
  if (!appChanged) return record("provider_only", { app: p, provider: p })
  const policy = policyFor(ctx.spec, path)
  const outcome = policy === "app_wins" ? "app" : policy === "provider_wins" ? "provider" : "open"
  ctx.resolutions.push({ path, segments, policy, outcome, base: b, app: a, provider: p })
  return record(
    "conflict",
    outcome === "app" ? { app: a, provider: a } : outcome === "provider" ? { app: p, provider: p } : { app: a, provider: p }
  )
}

type JsonObject = { readonly [key: string]: Json }

const mergeObjects = (ctx: Ctx, path: Path.Path, b: JsonObject | undefined, a: JsonObject, p: JsonObject): Pair => {
  const keys = new Set<string>()
  for (const o of [b, a, p]) if (o !== undefined) for (const k of Object.keys(o)) if (o[k] !== undefined) keys.add(k)
  const outA: Record<string, Json> = {}
  const outP: Record<string, Json> = {}
  for (const k of [...keys].sort()) {
    const r = mergeValue(ctx, [...path, { key: k }], b?.[k], a[k], p[k])
    if (r.app !== undefined) outA[k] = r.app
    if (r.provider !== undefined) outP[k] = r.provider
  }
  return { app: outA, provider: outP }
}

const lineIdOf = (el: Json): string | undefined => {
  if (!isObject(el)) return undefined
  const id = el.lineId
  return typeof id === "string" ? id : undefined
}

const mergeElements = (
  ctx: Ctx,
  path: Path.Path,
  b: ReadonlyArray<Json> | undefined,
  a: ReadonlyArray<Json>,
  p: ReadonlyArray<Json>
): Pair => {
  const all = [...(b ?? []), ...a, ...p]
  const byId = all.every((el) => lineIdOf(el) !== undefined) &&
    [b ?? [], a, p].every((arr) => new Set(arr.map(lineIdOf)).size === arr.length)

  const element = (segment: Path.Segment, be: Json | undefined, ae: Json | undefined, pe: Json | undefined): Pair => {
    const elPath = [...path, segment]
    if (ae !== undefined && pe !== undefined && be !== undefined && isObject(ae) && isObject(pe) && isObject(be)) {
      return mergeObjects(ctx, elPath, be, ae, pe)
    }
    // Added, removed, or added on both sides: the element is one value.
    return leaf(ctx, elPath, be, ae, pe)
  }

  if (!byId) {
    const n = Math.max(b?.length ?? 0, a.length, p.length)
    const outA: Array<Json> = []
    const outP: Array<Json> = []
    for (let i = 0; i < n; i++) {
      const r = element({ index: i }, b?.[i], a[i], p[i])
      if (r.app !== undefined) outA.push(r.app)
      if (r.provider !== undefined) outP.push(r.provider)
    }
    return { app: outA, provider: outP }
  }

  const index = (arr: ReadonlyArray<Json>) => new Map(arr.map((el) => [lineIdOf(el) as string, el]))
  const bm = index(b ?? [])
  const am = index(a)
  const pm = index(p)
  const baseOrder = (b ?? []).map((el) => lineIdOf(el) as string)
  const appOrder = a.map((el) => lineIdOf(el) as string)
  const providerOrder = p.map((el) => lineIdOf(el) as string)
  const merged = new Map<string, Pair>()
  for (const id of new Set([...baseOrder, ...appOrder, ...providerOrder])) {
    merged.set(id, element({ lineId: id }, bm.get(id), am.get(id), pm.get(id)))
  }
  // Order: the lines as the side that reordered them has them (the app when
  // both did, or neither); the other side's new lines go in after the line
  // they follow there.
  const relativeOrder = (x: ReadonlyArray<string>, y: ReadonlyArray<string>) => {
    const inY = new Set(y)
    const inX = new Set(x)
    const fx = x.filter((id) => inY.has(id))
    const fy = y.filter((id) => inX.has(id))
    return fx.every((id, i) => id === fy[i])
  }
  const appReordered = !relativeOrder(appOrder, baseOrder)
  const providerReordered = !relativeOrder(providerOrder, baseOrder)
  const primary = appReordered || !providerReordered ? appOrder : providerOrder
  const secondary = primary === appOrder ? providerOrder : appOrder
  const order = [...primary]
  let cursor = 0
  for (const id of secondary) {
    const at = order.indexOf(id)
    if (at >= 0) cursor = at + 1
    else order.splice(cursor++, 0, id)
  }
  for (const id of baseOrder) if (!order.includes(id)) order.push(id)
  const outA: Array<Json> = []
  const outP: Array<Json> = []
  for (const id of order) {
    const r = merged.get(id)
    if (r?.app !== undefined) outA.push(r.app)
    if (r?.provider !== undefined) outP.push(r.provider)
  }
  return { app: outA, provider: outP }
}

const mergeValue = (ctx: Ctx, path: Path.Path, b: Json | undefined, a: Json | undefined, p: Json | undefined): Pair => {
  if (isObject(a) && isObject(p) && (b === undefined || isObject(b))) return mergeObjects(ctx, path, b, a, p)
  const elementArrays = Array.isArray(a) && Array.isArray(p) &&
    [b, a, p].every((v) => v === undefined || isElementArray(v) || isEmptyArray(v)) &&
    [b, a, p].some(isElementArray)
  if (elementArrays) {
    return mergeElements(ctx, path, b as ReadonlyArray<Json> | undefined, a as ReadonlyArray<Json>, p as ReadonlyArray<Json>)
  }
  return leaf(ctx, path, b, a, p)
}

/**
 * Merges `app` and `provider` against `base` (undefined when never synced).
 * Both sides must be present; creation and deletion are decided before
 * merging. `policy` resolves conflicts (default `review`).
 */
export const merge = (
  base: Json | undefined,
  app: Json,
  provider: Json,
  policy?: PolicySpec
): MergeResult => {
  const ctx: Ctx = { spec: policy, fields: [], resolutions: [] }
  const result = isObject(app) && isObject(provider) && (base === undefined || isObject(base))
    ? mergeObjects(ctx, [], base as JsonObject | undefined, app, provider)
    : leaf(ctx, [], base, app, provider)
  return {
    fields: ctx.fields,
    resolutions: ctx.resolutions,
    conflicts: ctx.resolutions.filter((r) => r.outcome === "open"),
    app: result.app,
    provider: result.provider,
    appChanged: !equals(result.app, app),
    providerChanged: !equals(result.provider, provider)
  }
}

/**
 * The state two sides agree on: for every field, the value when `x` and `y`
 * hold the same one, else the `base` value. Lines are matched as in `merge`.
 * This is the next base after a sync that did not (or could not) carry every
 * change across: whatever was not agreed stays a change next time.
 */
export const agreed = (base: Json | undefined, x: Json | undefined, y: Json | undefined): Json | undefined => {
  if (equals(x, y)) return x
  if (isObject(x) && isObject(y) && (base === undefined || isObject(base))) {
    const out: Record<string, Json> = {}
    const keys = new Set([...Object.keys(x), ...Object.keys(y), ...Object.keys(base ?? {})])
    for (const k of [...keys].sort()) {
      const v = agreed((base as JsonObject | undefined)?.[k], x[k], y[k])
      if (v !== undefined) out[k] = v
    }
    return out
  }
  if (Array.isArray(x) && Array.isArray(y) && (base === undefined || Array.isArray(base)) &&
    [base, x, y].some(isElementArray) && [base, x, y].every((v) => v === undefined || isElementArray(v) || isEmptyArray(v))) {
    const b = (base ?? []) as ReadonlyArray<Json>
    const all = [...b, ...x, ...y]
    const byId = all.every((el) => lineIdOf(el) !== undefined)
    const out: Array<Json> = []
    if (byId) {
      const index = (arr: ReadonlyArray<Json>) => new Map(arr.map((el) => [lineIdOf(el) as string, el]))
      const [bm, xm, ym] = [index(b), index(x), index(y)]
      for (const id of new Set([...x.map(lineIdOf), ...y.map(lineIdOf), ...b.map(lineIdOf)] as Array<string>)) {
        const v = agreed(bm.get(id), xm.get(id), ym.get(id))
        if (v !== undefined) out.push(v)
      }
    } else {
      for (let i = 0; i < Math.max(b.length, x.length, y.length); i++) {
        const v = agreed(b[i], x[i], y[i])
        if (v !== undefined) out.push(v)
      }
    }
    return out
  }
  return base
}

/** Only the fields that changed on some side. */
export const changedFields = (result: MergeResult): ReadonlyArray<FieldDiff> =>
  result.fields.filter((f) => f.kind !== "unchanged")

/**
 * Keeps only the listed top-level fields of a record (the fields a provider
 * can store), and only the listed custom fields. Merging and hashing work on
 * this projection so app-only data never looks like drift.
 */
export const project = (
  record: { readonly [key: string]: Json },
  fields: ReadonlyArray<string>,
  customFields?: ReadonlyArray<string>
): { [key: string]: Json } => {
  const out: { [key: string]: Json } = {}
  for (const f of fields) {
    const v = record[f]
    if (v === undefined) continue
    if (f === "customFields" && customFields !== undefined && isObject(v)) {
      const cf: { [key: string]: Json } = {}
      for (const name of customFields) if (v[name] !== undefined) cf[name] = v[name]
      if (Object.keys(cf).length > 0) out[f] = cf
    } else out[f] = v
  }
  return out
}
