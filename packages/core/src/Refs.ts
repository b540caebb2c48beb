/**
 * References between canonical records.
 *
 * A canonical record refers to others by app id (`contactId`,
 * `lines[].accountId`, `allocations[].documentId`, …). Provider adapters work
 * in the provider's id space, so the pipeline rewrites references both ways
 * with `mapRefs`, after loading the links `refsOf` lists. Adapters never see
 * an app id, and the mapping code stays pure.
 */
import type { CanonicalRecord, EntityType } from "./Canonical.ts"

/** One reference: the entity it points to and the id it holds. */
export interface Ref {
  readonly entity: EntityType
  readonly id: string
  /** Where in the record, e.g. `lines[2].accountId`. */
  readonly path: string
}

type Target = EntityType | ((parent: Record<string, unknown>) => EntityType | undefined)

/** A reference field: `key` on the record, or on each element of the array `in`. */
interface Spec {
  readonly key: string
  readonly entity: Target
  readonly in?: string
  readonly many?: boolean
}

const lineRefs: ReadonlyArray<Spec> = [
  { in: "lines", key: "itemId", entity: "item" },
  { in: "lines", key: "accountId", entity: "account" },
  { in: "lines", key: "taxRateId", entity: "tax_rate" },
  { in: "lines", key: "trackingIds", entity: "tracking_category", many: true }
]

const allocationTarget = (a: Record<string, unknown>): EntityType | undefined => {
  const t = a.documentType
  return t === "invoice" || t === "credit_note" || t === "bill" || t === "vendor_credit" ? t : undefined
}

const specs: Readonly<Record<EntityType, ReadonlyArray<Spec>>> = {
  account: [{ key: "taxRateId", entity: "tax_rate" }],
  contact: [],
  item: [
    { key: "salesAccountId", entity: "account" },
    { key: "purchaseAccountId", entity: "account" },
    { key: "inventoryAccountId", entity: "account" },
    { key: "taxRateId", entity: "tax_rate" }
  ],
  tax_rate: [],
  currency: [],
  tracking_category: [{ key: "parentId", entity: "tracking_category" }],
  invoice: [{ key: "contactId", entity: "contact" }, ...lineRefs],
  bill: [{ key: "contactId", entity: "contact" }, ...lineRefs],
  credit_note: [{ key: "contactId", entity: "contact" }, ...lineRefs],
  vendor_credit: [{ key: "contactId", entity: "contact" }, ...lineRefs],
  sales_receipt: [{ key: "contactId", entity: "contact" }, { key: "depositAccountId", entity: "account" }, ...lineRefs],
  refund: [{ key: "contactId", entity: "contact" }, { key: "refundFromAccountId", entity: "account" }, ...lineRefs],
  expense: [{ key: "contactId", entity: "contact" }, { key: "paymentAccountId", entity: "account" }, ...lineRefs],
  payment: [
    { key: "contactId", entity: "contact" },
    { key: "accountId", entity: "account" },
    { in: "allocations", key: "documentId", entity: allocationTarget }
  ],
  bill_payment: [
    { key: "contactId", entity: "contact" },
    { key: "accountId", entity: "account" },
    { in: "allocations", key: "documentId", entity: allocationTarget }
  ],
  deposit: [
    { key: "accountId", entity: "account" },
    { in: "lines", key: "accountId", entity: "account" },
    { in: "lines", key: "contactId", entity: "contact" },
    { in: "lines", key: "paymentId", entity: "payment" },
    { in: "lines", key: "trackingIds", entity: "tracking_category", many: true }
  ],
  transfer: [{ key: "fromAccountId", entity: "account" }, { key: "toAccountId", entity: "account" }],
  journal_entry: [
    { in: "lines", key: "accountId", entity: "account" },
    { in: "lines", key: "contactId", entity: "contact" },
    { in: "lines", key: "taxRateId", entity: "tax_rate" },
    { in: "lines", key: "trackingIds", entity: "tracking_category", many: true }
  ]
}

type Mapper = (entity: EntityType, id: string, path: string) => string

const visit = (
  holder: Record<string, unknown>,
  spec: Spec,
  prefix: string,
  onRef: Mapper
): Record<string, unknown> => {
  const value = holder[spec.key]
  if (value === undefined) return holder
  const entity = typeof spec.entity === "function" ? spec.entity(holder) : spec.entity
  if (entity === undefined) return holder
  const path = prefix === "" ? spec.key : `${prefix}.${spec.key}`
  if (spec.many === true && Array.isArray(value)) {
    const next = value.map((v, i) => (typeof v === "string" ? onRef(entity, v, `${path}[${i}]`) : v))
    return next.every((v, i) => v === value[i]) ? holder : { ...holder, [spec.key]: next }
  }
  if (typeof value !== "string") return holder
  const next = onRef(entity, value, path)
  return next === value ? holder : { ...holder, [spec.key]: next }
}

const walk = <R extends CanonicalRecord>(record: R, onRef: Mapper): R => {
  let out: Record<string, unknown> = record as unknown as Record<string, unknown>
  for (const spec of specs[record.entity]) {
    if (spec.in === undefined) {
      out = visit(out, spec, "", onRef)
      continue
    }
    const arr = out[spec.in]
    if (!Array.isArray(arr)) continue
    const inKey = spec.in
    const next = arr.map((el, i) =>
      typeof el === "object" && el !== null ? visit(el as Record<string, unknown>, spec, `${inKey}[${i}]`, onRef) : el
    )
    if (next.some((el, i) => el !== arr[i])) out = { ...out, [spec.in]: next }
  }
  return out as unknown as R
}

/** Every reference a record holds, in a stable order. */
export const refsOf = (record: CanonicalRecord): Array<Ref> => {
  const out: Array<Ref> = []
  walk(record, (entity, id, path) => {
    out.push({ entity, id, path })
    return id
  })
  return out
}

/**
 * Rewrites every reference with `f` (app id → provider id or back).
 * Returns the same object when nothing changes; never mutates its input.
 */
export const mapRefs = <R extends CanonicalRecord>(record: R, f: (entity: EntityType, id: string, path: string) => string): R =>
  walk(record, f)

/** The entity types a record of `entity` can refer to (for dependency ordering). */
export const dependenciesOf = (entity: EntityType): ReadonlyArray<EntityType> => {
  const out = new Set<EntityType>()
  for (const spec of specs[entity]) {
    if (typeof spec.entity === "string") out.add(spec.entity)
    else if (entity === "payment") {
      out.add("invoice")
      out.add("credit_note")
    } else if (entity === "bill_payment") {
      out.add("bill")
      out.add("vendor_credit")
    }
  }
  out.delete(entity)
  return [...out]
}
