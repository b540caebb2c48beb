/**
 * Full-state reconciliation end to end: real Postgres, real NATS, the
 * QuickBooks and Xero sandboxes over HTTP, the whole node in-process.
 *
 * The app syncs contacts, invoices and journals; then known drift is injected
 * straight into each sandbox (webhooks off, so nothing tells the engine) and
 * into Postgres: a deleted invoice, an edited invoice, an edited contact, a
 * duplicated invoice number, a provider-only contact, an app record never
 * pushed, an unbalanced journal (app side: the providers refuse one), and an
 * orphan link. While the run streams both sides, the app keeps pushing
 * changes and an accountant keeps editing with webhooks on. The run must
 * report exactly the injected items (and the records the sandbox was created
 * with, which the app never had) — no more, no fewer — publish
 * `concord.drift.<tenant>.<provider>`, and auto-resolve by policy: the
 * edited contact (app_wins) is re-pushed and the provider holds the app's
 * value again, the never-pushed record is created, the edited invoice
 * (review) becomes an open conflict with both values.
 */
import { QuickBooks } from "@concord/providers/quickbooks/Adapter"
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import { Xero } from "@concord/providers/xero/Adapter"
import * as XeroSandbox from "@concord/providers/xero/Sandbox"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { SqlClient } from "effect/sql"
import { connect, type NatsConnection } from "nats"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { natsUrl, servicesAvailable } from "../support/services.ts"

type Sandbox = QuickBooksSandbox.QuickBooksSandbox | XeroSandbox.XeroSandboxHandle

interface Side {
  readonly tenant: string
  readonly connection: string
  readonly provider: "quickbooks" | "xero"
  readonly sandbox: Sandbox
  readonly revenue: string
  readonly expense: string
  /** Wire names: the memo-like field of an invoice, a contact's email. */
  readonly memoField: string
  readonly field: "memo" | "reference"
  key: string
}

const tenantYaml = (s: { tenant: string; connection: string; provider: string }) => `
version: 1
tenant: ${s.tenant}
connections:
  - id: ${s.connection}
    provider: ${s.provider}
    entities:
      account: { direction: pull }
      contact: { direction: both, policy: app_wins }
      invoice: { direction: both, policy: review }
      journal_entry: { direction: push, policy: review }
    reconciliation:
      schedule: "0 3 * * *"
      entities: [contact, invoice, journal_entry]
`

const CONTACTS = 6
const INVOICES = 12

describe.skipIf(!servicesAvailable)("reconciliation reports exactly the injected drift", () => {
  let engine: TestEngine
  let nc: NatsConnection
  const scope = Effect.runSync(Scope.make())
  let sides: Array<Side> = []
  const driftEvents: Array<{ subject: string; body: any }> = []
  const accepted: Array<{ key: string; operationId: string }> = []

  const query = <A extends object>(text: string, params: ReadonlyArray<unknown> = []): Promise<ReadonlyArray<A>> =>
    Effect.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      return yield* sql.unsafe<A>(text, params as Array<unknown>)
    }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(engine.databaseUrl), maxConnections: 1 }))) as Effect.Effect<ReadonlyArray<A>, never, never>)

  beforeAll(async () => {
    const qbo = await Effect.runPromise(QuickBooksSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    const xero = await Effect.runPromise(XeroSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    const app = (s: Sandbox, provider: string) => ({
      app: { clientId: s.clientId, clientSecret: Redacted.make(s.clientSecret), redirectUri: `http://unused/${provider}`, endpoints: s.endpoints },
      webhookSecret: Redacted.make(s.webhookSecret),
      apiUrl: s.baseUrl,
      unlimited: true
    })
    engine = await startEngine({ providers: [{ provider: QuickBooks, app: app(qbo, "quickbooks") }, { provider: Xero, app: app(xero, "xero") }] })
    qbo.setWebhookUrl(`${engine.url}/webhooks/quickbooks`)
    xero.setWebhookUrl(`${engine.url}/webhooks/xero`)
    sides = [
      { tenant: "dr-qbo", connection: "dr-qbo-conn", provider: "quickbooks", sandbox: qbo, revenue: "4000", expense: "6000", memoField: "PrivateNote", field: "memo", key: "" },
      { tenant: "dr-xero", connection: "dr-xero-conn", provider: "xero", sandbox: xero, revenue: "200", expense: "400", memoField: "Reference", field: "reference", key: "" }
    ]
    for (const s of sides) {
      expect((await engine.call("PUT", `/v1/tenants/${s.tenant}`, { key: engine.adminKey, raw: tenantYaml(s), headers: { "content-type": "application/yaml" } })).status).toBe(200)
      const tokens = s.sandbox.issueTokens()
      expect((await engine.call("PUT", `/v1/tenants/${s.tenant}/connections/${s.connection}/credentials`, {
        key: engine.adminKey,
        body: { accountId: s.sandbox.accounts[0], accessToken: tokens.access_token, refreshToken: tokens.refresh_token, expiresIn: tokens.expires_in }
      })).status).toBe(200)
      s.key = (await engine.call("POST", `/v1/tenants/${s.tenant}/keys`, { key: engine.adminKey, body: {} })).body.key
    }
    nc = await connect({ servers: natsUrl })
    const sub = nc.subscribe(`${engine.natsPrefix}.concord.drift.>`)
    ;(async () => {
      for await (const m of sub) driftEvents.push({ subject: m.subject, body: m.json() })
    })()
  }, 120_000)

  afterAll(async () => {
    await nc?.close()
    await engine?.stop()
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  const put = async (s: Side, entity: string, id: string, body: Record<string, unknown>) => {
    const r = await engine.call("PUT", `/v1/tenants/${s.tenant}/records/${entity}/${id}`, { key: s.key, body })
    expect(r.status, JSON.stringify(r.body)).toBe(202)
    accepted.push({ key: s.key, operationId: r.body.operationId })
  }

  const settled = () =>
    eventually(async () => {
      for (const a of accepted) {
        const op = await engine.call("GET", `/v1/operations/${a.operationId}`, { key: a.key })
        if (op.body.status === "accepted") return undefined
      }
      return true
    }, 120_000, 200)

  const contact = (i: number, email = `c${i}@example.com`) => ({ name: `Drift customer ${i}`, roles: ["customer"], email, status: "active" })
  const invoice = (s: Side, i: number, memo: string) => ({
    number: `DR-${i}`,
    contactId: `c-${i % CONTACTS}`,
    date: "2026-03-01",
    dueDate: "2026-03-31",
    currency: "USD",
    lineAmountTypes: s.provider === "xero" ? "no_tax" : "exclusive",
    lines: [{ description: `Roasting #${i}`, amount: 2000 + i, accountId: s.revenue }],
    status: "authorised",
    [s.field]: memo
  })
  const journal = (s: Side, i: number) => ({
    number: `JE-${i}`,
    date: "2026-03-02",
    currency: "USD",
    memo: `Accrual ${i}`,
    lines: [
      { postingType: "debit", accountId: s.expense, amount: 1500 + i, description: "accrual" },
      { postingType: "credit", accountId: s.revenue, amount: 1500 + i, description: "accrual" }
    ],
    status: "posted"
  })

  const linkOf = async (s: Side, entity: string, id: string): Promise<string> =>
    (await query<{ external_id: string }>(`SELECT external_id FROM links WHERE connection_id = $1 AND entity = $2 AND record_id = $3`, [s.connection, entity, id]))[0]?.external_id ?? ""

  it("finds the injected items while live traffic flows, publishes the event, and auto-resolves by policy", async () => {
    // 1. In sync: contacts, invoices and journals created by the app.
    for (const s of sides) {
      for (let i = 0; i < CONTACTS; i++) await put(s, "contact", `c-${i}`, contact(i))
      await Promise.all(Array.from({ length: INVOICES }, (_, i) => put(s, "invoice", `inv-${i}`, invoice(s, i, `created ${i}`))))
      for (let i = 0; i < 2; i++) await put(s, "journal_entry", `je-${i}`, journal(s, i))
    }
    await settled()
    for (const s of sides) {
      const failed = await query<{ record_id: string; last_error: unknown }>(`SELECT record_id, last_error FROM sync_state WHERE connection_id = $1 AND status <> 'synced'`, [s.connection])
      expect(failed, JSON.stringify(failed)).toEqual([])
    }

    // 2. A first run on a quiet, synced connection finds only what the sandbox had before the app came.
    const baseline: Record<string, ReadonlyArray<string>> = {}
    for (const s of sides) {
      const run = await reconcile(s)
      const detail = await items(s, run.id)
      expect(detail.every((i: any) => i.kind === "missing_in_app" && i.entity === "contact" && i.recordId === null), JSON.stringify(detail, null, 1)).toBe(true)
      baseline[s.provider] = detail.map((i: any) => i.externalId as string)
    }

    // 3. Drift injected behind the engine's back: webhooks off while the sandboxes are edited.
    const expected: Record<string, Array<string>> = {}
    for (const s of sides) {
      const account = s.sandbox.accounts[0] as string
      s.sandbox.setWebhookUrl(undefined)
      const deleted = await linkOf(s, "invoice", "inv-1")
      s.sandbox.accountantDelete(account, "invoice", deleted)
      s.sandbox.accountantEdit(account, "invoice", await linkOf(s, "invoice", "inv-2"), { [s.memoField]: "changed behind our back" })
      const c1 = await linkOf(s, "contact", "c-1")
      s.sandbox.accountantEdit(account, "contact", c1, s.provider === "quickbooks" ? { PrimaryEmailAddr: { Address: "edited@example.com" } } : { EmailAddress: "edited@example.com" })
      const duplicate = insertDuplicateInvoice(s, await linkOf(s, "invoice", "inv-3"), await linkOf(s, "contact", "c-3"))
      const stray = insertContact(s, "Only in the provider")
      s.sandbox.setWebhookUrl(`${engine.url}/webhooks/${s.provider}`)
      // App side: a contact the app has that was never pushed, a journal whose debits no longer equal its credits,
      // and a link to a record neither side has.
      await query(`INSERT INTO records (tenant_id, entity, record_id, data, hash, origin, updated_at) VALUES ($1, 'contact', 'c-ghost', $2, 'x', 'app', now() - interval '1 minute')`, [
        s.tenant, JSON.stringify({ entity: "contact", schemaVersion: 1, id: "c-ghost", ...contact(99, "ghost@example.com"), name: "Never pushed" })
      ])
      await query(`UPDATE records SET data = jsonb_set(data, '{lines,0,amount}', '999999'), updated_at = now() - interval '1 minute' WHERE tenant_id = $1 AND entity = 'journal_entry' AND record_id = 'je-0'`, [s.tenant])
      await query(`INSERT INTO links (connection_id, entity, record_id, external_id, provider_version, updated_at) VALUES ($1, 'invoice', 'inv-gone', 'no-such-invoice', '0', now() - interval '1 minute')`, [s.connection])
      expected[s.provider] = [
        // QuickBooks deletes an invoice; Xero can only void an authorised one, which then differs in status.
        s.provider === "quickbooks" ? `missing_in_provider invoice inv-1 ${deleted}` : `field_mismatch invoice inv-1 ${deleted}`,
        `field_mismatch invoice inv-2 ${await linkOf(s, "invoice", "inv-2")}`,
        `field_mismatch contact c-1 ${c1}`,
        `duplicate_in_provider invoice inv-3 ${duplicate}`,
        `missing_in_app contact - ${stray}`,
        `missing_in_provider contact c-ghost -`,
        `unbalanced journal_entry je-0 ${await linkOf(s, "journal_entry", "je-0")}`,
        `orphan_link invoice inv-gone no-such-invoice`,
        ...(baseline[s.provider] ?? []).map((x) => `missing_in_app contact - ${x}`)
      ].sort()
    }
    // The injected changes are older than the run, and more than a second older than the creates the live traffic
    // below sends: a provider record linked to nothing that is not older than a create still unanswered may be
    // that create (providers stamp whole seconds), which the run does not call drift.
    await new Promise((r) => setTimeout(r, 1100))

    // 4. Reconcile while the app pushes changes and an accountant edits with webhooks on.
    for (const s of sides) {
      let stop = false
      const pushedAt: Array<number> = []
      const live = (async () => {
        for (let n = 0; !stop; n++) {
          const i = 6 + (n % 6)
          await put(s, "invoice", `inv-${i}`, invoice(s, i, `live update ${n}`))
          pushedAt.push(Date.now())
          if (n % 3 === 0) await put(s, "contact", `c-live-${n}`, contact(100 + n))
          if (n % 4 === 0) s.sandbox.accountantEdit(s.sandbox.accounts[0] as string, "invoice", await linkOf(s, "invoice", `inv-${4 + (n % 2)}`))
          await new Promise((r) => setTimeout(r, 20))
        }
      })()
      await new Promise((r) => setTimeout(r, 100))
      const run = await reconcile(s).finally(() => {
        stop = true
      })
      await live
      // The app really was pushing while the run streamed both sides.
      expect(pushedAt.filter((t) => t >= Date.parse(run.startedAt) && t <= Date.parse(run.finishedAt)).length).toBeGreaterThan(0)
      const found = await items(s, run.id)
      const got = found.map((i: any) => `${i.kind} ${i.entity} ${i.recordId ?? "-"} ${i.externalId ?? "-"}`).sort()
      expect(got, JSON.stringify(found, null, 1)).toEqual(expected[s.provider])
      const counts: Record<string, number> = { missing_in_provider: 0, missing_in_app: 0, field_mismatch: 0, duplicate_in_provider: 0, unbalanced: 0, orphan_link: 0 }
      for (const e of expected[s.provider] ?? []) counts[e.split(" ")[0] as string] = (counts[e.split(" ")[0] as string] ?? 0) + 1
      expect(run.counts).toEqual(counts)
      expect(run.total).toBe(expected[s.provider]?.length)
      // The mismatches carry both values.
      const memo = found.find((i: any) => i.kind === "field_mismatch" && i.recordId === "inv-2")
      expect(memo.fields).toContainEqual({ path: s.field, app: "created 2", provider: "changed behind our back" })
      const email = found.find((i: any) => i.kind === "field_mismatch" && i.recordId === "c-1")
      expect(email.fields).toContainEqual({ path: "email", app: "c1@example.com", provider: "edited@example.com" })

      // 5. The drift event, with counts and the link to the run.
      const event = await eventually(async () => driftEvents.find((e) => e.body.runId === run.id))
      expect(event.subject).toBe(`${engine.natsPrefix}.concord.drift.${s.tenant}.${s.provider}`)
      expect(event.body).toMatchObject({ type: "drift.found", tenant: s.tenant, connectionId: s.connection, provider: s.provider, counts: run.counts, link: `/v1/tenants/${s.tenant}/drift/runs/${run.id}` })

      // 6. Auto-resolution by policy, recorded on each item and audited.
      const resolved = await eventually(async () => {
        const r = await items(s, run.id)
        return r.every((i: any) => i.resolution !== null) ? r : undefined
      })
      const resolution = (kind: string, id: string) => resolved.find((i: any) => i.kind === kind && (i.recordId === id || i.externalId === id))?.resolution
      expect(resolution("field_mismatch", "c-1")).toBe("repush")
      expect(resolution("missing_in_provider", "c-ghost")).toBe("repush")
      expect(resolution("field_mismatch", "inv-2")).toBe("conflict")
      expect(resolution(s.provider === "quickbooks" ? "missing_in_provider" : "field_mismatch", "inv-1")).toBe(s.provider === "quickbooks" ? "review" : "conflict")
      expect(resolution("unbalanced", "je-0")).toBe("review")
      const account = s.sandbox.accounts[0] as string
      // app_wins: the provider holds the app's email again, and the never-pushed contact exists there.
      await eventually(async () => {
        const c = s.sandbox.records(account, "contact").find((r) => String(r.Id ?? r.ContactID) === String(email.externalId).replace(/^customer:/, ""))
        return JSON.stringify(c).includes("c1@example.com") ? true : undefined
      }, 30_000)
      await eventually(async () => (await linkOf(s, "contact", "c-ghost")) !== "" ? true : undefined, 30_000)
      // review: an open conflict on the edited invoice's field, with both values.
      const conflicts = await engine.call("GET", `/v1/tenants/${s.tenant}/conflicts`, { key: s.key })
      expect(conflicts.body).toContainEqual(expect.objectContaining({ recordId: "inv-2", path: s.field, app: "created 2", provider: "changed behind our back", status: "open" }))
      const audit = await query<{ n: string }>(`SELECT count(*) AS n FROM audit_log WHERE tenant_id = $1 AND action = 'drift_resolved' AND correlation_id = $2`, [s.tenant, run.id])
      expect(Number(audit[0]?.n)).toBe(expected[s.provider]?.length)
      // The psql view shows the same items.
      const view = await query<{ n: string }>(`SELECT count(*) AS n FROM drift_report WHERE run_id = $1`, [run.id])
      expect(Number(view[0]?.n)).toBe(expected[s.provider]?.length)
    }
    await settled()
  }, 300_000)

  it("refuses a second run while one is running, bad entities, and other tenants' keys", async () => {
    const [q, x] = sides as [Side, Side]
    const bad = await engine.call("POST", `/v1/tenants/${q.tenant}/connections/${q.connection}/drift/reconcile`, { key: q.key, body: { entities: ["unicorn", "bill"] } })
    expect(bad.status).toBe(422)
    expect(bad.body.issues.map((i: any) => i.path)).toEqual(["entities[0]", "entities[1]"])
    expect((await engine.call("POST", `/v1/tenants/${q.tenant}/connections/nope/drift/reconcile`, { key: q.key, body: {} })).status).toBe(404)
    expect((await engine.call("GET", `/v1/tenants/${q.tenant}/drift/runs`, { key: x.key })).status).toBe(403)
    const mine = await engine.call("GET", `/v1/drift/runs`, { key: x.key })
    expect(mine.status).toBe(200)
    expect(mine.body.every((r: any) => r.tenant === x.tenant)).toBe(true)
    const first = await engine.call("POST", `/v1/tenants/${q.tenant}/connections/${q.connection}/drift/reconcile`, { key: q.key, body: {} })
    expect(first.status).toBe(202)
    const second = await engine.call("POST", `/v1/tenants/${q.tenant}/connections/${q.connection}/drift/reconcile`, { key: q.key, body: {} })
    expect(second.status).toBe(409)
    expect(second.body.message).toContain(first.body.id)
    expect((await engine.call("GET", `/v1/tenants/${x.tenant}/drift/runs/${first.body.id}`, { key: x.key })).status).toBe(404)
    await eventually(async () => {
      const r = await engine.call("GET", `/v1/drift/runs/${first.body.id}`, { key: engine.adminKey })
      return r.body.run.status === "running" ? undefined : r.body
    }, 60_000)
  }, 120_000)

  const reconcile = async (s: Side) => {
    const started = await engine.call("POST", `/v1/tenants/${s.tenant}/connections/${s.connection}/drift/reconcile`, { key: s.key, body: {} })
    expect(started.status, JSON.stringify(started.body)).toBe(202)
    expect(started.body).toMatchObject({ status: "running", trigger: "manual", connection: s.connection })
    const done = await eventually(async () => {
      const r = await engine.call("GET", `/v1/tenants/${s.tenant}/drift/runs/${started.body.id}`, { key: s.key })
      return r.body.run.status === "running" ? undefined : r.body.run
    }, 120_000, 100)
    expect(done.status, done.error).toBe("completed")
    return done
  }

  const items = async (s: Side, runId: string) => {
    const out: Array<any> = []
    for (let offset: number | null = 0; offset !== null;) {
      const r = await engine.call("GET", `/v1/tenants/${s.tenant}/drift/runs/${runId}?offset=${offset}&limit=3`, { key: s.key })
      expect(r.status).toBe(200)
      out.push(...r.body.items)
      offset = r.body.nextOffset
    }
    return out
  }

  /** A second provider invoice with the same number as `of` (and its customer), inserted without any webhook. */
  const insertDuplicateInvoice = (s: Side, of: string, customer: string): string => {
    const account = s.sandbox.accounts[0] as string
    if (s.provider === "quickbooks") {
      const sb = s.sandbox as QuickBooksSandbox.QuickBooksSandbox
      const created = sb.insert(account, "Invoice", {
        DocNumber: "DR-3",
        CustomerRef: { value: customer.replace(/^customer:/, "") },
        TxnDate: "2026-03-01",
        Line: [{ DetailType: "SalesItemLineDetail", Amount: 2003, Description: "Roasting #3", SalesItemLineDetail: { Qty: 1, UnitPrice: 2003 } }]
      }) as { Id: string }
      void of
      return created.Id
    }
    const sb = s.sandbox as XeroSandbox.XeroSandboxHandle
    const [created] = sb.seed(account, "Invoices", [{
      Type: "ACCREC",
      // Xero refuses an exact duplicate number; one that differs only in case is the same number to people.
      InvoiceNumber: "dr-3",
      Contact: { ContactID: customer },
      Date: "2026-03-01",
      DueDate: "2026-03-31",
      CurrencyCode: "USD",
      LineAmountTypes: "NoTax",
      Status: "AUTHORISED",
      LineItems: [{ Description: "Roasting #3", Quantity: 1, UnitAmount: 20.03, AccountCode: "200" }]
    }])
    void of
    return String((created as { InvoiceID: string }).InvoiceID)
  }

  const insertContact = (s: Side, name: string): string => {
    const account = s.sandbox.accounts[0] as string
    if (s.provider === "quickbooks") {
      return `customer:${((s.sandbox as QuickBooksSandbox.QuickBooksSandbox).insert(account, "Customer", { DisplayName: name }) as { Id: string }).Id}`
    }
    const [created] = (s.sandbox as XeroSandbox.XeroSandboxHandle).seed(account, "Contacts", [{ Name: name, ContactStatus: "ACTIVE" }])
    return String((created as { ContactID: string }).ContactID)
  }
})
