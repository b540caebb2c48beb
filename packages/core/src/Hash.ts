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

const write = (value: unknown, out: Array<string>, seen: Set<object>): void => {
  switch (typeof value) {
    case "string":
      out.push(JSON.stringify(timestamp.test(value) ? normalizeTimestamp(value) : value))
      return
    case "number":
      if (!Number.isFinite(value)) throw new NotCanonicalizable(`cannot hash the number ${value}`)
      out.push(Object.is(value, -0) ? "0" : String(value))
      return
    case "boolean":
      out.push(value ? "true" : "false")
      return
    case "bigint":
      out.push(value.toString())
      return
    case "undefined":
      out.push("null")
      return
    case "object": {
      if (value === null) {
        out.push("null")
        return
      }
      if (value instanceof Date) {
        out.push(JSON.stringify(normalizeTimestamp(value.toISOString())))
        return
      }
      if (seen.has(value)) throw new NotCanonicalizable("cannot hash a cyclic value")
      seen.add(value)
      if (Array.isArray(value)) {
        out.push("[")
        value.forEach((v, i) => {
          if (i > 0) out.push(",")
          write(v, out, seen)
        })
        out.push("]")
      } else {
        const keys = Object.keys(value).filter((k) => (value as Record<string, unknown>)[k] !== undefined).sort()
        out.push("{")
        keys.forEach((k, i) => {
          if (i > 0) out.push(",")
          out.push(JSON.stringify(k), ":")
          write((value as Record<string, unknown>)[k], out, seen)
        })
        out.push("}")
      }
      seen.delete(value)
      return
    }
    default:
      throw new NotCanonicalizable(`cannot hash a ${typeof value}`)
  }
}

/** The canonical JSON text of a value. */
export const canonicalJson = (value: unknown): string => {
  const out: Array<string> = []
  write(value, out, new Set())
  return out.join("")
}

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
