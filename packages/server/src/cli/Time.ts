/**
 * TIME arguments: RFC 3339 (`2026-03-01T10:00:00Z`, `2026-03-01T10:00:00.5+02:00`)
 * or a duration back from now (`90s`, `15m`, `2h`, `1d`, `1w`).
 */
import { Clock, Effect } from "effect"
import { CliError, Flag } from "effect/cli"

const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$/
const RELATIVE = /^(\d+)(s|m|h|d|w)$/
const UNIT_MS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }

/** The instant `text` names, relative forms counted back from `nowMs`; undefined when it is not a TIME. */
export const parseTime = (text: string, nowMs: number): Date | undefined => {
  const trimmed = text.trim()
  const relative = RELATIVE.exec(trimmed)
  if (relative !== null) return new Date(nowMs - Number(relative[1]) * (UNIT_MS[relative[2] ?? "s"] ?? 1000))
  if (!RFC3339.test(trimmed)) return undefined
  const ms = Date.parse(trimmed.replace(" ", "T"))
  return Number.isNaN(ms) ? undefined : new Date(ms)
}

export const TIME_HELP = "RFC 3339 (2026-03-01T10:00:00Z) or a duration back from now (90s, 15m, 2h, 1d, 1w)"

/** A flag holding a TIME. */
export const timeFlag = (name: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withMetavar("TIME"),
    Flag.withDescription(`${description}: ${TIME_HELP}`),
    Flag.mapEffect((text) =>
      Clock.currentTimeMillis.pipe(Effect.flatMap((now) => {
        const at = parseTime(text, now)
        return at === undefined
          ? Effect.fail(new CliError.InvalidValue({ option: name, value: text, expected: TIME_HELP, kind: "flag" }))
          : Effect.succeed(at)
      }))
    )
  )
