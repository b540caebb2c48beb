/**
 * The `concord` command line.
 */
// Subpath imports: the package's index loads every Node module (HTTP server, sockets, …), about a second of start-up.
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as NodeServices from "@effect/platform-node/NodeServices"
import { Cause, Console, Effect, Layer } from "effect"
import { CliError, CliOutput, Command } from "effect/cli"
import { audit } from "./cli/AuditCommand.ts"
import { backfill } from "./cli/BackfillCommand.ts"
import { config } from "./cli/ConfigCommand.ts"
import { conflicts } from "./cli/ConflictsCommand.ts"
import { connections } from "./cli/ConnectionsCommand.ts"
import { dlq } from "./cli/DlqCommand.ts"
import { drift } from "./cli/DriftCommand.ts"
import { replay } from "./cli/ReplayCommand.ts"
import { sandbox } from "./cli/SandboxCommand.ts"
import { serve } from "./cli/ServeCommand.ts"
import { CliFailure } from "./cli/Output.ts"

/**
 * Each command group lives in its own file under cli/. Commands that talk to
 * a running node through its HTTP API take `apiFlags` and call `withApi`
 * (cli/Http.ts: a client derived from the Api definition); commands that work
 * on the JetStream streams themselves take `natsFlags` and `connectJetstream`
 * (cli/Jetstream.ts).
 */
export const concord = Command.make("concord").pipe(
  Command.withDescription("Concord: bidirectional sync and reconciliation between your platform and accounting providers"),
  Command.withSubcommands([
    { group: "Run", commands: [serve, sandbox, config] },
    { group: "Operate a running node (HTTP API)", commands: [connections, conflicts, audit, backfill, drift] },
    { group: "Operate the streams (NATS)", commands: [replay, dlq] }
  ])
)

/**
 * Help and version print as usual; a misused command (unknown flag, missing
 * argument, bad value) prints one line on stderr instead of the whole help.
 */
const presenter = CliOutput.layerPresenter({
  present: (event) =>
    event._tag === "InvalidInvocation"
      ? Console.error(`concord: ${(event.errors[0]?.message ?? "invalid command").split("\n")[0]} (see: ${[...event.commandPath, "--help"].join(" ")})`)
      : CliOutput.defaultPresenter.present(event)
})

/** Runs `concord` with `argv`; misuse fails with exit code 2 after its one-line message. */
export const main = (argv: ReadonlyArray<string>) =>
  Command.runWith(concord, { version: "0.1.0" })(argv).pipe(
    Effect.provide(Layer.merge(NodeServices.layer, presenter)),
    Effect.catchIf(CliError.isCliError, (e) =>
      e._tag === "ShowHelp" && e.errors.length === 0
        ? Effect.void
        : Effect.fail(new CliFailure({ message: e.message, exitCode: 2, silent: true })))
  )

const oneLine = (cause: Cause.Cause<unknown>): string => {
  const e = Cause.squash(cause)
  const message = typeof e === "object" && e !== null && typeof (e as { message?: unknown }).message === "string" ? (e as { message: string }).message : String(e)
  // Folded onto one line: a config error names its variable on the next one ("at [\"PORT\"]").
  const folded = message.replace(/\s*\n\s*/g, " ").slice(0, 500)
  return Cause.hasFails(cause) ? folded : `internal error: ${folded}`
}

/** Runs the CLI as the process: exit codes 0 ok, 1 failed, 2 misuse. */
export const runCli = (argv: ReadonlyArray<string>): void =>
  NodeRuntime.runMain(
    main(argv).pipe(
      Effect.catchTag("CliFailure", (failure) =>
        Effect.sync(() => {
          process.exitCode = failure.exitCode
        }).pipe(Effect.andThen(failure.silent === true ? Effect.void : Console.error(`concord: ${failure.message}`)))
      ),
      // Anything else (a node that cannot start, a bug) is still one line and exit 1; Ctrl-C stays a quiet interrupt.
      Effect.catchCause((cause) =>
        Cause.hasInterruptsOnly(cause)
          ? Effect.failCause(cause)
          : Effect.sync(() => {
            process.exitCode = 1
          }).pipe(Effect.andThen(Console.error(`concord: ${oneLine(cause)}`)))
      )
    ),
    { disableErrorReporting: true }
  )

if (import.meta.main) runCli(process.argv.slice(2))
