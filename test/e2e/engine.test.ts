/**
 * The engine end to end: real Postgres, real NATS, both provider sandboxes
 * over HTTP, the whole node in-process. 500 app changes and 100 accountant
 * edits; every record converges on both sides; one conflicting field is raised
 * for review and resolved through the API; no duplicates in the sandboxes;
 * every change has an audit row; the audit chain verifies.
 */
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import * as XeroSandbox from "@concord/providers/xero/Sandbox"
import { QuickBooks } from "@concord/providers/quickbooks/Adapter"
import { Xero } from "@concord/providers/xero/Adapter"
import { Effect, Exit, Redacted, Scope } from "effect"
import { connect } from "nats"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { natsUrl, servicesAvailable } from "../support/services.ts"

type Sandbox = QuickBooksSandbox.QuickBooksSandbox | XeroSandbox.XeroSandboxHandle

const tenantYaml = (tenant: string, connection: string, provider: string) => `
version: 1
tenant: ${tenant}
connections:
  - id: ${connection}
    provider: ${provider}
    entities:
      account: { direction: pull }
      contact: { direction: both, policy: review }
      invoice: { direction: both, policy: review }
`

interface Side {
  readonly tenant: string
  readonly connection: string
  readonly provider: "quickbooks" | "xero"
  readonly sandbox: Sandbox
  /** The provider field an accountant edits, and the canonical field it maps to. */
  readonly wireField: string
  readonly field: "memo" | "reference"
  readonly revenue: string
  key: string
}

const scale = Number(process.env.E2E_SCALE ?? 1)
const CONTACTS = Math.round(25 * scale)
const INVOICES = Math.round(150 * scale)
const UPDATES = Math.round(75 * scale)
const EDITS = Math.round(50 * scale)

describe.skipIf(!servicesAvailable)("engine end to end with both sandboxes", () => {
  let engine: TestEngine
  const scope = Effect.runSync(Scope.make())
  let sides: Array<Side> = []
  const accepted: Array<{ tenant: string; operationId: string }> = []

  beforeAll(async () => {
    const qbo = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    const xero = await Effect.runPromise(XeroSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    const app = (s: Sandbox, provider: string) => ({
      app: { clientId: s.clientId, clientSecret: Redacted.make(s.clientSecret), redirectUri: `http://unused/${provider}`, endpoints: s.endpoints },
      webhookSecret: Redacted.make(s.webhookSecret),
      apiUrl: s.baseUrl,
      unlimited: true
    })
    engine = await startEngine({
      providers: [{ provider: QuickBooks, app: app(qbo, "quickbooks") }, { provider: Xero, app: app(xero, "xero") }],
      env: { CONCORD_GAUGE_INTERVAL_MS: "200" }
    })
    qbo.setWebhookUrl(`${engine.url}/webhooks/quickbooks`)
    xero.setWebhookUrl(`${engine.url}/webhooks/xero`)
    sides = [
      { tenant: "e2e-qbo", connection: "e2e-qbo-conn", provider: "quickbooks", sandbox: qbo, wireField: "PrivateNote", field: "memo", revenue: "4000", key: "" },
      { tenant: "e2e-xero", connection: "e2e-xero-conn", provider: "xero", sandbox: xero, wireField: "Reference", field: "reference", revenue: "200", key: "" }
    ]
    for (const s of sides) {
      expect((await engine.call("PUT", `/v1/tenants/${s.tenant}`, { key: engine.adminKey, raw: tenantYaml(s.tenant, s.connection, s.provider), headers: { "content-type": "application/yaml" } })).status).toBe(200)
      const tokens = s.sandbox.issueTokens()
      const creds = await engine.call("PUT", `/v1/tenants/${s.tenant}/connections/${s.connection}/credentials`, {
        key: engine.adminKey,
        body: { accountId: s.sandbox.accounts[0], accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresIn: tokens.expires_in }
      })
      expect(creds.status).toBe(200)
      s.key = (await engine.call("POST", `/v1/tenants/${s.tenant}/keys`, { key: engine.adminKey, body: {} })).body.key
    }
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  const put = async (s: Side, entity: string, id: string, body: Record<string, unknown>) => {
    const r = await engine.call("PUT", `/v1/tenants/${s.tenant}/records/${entity}/${id}`, { key: s.key, body })
    expect(r.status, JSON.stringify(r.body)).toBe(202)
    accepted.push({ tenant: s.tenant, operationId: r.body.operationId })
  }

  const invoice = (s: Side, i: number, value: string) => ({
    contactId: `c-${i % CONTACTS}`,
    date: "2026-03-01",
    dueDate: "2026-03-31",
    currency: "USD",
    lineAmountTypes: s.provider === "xero" ? "no_tax" : "exclusive",
    lines: [{ description: `Coffee beans #${i}`, amount: 1000 + i, accountId: s.revenue }],
    status: "authorised",
    [s.field]: value
  })

  /** App updates besides inv-0's (the QuickBooks side spends one of its 75 on the conflict). */
  const updatesOf = (s: Side) => UPDATES - (s.provider === "quickbooks" ? 1 : 0)

  /** Nothing left in flight: every operation answered, the consumer drained, webhooks delivered. */
  const quiesce = async () => {
    const pending = new Set(accepted.map((a) => a.operationId))
    await eventually(async () => {
      for (const { tenant, operationId } of accepted) {
        if (!pending.has(operationId)) continue
        const key = sides.find((s) => s.tenant === tenant)?.key ?? ""
        const op = await engine.call("GET", `/v1/operations/${operationId}`, { key })
        if (op.body.status === "accepted") return undefined
        pending.delete(operationId)
      }
      return true
    }, 240_000, 250).catch(async (e) => {
      const sample = [...pending].slice(0, 3)
      throw new Error(`${pending.size} operations still pending (e.g. ${sample.join(", ")}): ${String(e)}`)
    })
    const nc = await connect({ servers: natsUrl })
    try {
      const jsm = await nc.jetstreamManager()
      const stream = `${engine.natsPrefix.toUpperCase()}_CONCORD_IN`
      const consumer = `${engine.natsPrefix.toUpperCase()}_concord-engine`
      let quietSince = 0
      let last = ""
      await eventually(async () => {
        const info = await jsm.consumers.info(stream, consumer)
        last = `pending ${info.num_pending}, ack pending ${info.num_ack_pending}, redelivered ${info.num_redelivered}`
        const idle = info.num_pending === 0 && info.num_ack_pending === 0
        if (!idle) quietSince = 0
        else if (quietSince === 0) quietSince = Date.now()
        return idle && Date.now() - quietSince > 1500 ? true : undefined
      }, 240_000, 250).catch((e) => {
        throw new Error(`the inbound consumer did not drain (${last}): ${String(e)}`)
      })
    } finally {
      await nc.close()
    }
  }

  const linkOf = async (s: Side, entity: string, id: string): Promise<string> => {
    const r = await engine.call("GET", `/v1/tenants/${s.tenant}/records/${entity}/${id}`, { key: s.key })
    return r.body.sync[0].externalId
  }

  it("converges 500 app changes and 100 accountant edits, raises one conflict and resolves it through the API", async () => {
    // 1. The app creates contacts and invoices: 2 × (25 + 150) = 350 changes.
    for (const s of sides) {
      for (let i = 0; i < CONTACTS; i++) await put(s, "contact", `c-${i}`, { name: `Customer ${i}`, roles: ["customer"], email: `c${i}@example.com`, status: "active" })
      await Promise.all(Array.from({ length: INVOICES }, (_, i) => put(s, "invoice", `inv-${i}`, invoice(s, i, `created ${i}`))))
    }
    await quiesce()

    // 2. The QuickBooks connection is paused; meanwhile the app and the accountant change the same field of inv-0.
    const qbo = sides[0] as Side
    expect((await engine.call("POST", `/v1/tenants/${qbo.tenant}/connections/${qbo.connection}/pause`, { key: qbo.key, body: {} })).status).toBe(200)
    const inv0 = await linkOf(qbo, "invoice", "inv-0")
    qbo.sandbox.accountantEdit(qbo.sandbox.accounts[0] as string, "invoice", inv0, { PrivateNote: "accountant's note" })
    await put(qbo, "invoice", "inv-0", invoice(qbo, 0, "app's note"))
    // Both changes are parked while the connection is paused.
    await eventually(async () => {
      const c = await engine.call("GET", `/v1/tenants/${qbo.tenant}/connections/${qbo.connection}`, { key: qbo.key })
      return c.body.parked >= 1 && c.body.status === "paused" ? true : undefined
    })
    await qbo.sandbox.webhooksIdle()

    // 3. Then 2 × 75 = 150 app updates (inv-76…149 and, for QuickBooks, inv-0 above), and 2 × 50 = 100 accountant edits on other invoices (inv-1…50).
    for (const s of sides) {
      const updates = Array.from({ length: updatesOf(s) }, (_, k) => INVOICES - updatesOf(s) + k)
      await Promise.all(updates.map((i) => put(s, "invoice", `inv-${i}`, invoice(s, i, `updated by the app ${i}`))))
      for (let i = 1; i <= EDITS; i++) {
        const ext = await linkOf(s, "invoice", `inv-${i}`)
        s.sandbox.accountantEdit(s.sandbox.accounts[0] as string, "invoice", ext, { [s.wireField]: `edited by the accountant ${i}` })
      }
    }
    const resume = await engine.call("POST", `/v1/tenants/${qbo.tenant}/connections/${qbo.connection}/resume`, { key: qbo.key })
    expect(resume.status).toBe(200)
    expect(resume.body.resynced).toBeGreaterThan(0)
    await quiesce()
    expect(accepted.length).toBe(2 * (CONTACTS + INVOICES + UPDATES))

    // 4. Exactly one conflict, on inv-0's memo, with both values; neither side was overwritten.
    const conflicts = await engine.call("GET", `/v1/tenants/${qbo.tenant}/conflicts`, { key: qbo.key })
    if (conflicts.body.length !== 1) {
      const trail = await engine.call("GET", `/v1/tenants/${qbo.tenant}/audit?recordId=inv-0&limit=100`, { key: qbo.key })
      console.log(JSON.stringify(trail.body.map((r: { action: string; actor: string; detail: unknown }) => [r.action, r.actor, r.detail]), null, 1))
    }
    expect(conflicts.body).toHaveLength(1)
    expect(conflicts.body[0]).toMatchObject({ recordId: "inv-0", path: "memo", app: "app's note", provider: "accountant's note", status: "open" })
    expect((await engine.call("GET", `/v1/tenants/e2e-xero/conflicts`, { key: sides[1]?.key ?? "" })).body).toHaveLength(0)
    // The conflict is counted and ages in the metrics.
    const gauge = async (name: string, provider: string) => {
      const text = String((await engine.call("GET", "/metrics")).body)
      const line = text.split("\n").find((l) => l.startsWith(`${name}{`) && l.includes(`provider="${provider}"`))
      return line === undefined ? undefined : Number(line.split(" ").at(-1))
    }
    await eventually(async () => ((await gauge("concord_conflicts_open", "quickbooks")) === 1 ? true : undefined))
    await eventually(async () => ((await gauge("concord_conflicts_oldest_age_seconds", "quickbooks")) ?? 0) > 0 ? true : undefined)
    expect(await gauge("concord_conflicts_open", "xero")).toBe(0)
    expect(await gauge("concord_conflicts_opened_total", "quickbooks")).toBe(1)
    const metricsText = String((await engine.call("GET", "/metrics")).body)
    for (const provider of ["quickbooks", "xero"]) {
      const calls = metricsText.split("\n").find((l) => l.startsWith("concord_provider_calls_total{") && l.includes(`provider="${provider}"`) && l.includes(`status="200"`))
      expect(Number(calls?.split(" ").at(-1) ?? 0), `${provider} calls in /metrics`).toBeGreaterThan(0)
    }
    const resolved = await engine.call("POST", `/v1/tenants/${qbo.tenant}/conflicts/${conflicts.body[0].id}/resolve`, { key: qbo.key, body: { resolution: "provider" } })
    expect(resolved.status, JSON.stringify(resolved.body)).toBe(200)
    expect(resolved.body.conflict.status).toBe("resolved")
    // Deciding twice is a 409 that says so, not a 503.
    const again = await engine.call("POST", `/v1/tenants/${qbo.tenant}/conflicts/${conflicts.body[0].id}/resolve`, { key: qbo.key, body: { resolution: "app" } })
    expect(again.status, JSON.stringify(again.body)).toBe(409)
    expect((await engine.call("GET", `/v1/tenants/no-such-tenant/conflicts`, { key: engine.adminKey })).status).toBe(404)
    await eventually(async () => ((await gauge("concord_conflicts_open", "quickbooks")) === 0 ? true : undefined))
    await quiesce()
    expect((await engine.call("GET", `/v1/tenants/${qbo.tenant}/records/invoice/inv-0`, { key: qbo.key })).body.record.memo).toBe("accountant's note")

    // 5. Every record converges: the provider holds what the app holds, and no record exists twice.
    for (const s of sides) {
      const account = s.sandbox.accounts[0] as string
      const wire = new Map(s.sandbox.records(account, "invoice").map((r) => [String(r.Id ?? r.InvoiceID), r]))
      expect(wire.size).toBe(INVOICES)
      expect(s.sandbox.records(account, "contact").filter((r) => String(r.DisplayName ?? r.Name).startsWith("Customer ")).length).toBe(CONTACTS)
      const page = await engine.call("GET", `/v1/tenants/${s.tenant}/records/invoice?limit=1000`, { key: s.key })
      expect(page.body.items).toHaveLength(INVOICES)
      const externalIds = new Set<string>()
      for (const item of page.body.items) {
        const sync = item.sync[0]
        expect(sync.status, `${s.tenant} ${item.id}: ${JSON.stringify(sync.lastError)}`).toBe("synced")
        externalIds.add(sync.externalId)
        const w = wire.get(sync.externalId)
        expect(w, `${item.id} exists at ${s.provider}`).toBeDefined()
        const i = Number(String(item.id).slice(4))
        const expected = i === 0 && s === qbo
          ? "accountant's note"
          : i >= 1 && i <= EDITS ? `edited by the accountant ${i}` : i >= INVOICES - updatesOf(s) ? `updated by the app ${i}` : `created ${i}`
        expect(item.record[s.field], `${s.tenant} ${item.id} in the app`).toBe(expected)
        expect(w?.[s.wireField], `${s.tenant} ${item.id} at ${s.provider}`).toBe(expected)
      }
      expect(externalIds.size).toBe(INVOICES)
    }

    // 6. Every accepted change and every accountant edit is in the audit log, and the chains verify.
    for (const s of sides) {
      const rows: Array<{ action: string; correlationId: string | null; recordId: string | null }> = []
      for (let after = 0; ;) {
        const page = await engine.call("GET", `/v1/tenants/${s.tenant}/audit?after=${after}&limit=1000`, { key: s.key })
        if (page.body.length === 0) break
        rows.push(...page.body)
        after = page.body.at(-1).seq
      }
      const correlations = new Set(rows.filter((r) => r.action === "app_change").map((r) => r.correlationId))
      for (const a of accepted.filter((x) => x.tenant === s.tenant)) expect(correlations.has(a.operationId), a.operationId).toBe(true)
      const pulled = new Set(rows.filter((r) => r.action === "pull" && r.recordId?.startsWith("inv-")).map((r) => r.recordId))
      for (let i = 1; i <= EDITS; i++) expect(pulled.has(`inv-${i}`), `pull of inv-${i}`).toBe(true)
      const verify = await engine.call("GET", `/v1/tenants/${s.tenant}/audit/verify`, { key: s.key })
      expect(verify.body).toMatchObject({ ok: true })
    }

    // 7. The accountant's edits went out to the app as concord.changes events.
    const nc = await connect({ servers: natsUrl })
    try {
      const jsm = await nc.jetstreamManager()
      const events = `${engine.natsPrefix.toUpperCase()}_CONCORD_EVENTS`
      const subject = `${engine.natsPrefix}.concord.changes.e2e-xero.xero.invoice`
      const info = await jsm.streams.info(events, { subjects_filter: subject })
      expect(info.state.subjects?.[subject] ?? 0).toBeGreaterThanOrEqual(EDITS)
    } finally {
      await nc.close()
    }
  }, 600_000)
})
