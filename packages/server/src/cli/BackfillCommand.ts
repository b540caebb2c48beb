/**
 * `concord backfill start|status|cancel`, through the HTTP API: import a
 * connection's history (resumable, at background priority), follow it with
 * a live progress bar (records done/total, rate, ETA), cancel it.
 *
 * Exit codes: 0 done (or started), 1 a backfill ended failed or cancelled
 * while waiting for it (or the engine refused: 409/503), 2 misuse (bad flag,
 * unknown tenant, connection or id).
 */
import { Console, Effect, Option, Schedule } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import type { BackfillView } from "../api/Api.ts"
import { apiFlags, type ApiClient, withApi } from "./Http.ts"
import { cell, CliFailure, foundProblems, jsonFlag, printJson, table } from "./Output.ts"
import { progressFlag, render } from "./Progress.ts"

const POLL_MS = 500

const HEADERS = ["ID", "TENANT", "CONNECTION", "ENTITY", "STATUS", "DONE", "TOTAL", "IMPORTED", "SKIPPED", "FAILED", "RATE/S", "ETA", "STARTED"]

const eta = (b: BackfillView) => (b.status !== "running" ? "-" : b.etaSeconds === null ? "?" : `${b.etaSeconds}s`)

const row = (b: BackfillView) => [
  b.id, b.tenant, b.connection, b.entity, b.status, String(b.done), cell(b.total), String(b.imported), String(b.skipped), String(b.failed),
  cell(b.rate), eta(b), b.startedAt
]

const details = (b: BackfillView) =>
  [
    `backfill ${b.id} (tenant ${b.tenant}, connection ${b.connection}, entity ${b.entity})`,
    `  status     ${b.status}${b.error === null ? "" : ` (${b.error})`}`,
    `  window     ${b.since === null ? "all history" : `since ${b.since}`}`,
    `  progress   ${b.done}${b.total === null ? "" : `/${b.total}`} records in ${b.pages} pages of ${b.pageSize}: ${b.imported} imported, ${b.skipped} already there, ${b.failed} failed`,
    `  rate       ${b.rate === null ? "-" : `${b.rate} records/s`}${b.status === "running" ? `, ETA ${eta(b)}` : ""}`,
    `  started    ${b.startedAt}`,
    `  ${b.finishedAt === null ? "updated " : "finished"}   ${b.finishedAt ?? b.updatedAt}`
  ].join("\n")

const label = (bs: ReadonlyArray<BackfillView>) =>
  bs.length === 1 ? `${bs[0]?.connection} ${bs[0]?.entity}` : `${bs[0]?.connection} ${bs.map((b) => b.entity).join("+")}`

/**
 * Polls the backfills until none is running, drawing one progress line (all
 * of them together) on stderr when it is a terminal or `--progress` asks.
 */
const follow = (api: ApiClient, ids: ReadonlyArray<string>, force: boolean) =>
  Effect.gen(function*() {
    const draw = force || process.stderr.isTTY === true
    let drawn = false
    const read = Effect.forEach(ids, (id) => api.backfills.findBackfill({ params: { id } }))
    let current = yield* read
    for (;;) {
      if (draw) {
        const done = current.reduce((n, b) => n + b.done, 0)
        const totals = current.map((b) => b.total)
        const total = totals.every((t) => t !== null) ? totals.reduce((n: number, t) => n + (t ?? 0), 0) : undefined
        const started = Math.min(...current.map((b) => Date.parse(b.startedAt)))
        const until = current.every((b) => b.status !== "running") ? Math.max(...current.map((b) => Date.parse(b.updatedAt))) : Date.now()
        const line = render(label(current), done, total, until - started)
        yield* Effect.sync(() => process.stderr.write(process.stderr.isTTY === true ? `\r\x1b[2K${line}` : `${line}\n`))
        drawn = true
      }
      if (current.every((b) => b.status !== "running")) break
      yield* Effect.sleep(POLL_MS)
      current = yield* read.pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("1 second") }))
    }
    if (drawn && process.stderr.isTTY === true) yield* Effect.sync(() => process.stderr.write("\n"))
    return current
  })

const outcome = (bs: ReadonlyArray<BackfillView>) => {
  const bad = bs.filter((b) => b.status === "failed" || b.status === "cancelled")
  return bad.length === 0
    ? Effect.void
    : Effect.fail(foundProblems(bad.map((b) => `backfill ${b.id} ${b.status}${b.error === null ? "" : `: ${b.error}`}`).join("; ")))
}

const start = Command.make(
  "start",
  {
    ...apiFlags,
    tenant: Flag.String("tenant").pipe(Flag.withDescription("The tenant")),
    connection: Flag.String("connection").pipe(Flag.withDescription("The connection whose provider history to import")),
    entity: Flag.String("entity").pipe(
      Flag.withDescription("An entity to import (repeatable; default: the connection's backfill.entities, else every entity it pulls)"),
      Flag.between(0, Number.MAX_SAFE_INTEGER)
    ),
    since: Flag.optional(Flag.String("since").pipe(Flag.withMetavar("DATE"), Flag.withDescription("Only records changed on or after DATE (YYYY-MM-DD)"))),
    years: Flag.optional(Flag.Int("years").pipe(Flag.withDescription("Only records changed in the last N years"))),
    pageSize: Flag.optional(Flag.Int("page-size").pipe(Flag.withDescription("Records per provider page (default 500)"))),
    wait: Flag.Boolean("wait").pipe(Flag.withDescription("Wait until it finishes, with a progress bar; exit 1 if it fails or is cancelled"), Flag.withDefault(false)),
    progress: progressFlag,
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, connection, entity, since, years, pageSize, wait, progress, json }) {
    const result = yield* withApi({ url, adminKey }, (api) =>
      Effect.gen(function*() {
        const started = yield* api.backfills.startBackfill({
          params: { tenant, connection },
          payload: {
            ...(entity.length === 0 ? {} : { entities: entity }),
            ...(Option.isSome(since) ? { since: since.value } : {}),
            ...(Option.isSome(years) ? { years: years.value } : {}),
            ...(Option.isSome(pageSize) ? { pageSize: pageSize.value } : {})
          }
        })
        if (!json) {
          yield* Console.log(started.backfills.map((b) =>
            `started backfill ${b.id}: ${b.connection} ${b.entity}${b.since === null ? " (all history)" : ` since ${b.since}`}${b.total === null ? "" : `, ${b.total} records`}`
          ).join("\n"))
        }
        if (!wait) return started.backfills
        return yield* follow(api, started.backfills.map((b) => b.id), progress)
      }))
    if (json) yield* printJson(result)
    else if (wait) yield* Console.log(table(HEADERS, result.map(row)))
    if (wait) yield* outcome(result)
  })
).pipe(
  Command.withDescription("Start importing a connection's history from its provider (one backfill per entity); --wait follows it"),
  Command.validate((input) =>
    Option.isSome(input.since) && Option.isSome(input.years)
      ? Effect.fail(new CliError.ValidationError({ message: "give --since or --years, not both" }))
      : Effect.void
  )
)

const status = Command.make(
  "status",
  {
    ...apiFlags,
    id: Argument.String("id").pipe(Argument.withDescription("A backfill id (without it: list backfills)"), Argument.optional),
    tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's backfills (without it: every tenant, admin key needed)"))),
    connection: Flag.optional(Flag.String("connection").pipe(Flag.withDescription("Only this connection's backfills (with --tenant)"))),
    watch: Flag.Boolean("watch").pipe(Flag.withDescription("Follow a backfill with a live progress bar until it finishes"), Flag.withDefault(false)),
    progress: progressFlag,
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, id, tenant, connection, watch, progress, json }) {
    if (Option.isNone(id)) {
      if (watch) return yield* new CliFailure({ message: "--watch follows one backfill: give its id", exitCode: 2 })
      if (Option.isSome(connection) && Option.isNone(tenant)) return yield* new CliFailure({ message: "--connection needs --tenant", exitCode: 2 })
      const list = yield* withApi({ url, adminKey }, (api) =>
        Option.isSome(tenant)
          ? api.backfills.listBackfills({ params: { tenant: tenant.value }, query: Option.isSome(connection) ? { connection: connection.value } : {} })
          : api.backfills.allBackfills({ query: {} }))
      if (json) return yield* printJson(list)
      return yield* Console.log(list.length === 0 ? "no backfills" : table(HEADERS, list.map(row)))
    }
    const b = yield* withApi({ url, adminKey }, (api) =>
      Effect.gen(function*() {
        const found = Option.isSome(tenant)
          ? yield* api.backfills.getBackfill({ params: { tenant: tenant.value, id: id.value } })
          : yield* api.backfills.findBackfill({ params: { id: id.value } })
        if (!watch) return found
        return (yield* follow(api, [found.id], progress))[0] as BackfillView
      }))
    if (json) yield* printJson(b)
    else yield* Console.log(details(b))
    if (watch) yield* outcome([b])
  })
).pipe(Command.withDescription("Show backfills: one (with progress, rate and ETA; --watch follows it live) or a list"))

const cancel = Command.make(
  "cancel",
  {
    ...apiFlags,
    id: Argument.String("id").pipe(Argument.withDescription("The backfill id")),
    tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Its tenant (found from the id when left out)"))),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, id, tenant, json }) {
    const b = yield* withApi({ url, adminKey }, (api) =>
      Effect.gen(function*() {
        const owner = Option.isSome(tenant) ? tenant.value : (yield* api.backfills.findBackfill({ params: { id } })).tenant
        return yield* api.backfills.cancelBackfill({ params: { tenant: owner, id } })
      }))
    if (json) return yield* printJson(b)
    yield* Console.log(`cancelled backfill ${b.id} (${b.connection} ${b.entity}) after ${b.done}${b.total === null ? "" : `/${b.total}`} records; what it imported stays`)
  })
).pipe(Command.withDescription("Cancel a running backfill (the page in flight is rolled back; committed pages stay)"))

export const backfill = Command.make("backfill").pipe(
  Command.withDescription("Backfills: import a connection's provider history, resumably and at background priority (through the HTTP API)"),
  Command.withSubcommands([start, status, cancel])
)
