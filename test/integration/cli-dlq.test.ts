/**
 * `concord dlq …` against a running engine: a message that failed for good is
 * listed and shown; replaying it before its cause is fixed leaves exactly one
 * (new) dead letter; after the fix, replay re-processes it, the record syncs
 * and the DLQ is empty. Purge deletes only when confirmed.
 */
import { Redacted } from "effect"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { concord, json, oneLineError, operatorEnv, publish } from "../support/cli.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { makeMemoryProvider } from "../support/MemoryProvider.ts"
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
`

describe.skipIf(!servicesAvailable)("concord dlq (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  const keys = { acme: "", beta: "" }
  const mem = makeMemoryProvider()

  beforeAll(async () => {
    mem.accountant.create("account", { id: "x", code: "4000", name: "Sales", type: "revenue", status: "active" })
    // startEngine sets CONCORD_MAX_DELIVER to 3: a retryable failure is dead-lettered after three attempts.
    engine = await startEngine({ providers: [{ provider: mem.provider, app: { app: { clientId: "c", clientSecret: Redacted.make("s"), redirectUri: "http://x/cb" } } }] })
    env = operatorEnv(engine)
    for (const tenant of ["acme", "beta"] as const) {
      expect((await engine.call("PUT", `/v1/tenants/${tenant}`, { key: engine.adminKey, raw: tenantYaml(tenant), headers: { "content-type": "application/yaml" } })).status).toBe(200)
      expect((await engine.call("PUT", `/v1/tenants/${tenant}/connections/${tenant}-mem/credentials`, {
        key: engine.adminKey,
        body: { accountId: `${tenant}-account`, accessToken: "at", refreshToken: "rt", expiresIn: 3600 }
      })).status).toBe(200)
      keys[tenant] = (await engine.call("POST", `/v1/tenants/${tenant}/keys`, { key: engine.adminKey, body: {} })).body.key
    }
  }, 120_000)

  afterAll(async () => {
    await engine?.stop()
  })

  const dlqList = async (...args: Array<string>) => {
    const r = await concord(["dlq", "list", "--json", ...args], env)
    expect(r.code).toBe(0)
    return json(r) as { total: number; shown: number; entries: Array<{ seq: number; tenant: string; replaces: number | null; letter: any }> }
  }
  const record = async (entity: string, id: string) => (await engine.call("GET", `/v1/tenants/acme/records/${entity}/${id}`, { key: keys.acme })).body

  it("replays a dead letter: failed again while the cause remains (one new entry), re-processed and gone once it is fixed", async () => {
    // An invoice for a customer nobody has created yet: retried, then dead-lettered.
    const invoice = { contactId: "c-late", date: "2026-03-01", currency: "USD", lineAmountTypes: "exclusive", lines: [{ description: "Latte", amount: 450, accountId: "4000" }], status: "authorised" }
    const put = await engine.call("PUT", "/v1/tenants/acme/records/invoice/inv-1", { key: keys.acme, body: invoice })
    expect(put.status).toBe(202)
    const first = await eventually(async () => {
      const l = await dlqList()
      return l.total === 1 ? l.entries[0] : undefined
    }, 30_000, 250)
    expect(first).toMatchObject({ tenant: "acme", letter: { originalSubject: "concord.in.acme.memory.app", deliveries: 3, error: { tag: "UnresolvedReference" }, message: { kind: "app_change", recordId: "inv-1" } } })
    expect(first.letter.error.message).toContain("c-late")
    const op = (await engine.call("GET", `/v1/operations/${put.body.operationId}`, { key: keys.acme })).body
    expect(op.status).toBe("failed")

    const human = await concord(["dlq", "list"], env)
    expect(human.stdout).toMatch(new RegExp(`^${first.seq}\\s+\\S+\\s+acme\\s+memory\\s+invoice inv-1 \\(app_change\\)\\s+UnresolvedReference: `, "m"))
    expect(human.stdout).toContain("1 of 1 dead letter(s)")
    const shown = await concord(["dlq", "show", String(first.seq)], env)
    expect(shown.code).toBe(0)
    expect(shown.stdout).toContain(`original         concord.in.acme.memory.app seq ${first.letter.streamSequence}`)
    expect(shown.stdout).toContain("\"contactId\": \"c-late\"")

    // Replayed before the cause is fixed: it fails again, and a new dead letter replaces the old one.
    const again = await concord(["dlq", "replay", String(first.seq), "--timeout", "60", "--json"], env)
    expect(again.code).toBe(1)
    const a = json(again)
    expect(a).toMatchObject({ replayed: 1, reprocessed: 0, failedAgain: 1, pending: 0 })
    expect(a.results[0]).toMatchObject({ seq: first.seq, result: "failed_again", error: { tag: "UnresolvedReference" } })
    const replaced = await dlqList()
    expect(replaced.total).toBe(1)
    expect(replaced.entries[0]).toMatchObject({ seq: a.results[0].newSeq, replaces: first.seq })
    // The copy keeps the original's place: its dead letter still names the first copy.
    expect(json(await concord(["dlq", "show", String(a.results[0].newSeq), "--json"], env)).originalSeq).toBe(first.letter.streamSequence)

    // Fix the cause: the customer arrives. Nothing re-processes the invoice by itself.
    const contact = await engine.call("PUT", "/v1/tenants/acme/records/contact/c-late", { key: keys.acme, body: { name: "Late Larry", roles: ["customer"], status: "active" } })
    await eventually(async () => ((await engine.call("GET", `/v1/operations/${contact.body.operationId}`, { key: keys.acme })).body.status === "succeeded" ? true : undefined))
    expect(mem.records("invoice")).toHaveLength(0)
    expect((await record("invoice", "inv-1")).sync[0].status).toBe("error")

    const fixed = await concord(["dlq", "replay", "--all", "--tenant", "acme", "--json"], env)
    expect(fixed.code).toBe(0)
    expect(json(fixed)).toMatchObject({ replayed: 1, reprocessed: 1, failedAgain: 0, pending: 0, results: [{ seq: a.results[0].newSeq, result: "reprocessed" }] })
    expect((await dlqList()).total).toBe(0)
    const synced = await record("invoice", "inv-1")
    expect(synced.sync[0]).toMatchObject({ status: "synced", externalId: expect.any(String) })
    const contactExt = mem.records("contact").find((c) => c.name === "Late Larry")?.externalId
    expect(mem.records("invoice")).toEqual([expect.objectContaining({ externalId: synced.sync[0].externalId, contactId: contactExt })])
  }, 180_000)

  it("reports a replay the engine has not settled within --timeout as pending (exit 1), without losing the dead letter", async () => {
    const put = await engine.call("PUT", "/v1/tenants/acme/records/invoice/inv-2", {
      key: keys.acme,
      body: { contactId: "c-never", date: "2026-03-01", currency: "USD", lineAmountTypes: "exclusive", lines: [{ description: "Tea", amount: 300, accountId: "4000" }], status: "authorised" }
    })
    expect(put.status).toBe(202)
    const dead = await eventually(async () => (await dlqList("--tenant", "acme")).entries[0], 30_000, 250)
    // The copy is retried with backoff (1 s, 2 s) before it can die again: a 1 s wait cannot see it settle.
    const r = await concord(["dlq", "replay", String(dead.seq), "--timeout", "1"], env)
    expect(r.code).toBe(1)
    expect(r.stdout).toMatch(new RegExp(`^${dead.seq}\\s+invoice inv-2 \\(app_change\\)\\s+still pending\\s+copy \\d+ of T_\\w+_CONCORD_IN is still being retried`, "m"))
    expect(r.stdout).toContain("0 reprocessed, 0 failed again, 1 still pending")
    // It settles later: one dead letter again, the new one replacing the old.
    const later = await eventually(async () => {
      const l = await dlqList("--tenant", "acme")
      return l.entries[0]?.replaces === dead.seq ? l : undefined
    }, 30_000, 250)
    expect(later.total).toBe(1)
    const purged = await concord(["dlq", "purge", "--all", "--tenant", "acme", "--yes", "--json"], env)
    expect(json(purged)).toMatchObject({ purged: 1 })
  }, 180_000)

  it("lists with filters and a limit, and purges only what was confirmed", async () => {
    // Messages that do not decode go straight to the DLQ, one per tenant.
    await publish(engine, "concord.in.acme.memory.app", "{not json", "garbage-acme")
    await publish(engine, "concord.in.beta.memory.webhook", "also not json", "garbage-beta")
    await eventually(async () => ((await dlqList()).total === 2 ? true : undefined), 30_000, 250)
    const beta = await dlqList("--tenant", "beta")
    expect(beta).toMatchObject({ total: 1, shown: 1, entries: [{ tenant: "beta", letter: { error: { tag: "InvalidMessage" }, message: "also not json" } }] })
    const limited = await dlqList("--limit", "1")
    expect(limited).toMatchObject({ total: 2, shown: 1 })
    const human = await concord(["dlq", "list", "--limit", "1"], env)
    expect(human.stdout).toContain("1 of 2 dead letter(s) (raise --limit to see more)")
    const acmeSeq = (await dlqList("--tenant", "acme")).entries[0]?.seq as number

    // Replaying a message that can never decode fails again.
    const replay = await concord(["dlq", "replay", String(acmeSeq), "--timeout", "30"], env)
    expect(replay.code).toBe(1)
    expect(replay.stdout).toMatch(/failed again\s+now dead letter \d+: InvalidMessage/)
    const newAcmeSeq = (await dlqList("--tenant", "acme")).entries[0]?.seq as number
    expect(newAcmeSeq).toBeGreaterThan(acmeSeq)

    const unconfirmed = await concord(["dlq", "purge", String(newAcmeSeq)], env)
    expect(unconfirmed.code).toBe(2)
    expect(oneLineError(unconfirmed)).toMatch(/refusing to delete dead letter \d+ .* without --yes/)
    const wrongTenant = await concord(["dlq", "purge", String(newAcmeSeq), "--tenant", "beta", "--yes"], env)
    expect(wrongTenant.code).toBe(2)
    expect(oneLineError(wrongTenant)).toContain("is for acme/memory")
    expect((await dlqList()).total).toBe(2)

    const one = await concord(["dlq", "purge", String(newAcmeSeq), "--yes", "--json"], env)
    expect(one.code).toBe(0)
    expect(json(one)).toEqual({ purged: 1, seq: newAcmeSeq })
    const gone = await concord(["dlq", "show", String(newAcmeSeq)], env)
    expect(gone.code).toBe(1)
    expect(oneLineError(gone)).toContain(`has no message ${newAcmeSeq}`)
    const all = await concord(["dlq", "purge", "--all", "--tenant", "beta", "-y"], env)
    expect(all.code).toBe(0)
    expect(all.stdout).toMatch(/^purged 1 dead letter\(s\) of t_\w+\.concord\.dlq\.beta\.\*/)
    expect((await dlqList()).total).toBe(0)
    const empty = await concord(["dlq", "list"], env)
    expect(empty.stdout).toMatch(/^T_\w+_CONCORD_DLQ is empty/)
    const nothing = await concord(["dlq", "replay", "--all"], env)
    expect(nothing.code).toBe(0)
    expect(nothing.stdout).toContain("nothing to replay")
  }, 180_000)

  it("misuse and unreachable NATS give one line on stderr and a non-zero exit", async () => {
    const nobody = `nats://127.0.0.1:${await freePort()}`
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp]> = [
      [["dlq", "replay"], 2, /a sequence .* or --all/],
      [["dlq", "replay", "3", "--all"], 2, /not both/],
      [["dlq", "purge"], 2, /a sequence .* or --all/],
      [["dlq", "show"], 2, /Missing required argument/i],
      [["dlq", "show", "abc"], 2, /seq/],
      [["dlq", "show", "999999"], 1, /has no message 999999/],
      [["dlq", "list", "--tenant", "a b"], 2, /not a tenant id/],
      [["dlq", "list", "--limit", "0"], 2, /--limit/],
      [["dlq", "list", "--nats", nobody], 1, /cannot reach NATS at nats:\/\/127\.0\.0\.1:\d+/],
      [["dlq", "list", "--prefix", "nope"], 1, /no stream NOPE_CONCORD_IN/]
    ]
    const results = await Promise.all(cases.map(([args]) => concord(args, env)))
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, args.join(" ")).toBe(code)
      expect(oneLineError(r), args.join(" ")).toMatch(message)
    }
    const helps = await Promise.all(["list", "show", "replay", "purge"].map((sub) => concord(["dlq", sub, "--help"], env)))
    for (const h of helps) {
      expect(h.code).toBe(0)
      expect(h.stdout).toContain("--json")
      expect(h.stdout).toContain("--nats")
    }
  })
})
