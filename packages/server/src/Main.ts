/**
 * `concord serve` / `npm start`: runs a Concord node until interrupted.
 *
 * With no `DATABASE_URL` an embedded Postgres runs in the data folder; with
 * no `NATS_URL` a local `nats-server -js` runs as a child process. With
 * `CONCORD_DEMO=1` the QuickBooks and Xero sandboxes start too, with a demo
 * tenant wired to them (see Demo.ts).
 */
import { Effect, Layer, Option, Redacted } from "effect"
import { getHeapStatistics } from "node:v8"
import { ApiKeys } from "./ApiKeys.ts"
import { Nats } from "./nats/Nats.ts"
import { logging, tracing } from "./Observability.ts"
import { node } from "./Server.ts"
import { Settings } from "./Settings.ts"

/** The V8 heap limit this node runs with (bin/concord.js sets it from CONCORD_MAX_HEAP_MB). */
const heapLimit = () =>
  `V8 heap limit ${Math.round(getHeapStatistics().heap_size_limit / 1048576)} MB (CONCORD_MAX_HEAP_MB; default 1024, 0 for Node's own)`

/** What a person needs after start: where it listens and how to call it. */
const banner = Effect.gen(function*() {
  const settings = yield* Settings
  const keys = yield* ApiKeys
  const nats = yield* Nats
  const url = settings.publicUrl
  const adminKeyHint = Option.isSome(settings.adminKey) ? "CONCORD_ADMIN_KEY" : `${settings.dataDir}/admin.key`
  const lines = [
    `Concord is running on ${url}`,
    `  API docs      ${url}/docs   (OpenAPI: ${url}/openapi.json)`,
    `  health        ${url}/healthz, ${url}/readyz, metrics ${url}/metrics`,
    `  Postgres      ${Option.isSome(settings.databaseUrl) ? "DATABASE_URL" : `embedded, data in ${settings.dataDir}/postgres`}`,
    `  NATS          ${Option.isSome(settings.natsUrl) ? nats.url : `local nats-server at ${nats.url}, data in ${settings.dataDir}/nats`}`,
    `  memory        ${heapLimit()}`,
    `  admin key     in ${adminKeyHint}`,
    `                export CONCORD_ADMIN_KEY=${Option.isSome(settings.adminKey) ? "..." : Redacted.value(keys.adminKey)}`
  ]
  yield* Effect.sync(() => console.log(lines.join("\n")))
})

/** The node plus the start-up banner (and the demo when asked for). */
export const program = Effect.gen(function*() {
  const settings = yield* Settings
  const demo = settings.demo ? (yield* Effect.promise(() => import("./Demo.ts"))).demo : Effect.void
  return yield* Layer.launch(
    Layer.effectDiscard(Effect.andThen(banner, demo)).pipe(Layer.provideMerge(node))
  )
})

export const runnable = Effect.andThen(Effect.logInfo(`starting: Node ${process.version}, ${heapLimit()}`), program).pipe(
  Effect.provide(Layer.mergeAll(logging, tracing)),
  Effect.provide(Settings.layer)
)
