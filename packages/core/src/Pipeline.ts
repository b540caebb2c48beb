/**
 * The sync workflow DSL: a pipeline is a typed list of named steps, each
 * step's input the previous step's output, each with its own retry and
 * timeout policy. The core only declares pipelines; the reconciler supplies
 * one handler per step and runs them with `interpret`, which wraps every step
 * in a tracing span, applies its timeout and retries, and reports each step's
 * outcome to an observer (the audit log, metrics).
 *
 * ```ts
 * const SyncRecord = Pipeline.make("sync-record", SyncRequest)
 *   .step("fetch-both", { output: Fetched, timeout: "10 seconds", retry: { times: 3, base: "200 millis", on: ["ProviderUnavailable"] } })
 *   .step("diff", { output: Diffed })
 *   .step("write", { output: Written, retry: { times: 5, base: "1 second", on: ["RateLimited", "ProviderUnavailable"] } })
 *
 * const run = Pipeline.interpret(SyncRecord, {
 *   "fetch-both": (req) => ...,   // (input: SyncRequest) => Effect<Fetched, E, R>
 *   diff: (fetched) => ...,       // (input: Fetched) => Effect<Diffed, E, R>
 *   write: (diffed) => ...        // (input: Diffed) => Effect<Written, E, R>
 * })
 * ```
 *
 * A missing handler, or one with the wrong input or output type, is a type
 * error. See packages/core/README.md for a worked example.
 */
import { Clock, Duration, Effect, Exit, Schedule, Schema } from "effect"

/** Retries of one step: exponential backoff, only for the listed error tags. */
export interface RetryPolicy {
  /** Retries after the first attempt. */
  readonly times: number
  /** Delay before the first retry. */
  readonly base: Duration.Input
  /** Growth of the delay per retry (default 2). */
  readonly factor?: number
  /** Longest delay between two attempts. */
  readonly max?: Duration.Input
  /** `_tag`s of the errors worth retrying; any other error fails the step at once. */
  readonly on: ReadonlyArray<string>
}

export interface StepSpec<O> {
  /** Schema of the step's output (for traces and the audit log). */
  readonly output: Schema.Codec<O, any, never, never>
  readonly description?: string
  readonly retry?: RetryPolicy
  readonly timeout?: Duration.Input
}

export interface Step<N extends string = string, I = any, O = any> {
  readonly name: N
  readonly description: string | undefined
  readonly output: Schema.Codec<O, any, never, never>
  readonly retry: RetryPolicy | undefined
  readonly timeout: Duration.Input | undefined
  /** Phantom: the step's input type. */
  readonly "~input"?: I
}

export interface Pipeline<Name extends string, In, Out, Steps extends ReadonlyArray<Step>> {
  readonly name: Name
  readonly input: Schema.Codec<In, any, never, never>
  readonly steps: Steps
  /** Adds a step whose input is the current output. Step names are unique. */
  readonly step: <N extends string, O>(
    name: N extends Steps[number]["name"] ? never : N,
    spec: StepSpec<O>
  ) => Pipeline<Name, In, O, readonly [...Steps, Step<N, Out, O>]>
}

export type AnyPipeline = Pipeline<string, any, any, ReadonlyArray<Step>>

const build = <Name extends string, In, Out, Steps extends ReadonlyArray<Step>>(
  name: Name,
  input: Schema.Codec<In, any, never, never>,
  steps: Steps
): Pipeline<Name, In, Out, Steps> => ({
  name,
  input,
  steps,
  step: (stepName, spec) => {
    if (steps.some((s) => s.name === stepName)) throw new Error(`pipeline ${name} already has a step named ${stepName}`)
    const next: Step = {
      name: stepName,
      description: spec.description,
      output: spec.output,
      retry: spec.retry,
      timeout: spec.timeout
    }
    return build(name, input, [...steps, next] as const) as any
  }
})

/** Starts a pipeline taking `input`. */
export const make = <Name extends string, In>(name: Name, input: Schema.Codec<In, any, never, never>): Pipeline<Name, In, In, readonly []> =>
  build(name, input, [] as const)

export type InputOf<P extends AnyPipeline> = P extends Pipeline<any, infer In, any, any> ? In : never
export type OutputOf<P extends AnyPipeline> = P extends Pipeline<any, any, infer Out, any> ? Out : never
type StepInput<S> = S extends Step<any, infer I, any> ? I : never
type StepOutput<S> = S extends Step<any, any, infer O> ? O : never

/** One handler per step, keyed by step name. */
export type Handlers<P extends AnyPipeline> = {
  readonly [S in P["steps"][number] as S["name"]]: (input: StepInput<S>) => Effect.Effect<StepOutput<S>, any, any>
}

type ErrorOf<H> = { [K in keyof H]: H[K] extends (...args: any) => Effect.Effect<any, infer E, any> ? E : never }[keyof H]
type ContextOf<H> = { [K in keyof H]: H[K] extends (...args: any) => Effect.Effect<any, any, infer R> ? R : never }[keyof H]

/** A step ran longer than its timeout. */
export class StepTimedOut extends Schema.TaggedError<StepTimedOut>()("StepTimedOut", {
  pipeline: Schema.String,
  step: Schema.String,
  timeoutMs: Schema.Number
}) {
  override get message(): string {
    return `step ${this.step} of pipeline ${this.pipeline} did not finish within ${this.timeoutMs} ms`
  }
}

/** What the observer hears after each step. */
export interface StepEvent {
  readonly pipeline: string
  readonly step: string
  readonly index: number
  readonly outcome: "succeeded" | "failed"
  readonly attempts: number
  readonly durationMs: number
  /** The step's output, encoded with its schema (on success). */
  readonly output?: unknown
  /** The error's tag and message (on failure). */
  readonly error?: { readonly tag: string; readonly message: string }
}

export interface InterpretOptions<R> {
  /** Called after every step, success or failure. */
  readonly onStep?: (event: StepEvent) => Effect.Effect<void, never, R>
  /** Span attributes for the whole run (tenant, connection, record…). */
  readonly attributes?: (input: unknown) => Readonly<Record<string, string>>
}

const retrySchedule = (policy: RetryPolicy) => {
  const base = Schedule.exponential(policy.base, policy.factor ?? 2)
  const max = policy.max
  return max === undefined
    ? base
    : base.pipe(Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.fromInputUnsafe(max)))))
}

const describeError = (e: unknown): { tag: string; message: string } => {
  if (typeof e === "object" && e !== null) {
    const tag = (e as { _tag?: unknown })._tag
    const message = (e as { message?: unknown }).message
    return { tag: typeof tag === "string" ? tag : "Error", message: typeof message === "string" ? message : String(e) }
  }
  return { tag: "Error", message: String(e) }
}

/**
 * Runs a pipeline with the given handlers. Each step runs in a span named
 * `<pipeline>.<step>`, with its timeout (`StepTimedOut`) and retry policy;
 * the observer hears every step's outcome.
 */
export const interpret = <P extends AnyPipeline, H extends Handlers<P>, RO = never>(
  pipeline: P,
  handlers: H,
  options?: InterpretOptions<RO>
) => {
  const encoders = pipeline.steps.map((s) => Schema.encodeUnknownExit(s.output))
  return (input: InputOf<P>): Effect.Effect<OutputOf<P>, ErrorOf<H> | StepTimedOut, ContextOf<H> | RO> => {
    const attributes = options?.attributes?.(input) ?? {}
    let program: Effect.Effect<any, any, any> = Effect.succeed(input)
    pipeline.steps.forEach((step, index) => {
      const handler = (handlers as Record<string, (i: unknown) => Effect.Effect<unknown, unknown, unknown>>)[step.name]
      if (handler === undefined) throw new Error(`pipeline ${pipeline.name} has no handler for step ${step.name}`)
      program = Effect.flatMap(program, (value) =>
        Effect.gen(function*() {
          let attempts = 0
          const start = yield* Clock.currentTimeMillis
          let attempt: Effect.Effect<unknown, unknown, unknown> = Effect.suspend(() => {
            attempts++
            return handler(value)
          })
          if (step.timeout !== undefined) {
            const timeoutMs = Duration.toMillis(Duration.fromInputUnsafe(step.timeout))
            attempt = attempt.pipe(
              Effect.timeoutOrElse({
                duration: step.timeout,
                orElse: () => Effect.fail(new StepTimedOut({ pipeline: pipeline.name, step: step.name, timeoutMs }))
              })
            )
          }
          const retry = step.retry
          if (retry !== undefined) {
            attempt = attempt.pipe(
              Effect.retry({
                schedule: retrySchedule(retry),
                times: retry.times,
                while: (e: unknown) => retry.on.includes(describeError(e).tag)
              })
            )
          }
          const exit = yield* Effect.exit(
            attempt.pipe(
              Effect.withSpan(`${pipeline.name}.${step.name}`, {
                attributes: { ...attributes, "concord.pipeline": pipeline.name, "concord.step": step.name }
              })
            )
          )
          const durationMs = (yield* Clock.currentTimeMillis) - start
          if (options?.onStep !== undefined) {
            const base = { pipeline: pipeline.name, step: step.name, index, attempts, durationMs }
            if (Exit.isSuccess(exit)) {
              const encoded = (encoders[index] as (u: unknown) => Exit.Exit<unknown, unknown>)(exit.value)
              yield* options.onStep({ ...base, outcome: "succeeded", ...(Exit.isSuccess(encoded) ? { output: encoded.value } : {}) })
            } else {
              const failure = exit.cause.reasons.find((r) => r._tag === "Fail")
              const error = failure !== undefined && failure._tag === "Fail" ? describeError(failure.error) : { tag: "Defect", message: "step died" }
              yield* options.onStep({ ...base, outcome: "failed", error })
            }
          }
          return yield* exit
        })
      )
    })
    return program.pipe(
      Effect.withSpan(pipeline.name, { attributes: { ...attributes, "concord.pipeline": pipeline.name } })
    ) as Effect.Effect<OutputOf<P>, ErrorOf<H> | StepTimedOut, ContextOf<H> | RO>
  }
}

/** A pipeline as data, for docs and `concord` introspection. */
export const describe = (pipeline: AnyPipeline): ReadonlyArray<{ name: string; description?: string; timeout?: string; retry?: string }> =>
  pipeline.steps.map((s) => ({
    name: s.name,
    ...(s.description === undefined ? {} : { description: s.description }),
    ...(s.timeout === undefined ? {} : { timeout: Duration.format(Duration.fromInputUnsafe(s.timeout)) }),
    ...(s.retry === undefined ? {} : { retry: `${s.retry.times}× from ${Duration.format(Duration.fromInputUnsafe(s.retry.base))} on ${s.retry.on.join(", ")}` })
  }))
