/**
 * The composition root: every service of a Concord node, the HTTP server,
 * and the background loops (inbound consumer, outbox relay).
 */
import { NodeHttpServer } from "@effect/platform-node"
import { CrashPoint } from "@concord/reconciler/Ports"
import { ByteSize, Effect, Layer } from "effect"
import { HttpIncomingMessage, HttpRouter } from "effect/http"
import { HttpApiBuilder, HttpApiScalar } from "effect/http-api"
import { PrometheusMetrics } from "effect/observability"
import { createServer } from "node:http"
import { Api } from "./api/Api.ts"
import { AuthenticationLive, handlers, RequestErrorsLive } from "./api/Handlers.ts"
import * as ApiKeys from "./ApiKeys.ts"
import * as Backfills from "./Backfills.ts"
import * as Changes from "./Changes.ts"
import * as Cluster from "./Cluster.ts"
import * as Drift from "./Drift.ts"
import { crashPoint } from "./CrashPoints.ts"
import * as Gauges from "./Gauges.ts"
import * as Consumer from "./nats/Consumer.ts"
import * as Ingest from "./nats/Ingest.ts"
import * as Nats from "./nats/Nats.ts"
import * as Outbox from "./nats/Outbox.ts"
import { Metrics } from "./Observability.ts"
import * as Providers from "./Providers.ts"
import * as Queries from "./Queries.ts"
import * as Sessions from "./Sessions.ts"
import { Settings } from "./Settings.ts"
import * as Database from "./storage/Database.ts"
import * as PgSyncStore from "./storage/PgSyncStore.ts"
import * as Poller from "./Poller.ts"
import * as Vault from "./storage/Vault.ts"
import * as Tenants from "./Tenants.ts"
import * as Webhooks from "./Webhooks.ts"

/** Storage, messaging and the actor runtime. */
export const infrastructure = Layer.mergeAll(Nats.layer, Metrics.layer, Providers.layer).pipe(
  Layer.provideMerge(Database.layer)
)

/** The engine: sessions, actors, ingest, services behind the API. */
const drift = Drift.layer.pipe(Layer.provide(Tenants.layer))
const engine = Layer.mergeAll(Tenants.layer, Queries.layer, Webhooks.layer, ApiKeys.layer, Poller.layer.pipe(Layer.provide(drift)), Backfills.layer.pipe(Layer.provide(Tenants.layer)), drift).pipe(
  Layer.provideMerge(Changes.layer.pipe(Layer.provide(Tenants.layer))),
  Layer.provideMerge(Cluster.layer()),
  Layer.provideMerge(Sessions.layer),
  Layer.provideMerge(Layer.mergeAll(PgSyncStore.layer, Vault.layer, Ingest.layer)),
  Layer.provide(Layer.succeed(CrashPoint, (point) => crashPoint(point)))
)

/** The inbound consumer and the outbox relay, running for the layer's lifetime. */
const background = Layer.effectDiscard(
  Effect.gen(function*() {
    yield* Effect.forkScoped(Consumer.run.pipe(Effect.catchCause((c) => Effect.logError("inbound consumer stopped", c))))
    yield* Effect.forkScoped(Outbox.run.pipe(Effect.catchCause((c) => Effect.logError("outbox relay stopped", c))))
    yield* Effect.forkScoped(Gauges.run.pipe(Effect.catchCause((c) => Effect.logError("gauge sampler stopped", c))))
  })
)

const routes = Layer.mergeAll(
  HttpApiBuilder.layer(Api, { openapiPath: "/openapi.json" }),
  HttpApiScalar.layer(Api, { path: "/docs" }),
  PrometheusMetrics.layerHttp({ path: "/metrics" })
).pipe(Layer.provide(handlers), Layer.provide(AuthenticationLive), Layer.provide(RequestErrorsLive))

/** The largest request body the API reads (a tenant's YAML, a record, a webhook delivery are far smaller). */
export const MAX_BODY_BYTES = 16 * 1024 * 1024

const http = Layer.unwrap(
  Effect.gen(function*() {
    const settings = yield* Settings
    return HttpRouter.serve(routes, { disableLogger: true }).pipe(
      // Bodies are read whole: refuse anything bigger than any request needs, before it is in memory.
      Layer.provide(Layer.succeed(HttpIncomingMessage.MaxBodySize, ByteSize.bytes(MAX_BODY_BYTES))),
      Layer.provide(NodeHttpServer.layer(createServer, { port: settings.port, host: settings.host }))
    )
  })
)

/** A whole Concord node (needs `Settings`). */
export const node = Layer.mergeAll(http, background).pipe(
  Layer.provideMerge(engine),
  Layer.provideMerge(infrastructure)
)
