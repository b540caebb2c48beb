/**
 * `concord config check FILE`: validates a tenant's YAML and prints every
 * error with its YAML path and line. Exit 0 when valid, 1 when not, 2 when
 * the file cannot be read.
 */
import { Console, Effect, FileSystem } from "effect"
import { Argument, Command, Flag } from "effect/cli"
import { CliFailure } from "./Output.ts"

const check = Command.make(
  "check",
  {
    file: Argument.String("file").pipe(Argument.withDescription("Tenant configuration YAML")),
    json: Flag.Boolean("json").pipe(Flag.withDescription("Print the result as JSON"), Flag.withDefault(false))
  },
  Effect.fn(function*({ file, json }) {
    const fs = yield* FileSystem.FileSystem
    const text = yield* fs.readFileString(file).pipe(
      Effect.mapError((e) => new CliFailure({ message: `cannot read ${file}: ${e.message}`, exitCode: 2 }))
    )
    // Loaded when the command runs: the configuration schema and YAML parser are a fifth of a second of start-up.
    const { Config } = yield* Effect.promise(() => import("@concord/core"))
    const parsed = Config.parseTenantYaml(text)
    if (parsed.ok) {
      const c = parsed.config
      yield* Console.log(
        json
          ? JSON.stringify({ ok: true, tenant: c.tenant, connections: c.connections.map((x) => x.id), glRules: (c.glRules ?? []).length })
          : `${file}: OK (tenant ${c.tenant}, ${c.connections.length} connection(s), ${(c.glRules ?? []).length} GL rule(s))`
      )
      return
    }
    yield* Console.log(json ? JSON.stringify({ ok: false, issues: parsed.issues }) : Config.formatIssues(file, parsed.issues))
    return yield* new CliFailure({ message: `${file}: ${parsed.issues.length} error(s)`, exitCode: 1, silent: json })
  })
).pipe(Command.withDescription("Validate a tenant configuration file"))

export const config = Command.make("config").pipe(
  Command.withDescription("Tenant configuration"),
  Command.withSubcommands([check])
)
