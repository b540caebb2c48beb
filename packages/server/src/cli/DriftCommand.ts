/**
 * `concord drift runs|show|reconcile-now`, through the HTTP API: list
 * full-state reconciliation runs, show one run's drift items, start a run now
 * (and, with `--wait`, follow it with a progress line until it ends).
 *
 * Exit codes: 0 done (a run with no drift, or any listing), 1 the run found
 * drift or failed (with `--wait`), or the engine refused (409: one is
 * running), 2 misuse (bad flag, unknown tenant, connection or run id).
 */
import { Console, Effect, Option, Schedule } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import type { DriftItemView, DriftRunDetail, DriftRunView } from "../api/Api.ts"
import { apiFlags, type ApiClient, withApi } from "./Http.ts"
import { cell, CliFailure, foundProblems, jsonFlag, printJson, table } from "./Output.ts"
import { progressFlag, render } from "./Progress.ts"

const POLL_MS = 300

const KINDS = ["missing_in_provider", "missing_in_app", "field_mismatch", "duplicate_in_provider", "unbalanced", "orphan_link"] as const
type Kind = (typeof KINDS)[number]

const short: Record<Kind, string> = {
  missing_in_provider: "MISS-PROV",
  missing_in_app: "MISS-APP",
  field_mismatch: "FIELDS",
  duplicate_in_provider: "DUPS",
  unbalanced: "UNBAL",
  orphan_link: "ORPHAN"
}

const RUN_HEADERS = ["ID", "TENANT", "CONNECTION", "TRIGGER", "STATUS", "STARTED", "FINISHED", "RECORDS", ...KINDS.map((k) => short[k]), "RESOLVED"]

const runRow = (r: DriftRunView) => [
  r.id, r.tenant, r.connection, r.trigger, r.status, r.startedAt, cell(r.finishedAt), String(r.providerRecords),
  ...KINDS.map((k) => String(r.counts[k])), String(r.resolved)
]

const ITEM_HEADERS = ["ITEM", "KIND", "ENTITY", "RECORD", "EXTERNAL", "FIELDS", "RESOLUTION"]

const value = (v: unknown) => (v === undefined ? "(none)" : typeof v === "string" ? v : JSON.stringify(v))

const itemRow = (i: DriftItemView) => [
  String(i.id), i.kind, i.entity, cell(i.recordId), cell(i.externalId),
  i.fields.length === 0 ? "-" : i.fields.map((f) => `${f.path}: app ${value(f.app)} / provider ${value(f.provider)}`).join("; ").slice(0, 160),
  cell(i.resolution)
]

const summary = (r: DriftRunView) =>
  [
    `drift run ${r.id} (tenant ${r.tenant}, connection ${r.connection}, ${r.provider}, ${r.trigger} by ${r.requestedBy})`,
    `  status     ${r.status}${r.error === null ? "" : ` (${r.error})`}${r.phase === null ? "" : `, ${r.phase}`}`,
    `  entities   ${r.entities.join(", ")}`,
    `  read       ${r.providerRecords} provider records, ${r.appRecords} app records/links`,
    `  drift      ${r.total} items: ${KINDS.map((k) => `${k} ${r.counts[k]}`).join(", ")}`,
    `  explained  ${r.explained} differences explained by in-flight work (not drift)`,
    `  resolved   ${r.resolved} auto-resolved`,
    `  started    ${r.startedAt}`,
    `  finished   ${r.finishedAt ?? "-"}`,
    `  report     ${r.link}`
  ].join("\n")

/** Every item of a run (the API pages them). */
const allItems = (api: ApiClient, tenant: Option.Option<string>, id: string, kind: Option.Option<Kind>) =>
  Effect.gen(function*() {
    const items: Array<DriftItemView> = []
    let offset: number | null = 0
    let first: DriftRunDetail | undefined
    while (offset !== null) {
      const query = { offset, limit: 1000, ...(Option.isSome(kind) ? { kind: kind.value } : {}) }
      const page: DriftRunDetail = Option.isSome(tenant)
        ? yield* api.drift.getDriftRun({ params: { tenant: tenant.value, id }, query })
        : yield* api.drift.findDriftRun({ params: { id }, query })
      first ??= page
      items.push(...page.items)
      offset = page.nextOffset
    }
    return { run: (first as DriftRunDetail).run, items }
  })

const tenantFlag = Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's runs (without it: every tenant, admin key needed; a tenant key sees its own)")))

const runs = Command.make(
  "runs",
  {
    ...apiFlags,
    tenant: tenantFlag,
    connection: Flag.optional(Flag.String("connection").pipe(Flag.withDescription("Only this connection's runs (with --tenant)"))),
    limit: Flag.optional(Flag.Int("limit").pipe(Flag.withDescription("At most this many runs, newest first (default 100)"))),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, connection, limit, json }) {
    if (Option.isSome(connection) && Option.isNone(tenant)) return yield* new CliFailure({ message: "--connection needs --tenant", exitCode: 2 })
    if (Option.isSome(limit) && (limit.value < 1 || limit.value > 1000)) return yield* new CliFailure({ message: "--limit must be between 1 and 1000", exitCode: 2 })
    const lim = Option.isSome(limit) ? { limit: limit.value } : {}
    const list = yield* withApi({ url, adminKey }, (api) =>
      Option.isSome(tenant)
        ? api.drift.listDriftRuns({ params: { tenant: tenant.value }, query: { ...lim, ...(Option.isSome(connection) ? { connection: connection.value } : {}) } })
        : api.drift.allDriftRuns({ query: lim }))
    if (json) return yield* printJson(list)
    yield* Console.log(list.length === 0 ? "no drift runs" : table(RUN_HEADERS, list.map(runRow)))
  })
).pipe(Command.withDescription("List reconciliation runs with their drift counts per kind"))

const show = Command.make(
  "show",
  {
    ...apiFlags,
    id: Argument.String("run").pipe(Argument.withDescription("The run id (dr_…)")),
    tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Its tenant (found from the id when left out)"))),
    kind: Flag.optional(Flag.Literals("kind", KINDS).pipe(Flag.withDescription("Only items of this kind"))),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, id, tenant, kind, json }) {
    const detail = yield* withApi({ url, adminKey }, (api) => allItems(api, tenant, id, kind))
    if (json) return yield* printJson(detail)
    yield* Console.log(summary(detail.run))
    yield* Console.log(detail.items.length === 0 ? "\nno drift items" : `\n${table(ITEM_HEADERS, detail.items.map(itemRow))}`)
  })
).pipe(Command.withDescription("Show one reconciliation run: its summary and every drift item with both values"))

/** Polls the run until it ends, drawing a progress line on stderr (a terminal, or --progress). */
const follow = (api: ApiClient, tenant: string, id: string, force: boolean) =>
  Effect.gen(function*() {
    const draw = force || process.stderr.isTTY === true
    let drawn = false
    const read = api.drift.getDriftRun({ params: { tenant, id }, query: { limit: 1 } }).pipe(Effect.map((d) => d.run))
    let current = yield* read
    for (;;) {
      if (draw) {
        const until = current.finishedAt === null ? Date.now() : Date.parse(current.finishedAt)
        const label = `reconcile ${current.connection}${current.phase === null ? "" : ` (${current.phase})`}`
        const line = `${render(label, current.providerRecords + current.appRecords, undefined, until - Date.parse(current.startedAt))} records, ${current.status}`
        yield* Effect.sync(() => process.stderr.write(process.stderr.isTTY === true ? `\r\x1b[2K${line}` : `${line}\n`))
        drawn = true
      }
      if (current.status !== "running") break
      yield* Effect.sleep(POLL_MS)
      current = yield* read.pipe(Effect.retry({ times: 20, schedule: Schedule.spaced("1 second") }))
    }
    if (drawn && process.stderr.isTTY === true) yield* Effect.sync(() => process.stderr.write("\n"))
    return current
  })

const reconcileNow = Command.make(
  "reconcile-now",
  {
    ...apiFlags,
    tenant: Flag.String("tenant").pipe(Flag.withDescription("The tenant")),
    connection: Flag.String("connection").pipe(Flag.withDescription("The connection to reconcile")),
    entity: Flag.String("entity").pipe(
      Flag.withDescription("An entity to reconcile (repeatable; default: the connection's reconciliation.entities, else every enabled entity)"),
      Flag.between(0, Number.MAX_SAFE_INTEGER)
    ),
    wait: Flag.Boolean("wait").pipe(Flag.withDescription("Wait until the run ends, with progress; exit 1 if it found drift or failed"), Flag.withDefault(false)),
    progress: progressFlag,
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, connection, entity, wait, progress, json }) {
    const result = yield* withApi({ url, adminKey }, (api) =>
      Effect.gen(function*() {
        const started = yield* api.drift.reconcileNow({ params: { tenant, connection }, payload: entity.length === 0 ? {} : { entities: entity } })
        if (!json) yield* Console.log(`started reconciliation ${started.id} of ${started.connection} (${started.entities.join(", ")})`)
        if (!wait) return started
        return yield* follow(api, tenant, started.id, progress)
      }))
    if (json) yield* printJson(result)
    else if (wait) yield* Console.log(summary(result))
    if (!wait) return
    if (result.status === "failed") return yield* foundProblems(`reconciliation ${result.id} failed: ${result.error ?? "unknown error"}`)
    if (result.total > 0) return yield* foundProblems(`reconciliation ${result.id} found ${result.total} drift items`)
  })
).pipe(Command.withDescription("Reconcile a connection now (full-state: every record of each entity, both sides); --wait follows it"))

export const drift = Command.make("drift").pipe(
  Command.withDescription("Full-state reconciliation: runs, their drift items, and reconcile-now (through the HTTP API)"),
  Command.withSubcommands([runs, show, reconcileNow])
)
