/**
 * OAuth (connect flow, /connections, rotation with Xero's 30-minute grace,
 * single-flight refresh saved before use, invalid_grant), webhooks
 * (signatures, intent-to-receive, duplicates) and rate limits (429 storms,
 * the daily limit, 5xx) — adapter against sandbox over HTTP.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Redacted, Stream } from "effect"
import { serve } from "../../src/SandboxKit.ts"
import { hmacSha256Base64 } from "../../src/Signatures.ts"
import { makeTokenSource, memoryTokenStore } from "../../src/Tokens.ts"
import type { ChangeNotice, TokenSet } from "../../src/Provider.ts"
import { Xero } from "../../src/xero/Adapter.ts"
import { start } from "../../src/xero/Sandbox.ts"
import { appOf, harness, tokenSetOf } from "./harness.ts"

const secretOf = (s: string) => Redacted.make(s)

describe("Xero OAuth", () => {
  it.live("connect: authorize redirect with code and state, code exchange, /connections lists the tenants", () =>
    Effect.gen(function*() {
      const sandbox = yield* start({ limits: false, accounts: 2 })
      const app = appOf(sandbox)
      const url = Xero.auth.authorizationUrl(app, "state-123")
      const parsed = new URL(url)
      expect(parsed.pathname).toBe("/identity/connect/authorize")
      expect(parsed.searchParams.get("scope")?.split(" ")).toEqual(expect.arrayContaining(["offline_access", "accounting.transactions", "accounting.contacts", "accounting.settings"]))
      const res = yield* Effect.promise(() => fetch(url, { redirect: "manual" }))
      expect(res.status).toBe(302)
      const back = new URL(res.headers.get("location") as string)
      expect(back.searchParams.get("state")).toBe("state-123")
      const code = back.searchParams.get("code") as string
      const { tokens, accounts } = yield* Xero.auth.exchangeCode(app, code, Object.fromEntries(back.searchParams))
      expect(accounts.map((a) => a.accountId).sort()).toEqual([...sandbox.tenants].sort())
      expect(accounts.every((a) => typeof a.name === "string")).toBe(true)
      expect(tokens.accessTokenExpiresAt - Date.now()).toBeGreaterThan(1_790_000)
      expect(tokens.accessTokenExpiresAt - Date.now()).toBeLessThanOrEqual(1_800_000)
      // A code works once.
      const again = yield* Effect.flip(Xero.auth.exchangeCode(app, code, {}))
      expect(again._tag).toBe("AuthFailed")
    }))

  it.live("refresh tokens rotate; the old one still works for 30 minutes, then invalid_grant → NeedsReauth", () =>
    Effect.gen(function*() {
      let now = Date.now()
      const sandbox = yield* start({ limits: false, now: () => now })
      const app = appOf(sandbox)
      const first = sandbox.issueTokens()
      const next = yield* Xero.auth.refresh(app, secretOf(first.refresh_token))
      expect(Redacted.value(next.refreshToken)).not.toBe(first.refresh_token)
      now += 10 * 60_000
      const retried = yield* Xero.auth.refresh(app, secretOf(first.refresh_token))
      expect(Redacted.value(retried.refreshToken)).toBe(Redacted.value(next.refreshToken))
      now += 21 * 60_000
      const late = yield* Effect.flip(Xero.auth.refresh(app, secretOf(first.refresh_token)))
      expect(late._tag).toBe("NeedsReauth")
      const fine = yield* Xero.auth.refresh(app, next.refreshToken)
      expect(Redacted.value(fine.accessToken)).not.toBe(Redacted.value(next.accessToken))
    }))

  it.live("token expiry mid-call: 20 concurrent calls → exactly one refresh, saved before anything uses it", () =>
    Effect.gen(function*() {
      const h = yield* harness({ unlimited: true })
      yield* Stream.runCollect(h.client.list("contact"))
      const refreshesBefore = h.sandbox.oauth.stats.refreshes
      h.sandbox.oauth.expireAccessTokens()
      const results = yield* Effect.forEach(Array.from({ length: 20 }), () => Stream.runCollect(h.client.list("account")), { concurrency: 20 })
      expect(results.every((r) => r.length === 14)).toBe(true)
      expect(h.sandbox.oauth.stats.refreshes - refreshesBefore).toBe(1)
      expect(h.store.saved.length).toBe(1)
    }))

  it.live("the rotated refresh token is saved before the new access token is used", () =>
    Effect.gen(function*() {
      const sandbox = yield* start({ limits: false })
      const tenant = sandbox.tenants[0] as string
      const app = appOf(sandbox)
      const inner = memoryTokenStore({ c1: { ...tokenSetOf(sandbox.issueTokens([tenant])), accessTokenExpiresAt: 0 } })
      const events: Array<string> = []
      const store = {
        ...inner,
        save: (id: string, t: TokenSet) =>
          Effect.gen(function*() {
            const requestsAtStart = sandbox.stats.requests
            yield* Effect.sleep(100)
            yield* inner.save(id, t)
            events.push(`saved (requests during save: ${sandbox.stats.requests - requestsAtStart})`)
          })
      }
      const tokens = yield* makeTokenSource({ provider: Xero, app, connectionId: "c1", store })
      const client = yield* Xero.client({ connectionId: "c1", accountId: tenant, baseUrl: sandbox.baseUrl, tokens })
      const before = sandbox.stats.requests
      yield* Effect.forEach(Array.from({ length: 5 }), () => client.read("account", "00000000-0000-0000-0000-000000000000").pipe(Effect.flip), { concurrency: 5 })
      events.push(`requests after: ${sandbox.stats.requests - before}`)
      expect(events).toEqual(["saved (requests during save: 0)", "requests after: 5"])
      expect(sandbox.oauth.stats.refreshes).toBe(1)
    }))

  it.live("a revoked grant: invalid_grant → NeedsReauth and the connection is marked", () =>
    Effect.gen(function*() {
      const h = yield* harness({ unlimited: true })
      h.sandbox.oauth.revokeAll()
      h.sandbox.oauth.expireAccessTokens()
      const err = yield* Effect.flip(h.client.read("contact", "00000000-0000-0000-0000-000000000000"))
      expect(err._tag).toBe("NeedsReauth")
      expect(h.store.needsReauth.get(h.context.connectionId)).toMatch(/invalid_grant/)
    }))
})

describe("Xero webhooks", () => {
  const body = (events: ReadonlyArray<Record<string, unknown>>) =>
    Buffer.from(JSON.stringify({ events, firstEventSequence: 1, lastEventSequence: events.length, entropy: "ABCDEFGHIJ" }))
  const event = { resourceUrl: "https://api.xero.com/api.xro/2.0/Invoices/abc", resourceId: "abc", eventDateUtc: "2026-03-01T10:00:00.123", eventType: "UPDATE", eventCategory: "INVOICE", tenantId: "t-1", tenantType: "ORGANISATION" }

  it("verifies x-xero-signature over the raw body; a handshake is an empty events array", () => {
    const key = "webhook-key"
    const good = body([event])
    const verdict = Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64(key, good) }, good, secretOf(key))
    expect(verdict).toEqual({ _tag: "Notices", notices: [{ accountId: "t-1", entity: "invoice", externalId: "abc", operation: "update", occurredAt: "2026-03-01T10:00:00.123Z" }] })
    expect(Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64("other", good) }, good, secretOf(key))._tag).toBe("Invalid")
    expect(Xero.webhooks?.receive({}, good, secretOf(key))._tag).toBe("Invalid")
    // One byte changed after signing.
    const tampered = Buffer.from(good.toString().replace("abc", "abd"))
    expect(Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64(key, good) }, tampered, secretOf(key))._tag).toBe("Invalid")
    const itr = body([])
    expect(Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64(key, itr) }, itr, secretOf(key))).toEqual({ _tag: "Handshake" })
    expect(Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64("nope", itr) }, itr, secretOf(key))._tag).toBe("Invalid")
    const notJson = Buffer.from("{not json")
    expect(Xero.webhooks?.receive({ "x-xero-signature": hmacSha256Base64(key, notJson) }, notJson, secretOf(key))._tag).toBe("Invalid")
  })

  it.live("sandbox deliveries: intent-to-receive 200/401, accountant edits arrive signed, duplicates are byte-identical", () =>
    Effect.gen(function*() {
      const h = yield* harness({ unlimited: true })
      const received: Array<{ status: number; notices: ReadonlyArray<ChangeNotice>; body: string }> = []
      const receiver = yield* serve({
        routes: [{
          method: "POST", path: "/hooks/xero", handler: (req) => {
            const verdict = Xero.webhooks?.receive(Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, Array.isArray(v) ? v[0] : v])), req.rawBody, secretOf(h.sandbox.webhookSecret))
            const status = verdict === undefined || verdict._tag === "Invalid" ? 401 : 200
            if (verdict?._tag === "Notices") received.push({ status, notices: verdict.notices, body: req.rawBody.toString() })
            return { status }
          }
        }]
      })
      const url = `${receiver.url}/hooks/xero`
      const probe = yield* Effect.promise(() => h.sandbox.intentToReceive(url))
      expect(probe).toMatchObject({ good: 200, bad: 401, goodBody: "", ok: true })

      h.sandbox.setWebhookUrl(url)
      const contact = yield* h.client.write([{ _tag: "Create", entity: "contact", idempotencyKey: "wh-1", record: { entity: "contact", schemaVersion: 1, id: "x", name: "Hooked", roles: ["customer"], status: "active" } }])
      const id = contact[0]?._tag === "Written" ? contact[0].record.externalId : ""
      yield* Effect.promise(() => h.sandbox.webhooksIdle())
      h.sandbox.setWebhookFaults({ duplicateRate: 1 })
      h.sandbox.accountantEdit(h.tenant, "contact", id)
      yield* Effect.promise(() => h.sandbox.webhooksIdle())
      const notices = received.flatMap((r) => r.notices)
      expect(notices.filter((n) => n.externalId === id).map((n) => n.operation)).toEqual(["create", "update", "update"])
      expect(notices.every((n) => n.entity === "contact" && n.accountId === h.tenant)).toBe(true)
      const dupes = received.slice(-2)
      expect(dupes[0]?.body).toBe(dupes[1]?.body)
      // The notice is enough to re-read the resource.
      const reread = yield* h.client.read("contact", id)
      expect((reread.record as { lastName?: string }).lastName).toMatch(/^Edited/)
    }))
})

describe("Xero rate limits and failures", () => {
  it.live("a 429 minute storm: calls wait Retry-After and then succeed", () =>
    Effect.gen(function*() {
      const h = yield* harness({ limits: true })
      yield* Stream.runCollect(h.client.list("account"))
      h.sandbox.faults.storm(1_500)
      const stormsBefore = h.sandbox.faults.stats.storms
      const accounts = yield* Stream.runCollect(h.client.list("account"))
      expect(accounts.length).toBe(14)
      expect(h.sandbox.faults.stats.storms).toBeGreaterThan(stormsBefore)
    }))

  it.live("the sandbox answers 429 with Retry-After and X-Rate-Limit-Problem, and remaining-limit headers", () =>
    Effect.gen(function*() {
      const h = yield* harness({ limits: true })
      const token = h.sandbox.issueTokens().access_token
      const call = () => fetch(`${h.sandbox.baseUrl}/Accounts`, { headers: { authorization: `Bearer ${token}`, "xero-tenant-id": h.tenant } })
      const ok = yield* Effect.promise(call)
      expect(ok.headers.get("x-minlimit-remaining")).toBe("59")
      expect(ok.headers.get("x-daylimit-remaining")).toBe("4999")
      const burst = yield* Effect.promise(() => Promise.all(Array.from({ length: 70 }, call)))
      const limited = burst.find((r) => r.status === 429)
      expect(limited?.headers.get("retry-after")).toMatch(/^\d+$/)
      expect(["minute", "concurrent"]).toContain(limited?.headers.get("x-rate-limit-problem"))
    }))

  it.live("the daily limit: RateLimited(\"day\") at once, and no more calls are sent", () =>
    Effect.gen(function*() {
      const h = yield* harness({ limits: true, dayLimit: 5 })
      const results = yield* Effect.forEach(Array.from({ length: 6 }), () => Effect.result(h.client.read("contact", "00000000-0000-0000-0000-000000000000")))
      const last = results[results.length - 1]
      expect(last?._tag === "Failure" && last.failure._tag).toBe("RateLimited")
      if (last?._tag === "Failure" && last.failure._tag === "RateLimited") {
        expect(last.failure.limit).toBe("day")
        expect(last.failure.retryAfterMs).toBeGreaterThan(0)
      }
      const before = h.sandbox.stats.requests
      const again = yield* Effect.flip(h.client.read("contact", "00000000-0000-0000-0000-000000000000"))
      expect(again._tag === "RateLimited" && again.limit).toBe("day")
      expect(h.sandbox.stats.requests).toBe(before)
    }))

  it.live("5xx: bounded retries, then ProviderUnavailable", () =>
    Effect.gen(function*() {
      const h = yield* harness({ unlimited: true })
      yield* Stream.runCollect(h.client.list("account"))
      h.sandbox.faults.set({ errorRate: 1 })
      const before = h.sandbox.stats.requests
      const err = yield* Effect.flip(h.client.read("contact", "00000000-0000-0000-0000-000000000000"))
      expect(err._tag).toBe("ProviderUnavailable")
      expect(err._tag === "ProviderUnavailable" && err.status).toBe(500)
      expect(h.sandbox.stats.requests - before).toBe(4)
    }))
})
