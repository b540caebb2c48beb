/**
 * `concord sandbox <provider>`: the binary starts a provider emulator that a
 * running engine really syncs with, prints how to reach it, and stops on
 * Ctrl-C (SIGINT), freeing its port.
 */
import { QuickBooks } from "@concord/providers/quickbooks/Adapter"
import { Redacted } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { afterAll, describe, expect, it } from "vitest"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { bin, concord, oneLineError } from "../support/cli.ts"
import { eventually, startEngine, type TestEngine } from "../support/engine.ts"
import { servicesAvailable } from "../support/services.ts"

interface Running {
  readonly child: ChildProcess
  readonly first: string
  readonly exited: Promise<number | null>
}

/** Starts `concord sandbox …args` and resolves with its first line of output. */
const startSandbox = (args: ReadonlyArray<string>): Promise<Running> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, "sandbox", ...args], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    const exited = new Promise<number | null>((done) => child.once("exit", (code, signal) => done(code ?? (signal === null ? null : 128))))
    const timer = setTimeout(() => reject(new Error(`sandbox did not start: ${stderr}`)), 30_000)
    child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()))
    child.stdout?.on("data", (d: Buffer) => {
      stdout += d.toString()
      const nl = stdout.indexOf("\n")
      if (nl >= 0) {
        clearTimeout(timer)
        resolve({ child, first: stdout.slice(0, nl), exited })
      }
    })
    void exited.then((code) => reject(new Error(`sandbox exited with ${code}: ${stderr}`)))
  })

const reachable = (url: string) => fetch(url).then(() => true, () => false)

describe.skipIf(!servicesAvailable)("concord sandbox", () => {
  const children: Array<ChildProcess> = []
  let engine: TestEngine | undefined

  afterAll(async () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL")
    await engine?.stop()
  })

  it("runs the QuickBooks sandbox standalone, and a running engine syncs into it", async () => {
    const sb = await startSandbox(["quickbooks", "--json", "--no-limits", "--seed", "7"])
    children.push(sb.child)
    const info = JSON.parse(sb.first) as {
      provider: string
      baseUrl: string
      rootUrl: string
      accounts: Array<string>
      clientId: string
      clientSecret: string
      webhookSecret: string
      endpoints: { authorizeUrl: string; tokenUrl: string }
      limits: boolean
      accessToken: string
      refreshToken: string
      expiresIn: number
    }
    expect(info).toMatchObject({ provider: "quickbooks", limits: false, accounts: [expect.any(String)] })
    const describeText = await (await fetch(`${info.rootUrl}/__sandbox/describe`)).text()
    expect(describeText).toContain("rate limits     off")

    // A Concord node connects a tenant to it and pushes a customer.
    engine = await startEngine({
      providers: [{
        provider: QuickBooks,
        app: {
          app: { clientId: info.clientId, clientSecret: Redacted.make(info.clientSecret), redirectUri: "http://unused/qbo", endpoints: info.endpoints },
          webhookSecret: Redacted.make(info.webhookSecret),
          apiUrl: info.baseUrl,
          unlimited: true
        }
      }]
    })
    const yaml = "version: 1\ntenant: shop\nconnections:\n  - id: shop-qbo\n    provider: quickbooks\n    entities:\n      contact: { direction: both }\n"
    expect((await engine.call("PUT", "/v1/tenants/shop", { key: engine.adminKey, raw: yaml, headers: { "content-type": "application/yaml" } })).status).toBe(200)
    const realm = info.accounts[0] as string
    expect((await engine.call("PUT", "/v1/tenants/shop/connections/shop-qbo/credentials", {
      key: engine.adminKey,
      body: { accountId: realm, accessToken: info.accessToken, refreshToken: info.refreshToken, expiresIn: info.expiresIn, baseUrl: info.baseUrl }
    })).status).toBe(200)
    const put = await engine.call("PUT", "/v1/tenants/shop/records/contact/ada", { key: engine.adminKey, body: { name: "Ada Lovelace", roles: ["customer"], status: "active" } })
    expect(put.status).toBe(202)
    const op = await eventually(async () => {
      const r = await engine?.call("GET", `/v1/operations/${put.body.operationId}`, { key: engine.adminKey })
      return r?.body.status === "accepted" ? undefined : r?.body
    })
    expect(op.status).toBe("succeeded")
    const query = await fetch(`${info.baseUrl}/v3/company/${realm}/query?query=${encodeURIComponent("select * from Customer")}&minorversion=75`, {
      headers: { authorization: `Bearer ${info.accessToken}`, accept: "application/json" }
    })
    expect(query.status).toBe(200)
    expect(JSON.stringify(await query.json())).toContain("Ada Lovelace")

    // Ctrl-C stops it and frees the port.
    sb.child.kill("SIGINT")
    expect(await sb.exited).not.toBeNull()
    expect(await reachable(`${info.rootUrl}/__sandbox/describe`)).toBe(false)
  }, 120_000)

  it("runs the Xero sandbox on a chosen port with its limits, and prints how to reach it", async () => {
    const port = await freePort()
    const sb = await startSandbox(["xero", "--port", String(port)])
    children.push(sb.child)
    expect(sb.first).toBe("Xero sandbox")
    const text = await (await fetch(`http://127.0.0.1:${port}/__sandbox/describe`)).text()
    expect(text).toContain(`API base URL:     http://127.0.0.1:${port}/api.xro/2.0`)
    expect(text).toContain("limits:           60/min")
    const tenantId = /tenants:\s+(\S+)/.exec(text)?.[1] as string
    const tokens = await (await fetch(`http://127.0.0.1:${port}/__sandbox/tokens`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" })).json() as { access_token: string }
    const org = await fetch(`http://127.0.0.1:${port}/api.xro/2.0/Organisation`, {
      headers: { authorization: `Bearer ${tokens.access_token}`, "xero-tenant-id": tenantId, accept: "application/json" }
    })
    expect(org.status).toBe(200)

    // A second sandbox on the same port: one line, exit 1.
    const taken = await concord(["sandbox", "quickbooks", "--port", String(port)])
    expect(taken.code).toBe(1)
    expect(oneLineError(taken)).toMatch(/cannot start the quickbooks sandbox on 127\.0\.0\.1:\d+: EADDRINUSE/)

    sb.child.kill("SIGINT")
    expect(await sb.exited).not.toBeNull()
    expect(await reachable(`http://127.0.0.1:${port}/__sandbox/describe`)).toBe(false)
  }, 120_000)

  it("misuse gives one line and exit 2", async () => {
    for (const args of [["sandbox", "wave"], ["sandbox"], ["sandbox", "xero", "--port", "-1"], ["sandbox", "xero", "--accounts", "0"]]) {
      const r = await concord(args)
      expect(r.code, args.join(" ")).toBe(2)
      oneLineError(r)
    }
    const help = await concord(["sandbox", "--help"])
    expect(help.code).toBe(0)
    for (const flag of ["--port", "--no-limits", "--seed", "--json"]) expect(help.stdout).toContain(flag)
  })
})
