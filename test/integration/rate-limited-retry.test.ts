/**
 * A provider's rate limit is not a poisoned message: an app change that keeps
 * meeting 429s for more attempts than CONCORD_MAX_DELIVER is retried until the
 * limit lifts, then synced — never dead-lettered (found by the chaos harness:
 * a 429 storm dead-lettered app changes and their records never converged).
 */
import { Errors } from "@concord/providers"
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = `
version: 1
tenant: storm
connections:
  - id: storm-mem
    provider: memory
    entities:
      contact: { direction: both }
`

describe.skipIf(!servicesAvailable)("rate-limited retries (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let key = ""
  const mem = makeMemoryProvider()

  beforeAll(async () => {
    // startEngine sets CONCORD_MAX_DELIVER to 3.
    engine = await startEngine({ providers: [{ provider: mem.provider, app: { app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }] })
    expect((await engine.call("PUT", "/v1/tenants/storm", { key: engine.adminKey, raw: tenantYaml, headers: { "content-type": "application/yaml" } })).status).toBe(200)
    expect((await engine.call("PUT", "/v1/tenants/storm/connections/storm-mem/credentials", {
      key: engine.adminKey,
      body: { accountId: "storm-account", accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
    })).status).toBe(200)
    key = (await engine.call("POST", "/v1/tenants/storm/keys", { key: engine.adminKey, body: {} })).body.key
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  it("keeps retrying an app change through a 429 storm longer than maxDeliver attempts, then syncs it", async () => {
    for (let i = 0; i < 5; i++) mem.failNextWrite(new Errors.RateLimited({ provider: "memory", connectionId: "storm-mem", retryAfterMs: 100, limit: "minute" }))
    const put = await engine.call("PUT", "/v1/tenants/storm/records/contact/c-1", { key, body: { name: "Storm customer", roles: ["customer"], status: "active" } })
    expect(put.status).toBe(202)
    const op = await eventually(async () => {
      const r = await engine.call("GET", `/v1/operations/${put.body.operationId}`, { key })
      return r.body.status === "accepted" ? undefined : r.body
    }, 90_000, 250)
    expect(op.status).toBe("succeeded")
    expect(mem.records("contact").filter((r) => r.name === "Storm customer")).toHaveLength(1)
  }, 120_000)
})
