/**
 * Bad input and tenant isolation, against one whole engine (real Postgres,
 * real NATS, the HTTP API in this process):
 *
 * - every endpoint of the API, fuzzed (property-based) with hostile path
 *   parameters, malformed and oversized bodies, prototype-pollution keys,
 *   odd content types and keys: never a 5xx, the node stays ready, and no
 *   prototype is polluted;
 * - rejected record, transaction and webhook requests store nothing (every
 *   table's row count and the inbound stream are unchanged);
 * - malformed messages published straight onto the inbound subjects each end
 *   in the DLQ with a reason, and store nothing;
 * - tenant isolation on every route (enumerated from the API's definition):
 *   tenant A's key never reads or changes tenant B's resources, over HTTP or
 *   by naming B's connection in a NATS message.
 */
import { QuickBooks } from "@concord/providers/quickbooks/Adapter"
import { Xero } from "@concord/providers/xero/Adapter"
import { Redacted } from "effect"
import fc from "fast-check"
import { headers as natsHeaders } from "nats"
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { servicesAvailable } from "../support/services.ts"
import { MAX_BODY_BYTES } from "../../packages/server/src/Server.ts"
import {
  consumerIdle,
  contentTypes,
  declaredEndpointCount,
  type Db,
  fill,
  hostileBody,
  hostileString,
  malformedJson,
  openDb,
  pathParam,
  pollutionBodies,
  rawRequest,
  type Route,
  routes,
  rowCounts,
  streamMessages,
  withNats
} from "./support.ts"

// Distinctive names, so a response that leaks another tenant's data is easy to spot.
const ALPHA = "tenant-alpha-k3x"
const BETA = "tenant-beta-q9z"
const GAMMA = "tenant-gamma-f7w"
const conn = (tenant: string) => `${tenant}-mem`

const tenantYaml = (tenant: string) => `
version: 1
tenant: ${tenant}
connections:
  - id: ${conn(tenant)}
    provider: memory
    entities:
      account: { direction: both }
      contact: { direction: both }
      invoice: { direction: both }
      journal_entry: { direction: push, policy: app_wins }
glRules:
  - name: card-sales
    match: { type: sale, tender: card }
    accounts: { clearing: "1210", revenue: "4000", tax: "2200", tips: "2300" }
`

const WEBHOOK_SECRET = { quickbooks: "qbo-verifier-token-for-fuzzing", xero: "xero-webhook-key-for-fuzzing" }

/** Tables that change by themselves (heartbeats, poll bookkeeping), left out of "nothing stored". */
const volatile = /(^|\.)(poll_state|cluster_\w+|sync_cursors|workflow_\w+|drift_schedule)$/

/** `SECURITY_FUZZ_SCALE=10 npx vitest run test/security` explores ten times as many inputs (npm test uses 1). */
const SCALE = Math.max(1, Number(process.env.SECURITY_FUZZ_SCALE ?? 1))
const runs = (n: number) => Math.round(n * SCALE)

const stable = (counts: Record<string, number>) => Object.fromEntries(Object.entries(counts).filter(([t]) => !volatile.test(t)))

describe.skipIf(!servicesAvailable)("hostile input and tenant isolation (real Postgres and NATS)", () => {
  let engine: TestEngine
  let db: Db
  const keys: Record<string, string> = {}
  const beta = { recordId: "c-beta-1", operationId: "", backfillId: "" }
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort()

  const contact = (name: string) => ({ name, roles: ["customer"], status: "active" })

  const waitOperation = (id: string, key: string) =>
    eventually(async () => {
      const op = await engine.call("GET", `/v1/operations/${id}`, { key })
      return op.body.status === "accepted" ? undefined : op.body
    })

  /** Nothing left in flight on the inbound stream. */
  const quiet = () =>
    withNats((nc) =>
      eventually(async () => {
        const c = await consumerIdle(nc, engine.natsPrefix)
        return c.pending === 0 && c.ackPending === 0 ? true : undefined
      }, 60_000, 100)
    )

  const inbound = () => withNats((nc) => streamMessages(nc, `${engine.natsPrefix.toUpperCase()}_CONCORD_IN`))
  const dlq = () => withNats((nc) => streamMessages(nc, `${engine.natsPrefix.toUpperCase()}_CONCORD_DLQ`))

  /** Dead letters stored after sequence `after` of the DLQ stream. */
  const lettersAfter = (after: number) =>
    withNats(async (nc) => {
      const jsm = await nc.jetstreamManager()
      const stream = `${engine.natsPrefix.toUpperCase()}_CONCORD_DLQ`
      const info = await jsm.streams.info(stream)
      const out: Array<{ originalSubject: string; error: { tag: string; message: string }; message: unknown }> = []
      for (let seq = Math.max(after + 1, info.state.first_seq); seq <= info.state.last_seq; seq++) {
        const m = await jsm.streams.getMessage(stream, { seq }).catch(() => undefined)
        if (m !== undefined) out.push(m.json())
      }
      return out
    })
  const dlqLastSeq = () => withNats(async (nc) => (await (await nc.jetstreamManager()).streams.info(`${engine.natsPrefix.toUpperCase()}_CONCORD_DLQ`)).state.last_seq)

  const ready = async () => {
    const r = await engine.call("GET", "/readyz")
    expect(r.status, JSON.stringify(r.body)).toBe(200)
    // …and it still does real work.
    const ok = await engine.call("GET", `/v1/tenants/${GAMMA}`, { key: keys[GAMMA] as string })
    expect(ok.status).toBe(200)
  }

  /** What the engine (in this process) logged: an error or a defect means hostile input reached a bug, whatever the status said. */
  const logged: Array<string> = []
  for (const method of ["log", "error", "warn", "info"] as const) {
    const original = console[method].bind(console)
    vi.spyOn(console, method).mockImplementation((...args: Array<unknown>) => {
      logged.push(args.map((a) => (typeof a === "string" ? a : a instanceof Error ? `${a.name}: ${a.message}` : String(a))).join(" "))
      original(...args)
    })
  }

  beforeAll(async () => {
    const mem = makeMemoryProvider()
    for (const code of ["4000", "1210", "2200", "2300"]) {
      mem.accountant.create("account", { id: "x", code, name: `Account ${code}`, type: code.startsWith("4") ? "revenue" : "current_asset", status: "active" })
    }
    const app = (secret: string) => ({ app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" }, webhookSecret: Redacted.make(secret) })
    engine = await startEngine({
      providers: [
        { provider: mem.provider, app: app("memory-secret") },
        { provider: QuickBooks, app: app(WEBHOOK_SECRET.quickbooks) },
        { provider: Xero, app: app(WEBHOOK_SECRET.xero) }
      ]
    })
    db = openDb(engine.databaseUrl)
    for (const tenant of [ALPHA, BETA, GAMMA]) {
      const put = await engine.call("PUT", `/v1/tenants/${tenant}`, { key: engine.adminKey, raw: tenantYaml(tenant), headers: { "content-type": "application/yaml" } })
      expect(put.status, JSON.stringify(put.body)).toBe(200)
      const creds = await engine.call("PUT", `/v1/tenants/${tenant}/connections/${conn(tenant)}/credentials`, {
        key: engine.adminKey,
        body: { accountId: `account-of-${tenant}`, accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
      })
      expect(creds.status).toBe(200)
      const key = await engine.call("POST", `/v1/tenants/${tenant}/keys`, { key: engine.adminKey, body: { label: "security" } })
      expect(key.status).toBe(201)
      keys[tenant] = key.body.key
    }
    // Beta owns a synced record, an operation and a backfill that alpha will try to reach.
    const put = await engine.call("PUT", `/v1/tenants/${BETA}/records/contact/${beta.recordId}`, { key: keys[BETA] as string, body: contact("Beta's customer") })
    expect(put.status).toBe(202)
    beta.operationId = put.body.operationId
    expect((await waitOperation(beta.operationId, keys[BETA] as string)).status).toBe("succeeded")
    const bf = await engine.call("POST", `/v1/tenants/${BETA}/connections/${conn(BETA)}/backfills`, { key: engine.adminKey, body: { entities: ["account"] } })
    expect(bf.status, JSON.stringify(bf.body)).toBe(202)
    beta.backfillId = bf.body.backfills[0].id
    await eventually(async () => {
      const b = await engine.call("GET", `/v1/tenants/${BETA}/backfills/${beta.backfillId}`, { key: keys[BETA] as string })
      return b.body.status === "running" ? undefined : true
    })
    await quiet()
  }, 120_000)

  afterAll(async () => {
    await db?.close()
    await engine?.stop()
  })

  const all = routes()

  it("sees every route the API declares", () => {
    // The reflection walks the Api class; the count of declarations in the source catches a group left out of it.
    expect(all.length).toBe(declaredEndpointCount())
    expect(all.length).toBeGreaterThanOrEqual(30)
    expect(new Set(all.map((r) => `${r.method} ${r.path}`)).size).toBe(all.length)
  })

  it("rejected record, transaction and webhook requests store nothing", async () => {
    const before = stable(await rowCounts(db))
    const inBefore = await inbound()
    const key = keys[GAMMA] as string
    // Record bodies that can never be valid: not JSON, not an object, or a required field of the wrong type.
    const badRecord = fc.oneof(
      fc.constantFrom(...malformedJson),
      fc.constantFrom(`{"__proto__":{"polluted":"yes"}}`, `{"constructor":{"prototype":{"polluted":"yes"}}}`),
      fc.record({ name: fc.oneof(fc.integer(), fc.constant(null), fc.array(hostileString, { maxLength: 2 })), roles: fc.constant(["customer"]), status: fc.constant("active") }).map((o) => JSON.stringify(o)),
      fc.record({ name: hostileString, roles: fc.oneof(hostileString, fc.constant([42])), status: fc.constant("active") }).map((o) => JSON.stringify(o)),
      fc.record({ name: fc.constant("ok"), roles: fc.constant(["customer"]), status: hostileString.filter((s) => s !== "active" && s !== "archived") }).map((o) => JSON.stringify(o))
    )
    const badTransaction = fc.oneof(
      fc.constantFrom(...malformedJson),
      fc.record({ id: hostileString, type: hostileString, tender: hostileString, date: hostileString, currency: hostileString, lines: fc.constant([{ amount: 1.5 }]), total: fc.double() }).map((o) => JSON.stringify(o)),
      fc.record({ id: fc.constant("t1"), type: fc.constant("sale"), tender: fc.constant("card"), date: fc.constant("2026-03-02"), currency: fc.constant("USD"), lines: fc.constant([]), total: fc.oneof(fc.double(), hostileString) }).map((o) => JSON.stringify(o))
    )
    const responses: Array<string> = []
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          badRecord.map((body) => ({ method: "PUT", path: `/v1/tenants/${GAMMA}/records/contact/fz-1`, body })),
          fc.tuple(pathParam("contact"), fc.constantFrom(...pollutionBodies.slice(2, 3), JSON.stringify(contact("valid body, bad entity")))).map(([entity, body]) => ({
            method: "PUT",
            path: `/v1/tenants/${GAMMA}/records/${entity === "contact" ? "unicorn" : entity}/fz-2`,
            body
          })),
          pathParam(GAMMA).filter((t) => t !== GAMMA).map((tenant) => ({ method: "PUT", path: `/v1/tenants/${tenant}/records/contact/fz-3`, body: JSON.stringify(contact("valid body, bad tenant")) })),
          badTransaction.map((body) => ({ method: "POST", path: `/v1/tenants/${GAMMA}/transactions`, body })),
          fc.tuple(fc.constantFrom("quickbooks", "xero"), hostileBody, fc.option(hostileString)).map(([provider, body, signature]) => ({
            method: "POST",
            path: `/webhooks/${provider}`,
            body,
            headers: signature === null ? {} : { [provider === "xero" ? "x-xero-signature" : "intuit-signature"]: encodeURIComponent(signature.replace(/[\uD800-\uDFFF]/g, "\uFFFD")) }
          })),
          fc.tuple(pathParam("memory"), hostileBody).map(([provider, body]) => ({ method: "POST", path: `/webhooks/${provider === "memory" ? "nope" : provider}`, body }))
        ),
        fc.constantFrom(...contentTypes),
        async (req, contentType) => {
          const r = await rawRequest(engine.url, req.method, req.path, {
            headers: { authorization: `Bearer ${key}`, ...(contentType === undefined ? {} : { "content-type": contentType }), ...("headers" in req ? req.headers : {}) },
            body: req.body
          })
          responses.push(`${r.status}`)
          expect(r.status, `${req.method} ${req.path} (${contentType}) → ${r.status} ${r.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
          expect(r.status, `${req.method} ${req.path} (${contentType}) → ${r.status} ${r.text.slice(0, 300)}`).toBeLessThan(500)
        }
      ),
      { numRuns: runs(300) }
    )
    expect(responses.length).toBe(runs(300))
    await quiet()
    expect(stable(await rowCounts(db))).toEqual(before)
    expect(await inbound()).toBe(inBefore)
    await ready()
  })

  it("oversized bodies get a 4xx (413 past the limit) and store nothing", async () => {
    const before = stable(await rowCounts(db))
    const key = keys[GAMMA] as string
    const big = (n: number) => JSON.stringify({ name: "x".repeat(n), roles: ["customer"], status: "active" })
    const deep = (n: number) => `${"[".repeat(n)}${"]".repeat(n)}`
    for (const [method, path, body, type] of [
      ["PUT", `/v1/tenants/${GAMMA}/records/contact/big-1`, big(12 * 1024 * 1024), "application/json"],
      ["PUT", `/v1/tenants/${GAMMA}/records/contact/big-2`, deep(200_000), "application/json"],
      ["POST", `/v1/tenants/${GAMMA}/transactions`, `{"lines":[${Array.from({ length: 200_000 }, () => `{"amount":1}`).join(",")}]}`, "application/json"],
      ["PUT", `/v1/tenants/${GAMMA}`, `name: ${"y".repeat(12 * 1024 * 1024)}\n`, "application/yaml"],
      ["PUT", `/v1/tenants/${GAMMA}`, `a: &a [${"*a,".repeat(50)}x]\nb: &b [${"*a,".repeat(50)}x]\n`, "application/yaml"],
      ["POST", "/webhooks/quickbooks", "z".repeat(12 * 1024 * 1024), "application/json"],
      ["POST", "/webhooks/xero", Buffer.alloc(12 * 1024 * 1024, 7), "application/octet-stream"]
    ] as const) {
      const r = await rawRequest(engine.url, method, path, { headers: { authorization: `Bearer ${path.startsWith(`/v1/tenants/${GAMMA}/`) ? key : engine.adminKey}`, "content-type": type }, body })
      expect(r.status, `${method} ${path} (${body.length} bytes) → ${r.status} ${r.text.slice(0, 200)}`).toBeGreaterThanOrEqual(400)
      expect(r.status, `${method} ${path} (${body.length} bytes) → ${r.status} ${r.text.slice(0, 200)}`).toBeLessThan(500)
    }
    // Past the limit the body is not even read: 413, whoever sends it.
    for (const [path, auth] of [[`/v1/tenants/${GAMMA}/records/contact/big-3`, key], [`/v1/tenants/${GAMMA}`, engine.adminKey]]) {
      const r = await rawRequest(engine.url, "PUT", path as string, { headers: { authorization: `Bearer ${auth}`, "content-type": "application/json" }, body: Buffer.alloc(MAX_BODY_BYTES + 1024, 32) })
      expect(r.status, `${path} → ${r.text.slice(0, 200)}`).toBe(413)
    }
    const hook = await rawRequest(engine.url, "POST", "/webhooks/xero", { headers: { "content-type": "application/json" }, body: Buffer.alloc(MAX_BODY_BYTES + 1024, 32) })
    expect(hook.status).toBe(413)
    await quiet()
    expect(stable(await rowCounts(db))).toEqual(before)
    await ready()
  })

  it("inputs the fuzzing once found answering 500 get a 4xx naming the field", async () => {
    const key = keys[GAMMA] as string
    for (const [method, path, body, type, auth] of [
      // NUL in a path id, a query filter and the OAuth state: Postgres cannot hold it in text.
      ["POST", `/v1/tenants/${GAMMA}/connections/%00/connect`, undefined, undefined, key],
      ["GET", `/v1/tenants/${GAMMA}/records/contact/a%00b`, undefined, undefined, key],
      ["GET", `/v1/tenants/${GAMMA}/audit?recordId=a%00b`, undefined, undefined, key],
      ["GET", `/v1/tenants/${GAMMA}/records/contact?after=%00`, undefined, undefined, key],
      ["GET", "/v1/oauth/quickbooks/callback?state=a%00b&code=x", undefined, undefined, ""],
      // A YAML alias bomb.
      ["PUT", `/v1/tenants/${GAMMA}`, `a: &a [x,x,x,x,x,x,x,x,x,x]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\nd: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n`, "application/yaml", engine.adminKey]
    ] as const) {
      const r = await rawRequest(engine.url, method, path, {
        headers: { ...(auth === "" ? {} : { authorization: `Bearer ${auth}` }), ...(type === undefined ? {} : { "content-type": type }) },
        ...(body === undefined ? {} : { body })
      })
      expect(r.status, `${method} ${path} → ${r.status} ${r.text.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
      expect(r.status, `${method} ${path} → ${r.status} ${r.text.slice(0, 300)}`).toBeLessThan(500)
      expect(r.text, `${method} ${path}`).toMatch(/control character|alias|YAML/)
    }
    await ready()
  })

  it("fuzzing every endpoint's parameters, bodies, content types and keys never answers 5xx", async () => {
    const params: Record<string, string> = { tenant: GAMMA, connection: conn(GAMMA), entity: "contact", id: "fz-1", provider: "quickbooks" }
    const seen = new Map<string, Set<number>>()
    for (const route of all) {
      await fc.assert(
        fc.asyncProperty(
          fc.record(Object.fromEntries(route.params.map((p) => [p, pathParam(params[p] ?? "x")]))) as fc.Arbitrary<Record<string, string>>,
          hostileBody,
          fc.constantFrom(...contentTypes),
          fc.constantFrom(keys[GAMMA] as string, engine.adminKey, "", "ck_bogus_key", "Basic Zm9vOmJhcg=="),
          fc.option(fc.dictionary(fc.constantFrom("limit", "after", "status", "connection", "tenant", "entity", "recordId", "state", "code", "__proto__", "realmId"), hostileString, { maxKeys: 4 })),
          async (values, body, contentType, key, query) => {
            const qs = query === null ? "" : `?${Object.entries(query).map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v.replace(/[\uD800-\uDFFF]/g, "\uFFFD"))}`).join("&")}`
            const path = `${fill(route.path, values)}${qs}`
            const r = await rawRequest(engine.url, route.method, path, {
              headers: {
                ...(key === "" ? {} : { authorization: key.startsWith("Basic") ? key : `Bearer ${key}` }),
                ...(contentType === undefined ? {} : { "content-type": contentType })
              },
              ...(route.method === "GET" || route.method === "DELETE" ? {} : { body })
            })
            const statuses = seen.get(route.name) ?? new Set()
            statuses.add(r.status)
            seen.set(route.name, statuses)
            expect(r.status, `${route.method} ${path} (${contentType}) → ${r.status} ${r.text.slice(0, 300)}`).toBeLessThan(500)
          }
        ),
        { numRuns: runs(60) }
      )
    }
    expect([...seen.keys()].sort()).toEqual(all.map((r) => r.name).sort())
    // No request body polluted a prototype in the engine's process (it is this process).
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore)
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
    expect(({} as Record<string, unknown>).isAdmin).toBeUndefined()
    await quiet()
    await ready()
  }, 120_000)

  it("malformed messages on the inbound subjects end in the DLQ with a reason, and store nothing", async () => {
    await quiet()
    const before = stable(await rowCounts(db, ["records", "links", "bases", "audit_log", "outbox", "operations", "operation_items", "conflicts", "idempotency"]))
    const dlqBefore = await dlq()
    const seqBefore = await dlqLastSeq()
    const prefix = engine.natsPrefix
    const token = fc.oneof(fc.constantFrom(GAMMA, ALPHA, "unknown-tenant"), fc.stringMatching(/^[A-Za-z0-9_-]{1,64}$/))
    const source = fc.constantFrom("app", "webhook", "poll", "system", "other")
    const provider = fc.constantFrom("memory", "quickbooks", "xero", "nope")
    const at = "2026-03-01T00:00:00.000Z"
    const payload = fc.oneof(
      // Not a message at all.
      hostileBody.map((b) => (typeof b === "string" ? b : Buffer.from(b).toString("latin1"))),
      // The right kind, a wrong shape.
      fc.record({ kind: fc.constantFrom("app_change", "provider_change", "resync"), tenant: fc.oneof(hostileString, fc.integer()), connectionId: fc.oneof(fc.integer(), fc.constant(null)) }).map((o) => JSON.stringify(o)),
      // A well-formed message for a connection that does not exist (hostile ids included).
      fc.record({ id: hostileString, entity: fc.constantFrom("contact", "invoice", "unicorn") }).map(({ id, entity }) =>
        JSON.stringify({ kind: "app_change", tenant: GAMMA, connectionId: `no-such-${id}`, entity, recordId: id, record: contact("ghost"), at })
      ),
      fc.record({ id: hostileString }).map(({ id }) => JSON.stringify({ kind: "provider_change", tenant: GAMMA, connectionId: id.length === 0 ? "∅" : id, entity: "contact", externalId: id, operation: "update", occurredAt: at })),
      // A real connection, an entity it does not sync or that does not exist, or a record that does not validate.
      fc.record({ entity: fc.constantFrom("unicorn", "__proto__", "bill", "constructor"), id: hostileString }).map(({ entity, id }) =>
        JSON.stringify({ kind: "app_change", tenant: GAMMA, connectionId: conn(GAMMA), entity, recordId: `nats-${id}`, record: contact("wrong entity"), at })
      ),
      fc.record({ record: fc.oneof(hostileString, fc.jsonValue({ maxDepth: 2 }), fc.constant({ name: 42, roles: "customer", status: "??" })), id: fc.stringMatching(/^[a-z0-9]{1,12}$/) }).map(({ record, id }) =>
        JSON.stringify({ kind: "app_change", tenant: GAMMA, connectionId: conn(GAMMA), entity: "contact", recordId: `nats-bad-${id}`, record, at })
      )
    )
    const published: Array<string> = []
    await withNats(async (nc) => {
      const js = nc.jetstream()
      await fc.assert(
        fc.asyncProperty(token, provider, source, payload, async (t, p, s, body) => {
          const h = natsHeaders()
          h.set("Concord-Kind", "app_change")
          await js.publish(`${prefix}.concord.in.${t}.${p}.${s}`, new TextEncoder().encode(body), { headers: h })
          published.push(body)
        }),
        { numRuns: runs(300) }
      )
      // A message bigger than most; and an empty one.
      await js.publish(`${prefix}.concord.in.${GAMMA}.memory.app`, new TextEncoder().encode(`{"kind":"app_change","pad":"${"p".repeat(512 * 1024)}"}`))
      await js.publish(`${prefix}.concord.in.${GAMMA}.memory.app`, new Uint8Array(0))
    })
    await eventually(async () => ((await dlq()) - dlqBefore >= published.length + 2 ? true : undefined), 90_000, 250).catch(async (e) => {
      const dead = new Set(await withNats(async (nc) => {
        const jsm = await nc.jetstreamManager()
        const out: Array<string> = []
        const info = await jsm.streams.info(`${prefix.toUpperCase()}_CONCORD_DLQ`)
        for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
          const m = await jsm.streams.getMessage(`${prefix.toUpperCase()}_CONCORD_DLQ`, { seq }).catch(() => undefined)
          const letter = m?.json<{ message: unknown }>()
          if (letter !== undefined) out.push(typeof letter.message === "string" ? letter.message : JSON.stringify(letter.message))
        }
        return out
      }))
      const missing = published.filter((p) => !dead.has(p) && !dead.has(JSON.stringify(JSON.parse(p)))).slice(0, 5)
      throw new Error(`only ${(await dlq()) - dlqBefore} of ${published.length + 2} malformed messages reached the DLQ (missing e.g. ${missing.map((m) => m.slice(0, 300)).join(" | ")}): ${String(e)}`)
    })
    await quiet()
    expect((await dlq()) - dlqBefore).toBe(published.length + 2)
    // Each dead letter says why, and none is a bug in the engine (a defect retried until it gave up).
    const letters = await lettersAfter(seqBefore)
    expect(letters.length).toBe(published.length + 2)
    const tags = new Set(letters.map((l) => l.error.tag))
    expect([...tags].filter((t) => t !== "InvalidMessage" && t !== "UnknownConnection"), JSON.stringify(letters.filter((l) => l.error.tag !== "InvalidMessage" && l.error.tag !== "UnknownConnection").slice(0, 3))).toEqual([])
    for (const l of letters) expect(l.error.message.length).toBeGreaterThan(10)
    expect(stable(await rowCounts(db, ["records", "links", "bases", "audit_log", "outbox", "operations", "operation_items", "conflicts", "idempotency"]))).toEqual(before)
    await ready()
  }, 180_000)

  describe("tenant isolation", () => {
    /** What each route needs to reach one of beta's resources with alpha's key. */
    const target = (route: Route): { path: string; body?: unknown; raw?: string; contentType?: string } => {
      const id = route.path.includes("/records/") ? beta.recordId
        : route.path.includes("/operations/") ? beta.operationId
        : route.path.includes("/backfills/") ? beta.backfillId
        : "00000000-0000-0000-0000-000000000000"
      const path = fill(route.path, { tenant: BETA, connection: conn(BETA), entity: "contact", id, provider: "memory" })
      const bodies: Record<string, unknown> = {
        putRecord: contact("Overwritten by alpha"),
        postTransaction: { id: "s-alpha", type: "sale", tender: "card", date: "2026-03-02", currency: "USD", lines: [{ amount: 100 }], total: 100 },
        setCredentials: { accountId: "stolen", accessToken: "a", refreshToken: "r", expiresIn: 60 },
        resolveConflict: { resolution: "app" },
        startBackfill: { entities: ["account"] },
        pause: { reason: "alpha was here" },
        createKey: { label: "alpha's key to beta" }
      }
      if (route.name === "putTenant") return { path, raw: tenantYaml(BETA).replace("card-sales", "alpha-rule"), contentType: "application/yaml" }
      return route.method === "GET" || route.method === "DELETE" ? { path } : { path, body: bodies[route.name] ?? {} }
    }

    /** Routes outside /v1/tenants/{tenant}: who may call them and what a tenant key gets. */
    const unscoped: Record<string, "admin-only" | "filtered-by-id" | "filtered-list" | "public"> = {
      getOperation: "filtered-by-id",
      findBackfill: "filtered-by-id",
      allBackfills: "filtered-list",
      allConnections: "admin-only",
      allConflicts: "admin-only",
      webhook: "public",
      oauthCallback: "public",
      healthz: "public",
      readyz: "public"
    }

    it("alpha's key gets 403 or 404 for every one of beta's resources, and changes nothing of beta's", async () => {
      const alpha = keys[ALPHA] as string
      const betaTables = ["records", "links", "bases", "audit_log", "operations", "operation_items", "backfills", "api_keys", "credentials", "connections", "tenants", "conflicts", "parked"]
      const before = await rowCounts(db, betaTables)
      const betaBefore = (await engine.call("GET", `/v1/tenants/${BETA}`, { key: keys[BETA] as string })).body
      const checked: Array<string> = []
      for (const route of all) {
        const isTenantRoute = route.params.includes("tenant")
        const kind = isTenantRoute ? "tenant" : unscoped[route.name]
        if (kind === "public") continue
        const t = target(route)
        const r = await engine.call(route.method, t.path, {
          key: alpha,
          ...(t.body === undefined ? {} : { body: t.body }),
          ...(t.raw === undefined ? {} : { raw: t.raw, headers: { "content-type": t.contentType ?? "application/json" } })
        })
        const what = `${route.name}: ${route.method} ${t.path} → ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`
        checked.push(route.name)
        // Whatever the route, nothing of beta's comes back (an error may repeat the tenant id alpha sent).
        for (const secret of ["Beta's customer", `account-of-${BETA}`, `"tenant":"${BETA}"`, `"connectionId":"${conn(BETA)}"`]) {
          expect(JSON.stringify(r.body ?? ""), what).not.toContain(secret)
        }
        switch (kind) {
          case "tenant":
            expect(r.status, what).toBe(403)
            break
          case "admin-only":
            expect(r.status, what).toBe(403)
            break
          case "filtered-by-id":
            expect(r.status, what).toBe(404)
            break
          case "filtered-list":
            expect(r.status, what).toBe(200)
            expect(r.body, what).toEqual([])
            break
          default:
            // A route outside /v1/tenants/{tenant} not listed above: a read may answer (nothing of beta's, checked above),
            // anything else must be refused.
            if (route.method === "GET" && r.status === 200) break
            expect(r.status, what).toBeGreaterThanOrEqual(400)
            expect(r.status, what).toBeLessThan(500)
        }
      }
      // Every authenticated route was tried.
      expect(checked.sort()).toEqual(all.filter((r) => r.authenticated).map((r) => r.name).sort())
      // The same answer whether or not the resource exists: no probing beta's ids.
      const exists = await engine.call("GET", `/v1/tenants/${BETA}/records/contact/${beta.recordId}`, { key: alpha })
      const missing = await engine.call("GET", `/v1/tenants/${BETA}/records/contact/no-such-record`, { key: alpha })
      expect([exists.status, exists.body]).toEqual([missing.status, missing.body])
      const nobody = await engine.call("GET", "/v1/tenants/no-such-tenant", { key: alpha })
      expect(nobody.status).toBe(403)
      await quiet()
      // Beta is as it was.
      expect(await rowCounts(db, betaTables)).toEqual(before)
      const betaAfter = (await engine.call("GET", `/v1/tenants/${BETA}`, { key: keys[BETA] as string })).body
      expect(betaAfter).toEqual(betaBefore)
      const record = await engine.call("GET", `/v1/tenants/${BETA}/records/contact/${beta.recordId}`, { key: keys[BETA] as string })
      expect(record.body.record.name).toBe("Beta's customer")
      expect(record.body.deleted).toBe(false)
    })

    it("a NATS message naming beta's connection on alpha's subject (or claiming another tenant) is dead-lettered, not applied", async () => {
      await quiet()
      const dlqBefore = await dlq()
      const seqBefore = await dlqLastSeq()
      const before = await rowCounts(db, ["records", "audit_log", "links"])
      const at = "2026-03-01T00:00:00.000Z"
      const forged = [
        // alpha's subject, alpha's tenant in the message, beta's connection
        { subject: `concord.in.${ALPHA}.memory.app`, message: { kind: "app_change", tenant: ALPHA, connectionId: conn(BETA), entity: "contact", recordId: beta.recordId, record: contact("Overwritten over NATS"), at } },
        // alpha's subject, beta's tenant and connection in the message
        { subject: `concord.in.${ALPHA}.memory.app`, message: { kind: "app_change", tenant: BETA, connectionId: conn(BETA), entity: "contact", recordId: "c-forged", record: contact("Forged over NATS"), at } },
        // beta's subject, but alpha's tenant and beta's connection
        { subject: `concord.in.${BETA}.memory.app`, message: { kind: "app_change", tenant: ALPHA, connectionId: conn(BETA), entity: "contact", recordId: "c-forged-2", record: contact("Forged over NATS"), at } },
        // a delete of beta's record from alpha's subject
        { subject: `concord.in.${ALPHA}.memory.app`, message: { kind: "app_change", tenant: ALPHA, connectionId: conn(BETA), entity: "contact", recordId: beta.recordId, deleted: true, at } }
      ]
      await withNats(async (nc) => {
        const js = nc.jetstream()
        for (const f of forged) await js.publish(`${engine.natsPrefix}.${f.subject}`, new TextEncoder().encode(JSON.stringify(f.message)))
      })
      await eventually(async () => ((await dlq()) - dlqBefore >= forged.length ? true : undefined), 60_000, 200).catch(async (e) => {
        throw new Error(`${(await dlq()) - dlqBefore} of ${forged.length} forged messages dead-lettered: ${String(e)}`)
      })
      await quiet()
      const letters = await lettersAfter(seqBefore)
      expect(letters.map((l) => l.error.tag)).toEqual(forged.map(() => "InvalidMessage"))
      for (const l of letters) expect(l.error.message).toMatch(/tenant/)
      expect(await rowCounts(db, ["records", "audit_log", "links"])).toEqual(before)
      const record = await engine.call("GET", `/v1/tenants/${BETA}/records/contact/${beta.recordId}`, { key: keys[BETA] as string })
      expect(record.body.record.name).toBe("Beta's customer")
      expect(record.body.deleted).toBe(false)
      expect((await engine.call("GET", `/v1/tenants/${BETA}/records/contact/c-forged`, { key: keys[BETA] as string })).status).toBe(404)
    })
  })

  it("the engine logged no error and no defect through all of the above", () => {
    const bad = logged.filter((l) => /\bERROR\b|defect|Defect|TypeError|ReferenceError/.test(l))
    expect(bad.map((l) => l.slice(0, 300))).toEqual([])
    // (and it did log: the spy sees the engine's output)
    expect(logged.some((l) => l.includes("encryption key"))).toBe(true)
  })
})
