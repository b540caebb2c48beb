/**
 * OAuth 2.0 against the sandbox's authorization server: the connect flow,
 * refresh-token rotation, single-flight refresh persisted before use, and
 * revoked grants.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as Tokens from "../../src/Tokens.ts"
import { QuickBooks, SCOPE } from "../../src/quickbooks/Adapter.ts"
import { start } from "../../src/quickbooks/Sandbox.ts"
import { appFor, connect, tokenSetFrom } from "./support.ts"

describe("QuickBooks OAuth 2.0", () => {
  it.live("connects: authorize URL → redirect with code, state and realmId → code exchange → API call", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const app = appFor(sb)
      const url = new URL(QuickBooks.auth.authorizationUrl(app, "state-123"))
      expect(url.origin + url.pathname).toBe(sb.endpoints.authorizeUrl)
      expect(url.searchParams.get("scope")).toBe(SCOPE)
      expect(url.searchParams.get("response_type")).toBe("code")
      const redirect = yield* Effect.promise(() => fetch(url, { redirect: "manual" }))
      expect(redirect.status).toBe(302)
      const callback = new URL(redirect.headers.get("location") ?? "")
      expect(callback.origin + callback.pathname).toBe(app.redirectUri)
      expect(callback.searchParams.get("state")).toBe("state-123")
      expect(callback.searchParams.get("realmId")).toBe(sb.realmId)
      const params = Object.fromEntries(callback.searchParams)
      const { tokens, accounts } = yield* QuickBooks.auth.exchangeCode(app, params.code ?? "", params)
      expect(accounts).toEqual([{ accountId: sb.realmId }])
      expect(tokens.accessTokenExpiresAt - Date.now()).toBeGreaterThan(3_500_000)
      expect(tokens.accessTokenExpiresAt - Date.now()).toBeLessThanOrEqual(3_600_000)
      const { client } = yield* connect(sb, { tokens })
      expect((yield* client.read("account", "1")).record).toMatchObject({ entity: "account", name: "Checking" })
      // The callback must name the company.
      const noRealm = yield* Effect.flip(QuickBooks.auth.exchangeCode(app, "whatever", { code: "whatever", state: "state-123" }))
      expect(noRealm.message).toContain("realmId")
      // A code works once.
      const again = yield* Effect.flip(QuickBooks.auth.exchangeCode(app, params.code ?? "", params))
      expect(again._tag).toBe("AuthFailed")
      expect(again.message).toContain("invalid_grant")
    }))

  it.live("rotates refresh tokens: the old one stops working, the new one works", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const app = appFor(sb)
      const issued = sb.issueTokens()
      const first = yield* QuickBooks.auth.refresh(app, Redacted.make(issued.refresh_token))
      expect(Redacted.value(first.refreshToken)).not.toBe(issued.refresh_token)
      const reused = yield* Effect.flip(QuickBooks.auth.refresh(app, Redacted.make(issued.refresh_token)))
      expect(reused._tag).toBe("NeedsReauth")
      const second = yield* QuickBooks.auth.refresh(app, first.refreshToken)
      expect(Redacted.value(second.accessToken)).not.toBe(Redacted.value(first.accessToken))
      const badClient = yield* Effect.flip(QuickBooks.auth.refresh({ ...app, clientSecret: Redacted.make("wrong") }, second.refreshToken))
      expect(badClient._tag).toBe("AuthFailed")
    }))

  it.live("20 concurrent calls after expiry refresh exactly once; the new tokens are saved before anything uses them", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      let seq = 0
      let savedAt = Number.POSITIVE_INFINITY
      let savedAccess = ""
      let firstUse = Number.POSITIVE_INFINITY
      const memory = Tokens.memoryTokenStore({ "conn-1": { ...tokenSetFrom(sb.issueTokens()), accessTokenExpiresAt: Date.now() - 1 } })
      const store = {
        ...memory,
        save: (id: string, t: Parameters<typeof memory.save>[1]) =>
          memory.save(id, t).pipe(Effect.tap(() =>
            Effect.sync(() => {
              savedAt = ++seq
              savedAccess = Redacted.value(t.accessToken)
            })
          ))
      }
      sb.onRequest((e) => {
        const n = ++seq
        if (e.bearer !== undefined && e.bearer === savedAccess) firstUse = Math.min(firstUse, n)
      })
      const { client } = yield* connect(sb, { store: Object.assign(store, { needsReauth: memory.needsReauth, saved: memory.saved }) })
      const results = yield* Effect.forEach(Array.from({ length: 20 }, () => "1"), (id) => client.read("account", id), { concurrency: "unbounded" })
      expect(results.length).toBe(20)
      expect(sb.oauth.stats.refreshes).toBe(1)
      expect(memory.saved.length).toBe(1)
      expect(savedAt).toBeLessThan(firstUse)
      expect(firstUse).toBeLessThan(Number.POSITIVE_INFINITY)
    }))

  it.live("a token QuickBooks expired early (401) is refreshed once for 20 concurrent callers", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client, store } = yield* connect(sb)
      yield* client.read("account", "1")
      sb.oauth.expireAccessTokens()
      yield* Effect.forEach(Array.from({ length: 20 }, () => "2"), (id) => client.read("account", id), { concurrency: "unbounded" })
      expect(sb.oauth.stats.refreshes).toBe(1)
      expect(store.saved.length).toBe(1)
    }))

  it.live("a revoked grant (invalid_grant) is NeedsReauth and marks the connection", () =>
    Effect.gen(function*() {
      const sb = yield* start({ limits: false })
      const { client, store, connectionId } = yield* connect(sb)
      sb.oauth.revokeAll()
      sb.oauth.expireAccessTokens()
      const e = yield* Effect.flip(client.read("account", "1"))
      expect(e._tag).toBe("NeedsReauth")
      expect(store.needsReauth.get(connectionId)).toContain("invalid_grant")
    }))
})
