/**
 * Resumable backfill: a QuickBooks sandbox (limits off) seeded with 50,000
 * customers, imported by the engine (a child process) as an effect/workflow
 * workflow, page by page. The engine is SIGKILLed three times at random
 * points of the import and started again each time; at the end the app side
 * holds every record exactly once (one record, one link, one `pull` audit
 * row and one change event each), and nothing was written to the sandbox.
 * Also: progress through the API while it runs, a second backfill of the
 * same window imports nothing new, cancel stops a backfill, and the API's
 * answers to bad requests; and a backfill racing live webhooks for the same
 * records (a second realm) ends with every record once, carrying the edits.
 *
 * `BACKFILL_RECORDS` changes the number of seeded records (default 50,000).
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

const RECORDS = Number(process.env.BACKFILL_RECORDS ?? "50000")

const tenant = `
version: 1
tenant: hist
connections:
  - id: hist-qbo
    provider: quickbooks
    entities:
      contact: { direction: both }
      item: { direction: pull }
      invoice: { direction: push }
    backfill: { years: 5 }
`

// Other tenants, on the sandbox's second and third realms (QuickBooks ids are per realm).
const crashTenant = `
version: 1
tenant: crash
connections:
  - id: crash-qbo
    provider: quickbooks
    entities:
      contact: { direction: pull }
`

const liveTenant = `
version: 1
tenant: live
connections:
  - id: live-qbo
    provider: quickbooks
    entities:
      contact: { direction: both }
`

describe.skipIf(!servicesAvailable)(`backfill of ${RECORDS} records, SIGKILLed three times`, () => {
  const scope = Effect.runSync(Scope.make())
  let sandbox: QuickBooksSandbox.QuickBooksSandbox
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const prefix = uniqueName("bf").toLowerCase()
  let env: Record<string, string> = {}
  let engine: ChildEngine | undefined
  let port = 0
  let writes = 0
  let listRequests = 0
  let backfillId = ""
  const started = Date.now()

  const start = async (crashAt?: string) => {
    await engine?.kill("SIGKILL")
    engine = await startChild({ databaseUrl: db.url, natsPrefix: prefix, ...(port === 0 ? {} : { port }), env: { ...env, ...(crashAt === undefined ? {} : { CONCORD_CRASH_AT: crashAt }) } })
    port = Number(new URL(engine.url).port)
    return engine
  }
  const api = (method: string, path: string, body?: unknown) =>
    callApi((engine as ChildEngine).url, method, path, body === undefined ? {} : { body })

  const query = <A extends object>(text: string): Promise<ReadonlyArray<A>> =>
    Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.unsafe<A>(text)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))) as Effect.Effect<ReadonlyArray<A>, never, never>)

  const contactsAtProvider = () => sandbox.count(sandbox.realmId, "Customer") + sandbox.count(sandbox.realmId, "Vendor")

  beforeAll(async () => {
    sandbox = await Effect.runPromise(QuickBooksSandbox.start({ limits: false, accounts: 3 }).pipe(Scope.provide(scope)))
    // Seeded straight into the sandbox's store: no HTTP, no webhooks (no webhook URL is set).
    for (let i = 0; i < RECORDS; i++) {
      sandbox.insert(sandbox.realmId, "Customer", { DisplayName: `Historic customer ${i}`, PrimaryEmailAddr: { Address: `c${i}@example.com` } })
    }
    // Every request that could change the provider's data from now on.
    sandbox.onRequest((e) => {
      if (e.method !== "GET" && e.path.includes("/v3/company/")) writes++
      else if (e.path.endsWith("/query") && /STARTPOSITION/i.test(decodeURIComponent(e.query))) listRequests++
    })
    db = await freshDatabase()
    env = {
      ...sandboxEnv(sandbox)
    }
    await start()
    expect((await callApi((engine as ChildEngine).url, "PUT", "/v1/tenants/hist", { raw: tenant, contentType: "application/yaml" })).status).toBe(200)
    const t = sandbox.issueTokens()
    expect((await api("PUT", "/v1/tenants/hist/connections/hist-qbo/credentials", {
      accountId: sandbox.realmId, accessToken: t.access_token, refreshToken: t.refresh_token, expiresIn: t.expires_in
    })).status).toBe(200)
    const realm2 = sandbox.accounts[1] as string
    const t2 = sandbox.issueTokens([realm2])
    expect((await callApi((engine as ChildEngine).url, "PUT", "/v1/tenants/live", { raw: liveTenant, contentType: "application/yaml" })).status).toBe(200)
    const realm3 = sandbox.accounts[2] as string
    const t3 = sandbox.issueTokens([realm3])
    expect((await callApi((engine as ChildEngine).url, "PUT", "/v1/tenants/crash", { raw: crashTenant, contentType: "application/yaml" })).status).toBe(200)
    expect((await api("PUT", "/v1/tenants/crash/connections/crash-qbo/credentials", {
      accountId: realm3, accessToken: t3.access_token, refreshToken: t3.refresh_token, expiresIn: t3.expires_in
    })).status).toBe(200)
    expect((await api("PUT", "/v1/tenants/live/connections/live-qbo/credentials", {
      accountId: realm2, accessToken: t2.access_token, refreshToken: t2.refresh_token, expiresIn: t2.expires_in
    })).status).toBe(200)
  }, 300_000)

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await db?.drop()
    await deleteStreams(prefix.toUpperCase())
    console.log(`[backfill test] ${RECORDS} records, whole file ${Math.round((Date.now() - started) / 1000)} s`)
  })

  it("refuses bad requests, naming the field or the id", async () => {
    expect((await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { years: "three" })).status).toBe(400)
    const notPulled = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["invoice"] })
    expect(notPulled.status).toBe(422)
    expect(notPulled.body.issues[0].path).toBe("entities[0]")
    const unknownEntity = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["unicorn"] })
    expect(unknownEntity.status).toBe(422)
    expect(unknownEntity.body.message).toContain("unicorn")
    const both = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { since: "2020-01-01", years: 2 })
    expect(both.status).toBe(422)
    expect(both.body.issues[0].path).toBe("since")
    const badDate = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { since: "last tuesday" })
    expect(badDate.status).toBe(422)
    const missing = await api("GET", "/v1/tenants/hist/backfills/bf_nope")
    expect(missing.status).toBe(404)
    expect(missing.body.message).toContain("bf_nope")
    expect((await api("POST", "/v1/tenants/hist/backfills/bf_nope/cancel")).status).toBe(404)
    expect((await api("POST", "/v1/tenants/hist/connections/nope/backfills", {})).status).toBe(404)
  })

  it("imports every record exactly once although the engine is killed three times, and writes nothing to the provider", async () => {
    const total = contactsAtProvider()
    const t0 = Date.now()
    const res = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["contact"], pageSize: 500 })
    expect(res.status).toBe(202)
    expect(res.body.backfills).toHaveLength(1)
    backfillId = res.body.backfills[0].id
    expect(res.body.backfills[0]).toMatchObject({ entity: "contact", status: "running", connection: "hist-qbo" })

    // Three kills at random progress levels, increasing.
    const levels = [0.1 + Math.random() * 0.15, 0.35 + Math.random() * 0.15, 0.6 + Math.random() * 0.2].map((l) => Math.floor(l * total))
    const seen: Array<{ done: number; rate: number | null; eta: number | null }> = []
    for (const level of levels) {
      const progress = await eventually(async () => {
        const r = await api("GET", `/v1/tenants/hist/backfills/${backfillId}`)
        return r.body?.done >= level ? r.body : undefined
      }, 240_000, 50)
      // Progress through the API while it runs: done/total, rate and ETA.
      expect(progress.status).toBe("running")
      expect(progress.total).toBe(total)
      expect(progress.rate).toBeGreaterThan(0)
      expect(progress.etaSeconds).not.toBeNull()
      seen.push({ done: progress.done, rate: progress.rate, eta: progress.etaSeconds })
      await (engine as ChildEngine).kill("SIGKILL")
      await start()
    }
    // It carries on from its last committed page, not from the start.
    const resumed = (await api("GET", `/v1/tenants/hist/backfills/${backfillId}`)).body
    expect(resumed.done).toBeGreaterThanOrEqual(seen[2]?.done ?? 0)
    const metrics = await fetch(`${(engine as ChildEngine).url}/metrics`).then((r) => r.text())
    expect(metrics).toContain("concord_backfills_running")

    const finished = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/hist/backfills/${backfillId}`)
      return r.body?.status === "running" ? undefined : r.body
    }, 600_000, 200)
    console.log(`[backfill test] ${total} records imported in ${Math.round((Date.now() - t0) / 1000)} s with 3 kills at ${JSON.stringify(seen)}; final ${JSON.stringify(finished)}`)
    expect(finished).toMatchObject({ status: "completed", done: total, imported: total, skipped: 0, failed: 0 })
    // Resumed from the last committed page each time, not from the start: each kill costs at most
    // the page in flight (and the two wire lists, Customer then Vendor, may each end on an empty page).
    console.log(`[backfill test] ${listRequests} list requests for ${finished.pages} pages`)
    expect(listRequests).toBeLessThanOrEqual(finished.pages + 3 + 2)

    // The app side: every record exactly once.
    const [records] = await query<{ n: string; distinct_ids: string }>(`SELECT count(*) AS n, count(DISTINCT record_id) AS distinct_ids FROM records WHERE tenant_id = 'hist' AND entity = 'contact'`)
    expect(Number(records?.n)).toBe(total)
    expect(Number(records?.distinct_ids)).toBe(total)
    const [links] = await query<{ n: string; ext: string; rec: string }>(`SELECT count(*) AS n, count(DISTINCT external_id) AS ext, count(DISTINCT record_id) AS rec FROM links WHERE connection_id = 'hist-qbo' AND entity = 'contact'`)
    expect(Number(links?.n)).toBe(total)
    expect(Number(links?.ext)).toBe(total)
    expect(Number(links?.rec)).toBe(total)
    const [bases] = await query<{ n: string }>(`SELECT count(*) AS n FROM bases WHERE connection_id = 'hist-qbo' AND entity = 'contact'`)
    expect(Number(bases?.n)).toBe(total)
    // Written once: one pull in the audit log and one change event per record.
    const pulls = await query<{ record_id: string; n: string }>(`SELECT record_id, count(*) AS n FROM audit_log WHERE tenant_id = 'hist' AND action = 'pull' AND entity = 'contact' GROUP BY record_id HAVING count(*) > 1 LIMIT 5`)
    expect(pulls).toEqual([])
    const [pullCount] = await query<{ n: string }>(`SELECT count(*) AS n FROM audit_log WHERE tenant_id = 'hist' AND action = 'pull' AND entity = 'contact'`)
    expect(Number(pullCount?.n)).toBe(total)
    const [events] = await query<{ n: string; distinct_ids: string }>(`
      SELECT count(*) AS n, count(DISTINCT payload->>'recordId') AS distinct_ids FROM outbox WHERE subject LIKE '%concord.changes.hist.quickbooks.contact'`)
    expect(Number(events?.n)).toBe(total)
    expect(Number(events?.distinct_ids)).toBe(total)
    // …and a sample record reads back through the API with its link.
    const sample = (await api("GET", "/v1/tenants/hist/records/contact?limit=1")).body.items[0]
    expect(sample.sync[0]).toMatchObject({ connectionId: "hist-qbo", status: "synced" })
    const verify = await api("GET", "/v1/tenants/hist/audit/verify")
    expect(verify.body.ok).toBe(true)
    // The node that finished it counted what it imported.
    const after = await fetch(`${(engine as ChildEngine).url}/metrics`).then((r) => r.text())
    if ((seen[2]?.done ?? total) < total) expect(after).toMatch(/concord_backfill_records_total\{[^}]*outcome="imported"[^}]*\} [1-9]/)
    // Nothing was written to the provider.
    expect(writes).toBe(0)
    expect(contactsAtProvider()).toBe(total)
  }, 1_200_000)

  it("a second backfill of the same window imports nothing new", async () => {
    const total = contactsAtProvider()
    const res = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["contact"] })
    expect(res.status).toBe(202)
    const id = res.body.backfills[0].id as string
    // The same entity cannot be backfilled twice at once.
    const twice = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["contact"] })
    if (twice.status !== 202) expect(twice.status).toBe(409)
    const done = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/hist/backfills/${id}`)
      return r.body?.status === "running" ? undefined : r.body
    }, 300_000, 200)
    expect(done).toMatchObject({ status: "completed", done: total, imported: 0, skipped: total })
    const [records] = await query<{ n: string }>(`SELECT count(*) AS n FROM records WHERE tenant_id = 'hist' AND entity = 'contact'`)
    expect(Number(records?.n)).toBe(total)
    const list = (await api("GET", "/v1/tenants/hist/backfills?connection=hist-qbo")).body as Array<{ id: string }>
    expect(list.map((b) => b.id)).toEqual(expect.arrayContaining([id, backfillId]))
    expect(writes).toBe(0)
  }, 600_000)

  it("races live webhooks for the same records without importing any twice, and keeps the edits", async () => {
    const realm2 = sandbox.accounts[1] as string
    const seeded: Array<string> = []
    for (let i = 0; i < 3000; i++) {
      const c = sandbox.insert(realm2, "Customer", { DisplayName: `Live customer ${i}` })
      seeded.push(QuickBooksMapping.externalIdOf("Customer", String(c.Id)))
    }
    const total = sandbox.count(realm2, "Customer") + sandbox.count(realm2, "Vendor")
    const writesBefore = writes
    // From now on the accountant's edits reach the engine as webhooks (live traffic).
    sandbox.setWebhookUrl(`${(engine as ChildEngine).url}/webhooks/quickbooks`)
    const res = await api("POST", "/v1/tenants/live/connections/live-qbo/backfills", { pageSize: 100 })
    expect(res.status).toBe(202)
    const id = res.body.backfills[0].id as string
    // Edits spread over the whole range, in waves while the import runs: some land on records
    // imported already, some on records the backfill has not reached yet, some on the page in flight.
    const edited = new Map<string, string>()
    for (let wave = 0; wave < 5; wave++) {
      for (let k = 0; k < 20; k++) {
        const ext = seeded[(wave * 20 + k) * 29 % seeded.length] as string
        const name = `Edited live customer ${wave}-${k}`
        sandbox.accountantEdit(realm2, "contact", ext, { DisplayName: name })
        edited.set(ext, name)
      }
      await new Promise((r) => setTimeout(r, 300))
    }
    const done = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/live/backfills/${id}`)
      return r.body?.status === "running" ? undefined : r.body
    }, 300_000, 200)
    expect(done.status).toBe("completed")
    expect(done.done).toBe(total)
    expect(done.failed).toBe(0)
    expect(done.imported + done.skipped).toBe(total)
    console.log(`[backfill test] racing live edits: ${done.imported} imported by the backfill, ${done.skipped} pulled live first`)
    await sandbox.webhooksIdle()
    // Every edit is in the app, whichever came first for its record.
    const names = await eventually(async () => {
      const rows = await query<{ external_id: string; name: string }>(`
        SELECT l.external_id, r.data->>'name' AS name FROM links l
        JOIN records r ON r.tenant_id = 'live' AND r.entity = l.entity AND r.record_id = l.record_id
        WHERE l.connection_id = 'live-qbo' AND l.external_id IN (${[...edited.keys()].map((e) => `'${e}'`).join(",")})`)
      const got = new Map(rows.map((r) => [r.external_id, r.name]))
      return [...edited].every(([ext, name]) => got.get(ext) === name) ? got : undefined
    }, 60_000, 250)
    expect(names.size).toBe(edited.size)
    const [links] = await query<{ n: string; ext: string }>(`SELECT count(*) AS n, count(DISTINCT external_id) AS ext FROM links WHERE connection_id = 'live-qbo' AND entity = 'contact'`)
    expect(Number(links?.n)).toBe(total)
    expect(Number(links?.ext)).toBe(total)
    const [created] = await query<{ n: string; distinct_ids: string }>(`
      SELECT count(*) AS n, count(DISTINCT record_id) AS distinct_ids FROM audit_log
      WHERE tenant_id = 'live' AND connection_id = 'live-qbo' AND action = 'pull' AND (detail->>'created')::boolean`)
    expect(Number(created?.n)).toBe(total)
    expect(Number(created?.distinct_ids)).toBe(total)
    // Pulling the accountant's edits wrote nothing back.
    expect(writes).toBe(writesBefore)
    sandbox.setWebhookUrl(undefined)
  }, 600_000)

  it("killed right after a page commits (in the actor, then before the activity's result is stored), it imports nothing twice", async () => {
    const realm3 = sandbox.accounts[2] as string
    for (let i = 0; i < 1000; i++) sandbox.insert(realm3, "Customer", { DisplayName: `Crash customer ${i}` })
    const total = sandbox.count(realm3, "Customer") + sandbox.count(realm3, "Vendor")
    // 1. The pipeline's commit of the first page lands, and the process dies before the actor answers.
    const first = await start("after-commit")
    const res = await api("POST", "/v1/tenants/crash/connections/crash-qbo/backfills", { pageSize: 100 })
    expect(res.status).toBe(202)
    const id = res.body.backfills[0].id as string
    expect((await first.exited).signal).toBe("SIGKILL")
    // 2. Restarted, it goes on; the next committed page kills it before its activity result is stored.
    const second = await start("after-backfill-page")
    expect((await second.exited).signal).toBe("SIGKILL")
    // 3. Restarted cleanly, it finishes.
    await start()
    const done = await eventually(async () => {
      const r = await api("GET", `/v1/tenants/crash/backfills/${id}`)
      return r.body?.status === "running" ? undefined : r.body
    }, 120_000, 200)
    expect(done).toMatchObject({ status: "completed", done: total, imported: total, skipped: 0, failed: 0 })
    // (Customers then vendors: the customers' last page and the vendors' page.)
    expect(done.pages).toBe(Math.ceil(sandbox.count(realm3, "Customer") / 100) + 1)
    const [counts] = await query<{ records: string; links: string; pulls: string; events: string }>(`
      SELECT (SELECT count(*) FROM records WHERE tenant_id = 'crash') AS records,
             (SELECT count(DISTINCT external_id) FROM links WHERE connection_id = 'crash-qbo') AS links,
             (SELECT count(*) FROM audit_log WHERE tenant_id = 'crash' AND action = 'pull') AS pulls,
             (SELECT count(*) FROM outbox WHERE subject LIKE '%concord.changes.crash.%') AS events`)
    expect(Object.fromEntries(Object.entries(counts ?? {}).map(([k, v]) => [k, Number(v)]))).toEqual({ records: total, links: total, pulls: total, events: total })
  }, 300_000)

  it("cancel stops a running backfill: no page commits after it", async () => {
    const res = await api("POST", "/v1/tenants/hist/connections/hist-qbo/backfills", { entities: ["contact"], pageSize: 20 })
    expect(res.status).toBe(202)
    const id = res.body.backfills[0].id as string
    const cancelled = await api("POST", `/v1/tenants/hist/backfills/${id}/cancel`)
    expect(cancelled.status).toBe(200)
    expect(cancelled.body.status).toBe("cancelled")
    const at = cancelled.body.pages as number
    await new Promise((r) => setTimeout(r, 2000))
    const later = (await api("GET", `/v1/tenants/hist/backfills/${id}`)).body
    expect(later.status).toBe("cancelled")
    expect(later.pages).toBe(at)
    // Cancelling twice is refused, naming the state.
    const again = await api("POST", `/v1/tenants/hist/backfills/${id}/cancel`)
    expect(again.status).toBe(409)
    expect(again.body.message).toContain("cancelled")
  }, 120_000)
})
