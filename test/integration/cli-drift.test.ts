/**
 * `concord drift runs|show|reconcile-now` against a running engine (real
 * Postgres and NATS, an in-process provider), through the real binary: the
 * output, the exit codes, and the effect (provider_wins drift is pulled into
 * the app, after which a second run finds nothing).
 */
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { concord, drained, json, oneLineError, operatorEnv } from "../support/cli.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = `
version: 1
tenant: acme
connections:
  - id: acme-mem
    provider: memory
    entities:
      contact: { direction: both, policy: provider_wins }
    reconciliation: { schedule: "0 3 * * *" }
`

describe.skipIf(!servicesAvailable)("concord drift (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  // No change feed: settling the run reads every doubted record again (the other path is in test/e2e/drift.test.ts).
  const mem = makeMemoryProvider({ webhooks: false, changeFeed: false })
  let runId = ""
  let strayId = ""

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
    for (let i = 0; i < 4; i++) {
      const r = await engine.call("PUT", `/v1/tenants/acme/records/contact/c-${i}`, {
        key: engine.adminKey,
        body: { name: `Customer ${i}`, roles: ["customer"], email: `c${i}@example.com`, status: "active" }
      })
      expect(r.status).toBe(202)
    }
    await eventually(async () => (mem.records("contact").length === 4 ? true : undefined))
    await drained(engine)
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  const externalOf = async (id: string): Promise<string> =>
    (await engine.call("GET", `/v1/tenants/acme/records/contact/${id}`, { key: engine.adminKey })).body.sync[0].externalId

  it("reconcile-now --wait follows the run with progress, reports the drift and exits 1", async () => {
    mem.accountant.edit("contact", await externalOf("c-1"), { email: "accountant@example.com" })
    strayId = mem.accountant.create("contact", { name: "Walk-in customer", roles: ["customer"], status: "active" })
    const r = await concord(["drift", "reconcile-now", "--tenant", "acme", "--connection", "acme-mem", "--wait", "--progress", "--json"], env)
    expect(r.code, r.stderr).toBe(1)
    const run = json(r)
    expect(run).toMatchObject({ tenant: "acme", connection: "acme-mem", trigger: "manual", status: "completed", total: 2, entities: ["contact"] })
    expect(run.counts).toEqual({ missing_in_provider: 0, missing_in_app: 1, field_mismatch: 1, duplicate_in_provider: 0, unbalanced: 0, orphan_link: 0 })
    expect(run.providerRecords).toBe(5)
    // A progress line on stderr (forced with --progress: stderr is not a terminal here).
    expect(r.stderr).toMatch(/reconcile acme-mem.* \d+\s+[\d.]+\/s records, (running|completed)/)
    runId = run.id
  }, 120_000)

  it("runs lists it (JSON and table); show prints the items with both values; --kind filters", async () => {
    const all = await concord(["drift", "runs", "--json"], env)
    expect(all.code).toBe(0)
    expect(json(all).map((x: { id: string }) => x.id)).toContain(runId)
    const table = await concord(["drift", "runs", "--tenant", "acme", "--connection", "acme-mem"], env)
    expect(table.code).toBe(0)
    const [header, row] = table.stdout.trim().split("\n")
    expect(header).toMatch(/^ID\s+TENANT\s+CONNECTION\s+TRIGGER\s+STATUS\s+STARTED\s+FINISHED\s+RECORDS\s+MISS-PROV\s+MISS-APP\s+FIELDS\s+DUPS\s+UNBAL\s+ORPHAN\s+RESOLVED$/)
    expect(row).toMatch(new RegExp(`^${runId}\\s+acme\\s+acme-mem\\s+manual\\s+completed\\s`))

    const shown = await concord(["drift", "show", runId], env)
    expect(shown.code).toBe(0)
    expect(shown.stdout).toContain(`drift run ${runId} (tenant acme, connection acme-mem, memory, manual`)
    expect(shown.stdout).toContain("drift      2 items: missing_in_provider 0, missing_in_app 1, field_mismatch 1")
    expect(shown.stdout).toMatch(/field_mismatch\s+contact\s+c-1\s+\S+\s+email: app c1@example.com \/ provider accountant@example.com/)
    expect(shown.stdout).toMatch(new RegExp(`missing_in_app\\s+contact\\s+-\\s+${strayId}\\s`))

    const filtered = json(await concord(["drift", "show", runId, "--tenant", "acme", "--kind", "missing_in_app", "--json"], env))
    expect(filtered.run.id).toBe(runId)
    expect(filtered.items).toEqual([expect.objectContaining({ kind: "missing_in_app", externalId: strayId, recordId: null })])
  }, 60_000)

  it("auto-resolves under provider_wins: the app gets the provider's values, and the next run finds nothing (exit 0)", async () => {
    const items = await eventually(async () => {
      const d = json(await concord(["drift", "show", runId, "--json"], env))
      return d.items.every((i: { resolution: string | null }) => i.resolution !== null) ? d.items : undefined
    }, 30_000, 500)
    expect(items.map((i: { resolution: string }) => i.resolution)).toEqual(["pull", "pull"])
    await eventually(async () => {
      const c1 = await engine.call("GET", "/v1/tenants/acme/records/contact/c-1", { key: engine.adminKey })
      return c1.body.record?.email === "accountant@example.com" ? true : undefined
    }, 30_000)
    await eventually(async () => {
      const list = await engine.call("GET", "/v1/tenants/acme/records/contact?limit=100", { key: engine.adminKey })
      return list.body.items.length === 5 ? true : undefined
    }, 30_000)
    await drained(engine)
    const again = await concord(["drift", "reconcile-now", "--tenant", "acme", "--connection", "acme-mem", "--wait"], env)
    expect(again.code, again.stderr).toBe(0)
    expect(again.stdout).toContain("drift      0 items")
    // Counted in the metrics.
    const metrics = await fetch(`${engine.url}/metrics`).then((r) => r.text())
    expect(metrics).toMatch(/concord_drift_items_total\{[^}]*kind="field_mismatch"[^}]*\} 1/)
    expect(metrics).toMatch(/concord_drift_runs_total\{[^}]*status="completed"[^}]*\} 2/)
    // Each resolution is in the audit log.
    const audit = await engine.call("GET", `/v1/tenants/acme/audit?limit=100`, { key: engine.adminKey })
    expect(audit.body.filter((a: { action: string; correlation?: string }) => a.action === "drift_resolved")).toHaveLength(2)
  }, 120_000)

  it("misuse and unknown ids are one line with exit 2", async () => {
    const unknownTenant = await concord(["drift", "reconcile-now", "--tenant", "nope", "--connection", "acme-mem"], env)
    expect(unknownTenant.code).toBe(2)
    expect(oneLineError(unknownTenant)).toContain("nope")
    const unknownConnection = await concord(["drift", "reconcile-now", "--tenant", "acme", "--connection", "nope"], env)
    expect(unknownConnection.code).toBe(2)
    const badEntity = await concord(["drift", "reconcile-now", "--tenant", "acme", "--connection", "acme-mem", "--entity", "unicorn"], env)
    expect(badEntity.code).toBe(2)
    expect(oneLineError(badEntity)).toContain("entities[0]")
    const noTenant = await concord(["drift", "runs", "--connection", "acme-mem"], env)
    expect(noTenant.code).toBe(2)
    expect(oneLineError(noTenant)).toContain("--connection needs --tenant")
    const unknownRun = await concord(["drift", "show", "dr_nope"], env)
    expect(unknownRun.code).toBe(2)
    expect(oneLineError(unknownRun)).toContain("dr_nope")
    const badKind = await concord(["drift", "show", runId, "--kind", "weird"], env)
    expect(badKind.code).toBe(2)
    expect(oneLineError(badKind)).toContain("weird")
    const missingFlag = await concord(["drift", "reconcile-now", "--tenant", "acme"], env)
    expect(missingFlag.code).toBe(2)
    oneLineError(missingFlag)
  }, 120_000)
})
