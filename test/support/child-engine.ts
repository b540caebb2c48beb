/**
 * A Concord node as a child process (`node bin/concord.js serve`), for tests
 * that kill it (SIGKILL) and start it again on the same database and streams.
 */
import { type ChildProcess, spawn } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { natsUrl } from "./services.ts"

const root = join(import.meta.dirname, "../..")

export interface ChildEngine {
  readonly url: string
  readonly process: ChildProcess
  /** Resolves when the process has exited (code or signal). */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  /** Everything it printed. */
  readonly output: () => string
  readonly kill: (signal?: NodeJS.Signals) => Promise<void>
}

export const ADMIN_KEY = "ck_admin0000000_childengineadminsecret000"

/**
 * The settings that point a node's app for a provider at its sandbox (`CONCORD_<PROVIDER>_…`). By default
 * with no client-side pacing, for sandboxes with their limits off; `{ unlimited: false }` keeps the
 * adapter's pacing, for a sandbox enforcing the provider's limits.
 */
export const sandboxEnv = (sandbox: {
  readonly provider: string
  readonly clientId: string
  readonly clientSecret: string
  readonly webhookSecret: string
  readonly baseUrl: string
  readonly endpoints: { readonly authorizeUrl: string; readonly tokenUrl: string; readonly connectionsUrl?: string }
}, options: { readonly unlimited?: boolean } = {}): Record<string, string> => {
  const p = sandbox.provider.toUpperCase()
  return {
    [`CONCORD_${p}_CLIENT_ID`]: sandbox.clientId,
    [`CONCORD_${p}_CLIENT_SECRET`]: sandbox.clientSecret,
    [`CONCORD_${p}_WEBHOOK_SECRET`]: sandbox.webhookSecret,
    [`CONCORD_${p}_AUTHORIZE_URL`]: sandbox.endpoints.authorizeUrl,
    [`CONCORD_${p}_TOKEN_URL`]: sandbox.endpoints.tokenUrl,
    ...(sandbox.endpoints.connectionsUrl === undefined ? {} : { [`CONCORD_${p}_CONNECTIONS_URL`]: sandbox.endpoints.connectionsUrl }),
    [`CONCORD_${p}_API_URL`]: sandbox.baseUrl,
    ...(options.unlimited === false ? {} : { [`CONCORD_${p}_UNLIMITED`]: "1" })
  }
}

export const startChild = async (options: {
  readonly databaseUrl: string
  readonly natsPrefix: string
  readonly env?: Record<string, string>
  readonly port?: number
  readonly dataDir?: string
}): Promise<ChildEngine> => {
  const port = options.port ?? (await freePort())
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), "concord-child-"))
  let output = ""
  const child = spawn(process.execPath, [join(root, "bin/concord.js"), "serve"], {
    env: {
      ...process.env,
      PORT: String(port),
      DATABASE_URL: options.databaseUrl,
      NATS_URL: natsUrl,
      CONCORD_NATS_PREFIX: options.natsPrefix,
      CONCORD_DATA_DIR: dataDir,
      CONCORD_ADMIN_KEY: ADMIN_KEY,
      CONCORD_ENCRYPTION_KEYS: "test:MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
      CONCORD_MAX_DELIVER: "5",
      ...options.env
    },
    stdio: ["ignore", "pipe", "pipe"]
  })
  child.stdout?.on("data", (d: Buffer) => {
    output += d.toString()
  })
  child.stderr?.on("data", (d: Buffer) => {
    output += d.toString()
  })
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => resolve({ code, signal }))
  )
  const url = `http://127.0.0.1:${port}`
  const deadline = Date.now() + 60_000
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the engine exited while starting:\n${output}`)
    const ok = await fetch(`${url}/readyz`).then((r) => r.ok, () => false)
    if (ok) break
    if (Date.now() > deadline) {
      child.kill("SIGKILL")
      throw new Error(`the engine did not become ready:\n${output}`)
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  return {
    url,
    process: child,
    exited,
    output: () => output,
    kill: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      await exited
    }
  }
}

/** Calls a running engine's API as the admin (or with `key`). */
export const callApi = async (url: string, method: string, path: string, o: { key?: string; body?: unknown; raw?: string; contentType?: string } = {}) => {
  const headers: Record<string, string> = { authorization: `Bearer ${o.key ?? ADMIN_KEY}` }
  let body: string | undefined = o.raw
  if (o.body !== undefined) body = JSON.stringify(o.body)
  if (body !== undefined) headers["content-type"] = o.contentType ?? "application/json"
  const res = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
  const text = await res.text()
  let parsed: any = text
  try {
    parsed = text.length > 0 ? JSON.parse(text) : undefined
  } catch {
    // not JSON
  }
  return { status: res.status, body: parsed }
}
