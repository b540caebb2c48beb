/** A migrated Concord database for one test file. */
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { SqlClient } from "effect/sql"
import { migrate } from "../../packages/server/src/storage/Migrations.ts"

export const migratedDatabase = (url: string) =>
  Layer.effectDiscard(migrate).pipe(Layer.provideMerge(PgClient.layer({ url: Redacted.make(url), maxConnections: 8 })))

/** Inserts a tenant (its decoded config JSON) and its connections. */
export const seedTenant = (tenant: { readonly tenant: string; readonly connections: ReadonlyArray<{ readonly id: string; readonly provider: string }> }, options: { readonly status?: string } = {}) =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql`INSERT INTO tenants (id, config) VALUES (${tenant.tenant}, ${JSON.stringify(tenant)})
      ON CONFLICT (id) DO UPDATE SET config = EXCLUDED.config`
    for (const c of tenant.connections) {
      yield* sql`INSERT INTO connections (id, tenant_id, provider, account_id, status) VALUES (${c.id}, ${tenant.tenant}, ${c.provider}, 'acct', ${options.status ?? "active"})
        ON CONFLICT (id) DO NOTHING`
    }
  })
