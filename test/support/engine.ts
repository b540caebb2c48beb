/**
 * A whole Concord node in the test process: real Postgres (a fresh database),
 * real NATS (streams under a fresh prefix), the HTTP API on a free port.
 */
import type { Provider } from "@concord/providers"
import { Effect, Layer, ManagedRuntime, Option, Redacted } from "effect"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { ApiKeys } from "../../packages/server/src/ApiKeys.ts"
import { type ProviderApp, Providers } from "../../packages/server/src/Providers.ts"
import { node } from "../../packages/server/src/Server.ts"
import { Settings } from "../../packages/server/src/Settings.ts"
import { freePort } from "../../packages/server/src/storage/Database.ts"
import { deleteStreams, freshDatabase, natsUrl, uniqueName } from "./services.ts"

export interface TestEngine {
  readonly url: string
  readonly adminKey: string
  readonly databaseUrl: string
  readonly natsPrefix: string
  readonly runtime: ManagedRuntime.ManagedRuntime<unknown, unknown>
  /** Calls the API; returns status and parsed JSON (or text). */
  readonly call: (method: string, path: string, options?: { readonly key?: string; readonly body?: unknown; readonly headers?: Record<string, string>; readonly raw?: string | Uint8Array }) => Promise<{ status: number; body: any }>
  readonly stop: () => Promise<void>
}

export const startEngine = async (options: {
  readonly providers?: ReadonlyArray<{ readonly provider: Provider.Provider; readonly app?: ProviderApp }>
  readonly env?: Record<string, string>
  readonly database?: { url: string; drop: () => Promise<void> }
  readonly natsPrefix?: string
} = {}): Promise<TestEngine> => {
  const db = options.database ?? (await freshDatabase())
  const natsPrefix = options.natsPrefix ?? uniqueName("t").toLowerCase()
  const port = await freePort()
  for (const [k, v] of Object.entries(options.env ?? {})) process.env[k] = v
  const settings = Settings.make({
    port,
    databaseUrl: Option.some(Redacted.make(db.url)),
    natsUrl: Option.some(natsUrl),
    natsPrefix,
    dataDir: mkdtempSync(join(tmpdir(), "concord-engine-")),
    publicUrl: `http://127.0.0.1:${port}`,
    maxDeliver: 3,
    adminKey: Option.some(Redacted.make("ck_admin00000_testadminsecretvalue0000"))
  })
  const runtime = ManagedRuntime.make(node.pipe(Layer.provideMerge(Layer.succeed(Settings, settings))) as Layer.Layer<unknown, unknown, never>)
  await runtime.runPromise(Effect.gen(function*() {
    const providers = yield* Providers
    for (const p of options.providers ?? []) {
      yield* providers.register(p.provider)
      if (p.app !== undefined) yield* providers.setApp(p.provider.id, p.app)
    }
  }) as Effect.Effect<void, never, never>)
  const adminKey = await runtime.runPromise(Effect.map(ApiKeys, (k) => Redacted.value(k.adminKey)) as Effect.Effect<string, never, never>)
  const url = `http://127.0.0.1:${port}`
  const call: TestEngine["call"] = async (method, path, o = {}) => {
    const headers: Record<string, string> = { ...(o.headers ?? {}) }
    if (o.key !== undefined) headers.authorization = `Bearer ${o.key}`
    let body: string | Uint8Array | undefined = o.raw
    if (o.body !== undefined) {
      body = JSON.stringify(o.body)
      headers["content-type"] ??= "application/json"
    }
    const res = await fetch(`${url}${path}`, { method, headers, ...(body === undefined ? {} : { body }) })
    const text = await res.text()
    let parsed: unknown = text
    try {
      parsed = text.length > 0 ? JSON.parse(text) : undefined
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed }
  }
  return {
    url,
    adminKey,
    databaseUrl: db.url,
    natsPrefix,
    runtime: runtime as ManagedRuntime.ManagedRuntime<unknown, unknown>,
    call,
    stop: async () => {
      await runtime.dispose()
      if (options.database === undefined) await db.drop()
      await deleteStreams(natsPrefix.toUpperCase())
    }
  }
}

/** Polls `check` until it returns a value (or times out). */
export const eventually = async <A>(check: () => Promise<A | undefined>, timeoutMs = 20_000, everyMs = 100): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const v = await check()
      if (v !== undefined) return v
    } catch (e) {
      last = e
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms${last === undefined ? "" : `: ${String(last)}`}`)
    await new Promise((r) => setTimeout(r, everyMs))
  }
}
