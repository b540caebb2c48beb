/**
 * The projection decides what counts as a difference between app and
 * provider: merging, hashing and drift detection all compare projections. If
 * it let app-only data in, every record would look changed; if it dropped a
 * stored field, real edits would be lost.
 */
import { describe, expect, it } from "@effect/vitest"
import type { Provider } from "@concord/providers"
import fc from "fast-check"
import * as Projection from "../src/Projection.ts"

const capabilities = (fields: ReadonlyArray<string>, customFields: boolean): Provider.EntityCapabilities => ({
  read: true,
  create: true,
  update: true,
  remove: "void",
  webhooks: true,
  changeFeed: true,
  batchSize: 30,
  idempotency: true,
  fields,
  customFields
})

const stored = ["memo", "date", "lines", "customFields", "status"]
const spec = Projection.specFor(capabilities(stored, true), {
  customFields: { order_id: "Order ID", channel: "Sales Channel" },
  defaults: { memo: "Synced by Concord" },
  exclude: ["status"]
} as never)

const scalar = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.boolean())
const line = fc.record({ lineId: fc.option(fc.string({ minLength: 1, maxLength: 4 }), { nil: undefined }), amount: fc.integer({ min: 0, max: 10_000 }), description: fc.string({ maxLength: 8 }) })
  .map(({ lineId, ...l }) => (lineId === undefined ? l : { lineId, ...l }))
const record = fc.record({
  entity: fc.constant("invoice"),
  schemaVersion: fc.constant(1),
  id: fc.string({ minLength: 1, maxLength: 6 }),
  memo: fc.option(fc.string({ maxLength: 10 }), { nil: undefined }),
  date: fc.constant("2026-03-01"),
  status: fc.constantFrom("draft", "authorised"),
  lines: fc.array(line, { maxLength: 3 }),
  customFields: fc.dictionary(fc.constantFrom("order_id", "channel", "internal_note"), scalar),
  appOnly: scalar
}, { requiredKeys: ["entity", "schemaVersion", "id", "date", "status", "lines", "customFields", "appOnly"] })
  .map((r) => JSON.parse(JSON.stringify(r)) as Record<string, unknown>)

describe("Projection", () => {
  it("holds only what the provider stores: no app-only field, no excluded field, no unmapped custom field, no line ids", () => {
    fc.assert(fc.property(record, (r) => {
      const p = Projection.project(r, spec)
      expect(p).not.toHaveProperty("appOnly")
      expect(p).not.toHaveProperty("status")
      expect(Object.keys((p.customFields ?? {}) as object)).not.toContain("internal_note")
      for (const l of (p.lines ?? []) as Array<Record<string, unknown>>) expect(l).not.toHaveProperty("lineId")
      // The tenant's default fills a missing memo.
      expect(p.memo).toBe(r.memo ?? "Synced by Concord")
    }), { numRuns: 1000 })
  })

  it("is idempotent, and data only the app holds never changes the hash", () => {
    fc.assert(fc.property(record, scalar, (r, other) => {
      const p = Projection.project(r, spec)
      expect(Projection.project(p, spec)).toEqual(p)
      const changedAppOnly = { ...r, appOnly: other, customFields: { ...(r.customFields as object), internal_note: other } }
      expect(Projection.projectionHash(Projection.project(changedAppOnly, spec))).toBe(Projection.projectionHash(p))
    }), { numRuns: 1000 })
  })

  it("a change to a stored field always changes the hash", () => {
    fc.assert(fc.property(record, fc.string({ minLength: 1, maxLength: 10 }), (r, memo) => {
      fc.pre(memo !== (r.memo ?? "Synced by Concord"))
      const before = Projection.projectionHash(Projection.project(r, spec))
      expect(Projection.projectionHash(Projection.project({ ...r, memo }, spec))).not.toBe(before)
    }), { numRuns: 1000 })
  })

  it("custom fields round-trip through the provider's names", () => {
    fc.assert(fc.property(record, (r) => {
      const p = Projection.project(r, spec)
      const wire = Projection.toProviderNames(p, spec)
      for (const k of Object.keys((wire.customFields ?? {}) as object)) expect(["Order ID", "Sales Channel"]).toContain(k)
      expect(Projection.toAppNames(wire, spec)).toEqual(p)
    }), { numRuns: 1000 })
  })

  it("overlaying a projection keeps app-only data and line ids, and projects back to the projection", () => {
    fc.assert(fc.property(record, record, (full, incoming) => {
      const p = Projection.project(incoming, spec)
      const merged = Projection.overlay(full, p, spec)
      expect(Projection.project(merged, spec)).toEqual(p)
      expect(merged.appOnly).toEqual(full.appOnly)
      expect(merged.status).toEqual(full.status)
      const unmapped = (full.customFields as Record<string, unknown>).internal_note
      if (unmapped !== undefined) expect((merged.customFields as Record<string, unknown>).internal_note).toEqual(unmapped)
      const lines = (full.lines as Array<Record<string, unknown>>)
      if (lines.length === ((p.lines ?? []) as Array<unknown>).length) {
        lines.forEach((l, i) => {
          if (typeof l.lineId === "string") expect((merged.lines as Array<Record<string, unknown>>)[i]?.lineId).toBe(l.lineId)
        })
      }
    }), { numRuns: 1000 })
  })

  it("a provider without custom fields never compares them", () => {
    const plain = Projection.specFor(capabilities(stored, false), { customFields: { order_id: "Order ID" } })
    fc.assert(fc.property(record, (r) => {
      expect(Projection.project(r, plain)).not.toHaveProperty("customFields")
    }), { numRuns: 200 })
  })
})
