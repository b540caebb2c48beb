/**
 * The operators' endpoints: connections and conflicts across every tenant,
 * for `concord connections list` and `concord conflicts list` without
 * `--tenant`. Admin key only (a tenant key gets 403).
 */
import { Config } from "@concord/core"
import { Effect, Option, Schema } from "effect"
import { HttpApiBuilder } from "effect/http-api"
import { SqlClient } from "effect/sql"
import { Queries } from "../Queries.ts"
import { toView } from "../Tenants.ts"
import { Api, type ConflictView, type ConnectionView, CurrentCaller, Forbidden } from "./Api.ts"

const decodeConfig = Schema.decodeUnknownOption(Config.TenantConfig)

const adminOnly = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const caller = yield* CurrentCaller
    if (caller.kind !== "admin") return yield* new Forbidden({ message: "this lists every tenant: it needs the operators' (admin) key" })
    return yield* effect
  })

export const OperatorsLive = HttpApiBuilder.group(Api, "operators", (handlers) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const queries = yield* Queries
    return handlers
      .handle("allConnections", ({ query }) =>
        adminOnly(Effect.gen(function*() {
          const rows = yield* sql<{
            id: string
            tenant_id: string
            provider: string
            account_id: string | null
            status: ConnectionView["status"]
            status_reason: string | null
            updated_at: Date | string
            config: unknown
          }>`
            SELECT c.id, c.tenant_id, c.provider, c.account_id, c.status, c.status_reason, c.updated_at, t.config
            FROM connections c JOIN tenants t ON t.id = c.tenant_id
            WHERE (${query.tenant ?? null}::text IS NULL OR c.tenant_id = ${query.tenant ?? null})
              AND (${query.status ?? null}::text IS NULL OR c.status = ${query.status ?? null})
            ORDER BY c.tenant_id, c.id`.pipe(Effect.orDie)
          const configs = new Map<string, Config.TenantConfig | undefined>()
          return rows.map((row) => {
            if (!configs.has(row.tenant_id)) {
              const raw = typeof row.config === "string" ? JSON.parse(row.config) as unknown : row.config
              configs.set(row.tenant_id, Option.getOrUndefined(decodeConfig(raw)))
            }
            return toView(row, configs.get(row.tenant_id))
          })
        })))
      .handle("allConflicts", ({ query }) =>
        adminOnly(Effect.gen(function*() {
          const status = query.status ?? "open"
          const limit = query.limit ?? 1000
          const tenants = yield* sql<{ tenant_id: string }>`
            SELECT DISTINCT tenant_id FROM conflicts WHERE (${status} = 'all' OR status = ${status}) ORDER BY tenant_id`.pipe(Effect.orDie)
          const out: Array<ConflictView> = []
          for (const t of tenants) {
            if (out.length >= limit) break
            out.push(...(yield* queries.conflicts(t.tenant_id, status)))
          }
          return out.sort((a, b) => a.openedAt.localeCompare(b.openedAt)).slice(0, limit)
        })))
  }))
