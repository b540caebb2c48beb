import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Schema } from "effect"
import { TestClock } from "effect/testing"
import * as Pipeline from "../src/Pipeline.ts"

class Flaky extends Schema.TaggedError<Flaky>()("Flaky", { n: Schema.Number }) {}
class Fatal extends Schema.TaggedError<Fatal>()("Fatal", {}) {}

const Request = Schema.Struct({ id: Schema.String })
const Fetched = Schema.Struct({ id: Schema.String, app: Schema.Number, provider: Schema.Number })
const Diffed = Schema.Struct({ id: Schema.String, delta: Schema.Number })
const Written = Schema.Struct({ id: Schema.String, written: Schema.Boolean })

const SyncRecord = Pipeline.make("sync-record", Request)
  .step("fetch-both", { output: Fetched, timeout: "1 second", retry: { times: 3, base: "100 millis", on: ["Flaky", "StepTimedOut"] } })
  .step("diff", { output: Diffed })
  .step("write", { output: Written, retry: { times: 2, base: "1 second", max: "1 second", on: ["Flaky"] } })

describe("pipeline DSL", () => {
  it.effect("runs the steps in order, each on the previous step's output, and reports each to the observer", () =>
    Effect.gen(function*() {
      const events: Array<Pipeline.StepEvent> = []
      const run = Pipeline.interpret(SyncRecord, {
        "fetch-both": (req) => Effect.succeed({ id: req.id, app: 5, provider: 3 }),
        diff: (f) => Effect.succeed({ id: f.id, delta: f.app - f.provider }),
        write: (d) => Effect.succeed({ id: d.id, written: d.delta !== 0 })
      }, { onStep: (e) => Effect.sync(() => events.push(e)) })
      const out = yield* run({ id: "inv-1" })
      expect(out).toEqual({ id: "inv-1", written: true })
      expect(events.map((e) => [e.step, e.outcome, e.attempts])).toEqual([
        ["fetch-both", "succeeded", 1],
        ["diff", "succeeded", 1],
        ["write", "succeeded", 1]
      ])
      expect(events[1]?.output).toEqual({ id: "inv-1", delta: 2 })
    }))

  it.effect("retries only the listed errors, with backoff, then succeeds", () =>
    Effect.gen(function*() {
      let calls = 0
      const events: Array<Pipeline.StepEvent> = []
      const run = Pipeline.interpret(SyncRecord, {
        "fetch-both": (req) => (++calls < 3 ? Effect.fail(new Flaky({ n: calls })) : Effect.succeed({ id: req.id, app: 1, provider: 1 })),
        diff: (f) => Effect.succeed({ id: f.id, delta: 0 }),
        write: (d) => Effect.succeed({ id: d.id, written: false })
      }, { onStep: (e) => Effect.sync(() => events.push(e)) })
      const fiber = yield* Effect.forkChild(run({ id: "x" }))
      yield* TestClock.adjust("100 millis")
      yield* TestClock.adjust("200 millis")
      yield* Fiber.join(fiber)
      expect(calls).toBe(3)
      expect(events[0]).toMatchObject({ step: "fetch-both", outcome: "succeeded", attempts: 3 })
    }))

  it.effect("does not retry an error the policy does not list, and stops the pipeline there", () =>
    Effect.gen(function*() {
      let writes = 0
      const events: Array<Pipeline.StepEvent> = []
      const run = Pipeline.interpret(SyncRecord, {
        "fetch-both": () => Effect.fail(new Fatal()),
        diff: (f) => Effect.succeed({ id: f.id, delta: 0 }),
        write: (d) => Effect.sync(() => {
          writes++
          return { id: d.id, written: true }
        })
      }, { onStep: (e) => Effect.sync(() => events.push(e)) })
      const error = yield* Effect.flip(run({ id: "x" }))
      expect(error._tag).toBe("Fatal")
      expect(writes).toBe(0)
      expect(events).toMatchObject([{ step: "fetch-both", outcome: "failed", attempts: 1, error: { tag: "Fatal" } }])
    }))

  it.effect("times a slow step out, and retries the timeout when the policy lists it", () =>
    Effect.gen(function*() {
      let calls = 0
      const run = Pipeline.interpret(SyncRecord, {
        "fetch-both": (req) => Effect.suspend(() => {
          calls++
          return Effect.sleep("10 seconds").pipe(Effect.as({ id: req.id, app: 0, provider: 0 }))
        }),
        diff: (f) => Effect.succeed({ id: f.id, delta: 0 }),
        write: (d) => Effect.succeed({ id: d.id, written: false })
      })
      const fiber = yield* Effect.forkChild(Effect.flip(run({ id: "x" })))
      for (let i = 0; i < 8; i++) yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      expect(error).toMatchObject({ _tag: "StepTimedOut", step: "fetch-both", timeoutMs: 1000 })
      expect(calls).toBe(4)
    }))

  it("describes itself as data and refuses duplicate step names", () => {
    expect(Pipeline.describe(SyncRecord).map((s) => s.name)).toEqual(["fetch-both", "diff", "write"])
    expect(Pipeline.describe(SyncRecord)[0]?.retry).toContain("on Flaky, StepTimedOut")
    // @ts-expect-error a second step named "diff" is a type error (and a runtime error)
    expect(() => SyncRecord.step("diff", { output: Diffed })).toThrow(/already has a step named diff/)
  })

  it("type-checks handlers against the declared steps", () => {
    const handlers = {
      "fetch-both": (req: { id: string }) => Effect.succeed({ id: req.id, app: 1, provider: 1 }),
      diff: (f: { id: string }) => Effect.succeed({ id: f.id, delta: 0 }),
      write: (d: { id: string }) => Effect.succeed({ id: d.id, written: true })
    }
    Pipeline.interpret(SyncRecord, handlers)
    // @ts-expect-error the write handler is missing
    Pipeline.interpret(SyncRecord, { "fetch-both": handlers["fetch-both"], diff: handlers.diff })
    // @ts-expect-error diff must return the Diffed shape
    Pipeline.interpret(SyncRecord, { ...handlers, diff: () => Effect.succeed({ wrong: true }) })
  })
})
