/**
 * `concord replay` against a running engine: it re-delivers CONCORD_IN
 * messages through the real pipeline (real Postgres and NATS), recovers what
 * a lost webhook missed, never lets an old app change override a newer one,
 * and changes nothing when run a second time.
 */
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { concord, drained, json, lastSeq, oneLineError, operatorEnv, publish } from "../support/cli.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
import { servicesAvailable } from "../support/services.ts"

const tenantYaml = `
version: 1
tenant: acme
connections:
  - id: acme-mem
    provider: memory
    entities:
      account: { direction: pull }
      contact: { direction: both }
      invoice: { direction: both }
`

describe.skipIf(!servicesAvailable)("concord replay (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  let key = ""
  let startedAt = ""
  const mem = makeMemoryProvider()

  beforeAll(async () => {
    mem.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
    engine = await startEngine({ providers: [{ provider: mem.provider, app: { app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }] })
    env = operatorEnv(engine)
    expect((await engine.call("PUT", "/v1/tenants/acme", { key: engine.adminKey, raw: tenantYaml, headers: { "content-type": "application/yaml" } })).status).toBe(200)
    expect((await engine.call("PUT", "/v1/tenants/acme/connections/acme-mem/credentials", {
      key: engine.adminKey,
      body: { accountId: "mem-1", accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
    })).status).toBe(200)
    key = (await engine.call("POST", "/v1/tenants/acme/keys", { key: engine.adminKey, body: {} })).body.key
    // Whole seconds, as an operator would type it.
    startedAt = new Date(Math.floor(Date.now() / 1000) * 1000 - 1000).toISOString().replace(".000Z", "Z")
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  const put = async (entity: string, id: string, body: unknown) => {
    const r = await engine.call("PUT", `/v1/tenants/acme/records/${entity}/${id}`, { key, body })
    expect(r.status).toBe(202)
    return eventually(async () => {
      const op = await engine.call("GET", `/v1/operations/${r.body.operationId}`, { key })
      return op.body.status === "accepted" ? undefined : op.body
    })
  }
  const appRecord = async (entity: string, id: string) => (await engine.call("GET", `/v1/tenants/acme/records/${entity}/${id}`, { key })).body
  const auditRows = async (): Promise<Array<{ seq: number; action: string; detail: { applied?: boolean } }>> =>
    (await engine.call("GET", "/v1/tenants/acme/audit?limit=1000", { key })).body
  const writes = () => mem.stats.creates + mem.stats.updates + mem.stats.writes

  it("recovers what a lost webhook missed, keeps a newer app change, and changes nothing the second time", async () => {
    expect((await put("contact", "c1", { name: "Ada Lovelace", roles: ["customer"], status: "active" })).status).toBe("succeeded")
    const invoice = { contactId: "c1", date: "2026-03-01", currency: "USD", lineAmountTypes: "exclusive", lines: [{ description: "Latte", amount: 450, accountId: "4000" }], status: "authorised", memo: "from the app" }
    expect((await put("invoice", "inv-1", invoice)).status).toBe("succeeded")
    const ext = (await appRecord("invoice", "inv-1")).sync[0].externalId as string

    // The accountant edits the invoice twice; the first webhook arrives, the second is lost.
    const webhook = (n: number) =>
      JSON.stringify({ kind: "provider_change", tenant: "acme", connectionId: "acme-mem", entity: "invoice", externalId: ext, operation: "update", occurredAt: `2026-03-02T10:00:0${n}Z` })
    mem.accountant.edit("invoice", ext, { memo: "edit 1" })
    await publish(engine, "concord.in.acme.memory.webhook", webhook(1), "webhook-1")
    await eventually(async () => ((await appRecord("invoice", "inv-1")).record.memo === "edit 1" ? true : undefined))
    mem.accountant.edit("invoice", ext, { memo: "edit 2" })
    await drained(engine)
    expect((await appRecord("invoice", "inv-1")).record.memo).toBe("edit 1")

    // Replaying the invoice's messages re-reads the provider: the lost edit arrives. The
    // app's old change ("from the app") is replayed too, but in its original place: it
    // does not override what happened since.
    const first = await concord(["replay", "--tenant", "acme", "--entity", "invoice", "--since", startedAt, "--json"], env)
    expect(first.code).toBe(0)
    const r1 = json(first)
    expect(r1).toMatchObject({ dryRun: false, replayed: 2, subjects: { "concord.in.acme.memory.app": 1, "concord.in.acme.memory.webhook": 1 } })
    expect(r1.skipped.otherEntity).toBeGreaterThanOrEqual(1)
    expect(r1.messages.map((m: { kind: string; entity: string; id: string }) => `${m.kind} ${m.entity} ${m.id}`)).toEqual([
      "app_change invoice inv-1",
      `provider_change invoice ${ext}`
    ])
    for (const m of r1.messages) expect(m.replayedAs).toBeGreaterThan(m.seq)
    await drained(engine)
    expect((await appRecord("invoice", "inv-1")).record.memo).toBe("edit 2")
    expect(mem.records("invoice").find((r) => r.externalId === ext)?.memo).toBe("edit 2")
    expect(mem.records("invoice")).toHaveLength(1)

    // The second time changes nothing: same records, same audit trail, no provider write.
    const before = { audit: await auditRows(), writes: writes(), invoices: mem.records("invoice").length, contacts: mem.records("contact").length, record: await appRecord("invoice", "inv-1") }
    const second = await concord(["replay", "--tenant", "acme", "--entity", "invoice", "--since", "15m", "--json"], env)
    expect(second.code).toBe(0)
    const r2 = json(second)
    // The copies made by the first run are recognised as copies: each original is replayed once.
    expect(r2.replayed).toBe(2)
    expect(r2.skipped.copiesOfTheSameMessage).toBe(2)
    await drained(engine)
    // The audit log may note that the old app change arrived again (applied: false), and nothing else.
    const added = (await auditRows()).slice(before.audit.length)
    expect(added.filter((r) => !(r.action === "app_change" && r.detail.applied === false))).toEqual([])
    expect(await auditRows()).toEqual([...before.audit, ...added])
    expect(writes()).toBe(before.writes)
    expect(mem.records("invoice").length).toBe(before.invoices)
    expect(mem.records("contact").length).toBe(before.contacts)
    const after = await appRecord("invoice", "inv-1")
    expect(after.record).toEqual(before.record.record)
    expect(after.sync).toEqual(before.record.sync)
  })

  it("--dry-run lists without publishing; --from-seq/--to-seq and --provider bound what is replayed", async () => {
    const seqBefore = await lastSeq(engine, "IN")
    const dry = await concord(["replay", "--tenant", "acme", "--from-seq", "1", "--to-seq", "2", "--dry-run", "--json"], env)
    expect(dry.code).toBe(0)
    const d = json(dry)
    expect(d.dryRun).toBe(true)
    expect(d.messages.map((m: { seq: number }) => m.seq)).toEqual([1, 2])
    expect(d.messages.every((m: { replayedAs?: number }) => m.replayedAs === undefined)).toBe(true)
    expect(await lastSeq(engine, "IN")).toBe(seqBefore)

    const human = await concord(["replay", "--tenant", "acme", "--from-seq", "1", "--dry-run"], env)
    expect(human.code).toBe(0)
    expect(human.stdout).toMatch(/^would replay \d+ message\(s\) of T_\w+_CONCORD_IN \(seq 1\.\.\d+\)/)
    expect(human.stdout).toMatch(/SUBJECT\s+MESSAGES\nconcord\.in\.acme\.memory\.app\s+\d+/)

    const none = await concord(["replay", "--tenant", "acme", "--provider", "xero", "--since", "1h"], env)
    expect(none.code).toBe(0)
    expect(none.stdout).toContain("nothing to replay")
    const other = json(await concord(["replay", "--tenant", "other", "--since", "1h", "--json"], env))
    expect(other.replayed).toBe(0)
    expect(await lastSeq(engine, "IN")).toBe(seqBefore)
  })

  it("draws a progress bar with rate and ETA on stderr only when asked (or on a terminal)", async () => {
    const withBar = await concord(["replay", "--tenant", "acme", "--from-seq", "1", "--dry-run", "--progress"], env)
    expect(withBar.code).toBe(0)
    expect(withBar.stderr).toMatch(/scanning \[[█░]+\] \d+\/\d+ \(\d+%\)\s+[\d.]+\/s\s+ETA \d+s/)
    const quiet = await concord(["replay", "--tenant", "acme", "--from-seq", "1", "--dry-run"], env)
    expect(quiet.stderr).toBe("")
  })

  it("misuse and unreachable NATS give one line on stderr and a non-zero exit", async () => {
    const nobody = `nats://127.0.0.1:${await freePort()}`
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp]> = [
      [["replay", "--tenant", "acme"], 2, /a start point is required: --since TIME or --from-seq N/],
      [["replay", "--tenant", "acme", "--since", "1h", "--from-seq", "3"], 2, /--since and --from-seq cannot be used together/],
      [["replay", "--tenant", "acme", "--since", "yesterday"], 2, /--since.*RFC 3339/],
      [["replay", "--tenant", "acme", "--since", "2026-13-45T99:00:00Z"], 2, /--since/],
      [["replay", "--tenant", "acme", "--since", "2h", "--until", "1h", "--to-seq", "5"], 2, /--until and --to-seq cannot be used together/],
      [["replay", "--tenant", "acme", "--since", "1h", "--until", "2h"], 2, /--until .* is before --since/],
      [["replay", "--tenant", "acme", "--from-seq", "0"], 2, /--from-seq/],
      [["replay", "--since", "1h"], 2, /--tenant/],
      [["replay", "--tenant", "a.b", "--since", "1h"], 2, /not a tenant id/],
      [["replay", "--tenant", "acme", "--since", "1h", "--nats", nobody], 1, /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/],
      [["replay", "--tenant", "acme", "--since", "1h", "--prefix", "nope"], 1, /no stream NOPE_CONCORD_IN/]
    ]
    const results = await Promise.all(cases.map(([args]) => concord(args, env)))
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, args.join(" ")).toBe(code)
      expect(oneLineError(r), args.join(" ")).toMatch(message)
    }
    const help = await concord(["replay", "--help"], env)
    expect(help.code).toBe(0)
    for (const flag of ["--tenant", "--provider", "--entity", "--since", "--from-seq", "--until", "--to-seq", "--dry-run", "--json", "--progress", "--nats", "--prefix"]) {
      expect(help.stdout).toContain(flag)
    }
  })
})
