import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { type Json, equals, merge } from "../src/Merge.ts"
import * as Path from "../src/Path.ts"
import type { Policy } from "../src/Policy.ts"

const runs = { numRuns: Number(process.env.PROPERTY_RUNS ?? 1000) }

// Small value domains so that independent edits often collide on a field.
const scalar = fc.oneof(fc.constantFrom("a", "b", "c"), fc.integer({ min: 0, max: 3 }), fc.boolean(), fc.constant(null))
const line = (withId: boolean) =>
  fc.record(
    {
      ...(withId ? { lineId: fc.constantFrom("L1", "L2", "L3", "L4") } : {}),
      amount: fc.integer({ min: 0, max: 3 }),
      accountId: fc.constantFrom("4000", "4010"),
      description: fc.constantFrom("x", "y")
    },
    { requiredKeys: withId ? ["lineId", "amount"] : ["amount"] }
  )
const lines = fc.boolean().chain((withId) =>
  withId
    ? fc.uniqueArray(line(true), { selector: (l) => (l as { lineId: string }).lineId, maxLength: 4 })
    : fc.array(line(false), { maxLength: 4 })
)
const record: fc.Arbitrary<{ [key: string]: Json }> = fc.record(
  {
    memo: scalar,
    total: scalar,
    status: fc.constantFrom("draft", "authorised", "paid"),
    roles: fc.subarray(["customer", "vendor"]),
    customFields: fc.dictionary(fc.constantFrom("Order ID", "Region", "rush"), scalar, { maxKeys: 3 }),
    lines
  },
  { requiredKeys: ["status"] }
) as fc.Arbitrary<{ [key: string]: Json }>

/** An edit of `base`: each top-level field kept, changed or removed; lines edited one by one. */
const edit = (base: { [key: string]: Json }): fc.Arbitrary<{ [key: string]: Json }> =>
  fc.tuple(record, fc.array(fc.constantFrom("keep", "keep", "replace", "drop"), { minLength: 8, maxLength: 8 })).map(
    ([other, choices]) => {
      const out: { [key: string]: Json } = {}
      const keys = [...new Set([...Object.keys(base), ...Object.keys(other)])].sort()
      keys.forEach((k, i) => {
        const choice = choices[i % choices.length]
        const v = choice === "keep" ? base[k] : choice === "replace" ? other[k] : undefined
        if (k === "status") out[k] = (v ?? base[k]) as Json
        else if (v !== undefined) out[k] = v
      })
      return out
    }
  )

const triple = record.chain((base) =>
  fc.tuple(fc.option(fc.constant(base), { freq: 8, nil: undefined }), edit(base), edit(base))
)
/** A path that does not go through a line matched by position. */
const stable = (segments: Path.Path) => segments.every((s) => !("index" in s))

const byLineId = (v: Json | undefined): Json | undefined => {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return v
  const ls = (v as { lines?: Json }).lines
  if (!Array.isArray(ls) || !ls.every((l) => typeof (l as { lineId?: unknown }).lineId === "string")) return v
  const sorted = [...ls].sort((x, y) => String((x as { lineId: string }).lineId).localeCompare(String((y as { lineId: string }).lineId)))
  return { ...v, lines: sorted }
}

const policies = fc.constantFrom<Policy>("app_wins", "provider_wins", "review")

describe("three-way merge (property tests)", () => {
  it("is deterministic", () => {
    fc.assert(
      fc.property(triple, policies, ([base, app, provider], policy) => {
        const first = merge(base, app, provider, policy)
        const second = merge(structuredClone(base), structuredClone(app), structuredClone(provider), policy)
        expect(second).toEqual(first)
      }),
      runs
    )
  })

  it("never lets a side that did not change a field win it", () => {
    fc.assert(
      fc.property(triple, policies, ([base, app, provider], policy) => {
        const result = merge(base, app, provider, policy)
        for (const f of result.fields) {
          const appChanged = !equals(f.app, f.base)
          const providerChanged = !equals(f.provider, f.base)
          if (f.kind === "conflict") {
            expect(appChanged && providerChanged).toBe(true)
          }
          if (!appChanged && providerChanged) {
            expect(f.merged).toEqual({ app: f.provider, provider: f.provider })
          }
          if (appChanged && !providerChanged) {
            expect(f.merged).toEqual({ app: f.app, provider: f.app })
          }
        }
        // Whole records: an unchanged side always ends as the other side.
        if (base !== undefined && equals(app, base)) {
          expect(equals(result.app, provider) && equals(result.provider, provider)).toBe(true)
        }
        if (base !== undefined && equals(provider, base)) {
          expect(equals(result.app, app) && equals(result.provider, app)).toBe(true)
        }
      }),
      runs
    )
  })

  it("makes both sides equal when the policy decides every conflict", () => {
    fc.assert(
      fc.property(triple, fc.constantFrom<Policy>("app_wins", "provider_wins"), ([base, app, provider], policy) => {
        const result = merge(base, app, provider, policy)
        expect(result.conflicts).toEqual([])
        expect(equals(result.app, result.provider)).toBe(true)
        // The merged state is a fixed point: merging it again changes nothing.
        const again = merge(result.app, result.app as Json, result.provider as Json, policy)
        expect(again.appChanged || again.providerChanged).toBe(false)
        // The winner's value is what both sides end with (positional paths shift
        // once lines are removed, so those are checked through the field record).
        for (const f of result.fields.filter((x) => x.kind === "conflict")) {
          const winner = policy === "app_wins" ? f.app : f.provider
          expect(f.merged).toEqual({ app: winner, provider: winner })
          if (stable(f.segments)) expect(Path.get(result.app, f.segments)).toEqual(winner)
        }
      }),
      runs
    )
  })

  it("under review never loses either side's value, and agrees everywhere else", () => {
    fc.assert(
      fc.property(triple, ([base, app, provider]) => {
        const result = merge(base, app, provider, "review")
        expect(result.conflicts.length).toBe(result.fields.filter((f) => f.kind === "conflict").length)
        let appSide: Json | undefined = result.app
        for (const c of result.conflicts) {
          expect(c.outcome).toBe("open")
          expect(Path.get(app, c.segments)).toEqual(c.app)
          expect(Path.get(provider, c.segments)).toEqual(c.provider)
          // Neither side is overwritten for a field under review.
          const field = result.fields.find((f) => f.path === c.path)
          expect(field?.merged).toEqual({ app: c.app, provider: c.provider })
          if (stable(c.segments)) {
            expect(Path.get(result.app, c.segments)).toEqual(c.app)
            expect(Path.get(result.provider, c.segments)).toEqual(c.provider)
          }
          appSide = Path.set(appSide, c.segments, c.provider)
        }
        if (result.conflicts.every((c) => c.segments.every((s) => "key" in s))) {
          // Taking the provider's value for each open conflict makes the sides equal.
          expect(equals(appSide, result.provider)).toBe(true)
        }
      }),
      runs
    )
  })

  it("is symmetric: swapping the sides swaps the outcome", () => {
    fc.assert(
      fc.property(triple, ([base, app, provider]) => {
        const ab = merge(base, app, provider, "app_wins")
        const ba = merge(base, provider, app, "provider_wins")
        // Lines both sides added are ordered app-first, so compare them by id.
        expect(equals(byLineId(ab.app), byLineId(ba.provider))).toBe(true)
        expect(equals(byLineId(ab.provider), byLineId(ba.app))).toBe(true)
      }),
      runs
    )
  })
})

describe("three-way merge (examples)", () => {
  const base = {
    memo: "m",
    status: "authorised",
    customFields: { "Order ID": "A-1", Region: "East" },
    lines: [{ lineId: "L1", amount: 100, description: "a" }, { lineId: "L2", amount: 200, description: "b" }]
  }

  it("merges changes to different fields and lines from both sides", () => {
    const app = { ...base, memo: "from app", lines: [{ ...base.lines[0]!, amount: 150 }, base.lines[1]!] }
    const provider = { ...base, customFields: { ...base.customFields, Region: "West" }, lines: [base.lines[0]!, { ...base.lines[1]!, description: "B" }] }
    const r = merge(base, app, provider)
    expect(r.conflicts).toEqual([])
    expect(r.app).toEqual({
      memo: "from app",
      status: "authorised",
      customFields: { "Order ID": "A-1", Region: "West" },
      lines: [{ lineId: "L1", amount: 150, description: "a" }, { lineId: "L2", amount: 200, description: "B" }]
    })
    expect(r.provider).toEqual(r.app)
    const kinds = Object.fromEntries(r.fields.map((f) => [f.path, f.kind]))
    expect(kinds).toMatchObject({
      memo: "app_only",
      "customFields.Region": "provider_only",
      "lines[L1].amount": "app_only",
      "lines[L2].description": "provider_only",
      status: "unchanged"
    })
  })

  it("opens a conflict under review and applies app_wins / provider_wins otherwise", () => {
    const app = { ...base, memo: "app memo" }
    const provider = { ...base, memo: "accountant memo" }
    const review = merge(base, app, provider)
    expect(review.conflicts).toMatchObject([{ path: "memo", base: "m", app: "app memo", provider: "accountant memo", outcome: "open" }])
    expect(review.appChanged || review.providerChanged).toBe(false)
    expect(merge(base, app, provider, "app_wins").provider).toMatchObject({ memo: "app memo" })
    expect(merge(base, app, provider, { default: "review", fields: { memo: "provider_wins" } }).app).toMatchObject({ memo: "accountant memo" })
  })

  it("propagates a line added on one side and removed on the other", () => {
    const app = { ...base, lines: [...base.lines, { lineId: "L3", amount: 5, description: "tip" }] }
    const provider = { ...base, lines: [base.lines[1]!] }
    const r = merge(base, app, provider)
    expect(r.conflicts).toEqual([])
    expect((r.app as { lines: Array<{ lineId: string }> }).lines.map((l) => l.lineId)).toEqual(["L2", "L3"])
  })

  it("matches lines by position when they have no ids, and treats a deleted-and-edited line as a conflict", () => {
    const b = { lines: [{ amount: 1 }, { amount: 2 }] }
    const app = { lines: [{ amount: 1 }] }
    const provider = { lines: [{ amount: 1 }, { amount: 3 }] }
    const r = merge(b, app, provider)
    expect(r.conflicts.map((c) => c.path)).toEqual(["lines[#1]"])
    expect(r.conflicts[0]).toMatchObject({ app: undefined, provider: { amount: 3 } })
  })

  it("with no base, fields that differ are conflicts and equal ones agree", () => {
    const r = merge(undefined, { a: 1, b: 2 }, { a: 1, b: 3 })
    expect(r.fields.map((f) => [f.path, f.kind])).toEqual([["a", "both_same"], ["b", "conflict"]])
  })
})
