/**
 * `concord audit verify --tenant T`: asks the engine to walk the tenant's
 * hash-chained audit log and reports the first broken link (exit 1).
 */
import { Console, Effect } from "effect"
import { Command, Flag } from "effect/cli"
import { apiFlags, withApi } from "./Http.ts"
import { foundProblems, jsonFlag, printJson } from "./Output.ts"

const verify = Command.make(
  "verify",
  {
    ...apiFlags,
    tenant: Flag.String("tenant").pipe(Flag.withDescription("The tenant whose audit chain to verify")),
    json: jsonFlag
  },
  Effect.fn(function*({ url, adminKey, tenant, json }) {
    const r = yield* withApi({ url, adminKey }, (api) => api.audit.verifyAudit({ params: { tenant } }))
    if (json) yield* printJson(r)
    else if (r.ok) yield* Console.log(`audit chain of tenant ${r.tenant}: OK (${r.rows} row(s), every hash follows from the one before)`)
    else yield* Console.log(`audit chain of tenant ${r.tenant}: BROKEN at row ${r.brokenAt?.seq}: ${r.brokenAt?.reason} (${r.rows} row(s) checked)`)
    if (!r.ok) return yield* foundProblems(`the audit chain of tenant ${r.tenant} is broken`)
  })
).pipe(Command.withDescription("Walk a tenant's hash-chained audit log and report the first broken link (exit 1 when broken)"))

export const audit = Command.make("audit").pipe(
  Command.withDescription("The append-only, hash-chained audit log"),
  Command.withSubcommands([verify])
)
