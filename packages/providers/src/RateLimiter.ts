/**
 * Client-side pacing for one provider account: at most `requestsPerMinute`
 * request starts in any 60-second window, at most `concurrent` in flight,
 * live traffic served before background work, and a shared pause after the
 * provider answers 429 (Retry-After).
 *
 * The window is sliding, so the client never bursts past what a provider
 * counting in a sliding window allows. `headroom` keeps a few requests of the
 * minute budget unused for the safety margin against clock skew.
 */
import { Clock, Deferred, Effect, Scope } from "effect"
import type { Priority } from "./Provider.ts"

export interface RateLimiterOptions {
  readonly requestsPerMinute: number
  readonly concurrent: number
  /** Requests of the per-minute budget left unused (default 2%). */
  readonly headroom?: number
  /** No pacing at all (benchmarks against a sandbox with limits off). */
  readonly unlimited?: boolean
}

export interface RateLimiter {
  /** Runs `effect` when a request slot is free, holding it until `effect` ends. */
  readonly run: <A, E, R>(effect: Effect.Effect<A, E, R>, priority?: Priority) => Effect.Effect<A, E, R>
  /** Stops every request from starting for `ms` (the provider's Retry-After). */
  readonly pause: (ms: number) => Effect.Effect<void>
  /** Requests started in the last minute, and in flight now. */
  readonly usage: Effect.Effect<{ readonly lastMinute: number; readonly inFlight: number }>
}

const WINDOW_MS = 60_000

export const make = (options: RateLimiterOptions): Effect.Effect<RateLimiter, never, Scope.Scope> =>
  Effect.gen(function*() {
    const scope = yield* Scope.Scope
    const perMinute = Math.max(1, Math.floor(options.requestsPerMinute * (1 - (options.headroom ?? 0.02))))
    const starts: Array<number> = []
    let head = 0
    let inFlight = 0
    let pausedUntil = 0
    let timerAt = Number.POSITIVE_INFINITY
    const live: Array<Deferred.Deferred<void>> = []
    const background: Array<Deferred.Deferred<void>> = []

    const schedule = (at: number, now: number): Effect.Effect<void> => {
      if (at >= timerAt) return Effect.void
      timerAt = at
      return Effect.sleep(Math.max(0, at - now)).pipe(
        Effect.andThen(Effect.sync(() => {
          timerAt = Number.POSITIVE_INFINITY
        })),
        Effect.andThen(Effect.suspend(() => pump)),
        Effect.forkIn(scope),
        Effect.asVoid
      )
    }

    const pump: Effect.Effect<void> = Effect.suspend(() =>
      Clock.currentTimeMillis.pipe(Effect.flatMap((now) => {
        while (live.length + background.length > 0) {
          if (options.unlimited !== true) {
            if (inFlight >= options.concurrent) return Effect.void
            if (pausedUntil > now) return schedule(pausedUntil, now)
            while (head < starts.length && (starts[head] as number) <= now - WINDOW_MS) head++
            if (head > 1024 && head * 2 > starts.length) {
              starts.splice(0, head)
              head = 0
            }
            if (starts.length - head >= perMinute) return schedule((starts[head] as number) + WINDOW_MS, now)
          }
          const next = live.shift() ?? background.shift()
          if (next === undefined) return Effect.void
          inFlight++
          starts.push(now)
          Deferred.doneUnsafe(next, Effect.void)
        }
        return Effect.void
      }))
    )

    const release = Effect.suspend(() => {
      inFlight--
      return pump
    })

    const acquire = (priority: Priority) =>
      Effect.suspend(() => {
        const slot = Deferred.makeUnsafe<void>()
        ;(priority === "live" ? live : background).push(slot)
        return pump.pipe(
          Effect.andThen(Deferred.await(slot)),
          Effect.onInterrupt(() =>
            Effect.suspend(() => {
              // Given up while waiting: drop the waiter, or hand back a slot granted meanwhile.
              const queue = priority === "live" ? live : background
              const i = queue.indexOf(slot)
              if (i >= 0) {
                queue.splice(i, 1)
                return Effect.void
              }
              return release
            })
          )
        )
      })

    // Waiting for a slot stays interruptible; a granted slot is always released.
    const run = <A, E, R>(effect: Effect.Effect<A, E, R>, priority: Priority = "live"): Effect.Effect<A, E, R> =>
      Effect.uninterruptibleMask((restore) =>
        restore(acquire(priority)).pipe(Effect.andThen(restore(effect).pipe(Effect.ensuring(release))))
      )

    const pause = (ms: number) =>
      Clock.currentTimeMillis.pipe(
        Effect.flatMap((now) => {
          pausedUntil = Math.max(pausedUntil, now + ms)
          return Effect.void
        })
      )

    const usage = Clock.currentTimeMillis.pipe(
      Effect.map((now) => ({
        lastMinute: starts.slice(head).filter((t) => t > now - WINDOW_MS).length,
        inFlight
      }))
    )

    return { run, pause, usage } satisfies RateLimiter
  })
