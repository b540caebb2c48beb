import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as Kit from "../src/SandboxKit.ts"
import * as Signatures from "../src/Signatures.ts"

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`

describe("sandbox kit", () => {
  it.live("serves routes with path parameters and answers 404 otherwise", () =>
    Effect.gen(function*() {
      const served = yield* Kit.serve({
        routes: [{ method: "GET", path: "/v3/company/:realmId/invoice/:id", handler: (req) => Kit.json(200, req.params) }]
      })
      const ok = yield* Effect.promise(() => fetch(`${served.url}/v3/company/123/invoice/9`).then((r) => r.json()))
      expect(ok).toEqual({ realmId: "123", id: "9" })
      const missing = yield* Effect.promise(() => fetch(`${served.url}/nope`))
      expect(missing.status).toBe(404)
    }))

  it("rotates refresh tokens: the old one is refused after the grace period, a revoked grant is invalid_grant", () => {
    let now = 1_000_000
    const oauth = new Kit.OAuthEmulator({
      clientId: "id",
      clientSecret: "secret",
      accessTtlMs: 3_600_000,
      refreshTtlMs: 100 * 86_400_000,
      refreshGraceMs: 0,
      now: () => now
    })
    const refresh = (token: string) =>
      oauth.tokenEndpoint({
        method: "POST",
        path: "/token",
        query: new URLSearchParams(),
        headers: {},
        params: {},
        rawBody: Buffer.from(form({ grant_type: "refresh_token", refresh_token: token })),
        header: (n) => (n === "authorization" ? basic("id", "secret") : undefined)
      })
    const first = oauth.grant(["realm-1"])
    expect(oauth.check(`Bearer ${first.access_token}`, "realm-1")).toBe("ok")
    expect(oauth.check(`Bearer ${first.access_token}`, "realm-2")).toBe("forbidden")
    const r1 = refresh(first.refresh_token)
    expect(r1.status).toBe(200)
    const next = r1.body as Kit.IssuedTokens
    expect(next.refresh_token).not.toBe(first.refresh_token)
    now += 1
    expect(refresh(first.refresh_token).status).toBe(400)
    now += 3_600_000
    expect(oauth.check(`Bearer ${next.access_token}`, "realm-1")).toBe("expired")
    oauth.revokeAll()
    expect((refresh(next.refresh_token).body as { error: string }).error).toBe("invalid_grant")
  })

  it("enforces per-minute, concurrency and daily limits, and says which was hit", () => {
    let now = 0
    const limits = new Kit.LimitEmulator({ perMinute: 3, concurrent: 2, perDay: 5, now: () => now })
    const a = limits.enter("t")
    const b = limits.enter("t")
    const c = limits.enter("t")
    expect(c).toMatchObject({ ok: false, problem: "concurrent" })
    if (a.ok) a.leave()
    if (b.ok) b.leave()
    const d = limits.enter("t")
    if (d.ok) d.leave()
    expect(limits.enter("t")).toMatchObject({ ok: false, problem: "minute" })
    now += 60_001
    for (let i = 0; i < 2; i++) {
      const v = limits.enter("t")
      if (v.ok) v.leave()
    }
    expect(limits.enter("t")).toMatchObject({ ok: false, problem: "day" })
    limits.enabled = false
    expect(limits.enter("t").ok).toBe(true)
  })

  it.live("delivers signed webhooks, and drops or duplicates them when told to", () =>
    Effect.gen(function*() {
      const received: Array<{ body: string; ok: boolean }> = []
      const served = yield* Kit.serve({
        routes: [{
          method: "POST",
          path: "/hook",
          handler: (req) => {
            received.push({ body: req.rawBody.toString(), ok: Signatures.verifyHmacSha256Base64("key", req.rawBody, req.header("x-sig")) })
            return { status: 200 }
          }
        }]
      })
      const dispatcher = new Kit.WebhookDispatcher<number>({
        batchWindowMs: 5,
        maxBatch: 10,
        body: (events) => JSON.stringify({ events }),
        sign: (raw) => ({ "x-sig": Signatures.hmacSha256Base64("key", raw) }),
        random: Kit.seededRandom(7)
      })
      dispatcher.url = `${served.url}/hook`
      dispatcher.emit(1)
      dispatcher.emit(2)
      yield* Effect.promise(() => dispatcher.idle())
      expect(received).toEqual([{ body: JSON.stringify({ events: [1, 2] }), ok: true }])
      dispatcher.faults = { dropRate: 0, duplicateRate: 1, reorder: false }
      dispatcher.emit(3)
      yield* Effect.promise(() => dispatcher.idle())
      expect(received.slice(1).map((r) => r.body)).toEqual([JSON.stringify({ events: [3] }), JSON.stringify({ events: [3] })])
      dispatcher.faults = { dropRate: 1, duplicateRate: 0, reorder: false }
      dispatcher.emit(4)
      yield* Effect.promise(() => dispatcher.idle())
      expect(received).toHaveLength(3)
      expect(dispatcher.stats.dropped).toBe(1)
    }))

  it("verifies HMAC signatures in constant time and refuses anything else", () => {
    const body = Buffer.from(`{"a":1}`)
    const sig = Signatures.hmacSha256Base64("secret", body)
    expect(Signatures.verifyHmacSha256Base64("secret", body, sig)).toBe(true)
    expect(Signatures.verifyHmacSha256Base64("other", body, sig)).toBe(false)
    expect(Signatures.verifyHmacSha256Base64("secret", Buffer.from(`{"a":2}`), sig)).toBe(false)
    expect(Signatures.verifyHmacSha256Base64("secret", body, undefined)).toBe(false)
    expect(Signatures.verifyHmacSha256Base64("secret", body, "short")).toBe(false)
  })
})
