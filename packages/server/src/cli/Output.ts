/**
 * CLI output conventions: human tables by default, `--json` for scripts,
 * one-line errors on stderr, and exit codes that mean something:
 * 0 success, 1 the operation failed or found problems, 2 misuse.
 */
import { Console, Schema } from "effect"
import { Flag } from "effect/cli"

/** A failure the CLI reports as one line (unless `silent`) and exits with `exitCode`. */
export class CliFailure extends Schema.TaggedError<CliFailure>()("CliFailure", {
  message: Schema.String,
  exitCode: Schema.Number,
  silent: Schema.optionalKey(Schema.Boolean)
}) {}

/** Renders rows as an aligned text table. */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ").trimEnd()
  return [line(headers), ...rows.map(line)].join("\n")
}

/** `--json`: machine-readable output on stdout for scripts. */
export const jsonFlag = Flag.Boolean("json").pipe(Flag.withDescription("Print the result as JSON (for scripts)"), Flag.withDefault(false))

/** Prints `value` as one JSON document. */
export const printJson = (value: unknown) => Console.log(JSON.stringify(value, null, 2))

/** Fails with exit 1 and no further message (the output already said what is wrong). */
export const foundProblems = (message: string) => new CliFailure({ message, exitCode: 1, silent: true })

/** A cell for tables: `-` for nothing. */
export const cell = (v: unknown): string => (v === null || v === undefined || v === "" ? "-" : typeof v === "string" ? v : JSON.stringify(v))
