/**
 * `concord dlq list|show|replay|purge`: the dead-letter stream `CONCORD_DLQ`,
 * read and changed directly on NATS.
 *
 * `replay` re-publishes a dead letter's message to its original subject with
 * `Concord-Replay-Of: <DLQ seq>` and a fresh `Nats-Msg-Id`. The engine's
 * consumer removes that DLQ entry only once the copy is settled: when it
 * succeeds, or when it fails again and a new dead letter (marked
 * `Concord-Replaces: <DLQ seq>`) takes its place. The command waits for one
 * or the other and reports which.
 */
import { Clock, Console, Effect, Option, Schema } from "effect"
import { Argument, CliError, Command, Flag, Prompt } from "effect/cli"
import type { StoredMsg } from "nats"
import { DeadLetter, ORIGINAL_SEQ_HEADER, REPLACES_HEADER, REPLAY_OF_HEADER } from "../nats/DeadLetters.ts"
import { connectJetstream, getMessage, isToken, type Jetstream, natsCall, natsFlags, republish, runId, scan } from "./Jetstream.ts"
import { CliFailure, foundProblems, jsonFlag, printJson, table } from "./Output.ts"
import * as Progress from "./Progress.ts"

const decoder = new TextDecoder()
const encoder = new TextEncoder()
const decodeLetter = Schema.decodeUnknownOption(Schema.fromJsonString(DeadLetter))

/** One DLQ entry as the commands show it. */
export interface Entry {
  readonly seq: number
  readonly subject: string
  readonly tenant: string
  readonly provider: string
  readonly storedAt: string
  /** The dead letter, when it decodes (it always should). */
  readonly letter: DeadLetter | null
  /** What the dead letter replaces, when its message was replayed and failed again. */
  readonly replaces: number | null
  /** The `CONCORD_IN` sequence the message is ordered as. */
  readonly originalSeq: number | null
}

const headerSeq = (value: string | undefined): number | null => {
  const n = Number(value ?? "")
  return Number.isSafeInteger(n) && n > 0 ? n : null
}

const toEntry = (jet: Jetstream, m: { seq: number; subject: string; data: Uint8Array; at: Date; header: (name: string) => string | undefined }): Entry => {
  const subject = jet.names.unprefix(m.subject)
  const [, , tenant = "?", provider = "?"] = subject.split(".")
  const letter = Option.getOrNull(decodeLetter(decoder.decode(m.data)))
  return {
    seq: m.seq,
    subject,
    tenant,
    provider,
    storedAt: m.at.toISOString(),
    letter,
    replaces: headerSeq(m.header(REPLACES_HEADER)),
    originalSeq: headerSeq(m.header(ORIGINAL_SEQ_HEADER)) ?? letter?.streamSequence ?? null
  }
}

const fromStored = (jet: Jetstream, m: StoredMsg): Entry =>
  toEntry(jet, { seq: m.seq, subject: m.subject, data: m.data, at: m.time, header: (n) => m.header?.get(n) || undefined })

/** `invoice inv-7 (app_change)` from a dead letter's message. */
const about = (letter: DeadLetter | null): string => {
  const m = letter?.message
  if (typeof m !== "object" || m === null) return letter === null ? "(unreadable dead letter)" : "(undecodable message)"
  const o = m as Record<string, unknown>
  const id = typeof o.recordId === "string" ? o.recordId : typeof o.externalId === "string" ? `ext:${o.externalId}` : ""
  return `${String(o.entity ?? "?")} ${id} (${String(o.kind ?? "?")})`.replace("  ", " ")
}

const dlqFilter = (jet: Jetstream, tenant: Option.Option<string>, provider: Option.Option<string>) =>
  jet.names.subject(`concord.dlq.${Option.getOrElse(tenant, () => "*")}.${Option.getOrElse(provider, () => "*")}`)

const matches = (e: Entry, tenant: Option.Option<string>, provider: Option.Option<string>) =>
  (Option.isNone(tenant) || e.tenant === tenant.value) && (Option.isNone(provider) || e.provider === provider.value)

const filterFlags = {
  tenant: Flag.optional(Flag.String("tenant").pipe(Flag.withDescription("Only this tenant's dead letters"))),
  provider: Flag.optional(Flag.String("provider").pipe(Flag.withDescription("Only this provider's dead letters")))
}

const checkFilters = (input: { readonly tenant: Option.Option<string>; readonly provider: Option.Option<string> }): string | undefined =>
  Option.isSome(input.tenant) && !isToken(input.tenant.value)
    ? `--tenant ${JSON.stringify(input.tenant.value)} is not a tenant id (letters, digits, '_' or '-')`
    : Option.isSome(input.provider) && !isToken(input.provider.value)
    ? `--provider ${JSON.stringify(input.provider.value)} is not a provider id`
    : undefined

const seqArg = Argument.optional(Argument.Int("seq").pipe(Argument.withDescription("The dead letter's CONCORD_DLQ sequence (see concord dlq list)")))
const allFlag = Flag.Boolean("all").pipe(Flag.withDescription("Every dead letter (matching --tenant / --provider)"), Flag.withDefault(false))

/** Exactly one of `<seq>` and `--all`. */
const oneTarget = (input: { readonly seq: Option.Option<number>; readonly all: boolean; readonly tenant: Option.Option<string>; readonly provider: Option.Option<string> }) => {
  const problem = Option.isSome(input.seq) && input.all
    ? "give a sequence or --all, not both"
    : Option.isNone(input.seq) && !input.all
    ? "say which dead letter: a sequence (see concord dlq list) or --all"
    : Option.isSome(input.seq) && input.seq.value < 1
    ? `${input.seq.value} is not a stream sequence`
    : checkFilters(input)
  return problem === undefined ? Effect.void : Effect.fail(new CliError.ValidationError({ message: problem }))
}

/** The entry at `seq`, refusing one outside the DLQ or outside the filters. */
const entryAt = (jet: Jetstream, seq: number, tenant: Option.Option<string>, provider: Option.Option<string>) =>
  Effect.gen(function*() {
    const stored = yield* getMessage(jet, jet.names.dlq, seq)
    if (stored === undefined) {
      return yield* new CliFailure({ message: `${jet.names.dlq} has no message ${seq} (already replayed or purged? see concord dlq list)`, exitCode: 1 })
    }
    const entry = fromStored(jet, stored)
    if (!matches(entry, tenant, provider)) {
      return yield* new CliFailure({ message: `DLQ message ${seq} is for ${entry.tenant}/${entry.provider}, not ${Option.getOrElse(tenant, () => "*")}/${Option.getOrElse(provider, () => "*")}`, exitCode: 2 })
    }
    return entry
  })

/** Every entry matching the filters, as of now. */
const entries = (jet: Jetstream, tenant: Option.Option<string>, provider: Option.Option<string>, options: { readonly limit?: number; readonly onTotal?: (n: number) => Effect.Effect<void> } = {}) =>
  Effect.gen(function*() {
    const out: Array<Entry> = []
    let total = 0
    yield* scan(jet, jet.names.dlq, {
      filter: dlqFilter(jet, tenant, provider),
      start: { _tag: "All" },
      ...(options.limit === undefined ? {} : { limit: options.limit }),
      onTotal: (n) => {
        total = n
        return options.onTotal?.(n) ?? Effect.void
      }
    }, (m) =>
      Effect.sync(() => {
        out.push(toEntry(jet, { seq: m.seq, subject: m.subject, data: m.data, at: new Date(m.info.timestampNanos / 1e6), header: (n) => m.headers?.get(n) || undefined }))
      }))
    return { entries: out, total }
  })

const ROW_HEADERS = ["SEQ", "DEAD AT", "TENANT", "PROVIDER", "ABOUT", "ERROR", "ATTEMPTS"]
const row = (e: Entry) => [
  String(e.seq),
  e.letter?.deadAt ?? e.storedAt,
  e.tenant,
  e.provider,
  about(e.letter),
  e.letter === null ? "-" : `${e.letter.error.tag}: ${e.letter.error.message.length > 80 ? `${e.letter.error.message.slice(0, 77)}...` : e.letter.error.message}`,
  e.letter === null ? "-" : String(e.letter.deliveries)
]

// ---------------------------------------------------------------------------

const list = Command.make(
  "list",
  {
    ...natsFlags,
    ...filterFlags,
    limit: Flag.Int("limit").pipe(Flag.withDescription("Show at most N (oldest first)"), Flag.withDefault(100), Flag.filter((n) => n >= 1, () => "--limit must be 1 or more")),
    json: jsonFlag
  },
  Effect.fn(function*(input) {
    const jet = yield* connectJetstream(input)
    const { entries: shown, total } = yield* entries(jet, input.tenant, input.provider, { limit: input.limit })
    if (input.json) return yield* printJson({ stream: jet.names.dlq, total, shown: shown.length, entries: shown })
    if (shown.length === 0) return yield* Console.log(`${jet.names.dlq} is empty${Option.isSome(input.tenant) || Option.isSome(input.provider) ? " for that filter" : ""}`)
    yield* Console.log(table(ROW_HEADERS, shown.map(row)))
    yield* Console.log(`${shown.length} of ${total} dead letter(s)${shown.length < total ? ` (raise --limit to see more)` : ""}`)
  }, Effect.scoped)
).pipe(
  Command.withDescription("List dead letters: inbound messages that exhausted their retries, with their last error"),
  Command.validate((input) => {
    const problem = checkFilters(input)
    return problem === undefined ? Effect.void : Effect.fail(new CliError.ValidationError({ message: problem }))
  })
)

const show = Command.make(
  "show",
  { ...natsFlags, seq: Argument.Int("seq").pipe(Argument.withDescription("The dead letter's CONCORD_DLQ sequence")), json: jsonFlag },
  Effect.fn(function*(input) {
    const jet = yield* connectJetstream(input)
    const e = yield* entryAt(jet, input.seq, Option.none(), Option.none())
    if (input.json) return yield* printJson(e)
    const l = e.letter
    const lines = [
      `dead letter ${e.seq} of ${jet.names.dlq} (${e.subject})`,
      `  dead at          ${l?.deadAt ?? e.storedAt}`,
      `  original         ${l?.originalSubject ?? "?"} seq ${l?.streamSequence ?? "?"}${e.originalSeq !== null && e.originalSeq !== l?.streamSequence ? ` (a copy of seq ${e.originalSeq})` : ""}`,
      `  attempts         ${l?.deliveries ?? "?"}`,
      `  error            ${l === null ? "?" : `${l.error.tag}: ${l.error.message}`}`,
      ...(e.replaces === null ? [] : [`  replaces         dead letter ${e.replaces} (its replay failed again)`]),
      `  message`,
      ...JSON.stringify(l?.message ?? null, null, 2).split("\n").map((x) => `    ${x}`)
    ]
    yield* Console.log(lines.join("\n"))
  }, Effect.scoped)
).pipe(Command.withDescription("Show one dead letter in full: the message, its original subject and sequence, the last error"))

// ---------------------------------------------------------------------------

interface ReplayResult {
  readonly seq: number
  readonly subject: string
  readonly about: string
  readonly copySeq: number
  readonly result: "reprocessed" | "failed_again" | "pending"
  /** For `failed_again`: the dead letter that took its place. */
  readonly newSeq?: number
  readonly error?: { readonly tag: string; readonly message: string }
}

const replayOne = (jet: Jetstream, run: string, e: Entry) =>
  Effect.gen(function*() {
    const l = e.letter
    if (l === null) return yield* new CliFailure({ message: `DLQ message ${e.seq} is not a dead letter Concord wrote; it cannot be replayed (purge it)`, exitCode: 1 })
    // A message that decoded travels as JSON; one that did not is kept (and re-sent) as its raw text.
    const data = encoder.encode(typeof l.message === "string" ? l.message : JSON.stringify(l.message))
    const kind = typeof l.message === "object" && l.message !== null && typeof (l.message as { kind?: unknown }).kind === "string"
      ? { "Concord-Kind": (l.message as { kind: string }).kind }
      : {}
    return yield* republish(jet, {
      subject: jet.names.subject(l.originalSubject),
      data,
      originalSeq: e.originalSeq ?? l.streamSequence,
      msgId: `dlq-replay-${e.seq}-${run}`,
      extraHeaders: { ...kind, [REPLAY_OF_HEADER]: String(e.seq) }
    })
  })

const replayCommand = Command.make(
  "replay",
  {
    ...natsFlags,
    ...filterFlags,
    seq: seqArg,
    all: allFlag,
    timeout: Flag.Int("timeout").pipe(
      Flag.withMetavar("SECONDS"),
      Flag.withDescription("How long to wait for the engine to settle the replayed messages"),
      Flag.withDefault(120),
      Flag.filter((n) => n >= 1, () => "--timeout must be 1 second or more")
    ),
    json: jsonFlag,
    progress: Progress.progressFlag
  },
  Effect.fn(function*(input) {
    const jet = yield* connectJetstream(input)
    const run = yield* runId
    const targets = Option.isSome(input.seq)
      ? [yield* entryAt(jet, input.seq.value, input.tenant, input.provider)]
      : (yield* entries(jet, input.tenant, input.provider)).entries
    if (targets.length === 0) {
      if (input.json) return yield* printJson({ replayed: 0, results: [] })
      return yield* Console.log("nothing to replay: no dead letters match")
    }
    const snapshotEnd = (yield* natsCall(`cannot read ${jet.names.dlq}`, () => jet.jsm.streams.info(jet.names.dlq))).state.last_seq
    const everyDeadLetter = jet.names.subject("concord.dlq.>")

    const bar = yield* Progress.make("replaying", { force: input.progress, total: targets.length })
    const copies = new Map<number, number>()
    for (const e of targets) copies.set(e.seq, yield* replayOne(jet, run, e))

    // Wait until the engine settles each copy: its dead letter disappears (success, or replaced by a new one).
    // Which are still there is one headers-only read of the DLQ from the oldest pending one, not a request
    // per dead letter: a replay after an outage can be tens of thousands.
    const pending = new Set(targets.map((e) => e.seq))
    const deadline = (yield* Clock.currentTimeMillis) + input.timeout * 1000
    while (pending.size > 0 && (yield* Clock.currentTimeMillis) < deadline) {
      yield* Effect.sleep("250 millis")
      let oldest = Number.POSITIVE_INFINITY
      for (const seq of pending) oldest = Math.min(oldest, seq)
      const present = new Set<number>()
      yield* scan(jet, jet.names.dlq, { filter: everyDeadLetter, start: { _tag: "Seq", seq: oldest }, endSeq: snapshotEnd, headersOnly: true }, (m) =>
        Effect.sync(() => {
          present.add(m.seq)
        }))
      for (const seq of [...pending]) {
        if (!present.has(seq)) {
          pending.delete(seq)
          yield* bar.advance()
        }
      }
    }
    yield* bar.finish

    // Dead letters written since the replay began that replace one of ours.
    const replacements = new Map<number, Entry>()
    if (pending.size < targets.length) {
      yield* scan(jet, jet.names.dlq, { filter: everyDeadLetter, start: { _tag: "Seq", seq: snapshotEnd + 1 } }, (m) =>
        Effect.sync(() => {
          const e = toEntry(jet, { seq: m.seq, subject: m.subject, data: m.data, at: new Date(m.info.timestampNanos / 1e6), header: (n) => m.headers?.get(n) || undefined })
          if (e.replaces !== null) replacements.set(e.replaces, e)
        }))
    }
    const results: Array<ReplayResult> = targets.map((e) => {
      const base = { seq: e.seq, subject: e.letter?.originalSubject ?? e.subject, about: about(e.letter), copySeq: copies.get(e.seq) ?? 0 }
      if (pending.has(e.seq)) return { ...base, result: "pending" }
      const replacement = replacements.get(e.seq)
      return replacement === undefined
        ? { ...base, result: "reprocessed" }
        : { ...base, result: "failed_again", newSeq: replacement.seq, ...(replacement.letter === null ? {} : { error: replacement.letter.error }) }
    })
    const count = (r: ReplayResult["result"]) => results.filter((x) => x.result === r).length
    if (input.json) {
      yield* printJson({ run, replayed: results.length, reprocessed: count("reprocessed"), failedAgain: count("failed_again"), pending: count("pending"), results })
    } else {
      yield* Console.log(table(
        ["SEQ", "ABOUT", "RESULT", "DETAIL"],
        results.map((r) => [
          String(r.seq),
          r.about,
          r.result === "reprocessed" ? "reprocessed" : r.result === "failed_again" ? "failed again" : "still pending",
          r.result === "reprocessed"
            ? "removed from the DLQ"
            : r.result === "failed_again"
            ? `now dead letter ${r.newSeq}${r.error === undefined ? "" : `: ${r.error.tag}: ${r.error.message}`}`
            : `copy ${r.copySeq} of ${jet.names.inbound} is still being retried; see concord dlq list later`
        ])
      ))
      yield* Console.log(`${count("reprocessed")} reprocessed, ${count("failed_again")} failed again, ${count("pending")} still pending`)
    }
    if (count("reprocessed") < results.length) {
      return yield* foundProblems(`${results.length - count("reprocessed")} dead letter(s) were not reprocessed`)
    }
  }, Effect.scoped)
).pipe(
  Command.withDescription("Move dead letters back to processing; each leaves the DLQ only when it succeeds (a failure leaves a new dead letter with the new error)"),
  Command.validate((input) => oneTarget(input))
)

const purge = Command.make(
  "purge",
  {
    ...natsFlags,
    ...filterFlags,
    seq: seqArg,
    all: allFlag,
    yes: Flag.Boolean("yes").pipe(Flag.withAlias("y"), Flag.withDescription("Do not ask for confirmation (required when not on a terminal)"), Flag.withDefault(false)),
    json: jsonFlag
  },
  Effect.fn(function*(input) {
    const jet = yield* connectJetstream(input)
    const one = Option.isSome(input.seq) ? yield* entryAt(jet, input.seq.value, input.tenant, input.provider) : undefined
    const filter = dlqFilter(jet, input.tenant, input.provider)
    const what = one !== undefined ? `dead letter ${one.seq} (${about(one.letter)})` : `every dead letter of ${filter}`
    if (!input.yes) {
      if (process.stdin.isTTY !== true) {
        return yield* new CliFailure({ message: `refusing to delete ${what} without --yes`, exitCode: 2 })
      }
      const ok = yield* Prompt.Confirm({ message: `Delete ${what}? This cannot be undone` }).pipe(Effect.orElseSucceed(() => false))
      if (!ok) return yield* new CliFailure({ message: "nothing deleted", exitCode: 1 })
    }
    const purged = one !== undefined
      ? (yield* natsCall(`cannot delete DLQ message ${one.seq}`, () => jet.jsm.streams.deleteMessage(jet.names.dlq, one.seq))) ? 1 : 0
      : (yield* natsCall(`cannot purge ${filter}`, () => jet.jsm.streams.purge(jet.names.dlq, { filter }))).purged
    if (input.json) return yield* printJson({ purged, ...(one === undefined ? { filter } : { seq: one.seq }) })
    yield* Console.log(`purged ${purged} dead letter(s)${one === undefined ? ` of ${filter}` : ` (${one.seq})`}`)
  }, Effect.scoped)
).pipe(
  Command.withDescription("Delete dead letters for good (asks first; --yes for scripts)"),
  Command.validate((input) => oneTarget(input))
)

export const dlq = Command.make("dlq").pipe(
  Command.withDescription("The dead-letter queue CONCORD_DLQ (directly on NATS)"),
  Command.withSubcommands([list, show, replayCommand, purge])
)
