/**
 * NATS with JetStream: the connection (or a local `nats-server -js` child
 * process when `NATS_URL` is not set), and the three streams, created or
 * updated at start.
 *
 * | stream | subjects | keeps |
 * |---|---|---|
 * | `CONCORD_IN` | `concord.in.>` | 7 days (replayable), duplicates dropped for 2 minutes |
 * | `CONCORD_EVENTS` | `concord.changes.>`, `concord.drift.>`, `concord.conflicts.>`, `concord.health.>` | 7 days, duplicates dropped for 1 hour |
 * | `CONCORD_DLQ` | `concord.dlq.>` | 30 days |
 *
 * `CONCORD_NATS_PREFIX=p` prefixes stream names (`P_CONCORD_IN`) and
 * subjects (`p.concord.in.>`), so tests and several deployments can share one
 * server.
 */
import { Context, Effect, Layer, Option, Schema } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { existsSync, mkdirSync } from "node:fs"
import { resolve } from "node:path"
import {
  connect,
  DiscardPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
  nanos,
  RetentionPolicy,
  StorageType,
  type StreamConfig
} from "nats"
import { freePort } from "../storage/Database.ts"
import { Settings } from "../Settings.ts"

export class NatsUnavailable extends Schema.TaggedError<NatsUnavailable>()("NatsUnavailable", {
  reason: Schema.String
}) {
  override get message(): string {
    return `NATS is unavailable: ${this.reason}`
  }
}

export interface StreamNames {
  readonly inbound: string
  readonly events: string
  readonly dlq: string
  /** Durable consumer of the inbound stream shared by every node. */
  readonly consumer: string
  /** Adds the deployment prefix to a subject. */
  readonly subject: (subject: string) => string
  /** Removes the deployment prefix from a subject. */
  readonly unprefix: (subject: string) => string
}

export const streamNames = (prefix: string): StreamNames => {
  const upper = prefix === "" ? "" : `${prefix.toUpperCase().replace(/[^A-Z0-9_-]/g, "_")}_`
  const dotted = prefix === "" ? "" : `${prefix}.`
  return {
    inbound: `${upper}CONCORD_IN`,
    events: `${upper}CONCORD_EVENTS`,
    dlq: `${upper}CONCORD_DLQ`,
    consumer: `${upper}concord-engine`,
    subject: (s) => `${dotted}${s}`,
    unprefix: (s) => (dotted !== "" && s.startsWith(dotted) ? s.slice(dotted.length) : s)
  }
}

export interface NatsShape {
  readonly connection: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly names: StreamNames
  readonly url: string
}

export class Nats extends Context.Service<Nats, NatsShape>()("concord/server/Nats") {}

const DAY = 86_400_000

export const streamConfigs = (names: StreamNames): ReadonlyArray<Partial<StreamConfig> & { name: string }> => [
  {
    name: names.inbound,
    subjects: [names.subject("concord.in.>")],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(7 * DAY),
    duplicate_window: nanos(2 * 60_000)
  },
  {
    name: names.events,
    subjects: ["changes", "drift", "conflicts", "health"].map((k) => names.subject(`concord.${k}.>`)),
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(7 * DAY),
    duplicate_window: nanos(60 * 60_000)
  },
  {
    name: names.dlq,
    subjects: [names.subject("concord.dlq.>")],
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(30 * DAY),
    duplicate_window: nanos(2 * 60_000)
  }
]

/** Creates the streams, or updates them to the current configuration. */
export const ensureStreams = (jsm: JetStreamManager, names: StreamNames) =>
  Effect.tryPromise({
    try: async () => {
      for (const config of streamConfigs(names)) {
        const exists = await jsm.streams.info(config.name).then(() => true, () => false)
        if (exists) await jsm.streams.update(config.name, config)
        else await jsm.streams.add(config)
      }
    },
    catch: (e) => new NatsUnavailable({ reason: `cannot create the JetStream streams: ${e instanceof Error ? e.message : String(e)} (is nats-server running with -js?)` })
  })

const findNatsServer = (): string | undefined => {
  for (const dir of (process.env.PATH ?? "").split(":").concat(["/usr/sbin", "/usr/local/bin", "/usr/bin"])) {
    const candidate = resolve(dir, "nats-server")
    if (existsSync(candidate)) return candidate
  }
  return undefined
}

/** Starts `nats-server -js` as a child process for the scope; returns its URL. */
export const localNatsServer = (dataDir: string) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const bin = findNatsServer()
        if (bin === undefined) {
          throw new Error("nats-server is not installed: install it (Debian: apt-get install -y nats-server; or https://github.com/nats-io/nats-server/releases) or set NATS_URL to a server with JetStream")
        }
        const port = await freePort()
        const store = resolve(dataDir, "nats")
        mkdirSync(store, { recursive: true })
        const child = spawn(bin, ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", store], { stdio: ["ignore", "ignore", "pipe"] })
        let stderr = ""
        child.stderr?.on("data", (d: Buffer) => {
          stderr = (stderr + d.toString()).slice(-4000)
        })
        const url = `nats://127.0.0.1:${port}`
        const deadline = Date.now() + 15_000
        for (;;) {
          if (child.exitCode !== null) throw new Error(`nats-server exited with ${child.exitCode}: ${stderr.trim()}`)
          const ok = await connect({ servers: url, timeout: 500 }).then((nc) => nc.close().then(() => true), () => false)
          if (ok) break
          if (Date.now() > deadline) throw new Error(`nats-server did not start on ${url}: ${stderr.trim()}`)
          await new Promise((r) => setTimeout(r, 100))
        }
        return { child, url }
      },
      catch: (e) => new NatsUnavailable({ reason: e instanceof Error ? e.message : String(e) })
    }),
    ({ child }) => stopChild(child)
  ).pipe(Effect.map(({ url }) => url))

const stopChild = (child: ChildProcess) =>
  Effect.promise(() =>
    new Promise<void>((done) => {
      if (child.exitCode !== null) return done()
      child.once("exit", () => done())
      child.kill("SIGTERM")
      setTimeout(() => child.kill("SIGKILL"), 5000).unref()
    })
  )

export const layer: Layer.Layer<Nats, NatsUnavailable, Settings> = Layer.effect(
  Nats,
  Effect.gen(function*() {
    const settings = yield* Settings
    const url = Option.isSome(settings.natsUrl) ? settings.natsUrl.value : yield* localNatsServer(settings.dataDir)
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => connect({ servers: url, name: `concord ${settings.nodeName}`, maxReconnectAttempts: -1, reconnectTimeWait: 500 }),
        catch: (e) => new NatsUnavailable({ reason: `cannot connect to ${url}: ${e instanceof Error ? e.message : String(e)}` })
      }),
      (nc) => Effect.promise(() => nc.drain().catch(() => nc.close())).pipe(Effect.ignore)
    )
    const jsm = yield* Effect.tryPromise({
      try: () => connection.jetstreamManager(),
      catch: (e) => new NatsUnavailable({ reason: `JetStream is not enabled on ${url} (start nats-server with -js): ${e instanceof Error ? e.message : String(e)}` })
    })
    const names = streamNames(settings.natsPrefix)
    yield* ensureStreams(jsm, names)
    return Nats.of({ connection, js: connection.jetstream(), jsm, names, url })
  })
)
