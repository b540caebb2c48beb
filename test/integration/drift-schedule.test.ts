/**
 * Scheduled reconciliation: a connection's `reconciliation.schedule` (cron,
 * UTC) starts runs by itself, one node at a time. Two nodes share one
 * database and one stream prefix; a due run is claimed by exactly one of them
 * and the next one is scheduled from the cron; a run whose node stopped
 * sending heartbeats is marked failed so the connection can run again.
 */
import { PgClient } from "@effect/sql-pg"
import { Cron, Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { freshDatabase, servicesAvailable, uniqueName } from "../support/services.ts"

const tenantYaml = (schedule: string) => `
version: 1
tenant: sched
connections:
  - id: sched-mem
    provider: memory
    entities:
      contact: { direction: both }
    reconciliation: { schedule: "${schedule}" }
`

describe.skipIf(!servicesAvailable)("scheduled reconciliation (two nodes, one database)", () => {
  const nodes: Array<TestEngine> = []
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const mem = makeMemoryProvider({ webhooks: false })
  const prefix = uniqueName("ds").toLowerCase()

  const query = <A extends object>(text: string, params: ReadonlyArray<unknown> = []): Promise<ReadonlyArray<A>> =>
    Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.unsafe<A>(text, params as Array<unknown>)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))) as Effect.Effect<ReadonlyArray<A>, never, never>)

  beforeAll(async () => {
    db = await freshDatabase()
    for (let i = 0; i < 2; i++) {
      nodes.push(await startEngine({
        database: db,
        natsPrefix: prefix,
        env: { CONCORD_DRIFT_TICK_MS: "150", CONCORD_DRIFT_STALE_MS: "3000" },
        providers: [{ provider: mem.provider, app: { app: { clientId: "cid", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }]
      }))
    }
    const [a] = nodes as [TestEngine]
    expect((await a.call("PUT", "/v1/tenants/sched", { key: a.adminKey, raw: tenantYaml("0 3 * * *"), headers: { "content-type": "application/yaml" } })).status).toBe(200)
    expect((await a.call("PUT", "/v1/tenants/sched/connections/sched-mem/credentials", {
      key: a.adminKey,
      body: { accountId: "acct", accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
    })).status).toBe(200)
    mem.accountant.create("contact", { name: "Only at the provider", roles: ["customer"], status: "active" })
  }, 120_000)

  afterAll(async () => {
    for (const n of nodes) await n.stop().catch(() => undefined)
    await db?.drop()
  })

  it("schedules the next run from the cron, runs a due one on exactly one node, then schedules the one after", async () => {
    const row = await eventually(async () => (await query<{ schedule: string; next_run_at: Date }>(`SELECT schedule, next_run_at FROM drift_schedule WHERE connection_id = 'sched-mem'`))[0])
    expect(row.schedule).toBe("0 3 * * *")
    const expectedNext = Cron.next(Cron.parseUnsafe("0 3 * * *"), new Date())
    expect(new Date(row.next_run_at).toISOString()).toBe(expectedNext.toISOString())
    expect(await query(`SELECT id FROM drift_runs`)).toEqual([])

    // Make it due now: both nodes see it on their next tick; one claims it.
    await query(`UPDATE drift_schedule SET next_run_at = now() - interval '1 second' WHERE connection_id = 'sched-mem'`)
    const run = await eventually(async () => {
      const runs = await query<{ id: string; status: string; trigger: string; requested_by: string; missing_in_app: number }>(`SELECT * FROM drift_runs`)
      return runs.length > 0 && runs.every((r) => r.status !== "running") ? runs : undefined
    })
    // Give the other node several more ticks: it must not start a second run for the same due time.
    await new Promise((r) => setTimeout(r, 1000))
    const runs = await query<{ id: string; status: string; trigger: string; requested_by: string; missing_in_app: number }>(`SELECT * FROM drift_runs`)
    expect(runs).toHaveLength(1)
    expect(runs[0]).toMatchObject({ id: run[0]?.id, status: "completed", trigger: "scheduled", requested_by: "schedule", missing_in_app: 1 })
    const after = (await query<{ next_run_at: Date }>(`SELECT next_run_at FROM drift_schedule WHERE connection_id = 'sched-mem'`))[0]
    expect(new Date(after?.next_run_at as Date).getTime()).toBeGreaterThan(Date.now())
    // The API lists it as a scheduled run.
    const [a] = nodes as [TestEngine]
    const listed = await a.call("GET", "/v1/tenants/sched/drift/runs", { key: a.adminKey })
    expect(listed.body).toEqual([expect.objectContaining({ id: runs[0]?.id, trigger: "scheduled", total: 1 })])
  }, 60_000)

  it("a changed schedule takes effect at once", async () => {
    const [a] = nodes as [TestEngine]
    expect((await a.call("PUT", "/v1/tenants/sched", { key: a.adminKey, raw: tenantYaml("*/5 * * * *"), headers: { "content-type": "application/yaml" } })).status).toBe(200)
    const row = await eventually(async () => {
      const r = (await query<{ schedule: string; next_run_at: Date }>(`SELECT schedule, next_run_at FROM drift_schedule WHERE connection_id = 'sched-mem'`))[0]
      return r?.schedule === "*/5 * * * *" ? r : undefined
    })
    const next = new Date(row.next_run_at)
    expect(next.getUTCMinutes() % 5).toBe(0)
    expect(next.getTime() - Date.now()).toBeLessThanOrEqual(5 * 60_000)
  }, 30_000)

  it("a run left running by a node that stopped is marked failed, and the connection can run again", async () => {
    await query(`INSERT INTO drift_runs (id, tenant_id, connection_id, provider, trigger, requested_by, entities, heartbeat_at)
      VALUES ('dr_dead', 'sched', 'sched-mem', 'memory', 'manual', 'test', '["contact"]', now() - interval '1 hour')`)
    const [a] = nodes as [TestEngine]
    const dead = await eventually(async () => {
      const r = await a.call("GET", "/v1/tenants/sched/drift/runs/dr_dead", { key: a.adminKey })
      return r.body.run.status === "failed" ? r.body.run : undefined
    })
    expect(dead.error).toContain("stopped")
    const again = await a.call("POST", "/v1/tenants/sched/connections/sched-mem/drift/reconcile", { key: a.adminKey, body: {} })
    expect(again.status).toBe(202)
  }, 30_000)
})
