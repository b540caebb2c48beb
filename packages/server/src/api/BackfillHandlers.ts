/**
 * The backfill endpoints (tenant-scoped like the rest: a tenant key reaches
 * only its own tenant's backfills).
 */
import { Effect } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { Backfills } from "../Backfills.ts"
import { Api, CurrentCaller, Forbidden } from "./Api.ts"

const scoped = <A, E, R>(tenantId: string, effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const caller = yield* CurrentCaller
    if (caller.kind === "tenant" && caller.tenantId !== tenantId) {
      return yield* new Forbidden({ message: `this API key belongs to another tenant; it cannot reach tenant ${tenantId}` })
    }
    return yield* effect
  }).pipe(Effect.annotateLogs({ tenant: tenantId }))

export const BackfillsLive = HttpApiBuilder.group(Api, "backfills", (handlers) =>
  Effect.gen(function*() {
    const backfills = yield* Backfills
    return handlers
      .handle("startBackfill", ({ params, payload }) =>
        scoped(params.tenant, backfills.start(params.tenant, params.connection, payload).pipe(Effect.map((list) => ({ backfills: list })))))
      .handle("listBackfills", ({ params, query }) => scoped(params.tenant, backfills.list(params.tenant, query.connection)))
      .handle("getBackfill", ({ params }) => scoped(params.tenant, backfills.get(params.tenant, params.id)))
      .handle("cancelBackfill", ({ params }) => scoped(params.tenant, backfills.cancel(params.tenant, params.id)))
      .handle("allBackfills", ({ query }) =>
        CurrentCaller.pipe(Effect.flatMap((caller) => backfills.all(caller.kind === "tenant" ? caller.tenantId : undefined, query.status))))
      .handle("findBackfill", ({ params }) =>
        CurrentCaller.pipe(Effect.flatMap((caller) => backfills.find(caller.kind === "tenant" ? caller.tenantId : undefined, params.id))))
  }))
