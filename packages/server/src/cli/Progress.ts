/**
 * A progress bar on stderr with count, rate and ETA, for anything long
 * (replays, bulk DLQ work). It draws only when stderr is a terminal or when
 * `--progress` asks for it, so scripts reading stdout never see it.
 */
import { Clock, Effect } from "effect"
import { Flag } from "effect/cli"

export const progressFlag = Flag.Boolean("progress").pipe(
  Flag.withDescription("Draw a progress bar on stderr even when it is not a terminal (it is drawn on a terminal anyway)"),
  Flag.withDefault(false)
)

export interface Progress {
  /** Counts `n` more items done. */
  readonly advance: (n?: number) => Effect.Effect<void>
  /** Sets (or corrects) the expected total. */
  readonly total: (n: number) => Effect.Effect<void>
  /** Draws the final state and ends the line. */
  readonly finish: Effect.Effect<void>
}

const WIDTH = 24
const REDRAW_MS = 100

const duration = (seconds: number): string => {
  if (!Number.isFinite(seconds)) return "?"
  const s = Math.max(0, Math.round(seconds))
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, "0")}m`
}

/** One line: `label [██████░░░░] 120/500 (24%)  52.3/s  ETA 7s`. */
export const render = (label: string, done: number, total: number | undefined, elapsedMs: number): string => {
  const rate = elapsedMs > 0 ? done / (elapsedMs / 1000) : 0
  const rateText = `${rate >= 100 ? Math.round(rate) : rate.toFixed(1)}/s`
  if (total === undefined || total <= 0) return `${label} ${done}  ${rateText}`
  const ratio = Math.min(1, done / total)
  const filled = Math.round(ratio * WIDTH)
  const eta = done >= total ? 0 : rate > 0 ? (total - done) / rate : Number.POSITIVE_INFINITY
  return `${label} [${"█".repeat(filled)}${"░".repeat(WIDTH - filled)}] ${done}/${total} (${Math.floor(ratio * 100)}%)  ${rateText}  ETA ${duration(eta)}`
}

/** A progress bar, drawn when `force` or stderr is a TTY; otherwise every call is a no-op. */
export const make = (label: string, options: { readonly total?: number; readonly force: boolean }) =>
  Effect.gen(function*() {
    const enabled = options.force || process.stderr.isTTY === true
    const start = yield* Clock.currentTimeMillis
    let done = 0
    let total = options.total
    let lastDraw = 0
    let drawn = false
    let drawnDone = -1
    const draw = (final: boolean) =>
      Effect.gen(function*() {
        if (!enabled) return
        const now = yield* Clock.currentTimeMillis
        if (!final && now - lastDraw < REDRAW_MS) return
        // The final state is drawn once, even when the last advance already drew it.
        if (final && drawnDone === done) return
        lastDraw = now
        drawnDone = done
        drawn = true
        const line = render(label, done, total, now - start)
        // On a terminal the bar redraws in place; elsewhere each draw is its own line.
        yield* Effect.sync(() => process.stderr.write(process.stderr.isTTY === true ? `\r\x1b[2K${line}` : `${line}\n`))
      })
    const progress: Progress = {
      advance: (n = 1) =>
        Effect.suspend(() => {
          done += n
          return draw(false)
        }),
      total: (n) =>
        Effect.sync(() => {
          total = n
        }),
      finish: Effect.suspend(() =>
        draw(true).pipe(Effect.andThen(Effect.sync(() => {
          if (enabled && drawn && process.stderr.isTTY === true) process.stderr.write("\n")
        })))
      )
    }
    return progress
  })
