/**
 * The API's handlers. Authorisation is one rule, applied by `scoped` on
 * every tenant route: an admin key reaches every tenant, a tenant key only
 * its own (anything else is 403, whatever exists).
 */
import { Connection } from "@concord/reconciler/ConnectionActor"
import { Cause, Effect, Layer, Option, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { HttpApiBuilder, HttpApiMiddleware } from "effect/http-api"
import { ApiKeys } from "../ApiKeys.ts"
import { Changes } from "../Changes.ts"
import { Nats } from "../nats/Nats.ts"
import { Poller } from "../Poller.ts"
import { Queries } from "../Queries.ts"
import * as Audit from "../storage/Audit.ts"
import { Tenants } from "../Tenants.ts"
import { Webhooks } from "../Webhooks.ts"
import {
  Api,
  Authentication,
  BadRequest,
  type Caller,
  Conflict,
  CurrentCaller,
  Forbidden,
  RequestErrors,
  Unauthorized,
  Unavailable,
  Unprocessable
} from "./Api.ts"
import { Validation } from "@concord/core"
import { OperatorsLive } from "./Operators.ts"
import { BackfillsLive } from "./BackfillHandlers.ts"
import { DriftLive } from "./DriftHandlers.ts"

const describe = (caller: Caller) => (caller.kind === "admin" ? `operator:${caller.keyId}` : `tenant-key:${caller.keyId}`)

/** A bug (a defect) answers 500; it must not go unlogged. */
const logDefects = <A, E, R>(route: string) => (effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.tapCause((cause) => (Cause.hasDies(cause) ? Effect.logError(`${route} failed with a defect`, cause) : Effect.void)))

/** Runs `effect` when the caller may act on `tenantId`. */
const scoped = <A, E, R>(tenantId: string, effect: (caller: Caller) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const caller = yield* CurrentCaller
    if (caller.kind === "tenant" && caller.tenantId !== tenantId) {
      return yield* new Forbidden({ message: `this API key belongs to another tenant; it cannot reach tenant ${tenantId}` })
    }
    return yield* effect(caller)
  }).pipe(logDefects(`request for tenant ${tenantId}`), Effect.annotateLogs({ tenant: tenantId }))

const adminOnly = <A, E, R>(effect: (caller: Caller) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const caller = yield* CurrentCaller
    if (caller.kind !== "admin") return yield* new Forbidden({ message: "this needs the operators' (admin) key" })
    return yield* effect(caller)
  }).pipe(logDefects("operator request"))

export const AuthenticationLive = Layer.effect(
  Authentication,
  Effect.gen(function*() {
    const keys = yield* ApiKeys
    return {
      apiKey: (effect, { credential }) =>
        Effect.gen(function*() {
          if (Redacted.value(credential).length === 0) return yield* new Unauthorized({ message: "missing API key: send Authorization: Bearer <key>" })
          const caller = yield* keys.authenticate(credential)
          if (Option.isNone(caller)) return yield* new Unauthorized({ message: "unknown or revoked API key" })
          return yield* Effect.provideService(effect, CurrentCaller, caller.value)
        })
    }
  })
)

export const RequestErrorsLive = HttpApiMiddleware.layerSchemaErrorTransform(RequestErrors, (error) =>
  Effect.fail(new BadRequest({
    message: `the request's ${error.kind.toLowerCase()} does not parse`,
    issues: Validation.issuesOf(error.cause.issue).map((i) => ({ ...i, path: i.path === "" ? error.kind.toLowerCase() : `${error.kind.toLowerCase()}.${i.path}` }))
  }))
)

const TenantsLive = HttpApiBuilder.group(Api, "tenants", (handlers) =>
  Effect.gen(function*() {
    const tenants = yield* Tenants
    const keys = yield* ApiKeys
    const view = (tenantId: string, config: { name?: string }, connections: ReadonlyArray<unknown>, raw: unknown) => ({
      tenant: tenantId,
      name: config.name ?? null,
      config: raw,
      connections: connections as never
    })
    return handlers
      .handle("putTenant", ({ params, payload }) =>
        adminOnly((caller) =>
          tenants.put(params.tenant, typeof payload === "string" ? { yaml: payload } : { json: payload }, describe(caller)).pipe(
            Effect.map((r) => view(params.tenant, r.config, r.connections, r.config))
          )
        ))
      .handle("getTenant", ({ params }) =>
        scoped(params.tenant, () =>
          Effect.gen(function*() {
            const config = yield* tenants.config(params.tenant)
            return view(params.tenant, config, yield* tenants.connections(params.tenant), config)
          })))
      .handle("createKey", ({ params, payload }) =>
        adminOnly(() => tenants.config(params.tenant).pipe(Effect.andThen(keys.create(params.tenant, payload.label)))))
  }))

const ConnectionsLive = HttpApiBuilder.group(Api, "connections", (handlers) =>
  Effect.gen(function*() {
    const tenants = yield* Tenants
    const queries = yield* Queries
    const poller = yield* Poller
    return handlers
      .handle("listConnections", ({ params }) =>
        scoped(params.tenant, () => tenants.config(params.tenant).pipe(Effect.andThen(tenants.connections(params.tenant)))))
      .handle("getConnection", ({ params }) =>
        scoped(params.tenant, () =>
          Effect.gen(function*() {
            const c = yield* tenants.connection(params.tenant, params.connection)
            const polling = yield* poller.status(params.connection)
            return { ...c, ...(yield* queries.connectionHealth(params.connection)), ...(Option.isSome(polling) ? { polling: polling.value } : {}) }
          })))
      .handle("connect", ({ params }) => scoped(params.tenant, () => tenants.connectUrl(params.tenant, params.connection)))
      .handle("setCredentials", ({ params, payload }) =>
        adminOnly((caller) => tenants.setCredentials(params.tenant, params.connection, payload, describe(caller))))
      .handle("pause", ({ params, payload }) =>
        scoped(params.tenant, (caller) => tenants.pause(params.tenant, params.connection, payload.reason, describe(caller))))
      .handle("resume", ({ params }) => scoped(params.tenant, (caller) => tenants.resume(params.tenant, params.connection, describe(caller))))
  }))

const RecordsLive = HttpApiBuilder.group(Api, "records", (handlers) =>
  Effect.gen(function*() {
    const changes = yield* Changes
    const queries = yield* Queries
    const tenants = yield* Tenants
    return handlers
      .handle("putRecord", ({ params, payload }) =>
        scoped(params.tenant, () => changes.putRecord(params.tenant, params.entity, params.id, payload)))
      .handle("deleteRecord", ({ params }) => scoped(params.tenant, () => changes.deleteRecord(params.tenant, params.entity, params.id)))
      .handle("getRecord", ({ params }) => scoped(params.tenant, () => queries.record(params.tenant, params.entity, params.id)))
      .handle("listRecords", ({ params, query }) =>
        scoped(params.tenant, () =>
          tenants.config(params.tenant).pipe(Effect.andThen(queries.records(params.tenant, params.entity, query.limit ?? 100, query.after)))))
      .handle("postTransaction", ({ params, payload }) => scoped(params.tenant, () => changes.postTransaction(params.tenant, payload)))
      .handle("getOperation", ({ params }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          return yield* changes.operation(params.id, caller.kind === "tenant" ? caller.tenantId : undefined)
        }).pipe(logDefects("operation")))
  }))

const ConflictsLive = HttpApiBuilder.group(Api, "conflicts", (handlers) =>
  Effect.gen(function*() {
    const queries = yield* Queries
    const tenants = yield* Tenants
    const actors = yield* Connection.client
    return handlers
      .handle("listConflicts", ({ params, query }) =>
        scoped(params.tenant, () => tenants.config(params.tenant).pipe(Effect.andThen(queries.conflicts(params.tenant, query.status ?? "open")))))
      .handle("getConflict", ({ params }) => scoped(params.tenant, () => queries.conflict(params.tenant, params.id)))
      .handle("resolveConflict", ({ params, payload }) =>
        scoped(params.tenant, (caller) =>
          Effect.gen(function*() {
            const conflict = yield* queries.conflict(params.tenant, params.id)
            if (payload.resolution === "merged" && payload.value === undefined) {
              return yield* new Unprocessable({ message: "a merged resolution needs the value to keep", issues: [{ path: "value", message: "required when resolution is merged" }] })
            }
            const result = yield* actors(conflict.connectionId).Resolve({
              conflictId: params.id,
              resolution: payload.resolution,
              ...(payload.value === undefined ? {} : { value: payload.value }),
              by: describe(caller)
            }).pipe(
              Effect.catchTag("ConflictNotOpen", (e) => Effect.fail(new Conflict({ message: e.message }))),
              Effect.catchTag("ResolveFailed", (e) => Effect.fail(new Unavailable({ message: e.message }))),
              // Only what is not one of the answers above (the actor's mailbox or transport failing, a defect):
              // an already-resolved conflict stays a 409.
              Effect.catchIf(
                (e): e is Exclude<typeof e, Conflict | Unavailable> => !(e instanceof Conflict) && !(e instanceof Unavailable),
                () => Effect.fail(new Unavailable({ message: `the actor of connection ${conflict.connectionId} did not answer; retry` }))
              ),
              Effect.catchDefect(() => Effect.fail(new Unavailable({ message: `the actor of connection ${conflict.connectionId} did not answer; retry` })))
            )
            return { conflict: yield* queries.conflict(params.tenant, params.id), outcome: result.outcome }
          })))
  }))

const AuditLive = HttpApiBuilder.group(Api, "audit", (handlers) =>
  Effect.gen(function*() {
    const queries = yield* Queries
    const tenants = yield* Tenants
    const sql = yield* SqlClient.SqlClient
    return handlers
      .handle("verifyAudit", ({ params }) =>
        scoped(params.tenant, () =>
          tenants.config(params.tenant).pipe(
            Effect.andThen(Audit.verify(params.tenant).pipe(Effect.provideService(SqlClient.SqlClient, sql), Effect.orDie))
          )))
      .handle("listAudit", ({ params, query }) =>
        scoped(params.tenant, () =>
          queries.audit(params.tenant, {
            ...(query.entity === undefined ? {} : { entity: query.entity }),
            ...(query.recordId === undefined ? {} : { recordId: query.recordId }),
            ...(query.after === undefined ? {} : { after: query.after }),
            ...(query.limit === undefined ? {} : { limit: query.limit })
          })))
  }))

const PublicLive = HttpApiBuilder.group(Api, "public", (handlers) =>
  Effect.gen(function*() {
    const webhooks = yield* Webhooks
    const tenants = yield* Tenants
    const sql = yield* SqlClient.SqlClient
    const nats = yield* Nats
    return handlers
      .handle("webhook", ({ params, payload, request }) =>
        webhooks.receive(params.provider, request.headers as Readonly<Record<string, string | undefined>>, payload).pipe(Effect.asVoid, logDefects(`webhook ${params.provider}`)))
      .handle("oauthCallback", ({ params, query }) =>
        tenants.callback(params.provider, query).pipe(
          logDefects(`oauth callback ${params.provider}`),
          Effect.map((c) =>
            `<!doctype html><meta charset="utf-8"><title>Connected</title><p>Connected <b>${escapeHtml(c.provider)}</b> account <code>${escapeHtml(c.accountId ?? "")}</code> to connection <code>${escapeHtml(c.id)}</code> of tenant <code>${escapeHtml(c.tenant)}</code>. You can close this window.</p>`
          )
        ))
      .handle("healthz", () => Effect.succeed({ status: "ok" as const }))
      .handle("readyz", () =>
        Effect.gen(function*() {
          const pg = yield* sql`SELECT 1`.pipe(Effect.timeout("2 seconds"), Effect.as("ok"), Effect.catchCause(() => Effect.succeed("unreachable")))
          const natsStatus = nats.connection.isClosed() ? "closed" : "ok"
          const checks = { postgres: pg, nats: natsStatus }
          if (pg !== "ok" || natsStatus !== "ok") return yield* new Unavailable({ message: `not ready: ${JSON.stringify(checks)}` })
          return { status: "ready" as const, checks }
        }))
  }))

const escapeHtml = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)

export const handlers = Layer.mergeAll(TenantsLive, ConnectionsLive, RecordsLive, ConflictsLive, AuditLive, OperatorsLive, BackfillsLive, DriftLive, PublicLive)
