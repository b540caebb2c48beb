import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Hash from "../src/Hash.ts"

const shuffleKeys = (value: unknown, seed: number): unknown => {
  if (Array.isArray(value)) return value.map((v, i) => shuffleKeys(v, seed + i))
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value)
    const rotated = entries.slice(seed % Math.max(entries.length, 1)).concat(entries.slice(0, seed % Math.max(entries.length, 1)))
    return Object.fromEntries(rotated.reverse().map(([k, v]) => [k, shuffleKeys(v, seed + 1)]))
  }
  return value
}

describe("content hashing", () => {
  it("hashes equal records equal however their keys are ordered", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.nat(), (value, seed) => {
        expect(Hash.contentHash(shuffleKeys(value, seed))).toBe(Hash.contentHash(value))
      }),
      { numRuns: 1000 }
    )
  })

  it("normalises numbers, dropped undefined members and timestamp zones", () => {
    expect(Hash.canonicalJson({ b: 1, a: -0, c: undefined })).toBe(`{"a":0,"b":1}`)
    expect(Hash.canonicalJson({ at: "2026-01-01T10:00:00+02:00" })).toBe(`{"at":"2026-01-01T08:00:00Z"}`)
    expect(Hash.canonicalJson({ at: new Date("2026-01-01T08:00:00.250Z") })).toBe(`{"at":"2026-01-01T08:00:00.250Z"}`)
    expect(Hash.contentHash({ amount: 1.5 })).toBe(Hash.contentHash({ amount: 1.50 }))
    expect(Hash.contentHash({ a: 1 })).not.toBe(Hash.contentHash({ a: 2 }))
    expect(() => Hash.canonicalJson({ x: Number.NaN })).toThrow()
  })

  it("derives stable 32-character idempotency keys from what is written", () => {
    const parts = { connectionId: "c1", entity: "invoice", recordId: "inv-1", baseVersion: "3", targetHash: Hash.contentHash({ a: 1 }) }
    const key = Hash.idempotencyKey(parts)
    expect(key).toMatch(/^[0-9a-f]{32}$/)
    expect(Hash.idempotencyKey({ ...parts })).toBe(key)
    expect(Hash.idempotencyKey({ ...parts, baseVersion: "4" })).not.toBe(key)
    expect(Hash.idempotencyKey({ ...parts, targetHash: Hash.contentHash({ a: 2 }) })).not.toBe(key)
  })
})
