/**
 * Secrets and webhooks, against a Concord node run as users run it
 * (`node bin/concord.js serve`, configured from the environment, its logs
 * captured) with both provider sandboxes:
 *
 * - OAuth connect through the sandboxes' authorize pages and Concord's
 *   callback, then several token refreshes (the sandboxes expire every access
 *   token); afterwards no access or refresh token the sandboxes ever issued,
 *   no client or webhook secret, no encryption key and no tenant API key
 *   appears in any row of any table, in the node's stdout/stderr, or in any
 *   message on its streams;
 * - webhooks at the node: a forged signature (wrong key, tampered body,
 *   missing header) is 401 and publishes nothing; a replayed signed delivery
 *   is answered but publishes nothing again; a notice older than the replay
 *   window is 401.
 */
import { hmacSha256Base64 } from "@concord/providers/Signatures"
import * as QuickBooksSandbox from "@concord/providers/quickbooks/Sandbox"
import * as XeroSandbox from "@concord/providers/xero/Sandbox"
import Ajv2020 from "ajv/dist/2020.js"
import { Effect, Exit, Scope } from "effect"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { ADMIN_KEY, callApi, type ChildEngine, sandboxEnv, startChild } from "../support/child-engine.ts"
import { eventually } from "../support/engine.ts"
import { deleteStreams, freshDatabase, servicesAvailable, uniqueName } from "../support/services.ts"
import { type Db, dumpDatabase, openDb, rawRequest, streamMessages, withNats } from "./support.ts"

type Sandbox = QuickBooksSandbox.QuickBooksSandbox | XeroSandbox.XeroSandboxHandle

const TENANT = "secrets-t"
const ENCRYPTION_KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="

const tenantYaml = `
version: 1
tenant: ${TENANT}
connections:
  - id: s-qbo
    provider: quickbooks
    entities:
      contact: { direction: both }
  - id: s-xero
    provider: xero
    entities:
      contact: { direction: both }
`

/** Every token an OAuth emulator has issued (its bookkeeping is private; tests may look). */
const issuedTokens = (sb: Sandbox): Array<string> => {
  const oauth = sb.oauth as unknown as { access: Map<string, unknown>; refresh: Map<string, unknown> }
  return [...oauth.access.keys(), ...oauth.refresh.keys()]
}

describe.skipIf(!servicesAvailable)("secrets stay secret; forged and replayed webhooks are refused (a node as users run it)", () => {
  const scope = Effect.runSync(Scope.make())
  let qbo: QuickBooksSandbox.QuickBooksSandbox
  let xero: XeroSandbox.XeroSandboxHandle
  let node: ChildEngine
  let db: Db
  let database: { url: string; drop: () => Promise<void> }
  const prefix = uniqueName("sec").toLowerCase()
  let tenantKey = ""
  const api = (method: string, path: string, body?: unknown) => callApi(node.url, method, path, body === undefined ? {} : { body })
  const inbound = () => withNats((nc) => streamMessages(nc, `${prefix.toUpperCase()}_CONCORD_IN`))

  /** Follows the provider's authorize page back to Concord's callback, as a browser would. */
  const connect = async (connection: string) => {
    const start = await api("POST", `/v1/tenants/${TENANT}/connections/${connection}/connect`)
    expect(start.status, JSON.stringify(start.body)).toBe(200)
    const authorize = await fetch(start.body.url, { redirect: "manual" })
    expect(authorize.status).toBe(302)
    const back = authorize.headers.get("location") ?? ""
    expect(back.startsWith(`${node.url}/v1/oauth/`)).toBe(true)
    const callback = await fetch(back)
    expect(callback.status, await callback.clone().text()).toBe(200)
    const c = await api("GET", `/v1/tenants/${TENANT}/connections/${connection}`)
    expect(c.body.status).toBe("active")
  }

  beforeAll(async () => {
    qbo = await Effect.runPromise(QuickBooksSandbox.start({ limits: false, webhookBatchWindowMs: 20 }).pipe(Scope.provide(scope)))
    xero = await Effect.runPromise(XeroSandbox.start({ limits: false }).pipe(Scope.provide(scope)))
    database = await freshDatabase()
    db = openDb(database.url)
    const port = await freePort()
    node = await startChild({
      databaseUrl: database.url,
      natsPrefix: prefix,
      port,
      env: {
        ...sandboxEnv(qbo),
        ...sandboxEnv(xero),
        CONCORD_PUBLIC_URL: `http://127.0.0.1:${port}`,
        CONCORD_ENCRYPTION_KEYS: `k1:${ENCRYPTION_KEY}`,
        CONCORD_LOG_LEVEL: "debug"
      }
    })
    qbo.setWebhookUrl(`${node.url}/webhooks/quickbooks`)
    xero.setWebhookUrl(`${node.url}/webhooks/xero`)
    expect((await callApi(node.url, "PUT", `/v1/tenants/${TENANT}`, { raw: tenantYaml, contentType: "application/yaml" })).status).toBe(200)
    const key = await api("POST", `/v1/tenants/${TENANT}/keys`, { label: "app" })
    expect(key.status).toBe(201)
    tenantKey = key.body.key
  }, 120_000)

  afterAll(async () => {
    await node?.kill("SIGTERM")
    await db?.close()
    await database?.drop()
    await deleteStreams(prefix.toUpperCase())
    await Effect.runPromise(Scope.close(scope, Exit.void))
  })

  const contactsSynced = async (ids: ReadonlyArray<string>) => {
    for (const id of ids) {
      await eventually(async () => {
        const r = await callApi(node.url, "GET", `/v1/tenants/${TENANT}/records/contact/${id}`, { key: tenantKey })
        const sync = (r.body?.sync ?? []) as Array<{ status: string }>
        return sync.length === 2 && sync.every((s) => s.status === "synced") ? true : undefined
      }, 60_000)
    }
  }

  it("connects both providers over OAuth, refreshes tokens, and no token or secret reaches the database, the logs or the streams", async () => {
    await connect("s-qbo")
    await connect("s-xero")
    const ids: Array<string> = []
    // Sync, then expire every access token so the next sync refreshes (and rotates) them: three rounds.
    for (let round = 0; round < 4; round++) {
      const id = `c-${round}`
      ids.push(id)
      const r = await callApi(node.url, "PUT", `/v1/tenants/${TENANT}/records/contact/${id}`, { key: tenantKey, body: { name: `Customer ${round}`, roles: ["customer"], status: "active" } })
      expect(r.status).toBe(202)
      await contactsSynced([id])
      qbo.oauth.expireAccessTokens()
      xero.oauth.expireAccessTokens()
    }
    expect(qbo.oauth.stats.exchanges).toBe(1)
    expect(xero.oauth.stats.exchanges).toBe(1)
    expect(qbo.oauth.stats.refreshes).toBeGreaterThanOrEqual(3)
    expect(xero.oauth.stats.refreshes).toBeGreaterThanOrEqual(3)
    // The accountant edits on both sides: signed webhooks reach the node and are processed.
    qbo.accountantEdit(qbo.accounts[0] as string, "contact", (await linkOf("s-qbo", "c-0")), { CompanyName: "Edited in QuickBooks" })
    await qbo.webhooksIdle()
    await xero.webhooksIdle()
    // …and the edit comes out as a concord.changes event for the app.
    await eventually(async () => ((await withNats((nc) => streamMessages(nc, `${prefix.toUpperCase()}_CONCORD_EVENTS`, `${prefix}.concord.changes.>`))) > 0 ? true : undefined), 60_000)

    const secrets: Array<[string, string]> = [
      ...issuedTokens(qbo).map((t) => ["a QuickBooks token", t] as [string, string]),
      ...issuedTokens(xero).map((t) => ["a Xero token", t] as [string, string]),
      ["the QuickBooks client secret", qbo.clientSecret],
      ["the Xero client secret", xero.clientSecret],
      ["the QuickBooks webhook verifier token", qbo.webhookSecret],
      ["the Xero webhook key", xero.webhookSecret],
      ["the encryption key", ENCRYPTION_KEY],
      ["the encryption key (hex)", Buffer.from(ENCRYPTION_KEY, "base64").toString("hex")],
      ["the admin key", ADMIN_KEY],
      ["the tenant API key", tenantKey],
      ["the tenant API key's secret part", tenantKey.split("_").slice(2).join("_")]
    ]
    expect(issuedTokens(qbo).length).toBeGreaterThanOrEqual(8)
    expect(issuedTokens(xero).length).toBeGreaterThanOrEqual(8)
    for (const [, s] of secrets) expect(s.length).toBeGreaterThanOrEqual(16)

    // Credentials are stored (encrypted), one row per connection.
    const creds = await db.query<{ n: string }>("SELECT count(*) AS n FROM credentials")
    expect(Number(creds[0]?.n)).toBe(2)
    const dump = await dumpDatabase(db)
    expect(dump.length).toBeGreaterThan(10_000)
    const logs = node.output()
    expect(logs).toContain("Concord is running")
    const messages = await withNats(async (nc) => {
      const jsm = await nc.jetstreamManager()
      const out: Array<{ subject: string; headers: string; data: string }> = []
      for (const stream of ["CONCORD_IN", "CONCORD_EVENTS", "CONCORD_DLQ"].map((s) => `${prefix.toUpperCase()}_${s}`)) {
        const info = await jsm.streams.info(stream)
        for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
          const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined)
          if (m !== undefined) out.push({ subject: m.subject.slice(prefix.length + 1), headers: m.header?.toString() ?? "", data: m.string() })
        }
      }
      return out
    })
    const streams = messages.map((m) => `${m.subject} ${m.headers} ${m.data}`).join("\n")
    // Every message on the streams fits the JSON Schema published for its subject (deploy/schemas).
    const ajv = new Ajv2020.default({ allErrors: true, strict: false })
    const contract: Record<string, ReturnType<typeof ajv.compile>> = {}
    const schemaFor = (subject: string) => {
      const kind = subject.split(".")[1] as string
      const file = { in: "inbound-message", changes: "change-event", conflicts: "conflict-event", drift: "drift-event", health: "health-event", dlq: "dead-letter" }[kind]
      expect(file, `a message on ${subject}, which has no published schema`).toBeDefined()
      contract[file as string] ??= ajv.compile(JSON.parse(readFileSync(join(import.meta.dirname, `../../deploy/schemas/${file}.schema.json`), "utf8")))
      return contract[file as string] as ReturnType<typeof ajv.compile>
    }
    const kinds = new Set<string>()
    for (const m of messages) {
      const validate = schemaFor(m.subject)
      kinds.add(m.subject.split(".")[1] as string)
      expect(validate(JSON.parse(m.data)), `${m.subject}: ${m.data.slice(0, 300)} ${JSON.stringify(validate.errors)}`).toBe(true)
    }
    expect([...kinds]).toEqual(expect.arrayContaining(["in", "changes"]))
    expect(streams).toContain("app_change")
    // The scans see real data (so a leak would be found): the records, the provider accounts, the webhook notices.
    expect(dump).toContain("Customer 3")
    expect(dump).toContain(qbo.accounts[0] as string)
    expect(dump).toContain(xero.accounts[0] as string)
    expect(streams).toContain("provider_change")
    for (const [what, secret] of secrets) {
      expect(dump.includes(secret), `${what} is in the database`).toBe(false)
      expect(logs.includes(secret), `${what} is in the node's logs`).toBe(false)
      expect(streams.includes(secret), `${what} is on a stream`).toBe(false)
    }
  }, 180_000)

  const linkOf = async (connection: string, id: string): Promise<string> => {
    const r = await callApi(node.url, "GET", `/v1/tenants/${TENANT}/records/contact/${id}`, { key: tenantKey })
    const link = (r.body.sync as Array<{ connectionId: string; externalId: string }>).find((s) => s.connectionId === connection)
    return link?.externalId ?? ""
  }

  const qboBody = (lastUpdated: string, id: string) =>
    JSON.stringify({ eventNotifications: [{ realmId: qbo.accounts[0], dataChangeEvent: { entities: [{ name: "Customer", id, operation: "Update", lastUpdated }] } }] })
  const xeroBody = (eventDateUtc: string, id: string) =>
    JSON.stringify({
      events: [{ resourceUrl: `https://api.xero.com/api.xro/2.0/Contacts/${id}`, resourceId: id, eventDateUtc, eventType: "UPDATE", eventCategory: "CONTACT", tenantId: xero.accounts[0], tenantType: "ORGANISATION" }],
      firstEventSequence: 1,
      lastEventSequence: 1,
      entropy: "QWERTYUIOP"
    })

  const post = (provider: "quickbooks" | "xero", body: string, signature: string | undefined) =>
    rawRequest(node.url, "POST", `/webhooks/${provider}`, {
      headers: { "content-type": "application/json", ...(signature === undefined ? {} : { [provider === "xero" ? "x-xero-signature" : "intuit-signature"]: signature }) },
      body
    })

  for (const provider of ["quickbooks", "xero"] as const) {
    it(`${provider}: a forged, tampered or unsigned delivery is 401 and publishes nothing; a replay publishes nothing again; a stale notice is 401`, async () => {
      const sb: Sandbox = provider === "quickbooks" ? qbo : xero
      const make = provider === "quickbooks" ? qboBody : xeroBody
      const connection = provider === "quickbooks" ? "s-qbo" : "s-xero"
      const external = await linkOf(connection, "c-1")
      expect(external).not.toBe("")
      const now = new Date().toISOString().replace("Z", provider === "xero" ? "" : "Z")
      const body = make(now, external)
      const good = hmacSha256Base64(sb.webhookSecret, body)
      const before = await inbound()
      // Forgeries: another key, the right signature on other bytes, no signature, a garbage signature.
      expect((await post(provider, body, hmacSha256Base64("not-the-secret", body))).status).toBe(401)
      expect((await post(provider, body.replace(external, `${external}9`), good)).status).toBe(401)
      expect((await post(provider, body, undefined)).status).toBe(401)
      expect((await post(provider, body, "!!!not base64!!!")).status).toBe(401)
      expect((await post(provider, body, good.slice(0, -4))).status).toBe(401)
      // Correctly signed, but not a delivery of this provider: malformed JSON, the wrong shape, an unknown account.
      for (const junk of ["{not json", "[]", "null", JSON.stringify({ eventNotifications: "x", events: 7 }), body.replace(sb.accounts[0] as string, "no-such-account")]) {
        const r = await post(provider, junk, hmacSha256Base64(sb.webhookSecret, junk))
        expect(r.status, `${junk.slice(0, 80)} → ${r.status} ${r.text.slice(0, 200)}`).toBeLessThan(500)
        // An empty array is an empty CloudEvents batch to QuickBooks (nothing to do); an unknown account is nobody's.
        const harmless = junk.includes("no-such-account") || (provider === "quickbooks" && junk === "[]")
        if (!harmless) expect(r.status, junk).toBeGreaterThanOrEqual(400)
      }
      expect(await inbound()).toBe(before)
      // The genuine delivery is published once…
      expect((await post(provider, body, good)).status).toBe(200)
      await eventually(async () => ((await inbound()) > before ? true : undefined))
      const once = await inbound()
      // …and a replay of the very same bytes is answered (the provider must stop retrying) but publishes nothing.
      for (let i = 0; i < 3; i++) expect((await post(provider, body, good)).status).toBe(200)
      expect(await inbound()).toBe(once)
      // A correctly signed notice from three days ago is a replay outside the window.
      const old = new Date(Date.now() - 3 * 86_400_000).toISOString().replace("Z", provider === "xero" ? "" : "Z")
      const stale = make(old, external)
      const refused = await post(provider, stale, hmacSha256Base64(sb.webhookSecret, stale))
      expect(refused.status).toBe(401)
      expect(refused.text).toMatch(/replay window/)
      expect(await inbound()).toBe(once)
      // The node is still healthy.
      expect((await fetch(`${node.url}/readyz`)).status).toBe(200)
      expect(node.process.exitCode).toBeNull()
    })
  }
})
