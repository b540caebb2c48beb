/**
 * `concord conflicts list|show|resolve`, through the HTTP API. A conflict is
 * one field both sides changed differently, under the `review` policy.
 */
import { Console, Effect, Option } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import type { ConflictView } from "../api/Api.ts"
import { apiFlags, withApi } from "./Http.ts"
import { CliFailure, foundProblems, jsonFlag, printJson, table } from "./Output.ts"

const tenantArg = Argument.String("tenant").pipe(Argument.withDescription("The tenant id"))
const idArg = Argument.String("id").pipe(Argument.withDescription("The conflict id (see concord conflicts list)"))

/** A value as JSON (strings quoted, so `"42"` and `42` differ), shortened for a table. */
const short = (v: unknown, max = 32): string => {
  const s = v === null || v === undefined ? "-" : JSON.stringify(v)
  return s.length > max ? `${s.slice(0, max - 3)}...` : s
}

const age = (seconds: number): string =>
  seconds < 120 ? `${seconds}s` : seconds < 7200 ? `${Math.round(seconds / 60)}m` : seconds < 172800 ? `${Math.round(seconds / 3600)}h` : `${Math.round(seconds / 86400)}d`

const HEADERS = ["ID", "TENANT", "CONNECTION", "RECORD", "FIELD", "APP", "PROVIDER", "STATUS", "AGE"]
const row = (c: ConflictView) => [c.id, c.tenant, c.connectionId, `${c.entity} ${c.recordId}`, c.path, short(c.app), short(c.provider), c.status, age(c.ageSeconds)]

const list = Command.make(
  "list",
  {
    ...apiFlags,
    tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's conflicts (without it: every tenant, admin key needed)"))),
    status: Flag.Literals("status", ["open", "resolved", "superseded", "all"]).pipe(Flag.withDescription("Which conflicts"), Flag.withDefault("open")),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, status, json }) {
    const rows = yield* withApi({ url, adminKey }, (api) =>
      Option.isSome(tenant)
        // The tenant is looked up first, so a mistyped one is an error rather than an empty list.
        ? api.tenants.getTenant({ params: { tenant: tenant.value } }).pipe(
          Effect.andThen(api.conflicts.listConflicts({ params: { tenant: tenant.value }, query: { status } }))
        )
        : api.operators.allConflicts({ query: { status } }))
    if (json) return yield* printJson(rows)
    yield* Console.log(rows.length === 0 ? `no ${status === "all" ? "" : `${status} `}conflicts` : table(HEADERS, rows.map(row)))
  })
).pipe(Command.withDescription("List conflicts waiting for a person (or resolved ones with --status)"))

const show = Command.make(
  "show",
  { ...apiFlags, tenant: tenantArg, id: idArg, json: jsonFlag },
  Effect.fn(function*({ url, adminKey, tenant, id, json }) {
    const c = yield* withApi({ url, adminKey }, (api) => api.conflicts.getConflict({ params: { tenant, id } }))
    if (json) return yield* printJson(c)
    const value = (v: unknown) => JSON.stringify(v)
    yield* Console.log([
      `conflict ${c.id} (tenant ${c.tenant}, connection ${c.connectionId})`,
      `  record      ${c.entity} ${c.recordId}`,
      `  field       ${c.path}`,
      `  base        ${value(c.base)}   (what both sides last agreed on)`,
      `  app         ${value(c.app)}`,
      `  provider    ${value(c.provider)}`,
      `  status      ${c.status}${c.resolution === null ? "" : ` (took ${c.resolution}${c.resolvedValue === null ? "" : `: ${value(c.resolvedValue)}`})`}`,
      `  opened      ${c.openedAt} (${age(c.ageSeconds)} ago)`,
      ...(c.resolvedAt === null ? [] : [`  resolved    ${c.resolvedAt}`])
    ].join("\n"))
  })
).pipe(Command.withDescription("Show a conflict: the field, its base, app and provider values"))

const resolve = Command.make(
  "resolve",
  {
    ...apiFlags,
    tenant: tenantArg,
    id: idArg,
    take: Flag.Literals("take", ["app", "provider", "merged"]).pipe(Flag.withDescription("Keep the app's value, the provider's, or your own (--value)")),
    value: Flag.optional(
      Flag.String("value").pipe(
        Flag.withMetavar("JSON"),
        Flag.withDescription("The value to keep, as JSON (with --take merged): '\"Net 30\"', '42', '{\"a\":1}'"),
        Flag.mapTryCatch((text) => JSON.parse(text) as unknown, () => "a JSON value (quote strings: '\"text\"')")
      )
    ),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, id, take, value, json }) {
    const r = yield* withApi({ url, adminKey }, (api) =>
      Effect.gen(function*() {
        // Say plainly when there is nothing left to decide (the engine would refuse it).
        const current = yield* api.conflicts.getConflict({ params: { tenant, id } })
        if (current.status !== "open") {
          return yield* new CliFailure({
            message: `conflict ${id} is ${current.status}${current.resolution === null ? "" : ` (kept ${current.resolution})`}${current.resolvedAt === null ? "" : ` since ${current.resolvedAt}`}: nothing to resolve`,
            exitCode: 1
          })
        }
        return yield* api.conflicts.resolveConflict({ params: { tenant, id }, payload: { resolution: take, ...(Option.isSome(value) ? { value: value.value } : {}) } })
      }))
    const outcome = (r.outcome ?? {}) as { _tag?: string; status?: string; error?: { tag?: string; message?: string } }
    if (json) yield* printJson(r)
    else {
      yield* Console.log(
        `resolved conflict ${r.conflict.id} on ${r.conflict.entity} ${r.conflict.recordId} ${r.conflict.path}: kept ${take} ${JSON.stringify(r.conflict.resolvedValue)}; ` +
          (outcome._tag === "Done" ? `the record synced (${outcome.status ?? "done"})` : `the record did not sync yet: ${outcome.error?.message ?? outcome._tag ?? "unknown"}`)
      )
    }
    if (outcome._tag !== "Done") return yield* foundProblems("the resolution was recorded but the record did not sync")
  })
).pipe(
  Command.withDescription("Resolve a conflict: keep the app's value, the provider's, or a merged value; the record syncs at once"),
  Command.validate((input) =>
    input.take === "merged" && Option.isNone(input.value)
      ? Effect.fail(new CliError.ValidationError({ message: "--take merged needs --value JSON (the value to keep)" }))
      : input.take !== "merged" && Option.isSome(input.value)
      ? Effect.fail(new CliError.ValidationError({ message: `--value is only for --take merged (--take ${input.take} keeps that side's value)` }))
      : Effect.void
  )
)

export const conflicts = Command.make("conflicts").pipe(
  Command.withDescription("Conflicts: a field both sides changed differently, waiting for a person (through the HTTP API)"),
  Command.withSubcommands([list, show, resolve])
)
