import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = (tenant: string) => `
version: 1
tenant: ${tenant}
connections:
  - id: ${tenant}-mem
    provider: memory
    entities:
      account: { direction: pull }
      contact: { direction: both }
      invoice: { direction: both }
      journal_entry: { direction: push, policy: app_wins }
glRules:
  - name: card-sales
    match: { type: sale, tender: card }
    accounts: { clearing: "1210", revenue: "4000", tax: "2200", tips: "2300" }
`

describe.skipIf(!servicesAvailable)("HTTP API end to end (real Postgres and NATS)", () => {
  let engine: TestEngine
  const mem = makeMemoryProvider()
  let acmeKey = ""
  let otherKey = ""

  beforeAll(async () => {
    for (const code of ["4000", "1210", "2200", "2300"]) {
      mem.accountant.create("account", { id: "x", code, name: `Account ${code}`, type: code.startsWith("4") ? "revenue" : "current_asset", status: "active" })
    }
    engine = await startEngine({
      providers: [{ provider: mem.provider, app: { app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }]
    })
    for (const tenant of ["acme", "other"]) {
      const put = await engine.call("PUT", `/v1/tenants/${tenant}`, { key: engine.adminKey, raw: tenantYaml(tenant), headers: { "content-type": "application/yaml" } })
      expect(put.status).toBe(200)
      const creds = await engine.call("PUT", `/v1/tenants/${tenant}/connections/${tenant}-mem/credentials`, {
        key: engine.adminKey,
        body: { accountId: "memory-account", accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
      })
      expect(creds.status).toBe(200)
      expect(creds.body.status).toBe("active")
      const key = await engine.call("POST", `/v1/tenants/${tenant}/keys`, { key: engine.adminKey, body: { label: "test" } })
      expect(key.status).toBe(201)
      if (tenant === "acme") acmeKey = key.body.key
      else otherKey = key.body.key
    }
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  const waitOperation = (id: string, key = acmeKey) =>
    eventually(async () => {
      const op = await engine.call("GET", `/v1/operations/${id}`, { key })
      return op.body.status === "accepted" ? undefined : op.body
    })

  it("refuses requests without a key, with an unknown key, and across tenants", async () => {
    expect((await engine.call("GET", "/v1/tenants/acme")).status).toBe(401)
    expect((await engine.call("GET", "/v1/tenants/acme", { key: "ck_nope00000_nonexistentsecret000" })).status).toBe(401)
    expect((await engine.call("GET", "/v1/tenants/acme", { key: acmeKey })).status).toBe(200)
    for (const [method, path] of [
      ["GET", "/v1/tenants/acme"],
      ["GET", "/v1/tenants/acme/connections"],
      ["GET", "/v1/tenants/acme/records/contact/c1"],
      ["PUT", "/v1/tenants/acme/records/contact/c1"],
      ["GET", "/v1/tenants/acme/conflicts"],
      ["POST", "/v1/tenants/acme/connections/acme-mem/pause"],
      ["GET", "/v1/tenants/acme/audit/verify"]
    ] as const) {
      const r = await engine.call(method, path, { key: otherKey, body: method === "GET" ? undefined : {} })
      expect(r.status, `${method} ${path}`).toBe(403)
    }
    // Tenant keys cannot do operators' work.
    expect((await engine.call("PUT", "/v1/tenants/acme", { key: acmeKey, body: {} })).status).toBe(403)
  })

  it("validates records up front, naming every bad field, and stores nothing", async () => {
    const r = await engine.call("PUT", "/v1/tenants/acme/records/invoice/bad-1", {
      key: acmeKey,
      body: { contactId: "c1", date: "2026-13-01", currency: "XXX1", lineAmountTypes: "exclusive", lines: [{ amount: 1.5 }], status: "open" }
    })
    expect(r.status).toBe(422)
    expect(r.body.issues.map((i: { path: string }) => i.path).sort()).toEqual(["currency", "date", "lines[0].amount", "status"])
    expect((await engine.call("GET", "/v1/tenants/acme/records/invoice/bad-1", { key: acmeKey })).status).toBe(404)
    const mismatch = await engine.call("PUT", "/v1/tenants/acme/records/invoice/x", { key: acmeKey, body: { entity: "bill", id: "y" } })
    expect(mismatch.status).toBe(422)
    expect(mismatch.body.issues.map((i: { path: string }) => i.path)).toEqual(["entity", "id"])
    const notJson = await engine.call("PUT", "/v1/tenants/acme/records/invoice/x", { key: acmeKey, raw: "{not json", headers: { "content-type": "application/json" } })
    expect(notJson.status).toBe(400)
  })

  it("syncs app records to the provider and tracks the operation to completion", async () => {
    const contact = await engine.call("PUT", "/v1/tenants/acme/records/contact/c1", {
      key: acmeKey,
      body: { name: "Ada Lovelace", roles: ["customer"], status: "active" }
    })
    expect(contact.status).toBe(202)
    expect(contact.body.connections).toEqual(["acme-mem"])
    expect((await waitOperation(contact.body.operationId)).status).toBe("succeeded")
    const invoice = await engine.call("PUT", "/v1/tenants/acme/records/invoice/inv-1", {
      key: acmeKey,
      body: {
        contactId: "c1",
        date: "2026-03-01",
        currency: "USD",
        lineAmountTypes: "exclusive",
        lines: [{ description: "Latte", amount: 450, accountId: "4000" }],
        status: "authorised"
      }
    })
    expect(invoice.status).toBe(202)
    const op = await waitOperation(invoice.body.operationId)
    expect(op).toMatchObject({ status: "succeeded", expected: 1, done: 1, failed: 0 })
    const read = await engine.call("GET", "/v1/tenants/acme/records/invoice/inv-1", { key: acmeKey })
    expect(read.status).toBe(200)
    expect(read.body.sync).toEqual([expect.objectContaining({ connectionId: "acme-mem", provider: "memory", status: "synced", externalId: expect.any(String) })])
    expect(mem.records("invoice").filter((r) => r.contactId === mem.records("contact")[0]?.externalId)).toHaveLength(1)
  })

  // Found by the chaos harness: app changes were deduplicated by content, so a resent request (or A → B → A)
  // stayed "accepted" for ever with no audit row, and the second A never undid B.
  it("processes every accepted change, also one that repeats earlier content", async () => {
    const put = (email: string) =>
      engine.call("PUT", "/v1/tenants/acme/records/contact/c-aba", { key: acmeKey, body: { name: "Repeat customer", roles: ["customer"], email, status: "active" } })
    const ops: Array<string> = []
    for (const email of ["a@example.com", "a@example.com", "b@example.com", "a@example.com"]) {
      const r = await put(email)
      expect(r.status).toBe(202)
      ops.push(r.body.operationId)
    }
    for (const id of ops) expect((await waitOperation(id)).status).toBe("succeeded")
    const read = await engine.call("GET", "/v1/tenants/acme/records/contact/c-aba", { key: acmeKey })
    expect(read.body.record.email).toBe("a@example.com")
    const ext = read.body.sync[0].externalId as string
    await eventually(async () => (mem.records("contact").find((c) => c.externalId === ext)?.email === "a@example.com" ? true : undefined))
    const audit = await engine.call("GET", "/v1/tenants/acme/audit?after=0&limit=1000", { key: acmeKey })
    const audited = new Set((audit.body as Array<{ action: string; correlationId: string }>).filter((r) => r.action === "app_change").map((r) => r.correlationId))
    for (const id of ops) expect(audited.has(id), id).toBe(true)
  })

  // Found by the chaos harness: QuickBooks refused a refresh token rotated just before a SIGKILL (a lost grant);
  // the changes that arrived meanwhile were parked, and reconnecting left them parked for ever.
  it("syncs the work parked while the grant was lost once the connection is authorised again", async () => {
    const sql = (text: string) =>
      Effect.runPromise(Effect.gen(function*() {
        const client = yield* SqlClient.SqlClient
        yield* client.unsafe(text)
      }).pipe(Effect.provide(PgClient.layer({ url: Redacted.make(engine.databaseUrl), maxConnections: 1 }))) as Effect.Effect<void, never, never>)
    // Pausing makes the connection's actor read its status afresh; then what the token source does when the
    // provider answers invalid_grant.
    expect((await engine.call("POST", "/v1/tenants/acme/connections/acme-mem/pause", { key: engine.adminKey, body: {} })).status).toBe(200)
    await sql("UPDATE connections SET status = 'needs_reauth', status_reason = 'invalid_grant' WHERE id = 'acme-mem'")
    const put = await engine.call("PUT", "/v1/tenants/acme/records/contact/c-lost-grant", { key: acmeKey, body: { name: "Lost Grant", roles: ["customer"], status: "active" } })
    expect(put.status).toBe(202)
    await eventually(async () => {
      const c = await engine.call("GET", "/v1/tenants/acme/connections/acme-mem", { key: engine.adminKey })
      return c.body.parked === 1 ? true : undefined
    })
    expect(mem.records("contact").filter((c) => c.name === "Lost Grant")).toHaveLength(0)
    const creds = await engine.call("PUT", "/v1/tenants/acme/connections/acme-mem/credentials", {
      key: engine.adminKey,
      body: { accountId: "memory-account", accessToken: "at2", refreshToken: "rt2", expiresIn: 3600 }
    })
    expect(creds.body.status).toBe("active")
    expect((await waitOperation(put.body.operationId)).status).toBe("succeeded")
    expect(mem.records("contact").filter((c) => c.name === "Lost Grant")).toHaveLength(1)
  })

  it("posts a POS sale through the GL rules as a balanced journal, and names a missing rule", async () => {
    const sale = await engine.call("POST", "/v1/tenants/acme/transactions", {
      key: acmeKey,
      body: { id: "s-1", type: "sale", tender: "card", date: "2026-03-02", currency: "USD", lines: [{ amount: 1000 }], tax: 89, tip: 200, total: 1289 }
    })
    expect(sale.status).toBe(202)
    expect(sale.body).toMatchObject({ entity: "journal_entry", recordId: "txn-s-1", rule: "card-sales" })
    expect((await waitOperation(sale.body.operationId)).status).toBe("succeeded")
    const [je] = mem.records("journal_entry")
    const lines = je?.lines as Array<{ postingType: string; amount: number }>
    const total = (t: string) => lines.filter((l) => l.postingType === t).reduce((s, l) => s + l.amount, 0)
    expect(total("debit")).toBe(1289)
    expect(total("credit")).toBe(1289)
    const unmapped = await engine.call("POST", "/v1/tenants/acme/transactions", {
      key: acmeKey,
      body: { id: "s-2", type: "sale", tender: "gift_card", date: "2026-03-02", currency: "USD", lines: [{ amount: 100 }], total: 100 }
    })
    expect(unmapped.status).toBe(422)
    expect(unmapped.body.message).toContain("no GL rule matches transaction s-2")
  })

  it("serves the OpenAPI document, the docs page, metrics and health probes", async () => {
    const openapi = await engine.call("GET", "/openapi.json")
    expect(openapi.status).toBe(200)
    expect(Object.keys(openapi.body.paths)).toEqual(expect.arrayContaining(["/v1/tenants/{tenant}/records/{entity}/{id}", "/v1/operations/{id}", "/webhooks/{provider}"]))
    expect((await engine.call("GET", "/docs")).status).toBe(200)
    expect((await engine.call("GET", "/healthz")).body).toEqual({ status: "ok" })
    expect((await engine.call("GET", "/readyz")).body.status).toBe("ready")
    const metrics = await engine.call("GET", "/metrics")
    expect(metrics.status).toBe(200)
    expect(String(metrics.body)).toContain("concord_events_in_total")
  })

  it("keeps a verifiable audit chain for every accepted change", async () => {
    const verify = await engine.call("GET", "/v1/tenants/acme/audit/verify", { key: acmeKey })
    expect(verify.body).toMatchObject({ ok: true })
    expect(verify.body.rows).toBeGreaterThan(3)
    const rows = await engine.call("GET", "/v1/tenants/acme/audit?recordId=inv-1", { key: acmeKey })
    expect(rows.body.map((r: { action: string }) => r.action)).toEqual(expect.arrayContaining(["app_change", "provider_create"]))
  })
})
