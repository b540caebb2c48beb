/**
 * Content hashing: a canonical JSON form and SHA-256 over it.
 *
 * Canonical form: object keys sorted by code point, `undefined` members
 * dropped, `-0` written as `0`, numbers in their shortest round-trip form,
 * `Date`s and RFC 3339 timestamps with an offset rewritten to UTC
 * (`2026-01-01T10:00:00+02:00` → `2026-01-01T08:00:00Z`), no whitespace.
 * Two values that mean the same record hash the same, whatever their key
 * order or timestamp zone.
 */
import { createHash } from "node:crypto"

const timestamp = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/

const normalizeTimestamp = (s: string): string => {
  const ms = Date.parse(s)
  if (Number.isNaN(ms)) return s
  const iso = new Date(ms).toISOString()
  return iso.endsWith(".000Z") ? `${iso.slice(0, -5)}Z` : iso
}

/** Thrown for values that have no JSON form (NaN, Infinity, functions, cycles). */
export class NotCanonicalizable extends Error {}

/** Cheap pre-check (length, "-" at 4, "T" at 10) before the timestamp pattern. */
const maybeTimestamp = (s: string): boolean =>
  s.length >= 20 && s.length <= 40 && s.charCodeAt(4) === 45 && s.charCodeAt(10) === 84 && timestamp.test(s)

const write = (value: unknown, seen: Set<object>): string => {
  switch (typeof value) {
    case "string":
      return JSON.stringify(maybeTimestamp(value) ? normalizeTimestamp(value) : value)
    case "number":
      if (!Number.isFinite(value)) throw new NotCanonicalizable(`cannot hash the number ${value}`)
      return Object.is(value, -0) ? "0" : String(value)
    case "boolean":
      return value ? "true" : "false"
    case "bigint":
      return value.toString()
    case "undefined":
      return "null"
    case "object": {
      if (value === null) return "null"
      if (value instanceof Date) return JSON.stringify(normalizeTimestamp(value.toISOString()))
      if (seen.has(value)) throw new NotCanonicalizable("cannot hash a cyclic value")
      seen.add(value)
      let out: string
      if (Array.isArray(value)) {
        out = "["
        for (let i = 0; i < value.length; i++) out += (i > 0 ? "," : "") + write(value[i], seen)
        out += "]"
      } else {
        const obj = value as Record<string, unknown>
        const keys = Object.keys(obj).sort()
        out = "{"
        let first = true
        for (const k of keys) {
          const v = obj[k]
          if (v === undefined) continue
          out += (first ? "" : ",") + JSON.stringify(k) + ":" + write(v, seen)
          first = false
        }
        out += "}"
      }
      seen.delete(value)
      return out
    }
    default:
      throw new NotCanonicalizable(`cannot hash a ${typeof value}`)
  }
}

/** The canonical JSON text of a value. */
export const canonicalJson = (value: unknown): string => write(value, new Set())

/** Hex SHA-256 of a string. */
export const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex")

/** Hex SHA-256 of the value's canonical JSON. */
export const contentHash = (value: unknown): string => sha256(canonicalJson(value))

/**
 * The key that makes a provider write idempotent: the same connection,
 * record, base version and target content always give the same key, so a
 * retried or replayed write is recognised instead of posted twice.
 *
 * 32 hex characters (128 bits): fits QuickBooks' `requestid` (≤ 36 inside a
 * batch) and Xero's `Idempotency-Key` (≤ 128).
 */
export const idempotencyKey = (parts: {
  readonly connectionId: string
  readonly entity: string
  readonly recordId: string
  readonly baseVersion: string | number | null
  readonly targetHash: string
}): string =>
  sha256(canonicalJson([parts.connectionId, parts.entity, parts.recordId, parts.baseVersion, parts.targetHash])).slice(0, 32)
