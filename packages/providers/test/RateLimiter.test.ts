import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Ref } from "effect"
import { TestClock } from "effect/testing"
import * as RateLimiter from "../src/RateLimiter.ts"

describe("RateLimiter", () => {
  it.effect("starts at most the per-minute budget in any 60 s window", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ requestsPerMinute: 10, concurrent: 100, headroom: 0 })
      const started = yield* Ref.make(0)
      const fiber = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 25 }), () => limiter.run(Ref.update(started, (n) => n + 1)), { concurrency: "unbounded" })
      )
      yield* Effect.yieldNow
      expect(yield* Ref.get(started)).toBe(10)
      yield* TestClock.adjust("59 seconds")
      expect(yield* Ref.get(started)).toBe(10)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(started)).toBe(20)
      yield* TestClock.adjust("60 seconds")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(started)).toBe(25)
    }))

  it.effect("holds at most `concurrent` requests in flight", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ requestsPerMinute: 1000, concurrent: 3 })
      const active = yield* Ref.make(0)
      const peak = yield* Ref.make(0)
      const task = Effect.gen(function*() {
        const now = yield* Ref.updateAndGet(active, (n) => n + 1)
        yield* Ref.update(peak, (p) => Math.max(p, now))
        yield* Effect.sleep("1 second")
        yield* Ref.update(active, (n) => n - 1)
      })
      const fiber = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 10 }), () => limiter.run(task), { concurrency: "unbounded" }))
      for (let i = 0; i < 5; i++) yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect(yield* Ref.get(peak)).toBe(3)
    }))

  it.effect("serves live requests before background ones", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ requestsPerMinute: 1000, concurrent: 1 })
      const order: Array<string> = []
      const hold = limiter.run(Effect.sleep("1 second"))
      const first = yield* Effect.forkChild(hold)
      yield* Effect.yieldNow
      const bg = yield* Effect.forkChild(limiter.run(Effect.sync(() => order.push("background")), "background"))
      yield* Effect.yieldNow
      const live = yield* Effect.forkChild(limiter.run(Effect.sync(() => order.push("live")), "live"))
      yield* Effect.yieldNow
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(first)
      yield* Fiber.join(live)
      yield* Fiber.join(bg)
      expect(order).toEqual(["live", "background"])
    }))

  it.effect("pauses every request after a 429 until Retry-After has passed", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ requestsPerMinute: 1000, concurrent: 10 })
      yield* limiter.pause(5000)
      const done = yield* Ref.make(false)
      yield* Effect.forkChild(limiter.run(Ref.set(done, true)))
      yield* TestClock.adjust("4 seconds")
      expect(yield* Ref.get(done)).toBe(false)
      yield* TestClock.adjust("1 second")
      expect(yield* Ref.get(done)).toBe(true)
    }))

  it.effect("gives the slot back when a waiting request is interrupted", () =>
    Effect.gen(function*() {
      const limiter = yield* RateLimiter.make({ requestsPerMinute: 1000, concurrent: 1 })
      const holder = yield* Effect.forkChild(limiter.run(Effect.sleep("1 second")))
      yield* Effect.yieldNow
      const waiter = yield* Effect.forkChild(limiter.run(Effect.void))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(waiter)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(holder)
      const usage = yield* limiter.usage
      expect(usage.inFlight).toBe(0)
      yield* limiter.run(Effect.void)
    }))
})
