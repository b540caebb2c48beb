/**
 * `concord connections list|show|pause|resume|reauth-url`, through the HTTP API.
 */
import { Console, Effect, Option } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { ConnectionView } from "../api/Api.ts"
import { apiFlags, withApi } from "./Http.ts"
import { cell, jsonFlag, printJson, table } from "./Output.ts"

const STATUSES = ["pending_auth", "active", "paused", "needs_reauth"] as const

const tenantArg = Argument.String("tenant").pipe(Argument.withDescription("The tenant id"))
const connectionArg = Argument.String("connection").pipe(Argument.withDescription("The connection id (as in the tenant's YAML)"))

/** `contact (both, review), invoice (push, app_wins)` from a connection's entity settings. */
const entitiesText = (entities: unknown): string => {
  if (typeof entities !== "object" || entities === null) return "-"
  const parts = Object.entries(entities as Record<string, { direction?: string; policy?: string } | undefined>).map(([entity, s]) =>
    `${entity} (${[s?.direction, s?.policy].filter((x) => x !== undefined).join(", ")})`
  )
  return parts.length === 0 ? "-" : parts.join(", ")
}

const row = (c: ConnectionView) => [c.tenant, c.id, c.provider, cell(c.accountId), c.status, cell(c.statusReason), c.updatedAt]
const HEADERS = ["TENANT", "CONNECTION", "PROVIDER", "ACCOUNT", "STATUS", "REASON", "UPDATED"]

const list = Command.make(
  "list",
  {
    ...apiFlags,
    tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's connections (without it: every tenant, admin key needed)"))),
    status: Flag.optional(Flag.Literals("status", STATUSES).pipe(Flag.withDescription("Only connections in this status"))),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, status, json }) {
    const all = yield* withApi({ url, adminKey }, (api) =>
      Option.isSome(tenant)
        ? api.connections.listConnections({ params: { tenant: tenant.value } })
        : api.operators.allConnections({ query: Option.isSome(status) ? { status: status.value } : {} }))
    const rows = Option.isSome(status) ? all.filter((c) => c.status === status.value) : all
    if (json) return yield* printJson(rows)
    yield* Console.log(rows.length === 0 ? "no connections" : table(HEADERS, rows.map(row)))
  })
).pipe(Command.withDescription("List connections, of one tenant or of every tenant"))

const show = Command.make(
  "show",
  { ...apiFlags, tenant: tenantArg, connection: connectionArg, json: jsonFlag },
  Effect.fn(function*({ url, adminKey, tenant, connection, json }) {
    const c = yield* withApi({ url, adminKey }, (api) => api.connections.getConnection({ params: { tenant, connection } }))
    if (json) return yield* printJson(c)
    const lines = [
      `connection ${c.id} (tenant ${c.tenant}, provider ${c.provider})`,
      `  account         ${cell(c.accountId)}`,
      `  status          ${c.status}${c.statusReason === null ? "" : ` (${c.statusReason})`}`,
      `  updated         ${c.updatedAt}`,
      `  records         synced ${c.records.synced}, conflict ${c.records.conflict}, error ${c.records.error}, skipped ${c.records.skipped}`,
      `  open conflicts  ${c.openConflicts}`,
      `  parked          ${c.parked}${c.parked > 0 ? " (sync when resumed)" : ""}`,
      `  entities        ${entitiesText(c.entities)}`
    ]
    if (c.lastErrors.length > 0) {
      lines.push("  last errors")
      for (const e of c.lastErrors) {
        const message = typeof e.error === "object" && e.error !== null && "message" in e.error ? String((e.error as { message: unknown }).message) : cell(e.error)
        lines.push(`    ${e.at}  ${e.entity} ${e.recordId}: ${message}`)
      }
    }
    yield* Console.log(lines.join("\n"))
  })
).pipe(Command.withDescription("Show a connection: status, record counts, open conflicts, parked changes, last errors"))

const pause = Command.make(
  "pause",
  {
    ...apiFlags,
    tenant: tenantArg,
    connection: connectionArg,
    reason: Flag.optional(Flag.String("reason").pipe(Flag.withDescription("Why (shown in status and the audit log)"))),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, connection, reason, json }) {
    const c = yield* withApi({ url, adminKey }, (api) =>
      api.connections.pause({ params: { tenant, connection }, payload: Option.isSome(reason) ? { reason: reason.value } : {} }))
    if (json) return yield* printJson(c)
    yield* Console.log(`paused ${c.id} (tenant ${c.tenant}): ${c.statusReason ?? "no reason given"}; changes wait until it is resumed`)
  })
).pipe(Command.withDescription("Pause a connection: nothing is written to the provider; changes are kept and sync on resume"))

const resume = Command.make(
  "resume",
  { ...apiFlags, tenant: tenantArg, connection: connectionArg, json: jsonFlag },
  Effect.fn(function*({ url, adminKey, tenant, connection, json }) {
    const r = yield* withApi({ url, adminKey }, (api) => api.connections.resume({ params: { tenant, connection } }))
    if (json) return yield* printJson(r)
    yield* Console.log(`resumed ${r.connection.id} (tenant ${r.connection.tenant}): status ${r.connection.status}; ${r.resynced} change(s) that waited are syncing now`)
  })
).pipe(Command.withDescription("Resume a paused connection; what changed while it was paused syncs now"))

const reauthUrl = Command.make(
  "reauth-url",
  { ...apiFlags, tenant: tenantArg, connection: connectionArg, json: jsonFlag },
  Effect.fn(function*({ url, adminKey, tenant, connection, json }) {
    const r = yield* withApi({ url, adminKey }, (api) => api.connections.connect({ params: { tenant, connection } }))
    if (json) return yield* printJson(r)
    yield* Console.log(r.url)
  })
).pipe(Command.withDescription("Print a fresh OAuth URL that (re-)authorises the connection; send it to the tenant's admin (valid 1 hour)"))

export const connections = Command.make("connections").pipe(
  Command.withDescription("Connections to accounting providers (through the HTTP API)"),
  Command.withSubcommands([list, show, pause, resume, reauthUrl])
)
