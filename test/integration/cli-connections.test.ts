/**
 * `concord connections …` against a running engine (real Postgres and NATS),
 * through the real binary: the output, and the effect on the engine.
 */
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { concord, json, oneLineError, operatorEnv } from "../support/cli.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { servicesAvailable } from "../support/services.ts"
import { freePort } from "../../packages/server/src/storage/Database.ts"

const tenantYaml = (tenant: string, connections: ReadonlyArray<string>) => `
version: 1
tenant: ${tenant}
connections:
${connections.map((id) => `  - id: ${id}
    provider: memory
    entities:
      contact: { direction: both }
      invoice: { direction: both, policy: app_wins }`).join("\n")}
`

describe.skipIf(!servicesAvailable)("concord connections (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  let acmeKey = ""
  const mem = makeMemoryProvider()

  beforeAll(async () => {
    engine = await startEngine({
      providers: [{ provider: mem.provider, app: { app: { clientId: "cid", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }]
    })
    env = operatorEnv(engine)
    for (const [tenant, connections] of [["acme", ["acme-mem", "acme-new"]], ["beta", ["beta-mem"]]] as const) {
      const put = await engine.call("PUT", `/v1/tenants/${tenant}`, { key: engine.adminKey, raw: tenantYaml(tenant, connections), headers: { "content-type": "application/yaml" } })
      expect(put.status).toBe(200)
    }
    // acme-new stays pending_auth; the others get credentials.
    for (const [tenant, connection] of [["acme", "acme-mem"], ["beta", "beta-mem"]]) {
      const creds = await engine.call("PUT", `/v1/tenants/${tenant}/connections/${connection}/credentials`, {
        key: engine.adminKey,
        body: { accountId: `${connection}-account`, accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
      })
      expect(creds.status).toBe(200)
    }
    acmeKey = (await engine.call("POST", "/v1/tenants/acme/keys", { key: engine.adminKey, body: { label: "cli-test" } })).body.key
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  it("lists every tenant's connections (admin), one tenant's, and filters by status", async () => {
    const all = await concord(["connections", "list", "--json"], env)
    expect(all.code).toBe(0)
    expect(json(all).map((c: { tenant: string; id: string; status: string }) => `${c.tenant}/${c.id}/${c.status}`)).toEqual([
      "acme/acme-mem/active",
      "acme/acme-new/pending_auth",
      "beta/beta-mem/active"
    ])
    const acme = await concord(["connections", "list", "--tenant", "acme", "--json"], env)
    expect(json(acme).map((c: { id: string }) => c.id)).toEqual(["acme-mem", "acme-new"])
    const pending = await concord(["connections", "list", "--status", "pending_auth", "--json"], env)
    expect(json(pending).map((c: { id: string }) => c.id)).toEqual(["acme-new"])
    // A human table with a header row and one row per connection.
    const human = await concord(["connections", "list"], env)
    expect(human.code).toBe(0)
    const lines = human.stdout.trim().split("\n")
    expect(lines[0]).toMatch(/^TENANT\s+CONNECTION\s+PROVIDER\s+ACCOUNT\s+STATUS/)
    expect(lines.slice(1).map((l) => l.split(/\s+/).slice(0, 2).join("/"))).toEqual(["acme/acme-mem", "acme/acme-new", "beta/beta-mem"])
    // A tenant key lists its own tenant, but not every tenant.
    expect(json(await concord(["connections", "list", "--tenant", "acme", "--json"], { ...env, CONCORD_ADMIN_KEY: acmeKey })).length).toBe(2)
    const forbidden = await concord(["connections", "list"], { ...env, CONCORD_ADMIN_KEY: acmeKey })
    expect(forbidden.code).toBe(2)
    expect(oneLineError(forbidden)).toContain("admin")
  })

  it("pause really pauses: nothing reaches the provider until resume, then the waiting change syncs", async () => {
    const paused = await concord(["connections", "pause", "acme", "acme-mem", "--reason", "month-end close", "--json"], env)
    expect(paused.code).toBe(0)
    expect(json(paused)).toMatchObject({ id: "acme-mem", status: "paused", statusReason: "month-end close" })
    expect((await engine.call("GET", "/v1/tenants/acme/connections/acme-mem", { key: engine.adminKey })).body.status).toBe("paused")

    // A change pushed while paused is kept (parked), not written.
    const put = await engine.call("PUT", "/v1/tenants/acme/records/contact/c-paused", { key: acmeKey, body: { name: "Paused Pat", roles: ["customer"], status: "active" } })
    expect(put.status).toBe(202)
    const shown = await eventually(async () => {
      const r = await concord(["connections", "show", "acme", "acme-mem", "--json"], env)
      const body = json(r)
      return body.parked === 1 ? body : undefined
    })
    expect(shown).toMatchObject({ status: "paused", statusReason: "month-end close", parked: 1 })
    expect(mem.records("contact").filter((c) => c.name === "Paused Pat")).toHaveLength(0)

    const human = await concord(["connections", "show", "acme", "acme-mem"], env)
    expect(human.code).toBe(0)
    expect(human.stdout).toContain("status          paused (month-end close)")
    expect(human.stdout).toContain("parked          1 (sync when resumed)")

    const resumed = await concord(["connections", "resume", "acme", "acme-mem", "--json"], env)
    expect(resumed.code).toBe(0)
    expect(json(resumed)).toMatchObject({ connection: { id: "acme-mem", status: "active" }, resynced: 1 })
    await eventually(async () => (mem.records("contact").some((c) => c.name === "Paused Pat") ? true : undefined))
    const record = await eventually(async () => {
      const r = await engine.call("GET", "/v1/tenants/acme/records/contact/c-paused", { key: acmeKey })
      return r.body.sync?.[0]?.status === "synced" ? r.body : undefined
    })
    expect(record.sync[0].externalId).toBe(mem.records("contact").find((c) => c.name === "Paused Pat")?.externalId)

    // Human output of pause and resume.
    const p = await concord(["connections", "pause", "beta", "beta-mem"], env)
    expect(p.stdout).toMatch(/^paused beta-mem \(tenant beta\): paused by operator:/)
    const r = await concord(["connections", "resume", "beta", "beta-mem"], env)
    expect(r.stdout).toContain("resumed beta-mem (tenant beta): status active; 0 change(s)")
  })

  it("reauth-url prints an OAuth URL whose state completes the connection", async () => {
    const r = await concord(["connections", "reauth-url", "acme", "acme-new"], env)
    expect(r.code).toBe(0)
    const url = r.stdout.trim()
    expect(url).toMatch(/^memory:\/\/authorize\?client_id=cid&state=[A-Za-z0-9_-]+$/)
    const state = new URL(url.replace("memory://", "http://memory/")).searchParams.get("state") as string
    // The tenant's admin approves; the provider redirects to Concord's callback with that state.
    const callback = await engine.call("GET", `/v1/oauth/memory/callback?state=${state}&code=granted`)
    expect(callback.status).toBe(200)
    const list = json(await concord(["connections", "list", "--tenant", "acme", "--json"], env))
    expect(list.find((c: { id: string }) => c.id === "acme-new")).toMatchObject({ status: "active", accountId: "memory-account" })
    const again = json(await concord(["connections", "reauth-url", "acme", "acme-new", "--json"], env))
    expect(again.url).toContain(again.state)
    expect(again.state).not.toBe(state)
  })

  it("misuse and failures give one line on stderr and a non-zero exit, never a stack trace", async () => {
    const nobody = `http://127.0.0.1:${await freePort()}`
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, Record<string, string>, number, RegExp]> = [
      [["connections", "list", "--tenant", "nope"], env, 2, /tenant nope does not exist/],
      [["connections", "show", "acme", "nope"], env, 2, /tenant acme has no connection nope/],
      [["connections", "pause", "nope", "x"], env, 2, /tenant nope does not exist|has no connection/],
      [["connections", "show", "acme"], env, 2, /Missing required argument/i],
      [["connections", "list", "--status", "sleepy"], env, 2, /--status/],
      [["connections", "list"], { ...env, CONCORD_ADMIN_KEY: "" }, 2, /admin-key|API key/],
      [["connections", "list"], { ...env, CONCORD_ADMIN_KEY: "ck_wrong_key" }, 2, /unknown or revoked API key/],
      [["connections", "list", "--url", nobody], env, 1, /cannot reach Concord at http:\/\/127\.0\.0\.1:\d+: ECONNREFUSED/],
      [["connections", "list", "--url", "not a url"], env, 2, /not a valid URL/],
      [["connections", "frobnicate"], env, 2, /frobnicate/]
    ]
    const results = await Promise.all(cases.map(([args, e]) => concord(args, e)))
    for (const [i, [args, , code, message]] of cases.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, args.join(" ")).toBe(code)
      expect(oneLineError(r), args.join(" ")).toMatch(message)
      expect(r.stdout).toBe("")
    }
  })

  it("has --help for every connections command", async () => {
    const subs = ["list", "show", "pause", "resume", "reauth-url"]
    const results = await Promise.all(subs.map((sub) => concord(["connections", sub, "--help"], env)))
    for (const [i, sub] of subs.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, sub).toBe(0)
      expect(r.stdout, sub).toContain("--json")
      expect(r.stdout, sub).toContain("--url")
    }
  })
})
