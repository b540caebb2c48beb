/**
 * Crash recovery: the engine (a child process) is killed with SIGKILL between
 * the provider write and the commit, between the commit and the JetStream ack,
 * and between the outbox publish and marking it published; restarted, it
 * neither loses nor duplicates a write or an event.
 */
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import { Effect, Exit, Scope } from "effect"
import { connect } from "nats"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { callApi, type ChildEngine, startChild, sandboxEnv } from "../support/child-engine.ts"
import { eventually } from "../support/engine.ts"
import { deleteStreams, freshDatabase, natsUrl, servicesAvailable, uniqueName } from "../support/services.ts"

const tenant = `
version: 1
tenant: crash
connections:
  - id: crash-qbo
    provider: quickbooks
    entities:
      account: { direction: pull }
      contact: { direction: both }
      invoice: { direction: both }
`

describe.skipIf(!servicesAvailable)("crash recovery (SIGKILL at injected points)", () => {
  const scope = Effect.runSync(Scope.make())
  let sandbox: QuickBooksSandbox.QuickBooksSandbox
  let db: Awaited<ReturnType<typeof freshDatabase>>
  const prefix = uniqueName("crash").toLowerCase()
  let env: Record<string, string> = {}
  let engine: ChildEngine | undefined
  let port = 0

  const start = async (crashAt?: string) => {
    await engine?.kill("SIGKILL")
    engine = await startChild({
      databaseUrl: db.url,
      natsPrefix: prefix,
      ...(port === 0 ? {} : { port }),
      env: { ...env, ...(crashAt === undefined ? {} : { CONCORD_CRASH_AT: crashAt }) }
    })
    port = Number(new URL(engine.url).port)
    sandbox.setWebhookUrl(`${engine.url}/webhooks/quickbooks`)
    return engine
  }

  beforeAll(async () => {
    sandbox = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    db = await freshDatabase()
    env = {
      ...sandboxEnv(sandbox),
      // A killed node's unacknowledged messages come back after this.
      CONCORD_ACK_WAIT_MS: "3000"
    }
    const e = await start()
    expect((await callApi(e.url, "PUT", "/v1/tenants/crash", { raw: tenant, contentType: "application/yaml" })).status).toBe(200)
    const t = sandbox.issueTokens()
    expect((await callApi(e.url, "PUT", "/v1/tenants/crash/connections/crash-qbo/credentials", {
      body: { accountId: sandbox.accounts[0], accessToken: t.access_token, refreshToken: t.refresh_token, expiresIn: t.expires_in }
    })).status).toBe(200)
    await e.kill()
  }, 120_000)

  afterAll(async () => {
    await engine?.kill("SIGKILL")
    await Effect.runPromise(Scope.close(scope, Exit.void))
    await db?.drop()
    await deleteStreams(prefix.toUpperCase())
  })

  const realm = () => sandbox.accounts[0] as string
  const count = (entity: string) => sandbox.records(realm(), entity).length
  const invoice = (n: number, memo: string) => ({
    contactId: `cust-${n}`,
    date: "2026-03-01",
    dueDate: "2026-03-31",
    currency: "USD",
    lineAmountTypes: "exclusive",
    lines: [{ description: "Widget", amount: 2500 + n, accountId: "4000" }],
    status: "authorised",
    memo
  })
  const waitOperation = (url: string, id: string) =>
    eventually(async () => {
      const op = await callApi(url, "GET", `/v1/operations/${id}`)
      return op.body?.status === "accepted" ? undefined : op.body
    }, 60_000)

  for (const point of ["after-provider-write", "after-commit"] as const) {
    it(`kills the engine ${point.replace("after-", "after the ").replace("-", " ")}, restarts it, and writes nothing twice`, async () => {
      const n = point === "after-provider-write" ? 1 : 2
      const contactsBefore = count("contact")
      const invoicesBefore = count("invoice")
      const crashing = await start(point)
      const contact = await callApi(crashing.url, "PUT", `/v1/tenants/crash/records/contact/cust-${n}`, { body: { name: `Customer ${n}`, roles: ["customer"], status: "active" } })
      expect(contact.status).toBe(202)
      const inv = await callApi(crashing.url, "PUT", `/v1/tenants/crash/records/invoice/inv-${n}`, { body: invoice(n, "first") })
      expect(inv.status).toBe(202)
      // The process kills itself at the crash point.
      expect((await crashing.exited).signal).toBe("SIGKILL")
      const restarted = await start()
      expect((await waitOperation(restarted.url, contact.body.operationId)).status).toBe("succeeded")
      expect((await waitOperation(restarted.url, inv.body.operationId)).status).toBe("succeeded")
      await sandbox.webhooksIdle()
      // Exactly one contact and one invoice were written, whatever was redelivered.
      expect(count("contact")).toBe(contactsBefore + 1)
      expect(count("invoice")).toBe(invoicesBefore + 1)
      const read = await callApi(restarted.url, "GET", `/v1/tenants/crash/records/invoice/inv-${n}`)
      expect(read.body.sync[0]).toMatchObject({ status: "synced" })
      const verify = await callApi(restarted.url, "GET", "/v1/tenants/crash/audit/verify")
      expect(verify.body.ok).toBe(true)
      await restarted.kill()
    }, 180_000)
  }

  it("kills the engine after publishing events but before marking them published, and delivers each event once", async () => {
    const e = await start()
    const inv = await callApi(e.url, "PUT", "/v1/tenants/crash/records/invoice/inv-3", { body: invoice(1, "first") })
    expect((await waitOperation(e.url, inv.body.operationId)).status).toBe("succeeded")
    const ext = (await callApi(e.url, "GET", "/v1/tenants/crash/records/invoice/inv-3")).body.sync[0].externalId as string
    await e.kill()
    // The accountant's edit becomes a change event; the relay dies right after publishing it.
    const crashing = await start("after-publish")
    sandbox.accountantEdit(realm(), "invoice", ext, { PrivateNote: "fixed by the accountant" })
    expect((await crashing.exited).signal).toBe("SIGKILL")
    const restarted = await start()
    await eventually(async () => {
      const r = await callApi(restarted.url, "GET", "/v1/tenants/crash/records/invoice/inv-3")
      return r.body.record.memo === "fixed by the accountant" ? true : undefined
    }, 60_000)
    // Everything in the outbox is marked published after the restart…
    const { PgClient } = await import("@effect/sql-pg")
    const { Redacted } = await import("effect")
    const { SqlClient } = await import("effect/sql")
    const pending = await eventually(async () => {
      const n = await Effect.runPromise(Effect.gen(function*() {
        const sql = yield* SqlClient.SqlClient
        const rows = yield* sql<{ n: string }>`SELECT count(*) AS n FROM outbox WHERE published_at IS NULL`
        return Number(rows[0]?.n)
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(db.url), maxConnections: 1 }))))
      return n === 0 ? n : undefined
    }, 30_000)
    expect(pending).toBe(0)
    // …and the edit's change event is on the stream exactly once (the republish was a duplicate).
    const nc = await connect({ servers: natsUrl })
    try {
      const jsm = await nc.jetstreamManager()
      const subject = `${prefix}.concord.changes.crash.quickbooks.invoice`
      const js = nc.jetstream()
      const consumer = await jsm.consumers.add(`${prefix.toUpperCase()}_CONCORD_EVENTS`, { filter_subject: subject, ack_policy: "none" as never })
      const c = await js.consumers.get(`${prefix.toUpperCase()}_CONCORD_EVENTS`, consumer.name)
      const memos: Array<string> = []
      const iter = await c.fetch({ max_messages: 100, expires: 2000 })
      for await (const m of iter) {
        const payload = JSON.parse(new TextDecoder().decode(m.data)) as { recordId: string; changedFields: Array<string>; record?: { memo?: string } }
        if (payload.recordId === "inv-3" && payload.changedFields.includes("memo")) memos.push(payload.record?.memo ?? "")
      }
      expect(memos).toEqual(["fixed by the accountant"])
    } finally {
      await nc.close()
    }
    await restarted.kill()
  }, 180_000)
})
