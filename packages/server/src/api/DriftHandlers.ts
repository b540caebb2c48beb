/**
 * The drift endpoints (tenant-scoped like the rest: a tenant key reaches only
 * its own tenant's runs; the admin key reaches every tenant's).
 */
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { DriftRuns } from "../Drift.ts"
import { Api, CurrentCaller, Forbidden } from "./Api.ts"

const scoped = <A, E, R>(tenantId: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const caller = yield* CurrentCaller
    if (caller.kind === "tenant" && caller.tenantId !== tenantId) {
      return yield* new Forbidden({ message: `this API key belongs to another tenant; it cannot reach tenant ${tenantId}` })
    }
    return yield* effect
  }).pipe(Effect.annotateLogs({ tenant: tenantId }))

const page = (query: { readonly offset?: number; readonly limit?: number; readonly kind?: "missing_in_provider" | "missing_in_app" | "field_mismatch" | "duplicate_in_provider" | "unbalanced" | "orphan_link" }) => ({
  ...(query.offset === undefined ? {} : { offset: query.offset }),
  ...(query.limit === undefined ? {} : { limit: query.limit }),
  ...(query.kind === undefined ? {} : { kind: query.kind })
})

export const DriftLive = HttpApiBuilder.group(Api, "drift", (handlers) =>
  Effect.gen(function*() {
    const drift = yield* DriftRuns
    return handlers
      .handle("reconcileNow", ({ params, payload }) =>
        scoped(params.tenant, CurrentCaller.pipe(Effect.flatMap((caller) =>
          drift.reconcileNow(params.tenant, params.connection, payload, caller.kind === "admin" ? `operator:${caller.keyId}` : `tenant-key:${caller.keyId}`)))))
      .handle("listDriftRuns", ({ params, query }) => scoped(params.tenant, drift.runs(params.tenant, query.connection, query.limit)))
      .handle("getDriftRun", ({ params, query }) => scoped(params.tenant, drift.run(params.tenant, params.id, page(query))))
      .handle("allDriftRuns", ({ query }) =>
        Effect.gen(function*() {
          const caller = yield* CurrentCaller
          if (caller.kind === "tenant" && query.tenant !== undefined && query.tenant !== caller.tenantId) {
            return yield* new Forbidden({ message: `this API key belongs to another tenant; it cannot reach tenant ${query.tenant}` })
          }
          return yield* drift.runs(caller.kind === "tenant" ? caller.tenantId : query.tenant, undefined, query.limit)
        }))
      .handle("findDriftRun", ({ params, query }) =>
        CurrentCaller.pipe(Effect.flatMap((caller) => drift.run(caller.kind === "tenant" ? caller.tenantId : undefined, params.id, page(query)))))
  }))
