/**
 * `concord conflicts …` and `concord audit verify` against a running engine:
 * real conflicts (both sides changed a customer's name), resolved through the
 * CLI with each choice, and an audit chain that verifies until a row is
 * tampered with.
 */
import { Effect } from "effect"
import { Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import { concord, json, oneLineError, operatorEnv } from "../support/cli.ts"
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
      contact: { direction: both, policy: review }
`

describe.skipIf(!servicesAvailable)("concord conflicts and audit (real engine, Postgres, NATS)", () => {
  let engine: TestEngine
  let env: Record<string, string>
  const keys = { acme: "", beta: "" }
  const mem = makeMemoryProvider()
  const conflictIds: Record<string, string> = {}

  const put = async (tenant: "acme" | "beta", id: string, name: string) => {
    const r = await engine.call("PUT", `/v1/tenants/${tenant}/records/contact/${id}`, { key: keys[tenant], body: { name, roles: ["customer"], status: "active" } })
    expect(r.status).toBe(202)
    return eventually(async () => {
      const op = await engine.call("GET", `/v1/operations/${r.body.operationId}`, { key: keys[tenant] })
      return op.body.status === "accepted" ? undefined : op.body.status as string
    })
  }
  const externalId = async (tenant: "acme" | "beta", id: string): Promise<string> =>
    (await engine.call("GET", `/v1/tenants/${tenant}/records/contact/${id}`, { key: keys[tenant] })).body.sync[0].externalId
  const appName = async (tenant: "acme" | "beta", id: string): Promise<string> =>
    (await engine.call("GET", `/v1/tenants/${tenant}/records/contact/${id}`, { key: keys[tenant] })).body.record.name
  const providerName = (ext: string) => mem.get("contact", ext)?.record.name

  /** The app and the accountant rename the same customer differently: a conflict under `review`. */
  const conflict = async (tenant: "acme" | "beta", id: string, base: string) => {
    expect(await put(tenant, id, base)).toBe("succeeded")
    const ext = await externalId(tenant, id)
    mem.accountant.edit("contact", ext, { name: `${base} (provider)` })
    expect(await put(tenant, id, `${base} (app)`)).toBe("conflict")
    return ext
  }

  beforeAll(async () => {
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

  it("lists conflicts across tenants or for one, shows one, and resolves them with each choice", async () => {
    const ada = await conflict("acme", "ada", "Ada")
    const grace = await conflict("acme", "grace", "Grace")
    const bea = await conflict("beta", "bea", "Bea")

    const all = await concord(["conflicts", "list", "--json"], env)
    expect(all.code).toBe(0)
    const listed = json(all) as Array<{ id: string; tenant: string; recordId: string; path: string; app: unknown; provider: unknown; status: string }>
    expect(listed.map((c) => `${c.tenant}/${c.recordId}/${c.path}/${c.status}`).sort()).toEqual(["acme/ada/name/open", "acme/grace/name/open", "beta/bea/name/open"])
    for (const c of listed) conflictIds[c.recordId] = c.id
    expect(json(await concord(["conflicts", "list", "--tenant", "beta", "--json"], env)).map((c: { recordId: string }) => c.recordId)).toEqual(["bea"])
    // A tenant key sees its own tenant's conflicts, not everyone's.
    expect(json(await concord(["conflicts", "list", "--tenant", "acme", "--json"], { ...env, CONCORD_ADMIN_KEY: keys.acme }))).toHaveLength(2)
    const forbidden = await concord(["conflicts", "list"], { ...env, CONCORD_ADMIN_KEY: keys.acme })
    expect(forbidden.code).toBe(2)
    expect(oneLineError(forbidden)).toContain("admin")
    const table = await concord(["conflicts", "list"], env)
    expect(table.stdout).toMatch(/^ID\s+TENANT\s+CONNECTION\s+RECORD\s+FIELD\s+APP\s+PROVIDER\s+STATUS\s+AGE/)
    expect(table.stdout).toMatch(/acme-mem\s+contact ada\s+name\s+"Ada \(app\)"\s+"Ada \(provider\)"\s+open/)

    const shown = await concord(["conflicts", "show", "acme", conflictIds.ada as string, "--json"], env)
    expect(json(shown)).toMatchObject({ id: conflictIds.ada, recordId: "ada", path: "name", base: "Ada", app: "Ada (app)", provider: "Ada (provider)", status: "open" })
    const human = await concord(["conflicts", "show", "acme", conflictIds.ada as string], env)
    expect(human.stdout).toContain("  base        \"Ada\"   (what both sides last agreed on)")
    expect(human.stdout).toContain("  app         \"Ada (app)\"")
    expect(human.stdout).toContain("  provider    \"Ada (provider)\"")

    // The provider's value: the app takes it, the provider keeps it.
    const p = await concord(["conflicts", "resolve", "acme", conflictIds.ada as string, "--take", "provider", "--json"], env)
    expect(p.code).toBe(0)
    expect(json(p)).toMatchObject({ conflict: { status: "resolved", resolution: "provider" }, outcome: { _tag: "Done", status: "synced" } })
    expect(await appName("acme", "ada")).toBe("Ada (provider)")
    expect(providerName(ada)).toBe("Ada (provider)")

    // A merged value of one's own: both sides get it.
    const m = await concord(["conflicts", "resolve", "acme", conflictIds.grace as string, "--take", "merged", "--value", "\"Grace Hopper\""], env)
    expect(m.code).toBe(0)
    expect(m.stdout).toBe(`resolved conflict ${conflictIds.grace} on contact grace name: kept merged "Grace Hopper"; the record synced (synced)\n`)
    expect(await appName("acme", "grace")).toBe("Grace Hopper")
    expect(providerName(grace)).toBe("Grace Hopper")

    // The app's value: the provider gets it.
    const a = await concord(["conflicts", "resolve", "beta", conflictIds.bea as string, "--take", "app"], env)
    expect(a.code).toBe(0)
    expect(providerName(bea)).toBe("Bea (app)")
    expect(await appName("beta", "bea")).toBe("Bea (app)")

    expect(json(await concord(["conflicts", "list", "--json"], env))).toEqual([])
    expect((await concord(["conflicts", "list"], env)).stdout).toBe("no open conflicts\n")
    expect(json(await concord(["conflicts", "list", "--status", "resolved", "--json"], env))).toHaveLength(3)

    // Resolving twice: nothing left to decide, a failed operation (exit 1); the record keeps the first choice.
    const twice = await concord(["conflicts", "resolve", "acme", conflictIds.ada as string, "--take", "app"], env)
    expect(twice.code).toBe(1)
    expect(oneLineError(twice)).toMatch(new RegExp(`^concord: conflict ${conflictIds.ada} is resolved \\(kept provider\\) since \\S+: nothing to resolve$`))
    expect(await appName("acme", "ada")).toBe("Ada (provider)")
  })

  it("conflicts misuse gives one line on stderr and a non-zero exit", async () => {
    const id = conflictIds.ada ?? "cf_x"
    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp]> = [
      [["conflicts", "resolve", "acme", id, "--take", "merged"], 2, /--take merged needs --value JSON/],
      [["conflicts", "resolve", "acme", id, "--take", "app", "--value", "1"], 2, /--value is only for --take merged/],
      [["conflicts", "resolve", "acme", id, "--take", "merged", "--value", "{nope"], 2, /--value/],
      [["conflicts", "resolve", "acme", id, "--take", "both"], 2, /--take/],
      [["conflicts", "resolve", "acme", id], 2, /--take/],
      [["conflicts", "show", "acme", "cf_missing"], 2, /tenant acme has no conflict cf_missing/],
      [["conflicts", "list", "--tenant", "nope"], 2, /tenant nope does not exist/],
      [["conflicts", "list", "--status", "pending"], 2, /--status/]
    ]
    const results = await Promise.all(cases.map(([args]) => concord(args, env)))
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, args.join(" ")).toBe(code)
      expect(oneLineError(r), args.join(" ")).toMatch(message)
    }
  })

  it("audit verify reports OK, then the first broken link once a row is tampered with (exit 1)", async () => {
    const ok = await concord(["audit", "verify", "--tenant", "acme", "--json"], env)
    expect(ok.code).toBe(0)
    const v = json(ok)
    expect(v).toMatchObject({ tenant: "acme", ok: true })
    expect(v.rows).toBeGreaterThan(5)
    const human = await concord(["audit", "verify", "--tenant", "acme"], env)
    expect(human.stdout).toBe(`audit chain of tenant acme: OK (${v.rows} row(s), every hash follows from the one before)\n`)

    // Someone rewrites history: who made change 4. (The table refuses UPDATE; a superuser can switch that off.)
    await engine.runtime.runPromise(Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      yield* sql.unsafe("ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update")
      yield* sql.unsafe("UPDATE audit_log SET actor = 'mallory' WHERE tenant_id = 'acme' AND seq = 4")
      yield* sql.unsafe("ALTER TABLE audit_log ENABLE TRIGGER audit_log_no_update")
    }) as Effect.Effect<void, never, never>)

    const broken = await concord(["audit", "verify", "--tenant", "acme", "--json"], env)
    expect(broken.code).toBe(1)
    expect(json(broken)).toMatchObject({ tenant: "acme", ok: false, brokenAt: { seq: 4, reason: expect.stringContaining("changed") } })
    const brokenHuman = await concord(["audit", "verify", "--tenant", "acme"], env)
    expect(brokenHuman.code).toBe(1)
    expect(brokenHuman.stdout).toMatch(/^audit chain of tenant acme: BROKEN at row 4: row content does not match its hash/)
    expect(brokenHuman.stderr).toBe("")
    // Other tenants' chains are untouched.
    expect((await concord(["audit", "verify", "--tenant", "beta"], env)).code).toBe(0)

    const cases: ReadonlyArray<readonly [ReadonlyArray<string>, number, RegExp]> = [
      [["audit", "verify", "--tenant", "nope"], 2, /tenant nope does not exist/],
      [["audit", "verify"], 2, /--tenant/],
      [["audit", "verify", "--tenant", "acme", "--admin-key", "ck_bogus"], 2, /unknown or revoked API key/]
    ]
    const results = await Promise.all(cases.map(([args]) => concord(args, env)))
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i] as Awaited<ReturnType<typeof concord>>
      expect(r.code, args.join(" ")).toBe(code)
      expect(oneLineError(r), args.join(" ")).toMatch(message)
    }
  })
})
