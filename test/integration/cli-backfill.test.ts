/**
 * `concord backfill start|status|cancel` against a running engine (real
 * Postgres and NATS, an in-process provider), through the real binary.
 */
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { concord, json, oneLineError, operatorEnv } from "../support/cli.ts"
import { startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = `
version: 1
tenant: acme
connections:
  - id: acme-mem
    provider: memory
    entities:
      contact: { direction: both }
      invoice: { direction: push }
`

describe.skipIf(!servicesAvailable)("concord backfill (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  const mem = makeMemoryProvider()
  let firstId = ""

  beforeAll(async () => {
    engine = await startEngine({
      providers: [{ provider: mem.provider, app: { app: { clientId: "cid", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }]
    })
    env = operatorEnv(engine)
    expect((await engine.call("PUT", "/v1/tenants/acme", { key: engine.adminKey, raw: tenantYaml, headers: { "content-type": "application/yaml" } })).status).toBe(200)
    expect((await engine.call("PUT", "/v1/tenants/acme/connections/acme-mem/credentials", {
      key: engine.adminKey,
      body: { accountId: "acme-account", accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
    })).status).toBe(200)
    for (let i = 0; i < 300; i++) mem.accountant.create("contact", { name: `Old customer ${i}`, roles: ["customer"], status: "active" })
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  it("start --wait imports the history with a progress bar and ends with the summary", async () => {
    const writesBefore = mem.stats.writes
    const r = await concord(["backfill", "start", "--tenant", "acme", "--connection", "acme-mem", "--entity", "contact", "--page-size", "50", "--wait", "--progress", "--json"], env)
    expect(r.code).toBe(0)
    const [b] = json(r)
    expect(b).toMatchObject({ connection: "acme-mem", entity: "contact", status: "completed", done: 300, imported: 300, skipped: 0, failed: 0, pages: 6 })
    // The memory provider cannot count: no total, the bar shows count and rate.
    expect(b.total).toBeNull()
    expect(r.stderr).toMatch(/acme-mem contact \d+\s+[\d.]+\/s/)
    firstId = b.id
    const records = await engine.call("GET", "/v1/tenants/acme/records/contact?limit=1000", { key: engine.adminKey })
    expect(records.body.items).toHaveLength(300)
    expect(mem.stats.writes).toBe(writesBefore)
  }, 120_000)

  it("status lists backfills and shows one; --watch of a finished one returns at once", async () => {
    const all = await concord(["backfill", "status", "--json"], env)
    expect(all.code).toBe(0)
    expect(json(all).map((b: { id: string }) => b.id)).toContain(firstId)
    const human = await concord(["backfill", "status", "--tenant", "acme", "--connection", "acme-mem"], env)
    expect(human.code).toBe(0)
    expect(human.stdout.split("\n")[0]).toMatch(/^ID\s+TENANT\s+CONNECTION\s+ENTITY\s+STATUS\s+DONE/)
    const one = await concord(["backfill", "status", firstId], env)
    expect(one.code).toBe(0)
    expect(one.stdout).toContain(`backfill ${firstId}`)
    expect(one.stdout).toContain("status     completed")
    expect(one.stdout).toContain("300 imported, 0 already there, 0 failed")
    const watched = await concord(["backfill", "status", firstId, "--watch", "--progress"], env)
    expect(watched.code).toBe(0)
    expect(watched.stderr).toContain("acme-mem contact 300")
  }, 60_000)

  it("misuse and unknown ids are one line with exit 2", async () => {
    const badEntity = await concord(["backfill", "start", "--tenant", "acme", "--connection", "acme-mem", "--entity", "unicorn"], env)
    expect(badEntity.code).toBe(2)
    expect(oneLineError(badEntity)).toContain("entities[0]")
    const notPulled = await concord(["backfill", "start", "--tenant", "acme", "--connection", "acme-mem", "--entity", "invoice"], env)
    expect(notPulled.code).toBe(2)
    expect(oneLineError(notPulled)).toContain("does not pull invoice")
    const both = await concord(["backfill", "start", "--tenant", "acme", "--connection", "acme-mem", "--since", "2020-01-01", "--years", "2"], env)
    expect(both.code).toBe(2)
    expect(oneLineError(both)).toContain("--since or --years")
    const unknown = await concord(["backfill", "status", "bf_nope"], env)
    expect(unknown.code).toBe(2)
    expect(oneLineError(unknown)).toContain("bf_nope")
    const unknownCancel = await concord(["backfill", "cancel", "bf_nope"], env)
    expect(unknownCancel.code).toBe(2)
    expect(oneLineError(unknownCancel)).toContain("bf_nope")
    const noConnection = await concord(["backfill", "start", "--tenant", "acme", "--connection", "nope"], env)
    expect(noConnection.code).toBe(2)
  }, 60_000)

  it("cancel stops a running backfill; cancelling it again fails with exit 1", async () => {
    for (let i = 0; i < 1500; i++) mem.accountant.create("contact", { name: `Older customer ${i}`, roles: ["customer"], status: "active" })
    const started = await concord(["backfill", "start", "--tenant", "acme", "--connection", "acme-mem", "--page-size", "1", "--json"], env)
    expect(started.code).toBe(0)
    const id = json(started)[0].id as string
    const cancelled = await concord(["backfill", "cancel", id], env)
    expect(cancelled.code).toBe(0)
    expect(cancelled.stdout).toContain(`cancelled backfill ${id}`)
    const after = json(await concord(["backfill", "status", id, "--json"], env))
    expect(after.status).toBe("cancelled")
    expect(after.done).toBeLessThan(1800)
    const again = await concord(["backfill", "cancel", id, "--tenant", "acme"], env)
    expect(again.code).toBe(1)
    expect(oneLineError(again)).toContain("cancelled already")
  }, 120_000)
})
