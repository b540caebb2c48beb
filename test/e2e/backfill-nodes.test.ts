/**
 * A backfill resumes on another node: two engines (child processes) in
 * socket cluster mode share one Postgres; the node running the backfill's
 * workflow is SIGKILLed mid-import and the other node takes over its shards
 * and finishes the import, every record exactly once.
 */
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { callApi, type ChildEngine, startChild, sandboxEnv } from "../support/child-engine.ts"
import { eventually } from "../support/engine.ts"
import { deleteStreams, freshDatabase, servicesAvailable, uniqueName } from "../support/services.ts"

const RECORDS = 4000

const tenant = `
version: 1
tenant: multi
connections:
  - id: multi-qbo
    provider: quickbooks
    entities:
      contact: { direction: pull }
`

describe.skipIf(!servicesAvailable)("backfill on a two-node cluster, owner killed", () => {
  const scope = Effect.runSync(Scope.make())
  let sandbox: QuickBooksSandbox.QuickBooksSandbox
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const prefix = uniqueName("bfn").toLowerCase()
  const nodes: Array<ChildEngine> = []
  let env: Record<string, string> = {}

  const startNode = async () => {
    const runnerPort = await freePort()
    const node = await startChild({
      databaseUrl: db.url,
      natsPrefix: prefix,
      env: { ...env, CONCORD_CLUSTER: "socket", CONCORD_RUNNER_HOST: "127.0.0.1", CONCORD_RUNNER_PORT: String(runnerPort) }
    })
    nodes.push(node)
    return node
  }

  const query = <A extends object>(text: string): Promise<ReadonlyArray<A>> =>
    Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.unsafe<A>(text)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))) as Effect.Effect<ReadonlyArray<A>, never, never>)

  beforeAll(async () => {
    sandbox = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    for (let i = 0; i < RECORDS; i++) sandbox.insert(sandbox.realmId, "Customer", { DisplayName: `Customer ${i}` })
    db = await freshDatabase()
    env = {
      ...sandboxEnv(sandbox)
    }
    const a = await startNode()
    await startNode()
    expect((await callApi(a.url, "PUT", "/v1/tenants/multi", { raw: tenant, contentType: "application/yaml" })).status).toBe(200)
    const t = sandbox.issueTokens()
    expect((await callApi(a.url, "PUT", "/v1/tenants/multi/connections/multi-qbo/credentials", {
      body: { accountId: sandbox.realmId, accessToken: t.access_token, refreshToken: t.refresh_token, expiresIn: t.expires_in }
    })).status).toBe(200)
  }, 300_000)

  afterAll(async () => {
    for (const n of nodes) await n.kill("SIGKILL")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await db?.drop()
    await deleteStreams(prefix.toUpperCase())
  })

  it("the surviving node finishes the import of the killed one, writing nothing twice", async () => {
    const [a, b] = nodes as [ChildEngine, ChildEngine]
    const res = await callApi(a.url, "POST", "/v1/tenants/multi/connections/multi-qbo/backfills", { body: { pageSize: 25 } })
    expect(res.status).toBe(202)
    const id = res.body.backfills[0].id as string
    const total = sandbox.count(sandbox.realmId, "Customer") + sandbox.count(sandbox.realmId, "Vendor")
    // The node whose log shows committed pages runs the workflow.
    const owner = await eventually(async () => {
      const mine = (n: ChildEngine) => n.output().includes(`backfill ${id} page`)
      return mine(a) ? a : mine(b) ? b : undefined
    }, 60_000, 50)
    const survivor = owner === a ? b : a
    const before = (await callApi(survivor.url, "GET", `/v1/tenants/multi/backfills/${id}`)).body
    expect(before.status).toBe("running")
    expect(before.done).toBeLessThan(total)
    await owner.kill("SIGKILL")
    const done = await eventually(async () => {
      const r = await callApi(survivor.url, "GET", `/v1/tenants/multi/backfills/${id}`)
      return r.body?.status === "running" ? undefined : r.body
    }, 180_000, 250)
    expect(done).toMatchObject({ status: "completed", done: total, imported: total, failed: 0 })
    // The survivor committed pages after the kill.
    expect(survivor.output()).toContain(`backfill ${id} page`)
    const [counts] = await query<{ records: string; links: string; pulls: string }>(`
      SELECT (SELECT count(*) FROM records WHERE tenant_id = 'multi' AND entity = 'contact') AS records,
             (SELECT count(DISTINCT external_id) FROM links WHERE connection_id = 'multi-qbo' AND entity = 'contact') AS links,
             (SELECT count(*) FROM audit_log WHERE tenant_id = 'multi' AND action = 'pull') AS pulls`)
    expect(Number(counts?.records)).toBe(total)
    expect(Number(counts?.links)).toBe(total)
    expect(Number(counts?.pulls)).toBe(total)
  }, 300_000)
})
