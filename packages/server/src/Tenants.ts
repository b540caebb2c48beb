/**
 * Tenants and their connections: configuration, OAuth connect and callback,
 * credentials, pause and resume.
 */
import { Config } from "@concord/core"
import type { Provider } from "@concord/providers"
import { Connection } from "@concord/reconciler/ConnectionActor"
import { SyncStore } from "@concord/reconciler/Ports"
import { Clock, Context, Effect, Layer, Option, Redacted, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { randomBytes } from "node:crypto"
import { Conflict, type ConnectionView, NotFound, Unavailable, Unprocessable } from "./api/Api.ts"
import { Ingest } from "./nats/Ingest.ts"
import { Providers } from "./Providers.ts"
import * as Audit from "./storage/Audit.ts"
import { Vault } from "./storage/Vault.ts"

const decodeTenantJson = Schema.decodeUnknownSync(Config.TenantConfig)
const encodeTenant = Schema.encodeSync(Config.TenantConfig)

interface ConnectionRow {
  readonly id: string
  readonly tenant_id: string
  readonly provider: string
  readonly account_id: string | null
  readonly status: ConnectionView["status"]
  readonly status_reason: string | null
  readonly updated_at: Date | string
}

const iso = (d: Date | string) => (typeof d === "string" ? new Date(d) : d).toISOString()

export const toView = (row: ConnectionRow, config: Config.TenantConfig | undefined): ConnectionView => ({
  id: row.id,
  tenant: row.tenant_id,
  provider: row.provider,
  accountId: row.account_id,
  status: row.status,
  statusReason: row.status_reason,
  entities: config?.connections.find((c) => c.id === row.id)?.entities ?? {},
  updatedAt: iso(row.updated_at)
})

export class Tenants extends Context.Service<Tenants, {
  readonly put: (tenantId: string, input: { readonly json?: unknown; readonly yaml?: string }, by: string) => Effect.Effect<{ config: Config.TenantConfig; connections: ReadonlyArray<ConnectionView> }, Unprocessable>
  readonly config: (tenantId: string) => Effect.Effect<Config.TenantConfig, NotFound>
  readonly connections: (tenantId: string) => Effect.Effect<ReadonlyArray<ConnectionView>>
  readonly connection: (tenantId: string, connectionId: string) => Effect.Effect<ConnectionView, NotFound>
  readonly connectUrl: (tenantId: string, connectionId: string) => Effect.Effect<{ url: string; state: string }, NotFound | Unprocessable>
  readonly callback: (provider: string, query: Readonly<Record<string, string>>) => Effect.Effect<ConnectionView, NotFound | Unprocessable>
  readonly setCredentials: (tenantId: string, connectionId: string, credentials: {
    readonly accountId: string
    readonly accessToken: string
    readonly refreshToken: string
    readonly expiresIn: number
    readonly refreshExpiresIn?: number
    readonly baseUrl?: string
  }, by: string) => Effect.Effect<ConnectionView, NotFound>
  readonly pause: (tenantId: string, connectionId: string, reason: string | undefined, by: string) => Effect.Effect<ConnectionView, NotFound>
  readonly resume: (tenantId: string, connectionId: string, by: string) => Effect.Effect<{ connection: ConnectionView; resynced: number }, NotFound | Conflict | Unavailable>
}>()("concord/server/Tenants") {}

export const layer = Layer.effect(
  Tenants,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const providers = yield* Providers
    const vault = yield* Vault
    const store = yield* SyncStore
    const ingest = yield* Ingest
    const actors = yield* Connection.client

    const reload = (connectionId: string) => actors(connectionId).Reload().pipe(Effect.ignore)

    // Every app change reads its tenant's configuration: keep it for a moment (a change on another
    // node shows within CONFIG_TTL_MS; a change through this node at once).
    const cache = new Map<string, { readonly config: Config.TenantConfig; readonly at: number }>()
    const CONFIG_TTL_MS = 2000
    const loadConfig = (tenantId: string) =>
      Effect.suspend(() => {
        const hit = cache.get(tenantId)
        if (hit !== undefined && Date.now() - hit.at < CONFIG_TTL_MS) return Effect.succeed(hit.config)
        return readConfig(tenantId).pipe(Effect.tap((config) => Effect.sync(() => cache.set(tenantId, { config, at: Date.now() }))))
      })

    const readConfig = (tenantId: string) =>
      sql<{ config: unknown }>`SELECT config FROM tenants WHERE id = ${tenantId}`.pipe(
        Effect.orDie,
        Effect.flatMap((rows) =>
          rows[0] === undefined
            ? Effect.fail(new NotFound({ message: `tenant ${tenantId} does not exist` }))
            : Effect.sync(() => decodeTenantJson(rows[0]?.config))
        )
      )

    const rowsOf = (tenantId: string) =>
      sql<ConnectionRow>`SELECT id, tenant_id, provider, account_id, status, status_reason, updated_at FROM connections WHERE tenant_id = ${tenantId} ORDER BY id`.pipe(Effect.orDie)

    const connection = (tenantId: string, connectionId: string) =>
      Effect.gen(function*() {
        const rows = yield* sql<ConnectionRow>`
          SELECT id, tenant_id, provider, account_id, status, status_reason, updated_at FROM connections
          WHERE id = ${connectionId} AND tenant_id = ${tenantId}`.pipe(Effect.orDie)
        const row = rows[0]
        if (row === undefined) return yield* new NotFound({ message: `tenant ${tenantId} has no connection ${connectionId}` })
        const config = yield* loadConfig(tenantId).pipe(Effect.option)
        return toView(row, Option.getOrUndefined(config))
      })

    const audit = (tenantId: string, entry: Parameters<typeof Audit.append>[1][number]) =>
      Effect.gen(function*() {
        const now = new Date(yield* Clock.currentTimeMillis)
        yield* Audit.append(tenantId, [entry], now).pipe(sql.withTransaction, Effect.provideService(SqlClient.SqlClient, sql), Effect.orDie)
      })

    const put = (tenantId: string, input: { readonly json?: unknown; readonly yaml?: string }, by: string) =>
      Effect.gen(function*() {
        // JSON is YAML, so both forms decode the same way (lines are reported for YAML).
        const parsed = Config.parseTenantYaml(input.yaml ?? JSON.stringify(input.json ?? null))
        if (!parsed.ok) {
          return yield* new Unprocessable({
            message: `the tenant configuration is invalid (${parsed.issues.length} problem(s))`,
            issues: parsed.issues.map((i) => ({ path: i.path, message: input.yaml !== undefined && i.line !== undefined ? `${i.message} (line ${i.line})` : i.message }))
          })
        }
        const config = parsed.config
        const issues: Array<{ path: string; message: string }> = []
        if (config.tenant !== tenantId) issues.push({ path: "tenant", message: `the document is for tenant ${config.tenant}, but the URL says ${tenantId}` })
        config.connections.forEach((c, i) => {
          if (providers.get(c.provider) === undefined) {
            issues.push({ path: `connections[${i}].provider`, message: `no provider '${c.provider}' in this deployment (have: ${providers.all().map((p) => p.id).join(", ")})` })
          }
          if (!/^[A-Za-z0-9_-]{1,64}$/.test(c.id)) issues.push({ path: `connections[${i}].id`, message: "Expected 1-64 letters, digits, '_' or '-'" })
        })
        const others = config.connections.length === 0 ? [] : yield* sql<{ id: string; tenant_id: string }>`
          SELECT id, tenant_id FROM connections WHERE id IN ${sql.in(config.connections.map((c) => c.id))} AND tenant_id <> ${tenantId}`.pipe(Effect.orDie)
        for (const o of others) {
          const i = config.connections.findIndex((c) => c.id === o.id)
          issues.push({ path: `connections[${i}].id`, message: `connection id ${o.id} belongs to another tenant` })
        }
        if (issues.length > 0) return yield* new Unprocessable({ message: "the tenant configuration is invalid", issues })
        const json = JSON.stringify(encodeTenant(config))
        yield* Effect.gen(function*() {
          yield* sql`
            INSERT INTO tenants (id, name, config, config_yaml) VALUES (${tenantId}, ${config.name ?? null}, ${json}, ${input.yaml ?? null})
            ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, config = EXCLUDED.config, config_yaml = EXCLUDED.config_yaml, updated_at = now()`
          for (const c of config.connections) {
            yield* sql`
              INSERT INTO connections (id, tenant_id, provider, account_id) VALUES (${c.id}, ${tenantId}, ${c.provider}, ${c.account ?? null})
              ON CONFLICT (id) DO UPDATE SET provider = EXCLUDED.provider,
                account_id = COALESCE(EXCLUDED.account_id, connections.account_id), updated_at = now()`
          }
        }).pipe(sql.withTransaction, Effect.orDie)
        cache.delete(tenantId)
        yield* audit(tenantId, { action: "tenant_configured", actor: by, detail: { connections: config.connections.map((c) => c.id) } })
        for (const c of config.connections) yield* reload(c.id)
        return { config, connections: (yield* rowsOf(tenantId)).map((r) => toView(r, config)) }
      })

    const appFor = (providerId: string) =>
      Effect.gen(function*() {
        const provider = providers.get(providerId)
        if (provider === undefined) return yield* new NotFound({ message: `no provider '${providerId}'` })
        const app = providers.app(providerId)
        if (app === undefined) {
          return yield* new Unprocessable({
            message: `no OAuth app is configured for ${providerId}`,
            issues: [{ path: "provider", message: `set CONCORD_${providerId.toUpperCase()}_CLIENT_ID and CONCORD_${providerId.toUpperCase()}_CLIENT_SECRET` }]
          })
        }
        return { provider, app }
      })

    const connectUrl = (tenantId: string, connectionId: string) =>
      Effect.gen(function*() {
        const view = yield* connection(tenantId, connectionId)
        const { provider, app } = yield* appFor(view.provider)
        const state = randomBytes(18).toString("base64url")
        yield* sql`INSERT INTO oauth_states (state, connection_id) VALUES (${state}, ${connectionId})`.pipe(Effect.orDie)
        return { url: provider.auth.authorizationUrl(app.app, state), state }
      })

    const activate = (tenantId: string, connectionId: string, accountId: string, tokens: Provider.TokenSet, baseUrl: string | undefined, by: string) =>
      Effect.gen(function*() {
        yield* vault.save(connectionId, tokens).pipe(Effect.orDie)
        yield* sql`UPDATE connections SET account_id = ${accountId}, base_url = COALESCE(${baseUrl ?? null}, base_url), updated_at = now() WHERE id = ${connectionId}`.pipe(Effect.orDie)
        yield* store.setConnectionStatus(connectionId, "active", undefined).pipe(Effect.orDie)
        yield* audit(tenantId, { connectionId, action: "connection_authorised", actor: by, detail: { accountId } })
        yield* reload(connectionId)
        // Work parked while the grant was lost (needs_reauth) syncs now, as after a resume. Should NATS be
        // unavailable it stays parked (the transaction puts it back) and `resume` syncs it later.
        const view = yield* connection(tenantId, connectionId)
        yield* resyncParked(tenantId, connectionId, view.provider).pipe(
          Effect.catch((e) => Effect.logWarning(`connection ${connectionId} is authorised; its parked work stays parked until it is resumed: ${e.message}`))
        )
        return view
      })

    const callback = (providerId: string, query: Readonly<Record<string, string>>) =>
      Effect.gen(function*() {
        const state = query.state ?? ""
        const rows = yield* sql<{ connection_id: string; tenant_id: string }>`
          DELETE FROM oauth_states s USING connections c
          WHERE s.state = ${state} AND c.id = s.connection_id AND s.created_at > now() - interval '1 hour'
          RETURNING s.connection_id, c.tenant_id`.pipe(Effect.orDie)
        const row = rows[0]
        if (row === undefined) {
          return yield* new Unprocessable({ message: "unknown or expired OAuth state: start again from the connect URL", issues: [{ path: "state", message: "unknown or expired" }] })
        }
        if (query.error !== undefined) {
          return yield* new Unprocessable({ message: `${providerId} refused the authorisation: ${query.error}`, issues: [{ path: "error", message: query.error_description ?? query.error }] })
        }
        const { provider, app } = yield* appFor(providerId)
        const granted = yield* provider.auth.exchangeCode(app.app, query.code ?? "", query).pipe(
          Effect.mapError((e) => new Unprocessable({ message: e.message, issues: [{ path: "code", message: e.reason }] }))
        )
        const accountId = granted.accounts[0]?.accountId
        if (accountId === undefined) {
          return yield* new Unprocessable({ message: `${providerId} granted no account to connect`, issues: [{ path: "code", message: "no account in the grant" }] })
        }
        return yield* activate(row.tenant_id, row.connection_id, accountId, granted.tokens, app.apiUrl, "oauth")
      })

    const setCredentials: Tenants["Service"]["setCredentials"] = (tenantId, connectionId, c, by) =>
      Effect.gen(function*() {
        yield* connection(tenantId, connectionId)
        const now = yield* Clock.currentTimeMillis
        const tokens: Provider.TokenSet = {
          accessToken: Redacted.make(c.accessToken),
          refreshToken: Redacted.make(c.refreshToken),
          accessTokenExpiresAt: now + c.expiresIn * 1000,
          ...(c.refreshExpiresIn === undefined ? {} : { refreshTokenExpiresAt: now + c.refreshExpiresIn * 1000 })
        }
        return yield* activate(tenantId, connectionId, c.accountId, tokens, c.baseUrl, by)
      })

    const pause: Tenants["Service"]["pause"] = (tenantId, connectionId, reason, by) =>
      Effect.gen(function*() {
        yield* connection(tenantId, connectionId)
        yield* store.setConnectionStatus(connectionId, "paused", reason ?? `paused by ${by}`).pipe(Effect.orDie)
        yield* reload(connectionId)
        return yield* connection(tenantId, connectionId)
      })

    const resume: Tenants["Service"]["resume"] = (tenantId, connectionId, by) =>
      Effect.gen(function*() {
        const view = yield* connection(tenantId, connectionId)
        if (view.accountId === null) return yield* new Conflict({ message: `connection ${connectionId} was never authorised: open the connect URL first` })
        yield* store.setConnectionStatus(connectionId, "active", `resumed by ${by}`).pipe(Effect.orDie)
        yield* reload(connectionId)
        // Everything that arrived while paused syncs now.
        const resynced = yield* resyncParked(tenantId, connectionId, view.provider)
        return { connection: yield* connection(tenantId, connectionId), resynced }
      })

    /**
     * Takes the connection's parked work and publishes a resync for each waiting record (and operation); if a
     * publish fails the work stays parked (a record resynced twice is a no-op).
     */
    const resyncParked = (tenantId: string, connectionId: string, provider: string) =>
      Effect.gen(function*() {
        const parked = yield* store.unpark(connectionId).pipe(Effect.orDie)
        for (const p of parked) {
          // One resync per waiting operation, so each completes; a record synced twice is a no-op.
          for (const operationId of p.operationIds ?? [undefined]) {
            yield* ingest.publish(provider, "system", {
              kind: "resync",
              tenant: tenantId,
              connectionId,
              entity: p.entity,
              ...(p.recordId === undefined ? {} : { recordId: p.recordId }),
              ...(p.externalId === undefined ? {} : { externalId: p.externalId }),
              reason: "resumed",
              ...(operationId === undefined ? {} : { operationId })
            }).pipe(Effect.mapError((e) => new Unavailable({ message: e.message })))
          }
        }
        return parked.length
      }).pipe(sql.withTransaction, Effect.catchTag("SqlError", (e) => Effect.die(e)))

    return Tenants.of({
      put,
      config: loadConfig,
      connections: (tenantId) =>
        Effect.gen(function*() {
          const config = yield* loadConfig(tenantId).pipe(Effect.option)
          return (yield* rowsOf(tenantId)).map((r) => toView(r, Option.getOrUndefined(config)))
        }),
      connection,
      connectUrl,
      callback,
      setCredentials,
      pause,
      resume
    })
  })
)
