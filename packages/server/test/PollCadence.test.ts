import fc from "fast-check"
import type { Provider } from "@concord/providers"
import { describe, expect, it } from "vitest"
import * as Cadence from "../src/PollCadence.ts"
import { toMessage } from "../src/Poller.ts"

const settings = fc
  .tuple(fc.integer({ min: 1, max: 3_600_000 }), fc.integer({ min: 1, max: 86_400_000 }), fc.integer({ min: 1, max: 86_400_000 }))
  .map(([a, b, safety]) => ({ floorMs: Math.min(a, b), ceilingMs: Math.max(a, b), safetyMs: safety }))

describe("adaptive poll interval", () => {
  it("never leaves [floor, ceiling], whatever the history of change counts", () => {
    fc.assert(fc.property(settings, fc.integer({ min: 0, max: 10 ** 9 }), fc.array(fc.integer({ min: 0, max: 10_000 }), { maxLength: 60 }), (s, start, counts) => {
      let interval = start
      for (const n of counts) {
        interval = Cadence.nextInterval(s, interval, n)
        expect(interval).toBeGreaterThanOrEqual(s.floorMs)
        expect(interval).toBeLessThanOrEqual(s.ceilingMs)
      }
    }))
  })

  it("a quiet connection ends at the ceiling, a busy one at the floor", () => {
    fc.assert(fc.property(settings, fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 10_000 }), (s, start, busy) => {
      // Each step moves by a factor of at least 1.5, so 64 steps cross any ratio up to 1.5^64.
      let quiet = start
      let hot = start
      for (let i = 0; i < 64; i++) {
        quiet = Cadence.nextInterval(s, quiet, 0)
        hot = Cadence.nextInterval(s, hot, busy)
      }
      expect(quiet).toBe(s.ceilingMs)
      expect(hot).toBe(s.floorMs)
    }))
  })

  it("changes never lengthen the interval and quiet never shortens it; it depends only on its inputs", () => {
    fc.assert(fc.property(settings, fc.integer({ min: 0, max: 10 ** 9 }), fc.integer({ min: 1, max: 10_000 }), (s, current, n) => {
      const from = Cadence.clamp(s, current)
      expect(Cadence.nextInterval(s, current, n)).toBeLessThanOrEqual(from)
      expect(Cadence.nextInterval(s, current, 0)).toBeGreaterThanOrEqual(from)
      expect(Cadence.nextInterval(s, current, n)).toBe(Cadence.nextInterval(s, current, n))
    }))
  })

  it("defaults without a polling section: floor 30 s, ceiling 15 min, safety 1 h; config wins when present", () => {
    expect(Cadence.settingsOf(undefined)).toEqual({ floorMs: 30_000, ceilingMs: 900_000, safetyMs: 3_600_000 })
    expect(Cadence.settingsOf({ floor: 1000, ceiling: 5000 })).toEqual({ floorMs: 1000, ceilingMs: 5000, safetyMs: 3_600_000 })
    expect(Cadence.settingsOf({ floor: 1000, ceiling: 5000, safety: 2000 })).toEqual({ floorMs: 1000, ceilingMs: 5000, safetyMs: 2000 })
    expect(Cadence.initialInterval(Cadence.settingsOf(undefined))).toBe(30_000)
  })
})

describe("what a connection polls", () => {
  const caps = (webhooks: boolean, changeFeed: boolean) => ({ webhooks, changeFeed }) as Provider.EntityCapabilities
  const provider = {
    entities: { account: caps(false, true), contact: caps(true, true), invoice: caps(true, true), tax_rate: caps(false, false), item: caps(false, true) }
  } as unknown as Provider.Provider

  it("pulls entities without webhooks adaptively, those with webhooks at the safety interval, skips push-only and feed-less ones", () => {
    const plan = Cadence.planOf(provider, {
      account: { direction: "pull" },
      contact: { direction: "both" },
      invoice: { direction: "push" },
      tax_rate: { direction: "pull" },
      item: { direction: "both" },
      bill: { direction: "both" }
    })
    expect(plan).toEqual({ adaptive: ["account", "item"], safety: ["contact"] })
  })
})

describe("a polled change as an inbound message", () => {
  const connection = { id: "c1", tenantId: "t1" }
  it("is the provider_change a webhook would publish, with the change time as an instant", () => {
    const upserted: Provider.Change = {
      _tag: "Upserted",
      record: { entity: "invoice", externalId: "Invoice:7", version: "3", updatedAt: "2026-03-01T10:00:00-07:00", record: {} as never }
    }
    expect(toMessage(connection, upserted)).toEqual({
      kind: "provider_change", tenant: "t1", connectionId: "c1", entity: "invoice", externalId: "Invoice:7", operation: "update", occurredAt: "2026-03-01T17:00:00.000Z"
    })
    expect(toMessage(connection, { _tag: "Deleted", entity: "contact", externalId: "9", deletedAt: "2026-03-01T10:00:00Z" })).toMatchObject({
      operation: "delete", externalId: "9", occurredAt: "2026-03-01T10:00:00.000Z"
    })
  })
})
