import { describe, expect, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Redacted } from "effect"
import { TestClock } from "effect/testing"
import { AuthFailed, NeedsReauth } from "../src/Errors.ts"
import type { OAuthApp, Provider, TokenSet } from "../src/Provider.ts"
import * as Tokens from "../src/Tokens.ts"

const app: OAuthApp = { clientId: "id", clientSecret: Redacted.make("secret"), redirectUri: "http://localhost/cb" }

const tokenSet = (n: number, expiresAt: number): TokenSet => ({
  accessToken: Redacted.make(`access-${n}`),
  refreshToken: Redacted.make(`refresh-${n}`),
  accessTokenExpiresAt: expiresAt
})

/** A fake authorization server: refresh tokens rotate; a used one is refused. */
const fakeProvider = (opts: { revoked?: boolean; flaky?: boolean } = {}) => {
  let n = 1
  const valid = new Set(["refresh-1"])
  const calls: Array<string> = []
  const provider: Pick<Provider, "id" | "auth"> = {
    id: "fake",
    auth: {
      authorizationUrl: () => "",
      exchangeCode: () => Effect.die("unused"),
      refresh: (_app, token) =>
        Effect.gen(function*() {
          calls.push(Redacted.value(token))
          yield* Effect.sleep("10 millis")
          if (opts.flaky === true) return yield* new AuthFailed({ provider: "fake", reason: "503 from token endpoint" })
          if (opts.revoked === true || !valid.has(Redacted.value(token))) {
            return yield* new NeedsReauth({ provider: "fake", connectionId: "c1", reason: "invalid_grant" })
          }
          valid.delete(Redacted.value(token))
          n++
          valid.add(`refresh-${n}`)
          return tokenSet(n, 3_600_000 + (yield* Clock.currentTimeMillis))
        })
    }
  }
  return { provider, calls }
}

describe("token source", () => {
  it.effect("refreshes once for many concurrent callers, and persists the rotated token before use", () =>
    Effect.gen(function*() {
      const { provider, calls } = fakeProvider()
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store })
      const fiber = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 20 }), () => source.accessToken, { concurrency: "unbounded" }))
      yield* TestClock.adjust("20 millis")
      const tokens = yield* Fiber.join(fiber)
      expect(calls).toEqual(["refresh-1"])
      expect(new Set(tokens.map(Redacted.value))).toEqual(new Set(["access-2"]))
      expect(store.saved.map((s) => Redacted.value(s.tokens.refreshToken))).toEqual(["refresh-2"])
    }))

  it.effect("uses a stored token until shortly before it expires", () =>
    Effect.gen(function*() {
      const { provider, calls } = fakeProvider()
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 3_600_000) })
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store, refreshAheadMs: 300_000 })
      expect(Redacted.value(yield* source.accessToken)).toBe("access-1")
      yield* TestClock.adjust("3299 seconds")
      expect(Redacted.value(yield* source.accessToken)).toBe("access-1")
      expect(calls).toEqual([])
      yield* TestClock.adjust("2 seconds")
      const fiber = yield* Effect.forkChild(source.accessToken)
      yield* TestClock.adjust("20 millis")
      expect(Redacted.value(yield* Fiber.join(fiber))).toBe("access-2")
    }))

  it.effect("refreshes after the provider refuses the token in hand", () =>
    Effect.gen(function*() {
      const { provider, calls } = fakeProvider()
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 3_600_000) })
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store })
      const refused = yield* source.accessToken
      yield* source.invalidate(refused)
      const fiber = yield* Effect.forkChild(source.accessToken)
      yield* TestClock.adjust("20 millis")
      expect(Redacted.value(yield* Fiber.join(fiber))).toBe("access-2")
      expect(calls).toEqual(["refresh-1"])
    }))

  it.effect("marks the connection as needing re-authorisation on invalid_grant", () =>
    Effect.gen(function*() {
      const { provider } = fakeProvider({ revoked: true })
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store })
      const fiber = yield* Effect.forkChild(Effect.exit(source.accessToken))
      yield* TestClock.adjust("20 millis")
      const exit = yield* Fiber.join(fiber)
      expect(Exit.isFailure(exit)).toBe(true)
      expect(store.needsReauth.get("c1")).toBe("invalid_grant")
      expect(store.saved).toEqual([])
    }))

  it.effect("marks the connection outside the refresh lock, whose transaction a failed refresh rolls back", () =>
    Effect.gen(function*() {
      const { provider } = fakeProvider({ revoked: true })
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      // The vault's lock is a database transaction: what is written inside it is undone when the refresh fails.
      let inLock = false
      const marked: Array<string> = []
      const transactional: Tokens.TokenStore = {
        ...store,
        markNeedsReauth: (id, reason) => Effect.sync(() => (inLock ? undefined : marked.push(`${id}: ${reason}`))).pipe(Effect.asVoid),
        withRefreshLock: (_id, effect) =>
          Effect.sync(() => (inLock = true)).pipe(Effect.andThen(effect), Effect.ensuring(Effect.sync(() => (inLock = false))))
      }
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store: transactional })
      const fiber = yield* Effect.forkChild(Effect.exit(source.accessToken))
      yield* TestClock.adjust("20 millis")
      expect(Exit.isFailure(yield* Fiber.join(fiber))).toBe(true)
      expect(marked).toEqual(["c1: invalid_grant"])
    }))

  it.effect("reports a failing token endpoint as a retryable outage, not a lost grant", () =>
    Effect.gen(function*() {
      const { provider } = fakeProvider({ flaky: true })
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store })
      const fiber = yield* Effect.forkChild(Effect.flip(source.accessToken))
      yield* TestClock.adjust("20 millis")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ProviderUnavailable")
      expect(store.needsReauth.size).toBe(0)
    }))
  // Found by the chaos harness: Postgres connections terminated while QuickBooks answered a refresh; the
  // rotated refresh token was never stored, the next refresh used the retired one and the grant was lost.
  it.effect("keeps a refreshed token whose save failed and keeps saving it, never refreshing with the retired one", () =>
    Effect.gen(function*() {
      const { provider, calls } = fakeProvider()
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      let failSaves = 3
      const flaky: Tokens.TokenStore = {
        ...store,
        save: (id, t) => (failSaves-- > 0 ? Effect.die(new Error("connection terminated")) : store.save(id, t))
      }
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store: flaky })
      const fiber = yield* Effect.forkChild(source.accessToken)
      yield* TestClock.adjust("2 seconds")
      expect(Redacted.value(yield* Fiber.join(fiber))).toBe("access-2")
      expect(calls).toEqual(["refresh-1"])
      expect(store.saved.map((s) => Redacted.value(s.tokens.refreshToken))).toEqual(["refresh-2"])
      expect(store.needsReauth.size).toBe(0)
    }))

  it.effect("a store down for longer fails the caller, and the next caller (any token source of the connection) stores the token in hand", () =>
    Effect.gen(function*() {
      const { provider, calls } = fakeProvider()
      const store = Tokens.memoryTokenStore({ c1: tokenSet(1, 0) })
      let down = true
      const flaky: Tokens.TokenStore = { ...store, save: (id, t) => (down ? Effect.die(new Error("database unreachable")) : store.save(id, t)) }
      const source = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store: flaky })
      // Another token source of the same connection in this process (the poller's, a backfill's).
      const other = yield* Tokens.makeTokenSource({ provider, app, connectionId: "c1", store: flaky })
      const first = yield* Effect.forkChild(Effect.exit(source.accessToken))
      yield* TestClock.adjust("2 minutes")
      expect(Exit.isFailure(yield* Fiber.join(first))).toBe(true)
      down = false
      const second = yield* Effect.forkChild(other.accessToken)
      yield* TestClock.adjust("1 second")
      expect(Redacted.value(yield* Fiber.join(second))).toBe("access-2")
      expect(calls).toEqual(["refresh-1"])
      expect(store.needsReauth.size).toBe(0)
    }))
})
