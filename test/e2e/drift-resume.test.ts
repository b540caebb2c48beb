/**
 * A reconciliation run is a workflow: SIGKILL the engine (a child process)
 * twice in the middle of a run over 30,000 QuickBooks customers, start it
 * again each time, and the run resumes from its last committed checkpoint
 * (it does not list the provider from the start again) and reports exactly
 * the planted drift, each item once, with one drift event.
 */
import * as QuickBooksMapping from "@concord/providers/quickbooks/Mapping"
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { callApi, type ChildEngine, startChild, sandboxEnv } from "../support/child-engine.ts"
import { eventually } from "../support/engine.ts"
import { deleteStreams, freshDatabase, servicesAvailable, uniqueName } from "../support/services.ts"

const RECORDS = 30_000
const PAGE = 500
const PLANTED = [7, 4_321, 12_345, 20_000, 29_999]

describe.skipIf(!servicesAvailable)("a reconciliation run survives its engine being killed", () => {
  const scope = Effect.runSync(Scope.make())
  let sandbox: QuickBooksSandbox.QuickBooksSandbox
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const prefix = uniqueName("drr").toLowerCase()
  let env: Record<string, string> = {}
  let engine: ChildEngine | undefined
  let port = 0
  let listRequests = 0

  const start = async () => {
    await engine?.kill("SIGKILL")
    engine = await startChild({ databaseUrl: db.url, natsPrefix: prefix, ...(port === 0 ? {} : { port }), env })
    port = Number(new URL(engine.url).port)
  }
  const api = (method: string, path: string, o: { body?: unknown; raw?: string; contentType?: string } = {}) => callApi((engine as ChildEngine).url, method, path, o)
  const query = <A extends object>(text: string): Promise<ReadonlyArray<A>> =>
    Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.unsafe<A>(text)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))) as Effect.Effect<ReadonlyArray<A>, never, never>)

  beforeAll(async () => {
    sandbox = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    const ids: Array<string> = []
    const data: Array<string> = []
    for (let i = 0; i < RECORDS; i++) {
      const w = sandbox.insert(sandbox.realmId, "Customer", { DisplayName: `Customer ${i}`, PrimaryEmailAddr: { Address: `c${i}@example.com` } })
      const mapped = QuickBooksMapping.fromWire("Customer", w)
      if (!mapped.ok) throw new Error(mapped.reason)
      const recordId = `c-${String(i).padStart(6, "0")}`
      ids.push(String((w as { Id: string }).Id))
      const record = { ...mapped.value, id: recordId } as Record<string, unknown>
      data.push(JSON.stringify(PLANTED.includes(i) ? { ...record, email: `planted${i}@example.com` } : record))
    }
    sandbox.onRequest((e) => {
      if (e.path.endsWith("/query") && /STARTPOSITION/i.test(decodeURIComponent(e.query))) listRequests++
    })
    db = await freshDatabase()
    env = {
      ...sandboxEnv(sandbox),
      CONCORD_DRIFT_PAGE_SIZE: String(PAGE),
      CONCORD_DRIFT_PAGES_PER_STEP: "2"
    }
    await start()
    const yaml = `
version: 1
tenant: resume
connections:
  - id: resume-qbo
    provider: quickbooks
    entities:
      contact: { direction: both }
    reconciliation: { schedule: "0 3 * * *", autoResolve: false }
`
    expect((await api("PUT", "/v1/tenants/resume", { raw: yaml, contentType: "application/yaml" })).status).toBe(200)
    const t = sandbox.issueTokens()
    expect((await api("PUT", "/v1/tenants/resume/connections/resume-qbo/credentials", {
      body: { accountId: sandbox.realmId, accessToken: t.access_token, refreshToken: t.refresh_token, expiresIn: t.expires_in }
    })).status).toBe(200)
    await Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const recordIds = data.map((_, i) => `c-${String(i).padStart(6, "0")}`)
      yield* sql`
        INSERT INTO records (tenant_id, entity, record_id, data, hash, origin, updated_at)
        SELECT 'resume', 'contact', r, d::jsonb, 'seeded', 'app', now() - interval '1 minute' FROM unnest(${recordIds}::text[], ${data}::text[]) AS t(r, d)`
      yield* sql`
        INSERT INTO links (connection_id, entity, record_id, external_id, provider_version, updated_at)
        SELECT 'resume-qbo', 'contact', r, 'customer:' || x, '0', now() - interval '1 minute' FROM unnest(${recordIds}::text[], ${ids}::text[]) AS t(r, x)`
      yield* sql`ANALYZE records, links`
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))) as Effect.Effect<void, never, never>)
  }, 300_000)

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await db?.drop()
    await deleteStreams(prefix.toUpperCase())
  })

  it("resumes from its checkpoint after two SIGKILLs and reports exactly the planted drift, once", async () => {
    const started = await api("POST", "/v1/tenants/resume/connections/resume-qbo/drift/reconcile", { body: {} })
    expect(started.status).toBe(202)
    const id = started.body.id as string
    const total = RECORDS + 2
    for (const level of [0.25 + Math.random() * 0.15, 0.55 + Math.random() * 0.2].map((l) => Math.floor(l * total))) {
      const progress = await eventually(async () => {
        const r = await api("GET", `/v1/tenants/resume/drift/runs/${id}?limit=1`)
        return r.body?.run?.providerRecords >= level ? r.body.run : undefined
      }, 240_000, 20)
      expect(progress.status).toBe("running")
      await (engine as ChildEngine).kill("SIGKILL")
      await start()
    }
    const run = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/resume/drift/runs/${id}?limit=1000`)
      return r.body?.run?.status === "running" ? undefined : r.body
    }, 300_000, 200)
    expect(run.run.status, run.run.error).toBe("completed")
    const got = run.items.map((i: any) => `${i.kind} ${i.recordId ?? i.externalId}`).sort()
    expect(got).toEqual([
      ...PLANTED.map((i) => `field_mismatch c-${String(i).padStart(6, "0")}`),
      "missing_in_app customer:1",
      "missing_in_app vendor:1"
    ].sort())
    expect(run.run.counts).toMatchObject({ field_mismatch: PLANTED.length, missing_in_app: 2 })
    // Resumed, not restarted: the provider was listed about once (each kill costs at most one step of pages
    // again, and the step after it lists one page ahead), plus the short list of what changed during the run.
    const pages = Math.ceil(RECORDS / PAGE) + 1
    expect(listRequests).toBeLessThan(pages + 2 * 4 + 4)
    // One drift event for the run, however often its last step ran.
    const events = await query<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE subject LIKE 'concord.drift.%' AND payload->>'runId' = '${id}'`)
    expect(Number(events[0]?.n)).toBe(1)
    const seen = await query<{ n: string }>(`SELECT count(*) AS n FROM drift_seen WHERE run_id = '${id}'`)
    expect(Number(seen[0]?.n)).toBe(0)
  }, 600_000)

  it("killed after its app side was read and counted, the step is done again and counts each app record once", async () => {
    // App records the provider never got (the app pushes contacts): read, counted and reported by the app step.
    const UNLINKED = 40
    await query(`
      INSERT INTO records (tenant_id, entity, record_id, data, hash, origin, updated_at)
      SELECT 'resume', 'contact', 'u-' || lpad(i::text, 3, '0'), jsonb_build_object('id', 'u-' || i, 'name', 'Unlinked ' || i), 'seeded', 'app', now() - interval '1 day'
      FROM generate_series(1, ${UNLINKED}) AS i`)
    env = { ...env, CONCORD_CRASH_AT: "after-drift-app-step" }
    await start()
    const started = await api("POST", "/v1/tenants/resume/connections/resume-qbo/drift/reconcile", { body: {} })
    expect(started.status).toBe(202)
    const id = started.body.id as string
    // The engine kills itself at the end of the app step, its checkpoint not moved.
    expect(await (engine as ChildEngine).exited).toMatchObject({ signal: "SIGKILL" })
    const counted = await query<{ app_records: string; stage: string }>(`SELECT app_records::text, stage FROM drift_runs WHERE id = '${id}'`)
    expect(counted[0]).toEqual({ app_records: String(UNLINKED), stage: "app" })
    const { CONCORD_CRASH_AT: _, ...rest } = env
    env = rest
    await start()
    const run = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/resume/drift/runs/${id}?limit=1000&kind=missing_in_provider`)
      return r.body?.run?.status === "running" ? undefined : r.body
    }, 300_000, 200)
    expect(run.run.status, run.run.error).toBe("completed")
    expect(run.run.appRecords).toBe(UNLINKED)
    expect(run.items.map((i: any) => i.recordId).sort()).toEqual(Array.from({ length: UNLINKED }, (_, i) => `u-${String(i + 1).padStart(3, "0")}`))
  }, 600_000)
})
