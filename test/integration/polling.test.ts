/**
 * Adaptive polling against real Postgres and NATS: changes of entities
 * without webhooks arrive by polling; the interval shrinks under changes and
 * grows when quiet (seen through the status API); a paused connection is not
 * polled; the cursor survives a restart (nothing lost, nothing published
 * twice); and an accountant's edit in the QuickBooks sandbox whose webhook is
 * dropped is found by the safety poll and reaches the app.
 */
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import { QuickBooks } from "@concord/providers/quickbooks/Adapter"
import { Effect, Exit, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { connect, type JetStreamManager } from "nats"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { freshDatabase, natsUrl, servicesAvailable, uniqueName } from "../support/services.ts"

const memoryApp = { app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } }
/** `xs` is `of` with some elements left out, and starts and ends as `of` does. */
const subsequence = (xs: ReadonlyArray<number>, of: ReadonlyArray<number>): boolean => {
  let i = 0
  for (const x of xs) {
    while (i < of.length && of[i] !== x) i++
    if (i === of.length) return false
  }
  return xs[0] === of[0] && xs.at(-1) === of.at(-1)
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const tenantYaml = (tenant: string, provider: string, polling: string, entities = "account: { direction: pull }") => `
version: 1
tenant: ${tenant}
connections:
  - id: ${tenant}-conn
    provider: ${provider}
    entities:
      ${entities}
    polling: ${polling}
`

const setUp = async (engine: TestEngine, tenant: string, provider: string, polling: string, accountId = "memory-account", tokens = { accessToken: "at", refreshToken: "rt", expiresIn: 3600 }, entities?: string) => {
  const put = await engine.call("PUT", `/v1/tenants/${tenant}`, { key: engine.adminKey, raw: tenantYaml(tenant, provider, polling, entities), headers: { "content-type": "application/yaml" } })
  expect(put.status, JSON.stringify(put.body)).toBe(200)
  const creds = await engine.call("PUT", `/v1/tenants/${tenant}/connections/${tenant}-conn/credentials`, { key: engine.adminKey, body: { accountId, ...tokens } })
  expect(creds.status, JSON.stringify(creds.body)).toBe(200)
}

const status = async (engine: TestEngine, tenant: string) => {
  const r = await engine.call("GET", `/v1/tenants/${tenant}/connections/${tenant}-conn`, { key: engine.adminKey })
  expect(r.status).toBe(200)
  return r.body
}

/** Pull audit rows (the app took the provider's change) by external id. */
const pulls = async (engine: TestEngine, tenant: string, entity = "account"): Promise<Map<string, number>> => {
  const r = await engine.call("GET", `/v1/tenants/${tenant}/audit?entity=${entity}&limit=1000`, { key: engine.adminKey })
  const out = new Map<string, number>()
  for (const row of r.body as Array<{ action: string; detail: { externalId?: string } }>) {
    if (row.action !== "pull" || row.detail.externalId === undefined) continue
    out.set(row.detail.externalId, (out.get(row.detail.externalId) ?? 0) + 1)
  }
  return out
}

/** Messages the poller published to CONCORD_IN for a tenant, by external id. */
const polledMessages = async (jsm: JetStreamManager, prefix: string, tenant: string): Promise<Map<string, number>> => {
  const stream = `${prefix.toUpperCase()}_CONCORD_IN`
  const info = await jsm.streams.info(stream)
  const out = new Map<string, number>()
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined)
    if (m === undefined || !m.subject.includes(`.in.${tenant}.`) || !m.subject.endsWith(".poll")) continue
    const body = m.json<{ externalId: string }>()
    out.set(body.externalId, (out.get(body.externalId) ?? 0) + 1)
  }
  return out
}

describe.skipIf(!servicesAvailable)("adaptive polling (real Postgres and NATS)", () => {
  describe("a provider whose entities have no webhooks", () => {
    let engine: TestEngine
    const busy = makeMemoryProvider({ id: "membusy", webhooks: false })
    const still = makeMemoryProvider({ id: "memstill", webhooks: false })

    beforeAll(async () => {
      engine = await startEngine({
        providers: [{ provider: busy.provider, app: memoryApp }, { provider: still.provider, app: memoryApp }],
        env: { CONCORD_POLL_DISCOVERY_MS: "200" }
      })
      await setUp(engine, "busy", "membusy", "{ floor: 200ms, ceiling: 2s }")
      await setUp(engine, "still", "memstill", "{ floor: 200ms, ceiling: 1s }")
      expect((await engine.call("POST", "/v1/tenants/still/connections/still-conn/pause", { key: engine.adminKey, body: {} })).status).toBe(200)
    }, 120_000)

    afterAll(async () => {
      await engine?.stop()
    })

    it("brings an accountant's new record and edit to the app by polling, and shows the polling state", async () => {
      const ext = busy.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
      await eventually(async () => ((await pulls(engine, "busy")).get(ext) === 1 ? true : undefined))
      busy.accountant.edit("account", ext, { name: "Sales (retail)" })
      await eventually(async () => ((await pulls(engine, "busy")).get(ext) === 2 ? true : undefined))
      const polling = (await status(engine, "busy")).polling
      expect(polling).toMatchObject({ entities: ["account"], safetyEntities: [], floorMs: 200, ceilingMs: 2000, lastError: null })
      expect(polling.polls).toBeGreaterThan(0)
      expect(polling.lastPollAt).not.toBeNull()
    })

    it("polls a busy connection at its floor and a quiet one at its ceiling", async () => {
      const ext = busy.accountant.create("account", { id: "x", code: "4100", name: "Tips", type: "revenue", status: "active" })
      const observed: Array<number> = []
      const watch = async (until: (p: { intervalMs: number; lastChanges: number | null }) => boolean, everyMs: number, act?: () => void) =>
        eventually(async () => {
          act?.()
          const p = (await status(engine, "busy")).polling
          if (observed.at(-1) !== p.intervalMs) observed.push(p.intervalMs)
          return until(p) ? p : undefined
        }, 30_000, everyMs)
      // Quiet first: it backs off to the ceiling.
      await watch((p) => p.intervalMs === 2000 && p.lastChanges === 0, 100)
      // The accountant gets busy: every poll finds changes, and the interval comes down to the floor.
      let edits = 0
      const floor = await watch((p) => p.intervalMs === 200, 50, () => busy.accountant.edit("account", ext, { name: `Tips ${edits++}` }))
      expect(floor.lastChanges).toBeGreaterThan(0)
      // Quiet again: back to the ceiling.
      const quiet = await watch((p) => p.intervalMs === 2000, 100)
      expect(quiet.lastChanges).toBe(0)
      // Down by halves from the ceiling to the floor, then up by half to the ceiling, never outside
      // (a sample may miss a step, never show another value).
      const top = observed.indexOf(2000)
      const bottom = observed.indexOf(200, top)
      expect(subsequence(observed.slice(top, bottom + 1), [2000, 1000, 500, 250, 200])).toBe(true)
      expect(subsequence(observed.slice(bottom), [200, 300, 450, 675, 1013, 1520, 2000])).toBe(true)
      // The app has the accountant's last edit.
      const finalName = `Tips ${edits - 1}`
      await eventually(async () => {
        const rows = await engine.call("GET", `/v1/tenants/busy/audit?entity=account&limit=1000`, { key: engine.adminKey })
        const row = (rows.body as Array<{ action: string; recordId: string; detail: { externalId?: string } }>).find((r) => r.action === "pull" && r.detail.externalId === ext)
        if (row === undefined) return undefined
        const record = await engine.call("GET", `/v1/tenants/busy/records/account/${row.recordId}`, { key: engine.adminKey })
        if (process.env.DEBUG_POLL) console.log("record", JSON.stringify(record.body?.record))
        return record.body?.record?.name === finalName ? true : undefined
      })
    })

    it("does not poll a paused connection, and catches up when it is resumed", async () => {
      const before = (await status(engine, "still")).polling?.polls ?? 0
      const ext = still.accountant.create("account", { id: "x", code: "5000", name: "Rent", type: "expense", status: "active" })
      // Several ceilings pass while paused.
      await sleep(3000)
      const paused = await status(engine, "still")
      expect(paused.status).toBe("paused")
      expect(paused.polling?.polls ?? 0).toBe(before)
      expect((await pulls(engine, "still")).get(ext)).toBeUndefined()
      expect((await engine.call("POST", "/v1/tenants/still/connections/still-conn/resume", { key: engine.adminKey })).status).toBe(200)
      await eventually(async () => ((await pulls(engine, "still")).get(ext) === 1 ? true : undefined))
      await eventually(async () => ((await status(engine, "still")).polling.polls > before ? true : undefined))
    })
  })

  describe("a restarted node", () => {
    it("resumes from the committed cursor: no change lost, none published or applied twice", async () => {
      const mem = makeMemoryProvider({ id: "memrestart", webhooks: false })
      const db = await freshDatabase()
      const prefix = uniqueName("t").toLowerCase()
      const options = { providers: [{ provider: mem.provider, app: memoryApp }], env: { CONCORD_POLL_DISCOVERY_MS: "200" }, database: db, natsPrefix: prefix }
      const nc = await connect({ servers: natsUrl })
      const jsm = await nc.jetstreamManager()
      try {
        const first = await startEngine(options)
        await setUp(first, "restart", "memrestart", "{ floor: 200ms, ceiling: 1s }")
        const a = mem.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
        const c = mem.accountant.create("account", { id: "x", code: "1210", name: "Clearing", type: "current_asset", status: "active" })
        await eventually(async () => {
          const p = await pulls(first, "restart")
          return p.get(a) === 1 && p.get(c) === 1 ? true : undefined
        })
        const pollsBefore = (await status(first, "restart")).polling.polls
        await first.runtime.dispose()

        // While the node is down the accountant edits one record and adds another.
        mem.accountant.edit("account", a, { name: "Sales (all channels)" })
        const b = mem.accountant.create("account", { id: "x", code: "2200", name: "Sales tax", type: "current_liability", status: "active" })

        const second = await startEngine(options)
        try {
          await eventually(async () => {
            const p = await pulls(second, "restart")
            return p.get(a) === 2 && p.get(b) === 1 ? true : undefined
          })
          // A few more polls after catching up: still nothing new. A finished poll is recorded in the
          // poller's next batched write (up to a tick after its changes are published), so the count
          // the status reports is awaited, not read at once.
          const caughtUp = await eventually(async () => {
            const polls = (await status(second, "restart")).polling.polls
            return polls > pollsBefore ? polls : undefined
          })
          await eventually(async () => ((await status(second, "restart")).polling.polls >= caughtUp + 3 ? true : undefined))
          const p = await pulls(second, "restart")
          expect(Object.fromEntries(p)).toEqual({ [a]: 2, [b]: 1, [c]: 1 })
          // The record nobody touched since the first node polled it was not published again.
          const published = await polledMessages(jsm, prefix, "restart")
          expect(published.get(c)).toBe(1)
          expect(published.get(b)).toBe(1)
          expect(published.get(a)).toBe(2)
        } finally {
          await second.stop()
        }
      } finally {
        await nc.close()
      }
    })
  })

  describe("QuickBooks with webhooks that get lost", () => {
    let engine: TestEngine
    const scope = Effect.runSync(Scope.make())
    let qbo: QuickBooksSandbox.QuickBooksSandbox

    beforeAll(async () => {
      qbo = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
      engine = await startEngine({
        providers: [{
          provider: QuickBooks,
          app: {
            app: { clientId: qbo.clientId, clientSecret: Redacted.make(qbo.clientSecret), redirectUri: "http://unused/quickbooks", endpoints: qbo.endpoints },
            webhookSecret: Redacted.make(qbo.webhookSecret),
            apiUrl: qbo.baseUrl,
            unlimited: true
          }
        }],
        env: { CONCORD_POLL_DISCOVERY_MS: "200" }
      })
      qbo.setWebhookUrl(`${engine.url}/webhooks/quickbooks`)
      const tokens = qbo.issueTokens()
      await setUp(engine, "lost", "quickbooks", "{ floor: 1s, ceiling: 5s, safety: 2s }", qbo.realmId, {
        accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresIn: tokens.expires_in
      }, "contact: { direction: both }")
    }, 120_000)

    afterAll(async () => {
      await engine?.stop()
      await Effect.runPromise(Scope.close(scope, Exit.void))
    })

    /** A query on the engine's database. */
    const sql = <A extends object>(run: (sql: SqlClient.SqlClient) => Effect.Effect<ReadonlyArray<A>, unknown>) =>
      engine.runtime.runPromise(Effect.flatMap(SqlClient.SqlClient, run) as Effect.Effect<ReadonlyArray<A>, never, never>)

    it("finds an accountant's edit whose webhook was dropped with the safety poll, and the app gets it", async () => {
      const key = (await engine.call("POST", "/v1/tenants/lost/keys", { key: engine.adminKey, body: {} })).body.key as string
      const put = await engine.call("PUT", "/v1/tenants/lost/records/contact/c-1", { key, body: { name: "Ada Lovelace", roles: ["customer"], email: "ada@example.com", status: "active" } })
      expect(put.status).toBe(202)
      const ext = await eventually(async () => {
        const r = await engine.call("GET", "/v1/tenants/lost/records/contact/c-1", { key })
        return r.body?.sync?.[0]?.externalId as string | undefined
      })
      const polling = await eventually(async () => (await status(engine, "lost")).polling)
      expect(polling).toMatchObject({ entities: [], safetyEntities: ["contact"], safetyMs: 2000 })

      // Every webhook is lost from now on.
      await qbo.webhooksIdle()
      qbo.setWebhookFaults({ dropRate: 1 })
      const delivered = qbo.webhookLog().length
      qbo.accountantEdit(qbo.realmId, "contact", ext, { PrimaryEmailAddr: { Address: "ada@analytical.example" } })
      await qbo.webhooksIdle()
      expect(qbo.webhookLog().length).toBe(delivered)

      const record = await eventually(async () => {
        const r = await engine.call("GET", "/v1/tenants/lost/records/contact/c-1", { key })
        return r.body?.record?.email === "ada@analytical.example" ? r.body : undefined
      }, 30_000, 200)
      expect(record.record.name).toBe("Ada Lovelace")
      const audit = await engine.call("GET", "/v1/tenants/lost/audit?entity=contact&recordId=c-1&limit=100", { key })
      expect((audit.body as Array<{ action: string; actor: string }>).filter((r) => r.action === "pull" && r.actor === "quickbooks")).toHaveLength(1)
    })

    it("moves a quiet connection's change-feed cursor forward with every poll (QuickBooks' feed reaches back 30 days only)", async () => {
      const cursor = async () =>
        (await sql<{ cursor: string }>((s) => s`SELECT cursor FROM sync_cursors WHERE connection_id = 'lost-conn' AND name = 'poll:safety'`))[0]?.cursor
      const pollsNow = async () => (await status(engine, "lost")).polling.polls as number
      const start = await eventually(cursor)
      const polls = await pollsNow()
      // Two more safety polls that find nothing: the stored cursor has moved past where it was.
      await eventually(async () => ((await pollsNow()) >= polls + 2 ? true : undefined), 30_000, 200)
      const later = await eventually(async () => {
        const c = await cursor()
        return c !== undefined && c !== start ? c : undefined
      }, 10_000, 200)
      expect(Date.parse(later)).toBeGreaterThan(Date.parse(start))
    })

    it("resumed after more than QuickBooks' 30-day feed, a connection is reconciled once (trigger feed_gap), every entity, and the accountant's edit arrives", async () => {
      const key = (await engine.call("POST", "/v1/tenants/lost/keys", { key: engine.adminKey, body: {} })).body.key as string
      const ext = (await engine.call("GET", "/v1/tenants/lost/records/contact/c-1", { key })).body.sync[0].externalId as string
      const gapRuns = async () => {
        const r = await engine.call("GET", "/v1/tenants/lost/drift/runs?connection=lost-conn", { key })
        expect(r.status).toBe(200)
        return (r.body as Array<{ trigger: string; requestedBy: string; status: string; entities: Array<string> }>).filter((run) => run.trigger === "feed_gap")
      }
      expect(await gapRuns()).toEqual([])
      // Currencies have no webhooks: polled adaptively, so both of the connection's feeds skip.
      const put = await engine.call("PUT", "/v1/tenants/lost", {
        key: engine.adminKey,
        raw: tenantYaml("lost", "quickbooks", "{ floor: 1s, ceiling: 5s, safety: 2s }", "contact: { direction: both }\n      currency: { direction: pull }"),
        headers: { "content-type": "application/yaml" }
      })
      expect(put.status, JSON.stringify(put.body)).toBe(200)
      await eventually(async () => ((await status(engine, "lost")).polling?.entities?.includes("currency") ? true : undefined))

      expect((await engine.call("POST", "/v1/tenants/lost/connections/lost-conn/pause", { key: engine.adminKey, body: {} })).status).toBe(200)
      // Paused for 40 days, as far as the stored cursors can tell (a poll that was running as it paused may write
      // its cursor after us: set them until they stay).
      const fortyDaysAgo = new Date(Date.now() - 40 * 86_400_000).toISOString()
      await eventually(async () => {
        await sql((s) => s`
          INSERT INTO sync_cursors (connection_id, name, cursor, updated_at)
          VALUES ('lost-conn', 'poll', ${fortyDaysAgo}, now()), ('lost-conn', 'poll:safety', ${fortyDaysAgo}, now())
          ON CONFLICT (connection_id, name) DO UPDATE SET cursor = EXCLUDED.cursor`)
        await sleep(1500)
        const rows = await sql<{ cursor: string }>((s) => s`SELECT cursor FROM sync_cursors WHERE connection_id = 'lost-conn' AND name IN ('poll', 'poll:safety')`)
        return rows.length === 2 && rows.every((r) => r.cursor === fortyDaysAgo) ? true : undefined
      }, 20_000, 0)
      qbo.setWebhookFaults({ dropRate: 1 })
      qbo.accountantEdit(qbo.realmId, "contact", ext, { PrimaryEmailAddr: { Address: "ada@returned.example" } })
      await qbo.webhooksIdle()

      expect((await engine.call("POST", "/v1/tenants/lost/connections/lost-conn/resume", { key: engine.adminKey })).status).toBe(200)
      const [run] = await eventually(async () => {
        const runs = await gapRuns()
        return runs.length > 0 && runs.every((r) => r.status !== "running") ? runs : undefined
      }, 30_000, 200)
      expect(run).toMatchObject({ trigger: "feed_gap", requestedBy: "poller", status: "completed" })
      expect([...(run?.entities ?? [])].sort()).toEqual(["contact", "currency"])
      await eventually(async () => {
        const r = await engine.call("GET", "/v1/tenants/lost/records/contact/c-1", { key })
        return r.body?.record?.email === "ada@returned.example" ? true : undefined
      }, 30_000, 200)
      // The cursor is inside the window again, and later polls start no other run.
      const polls = (await status(engine, "lost")).polling.polls as number
      await eventually(async () => ((await status(engine, "lost")).polling.polls >= polls + 2 ? true : undefined), 30_000, 200)
      const stored = await sql<{ cursor: string }>((s) => s`SELECT cursor FROM sync_cursors WHERE connection_id = 'lost-conn' AND name IN ('poll', 'poll:safety')`)
      expect(stored).toHaveLength(2)
      for (const c of stored) expect(Date.parse(c.cursor)).toBeGreaterThan(Date.now() - 30 * 86_400_000)
      expect(await gapRuns()).toHaveLength(1)
    })
  })
})
