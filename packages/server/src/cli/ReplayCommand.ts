/**
 * `concord replay`: re-delivers `CONCORD_IN` messages through the pipeline.
 *
 * It reads the stream directly (an ephemeral consumer from `--since` or
 * `--from-seq`, filtered by tenant and provider in the subject and by entity
 * in the body) and re-publishes each message to its original subject under a
 * new `Nats-Msg-Id` (`replay-<original seq>-<run id>`), so JetStream's
 * duplicate window does not drop it. Copies carry `Concord-Original-Seq`: the
 * pipeline orders an app change by its original position, and because it is
 * state-based (it re-reads base, app and provider), replaying twice changes
 * nothing the second time. Copies of the same original inside one window are
 * replayed once.
 */
import { Console, Effect, Option } from "effect"
import { CliError, Command, Flag } from "effect/cli"
import { connectJetstream, isToken, natsFlags, originalSeqOf, republish, runId, scan, type StartAt } from "./Jetstream.ts"
import { jsonFlag, printJson, table } from "./Output.ts"
import * as Progress from "./Progress.ts"
import { timeFlag } from "./Time.ts"

const decoder = new TextDecoder()

interface Replayed {
  readonly seq: number
  readonly originalSeq: number
  readonly subject: string
  readonly kind: string | null
  readonly entity: string | null
  readonly id: string | null
  readonly at: string
  /** The copy's `CONCORD_IN` sequence (absent on a dry run). */
  readonly replayedAs?: number
}

/** What a message body says about itself (undefined fields when it does not decode). */
const summary = (data: Uint8Array): { kind: string | null; entity: string | null; id: string | null } => {
  try {
    const m = JSON.parse(decoder.decode(data)) as Record<string, unknown>
    const str = (v: unknown) => (typeof v === "string" ? v : null)
    return { kind: str(m.kind), entity: str(m.entity), id: str(m.recordId) ?? str(m.externalId) }
  } catch {
    return { kind: null, entity: null, id: null }
  }
}

const positive = (name: string) =>
  Flag.Int(name).pipe(
    Flag.withMetavar("SEQ"),
    Flag.filter((n) => n >= 1, (n) => `--${name} must be a stream sequence (1 or more), got ${n}`)
  )

export const replay = Command.make(
  "replay",
  {
    ...natsFlags,
    tenant: Flag.String("tenant").pipe(Flag.withDescription("The tenant whose messages to replay")),
    provider: Flag.optional(Flag.String("provider").pipe(Flag.withDescription("Only this provider's messages (quickbooks, xero, …)"))),
    entity: Flag.optional(Flag.String("entity").pipe(Flag.withDescription("Only messages about this entity (invoice, contact, …)"))),
    since: Flag.optional(timeFlag("since", "Replay messages stored at or after TIME")),
    fromSeq: Flag.optional(positive("from-seq").pipe(Flag.withDescription("Replay from this CONCORD_IN sequence"))),
    until: Flag.optional(timeFlag("until", "Stop at messages stored after TIME")),
    toSeq: Flag.optional(positive("to-seq").pipe(Flag.withDescription("Stop after this CONCORD_IN sequence"))),
    dryRun: Flag.Boolean("dry-run").pipe(Flag.withDescription("List what would be replayed; publish nothing"), Flag.withDefault(false)),
    json: jsonFlag,
    progress: Progress.progressFlag
  },
  Effect.fn(function*(input) {
    const jet = yield* connectJetstream(input)
    const { names } = jet
    const provider = Option.getOrElse(input.provider, () => "*")
    const filter = names.subject(`concord.in.${input.tenant}.${provider}.*`)
    const start: StartAt = Option.isSome(input.fromSeq)
      ? { _tag: "Seq", seq: input.fromSeq.value }
      : { _tag: "Time", at: Option.getOrThrow(input.since) }
    const run = yield* runId
    const bar = yield* Progress.make(input.dryRun ? "scanning" : "replaying", { force: input.progress })
    const replayed: Array<Replayed> = []
    const originals = new Set<number>()
    let skippedCopies = 0
    let skippedEntity = 0
    yield* scan(jet, names.inbound, {
      filter,
      start,
      ...(Option.isSome(input.toSeq) ? { endSeq: input.toSeq.value } : {}),
      ...(Option.isSome(input.until) ? { until: input.until.value } : {}),
      onTotal: bar.total
    }, (m) =>
      Effect.gen(function*() {
        yield* bar.advance()
        const s = summary(m.data)
        if (Option.isSome(input.entity) && s.entity !== input.entity.value) {
          skippedEntity++
          return
        }
        const originalSeq = originalSeqOf(m.seq, m.headers)
        if (originals.has(originalSeq)) {
          skippedCopies++
          return
        }
        originals.add(originalSeq)
        const entry: Replayed = { seq: m.seq, originalSeq, subject: names.unprefix(m.subject), ...s, at: new Date(m.info.timestampNanos / 1e6).toISOString() }
        if (input.dryRun) {
          replayed.push(entry)
          return
        }
        const copy = yield* republish(jet, { subject: m.subject, data: m.data, headers: m.headers, originalSeq, msgId: `replay-${originalSeq}-${run}` })
        replayed.push({ ...entry, replayedAs: copy })
      }))
    yield* bar.finish

    const bySubject = new Map<string, number>()
    for (const r of replayed) bySubject.set(r.subject, (bySubject.get(r.subject) ?? 0) + 1)
    const result = {
      run,
      dryRun: input.dryRun,
      stream: names.inbound,
      filter,
      replayed: replayed.length,
      skipped: { otherEntity: skippedEntity, copiesOfTheSameMessage: skippedCopies },
      subjects: Object.fromEntries(bySubject),
      messages: replayed
    }
    if (input.json) return yield* printJson(result)
    const verb = input.dryRun ? "would replay" : "replayed"
    if (replayed.length === 0) return yield* Console.log(`nothing to replay: no message of ${filter} in that range${skippedEntity > 0 ? ` about ${Option.getOrElse(input.entity, () => "")}` : ""}`)
    const first = replayed[0]?.seq
    const last = replayed[replayed.length - 1]?.seq
    yield* Console.log(`${verb} ${replayed.length} message(s) of ${names.inbound} (seq ${first}..${last})${input.dryRun ? "" : `, run ${run}`}`)
    yield* Console.log(table(["SUBJECT", "MESSAGES"], [...bySubject].map(([subject, n]) => [subject, String(n)])))
    if (skippedCopies > 0) yield* Console.log(`(${skippedCopies} earlier cop${skippedCopies === 1 ? "y" : "ies"} of the same messages skipped)`)
  }, Effect.scoped)
).pipe(
  Command.withDescription(
    "Re-deliver CONCORD_IN messages through the pipeline (idempotent: the pipeline re-reads current state, so replaying twice changes nothing the second time)"
  ),
  Command.withExamples([
    { command: "concord replay --tenant acme --since 2h --dry-run", description: "What arrived for acme in the last two hours" },
    { command: "concord replay --tenant acme --provider xero --entity invoice --from-seq 1200 --to-seq 1300", description: "Re-deliver a range of Xero invoice changes" }
  ]),
  Command.validate((input) => {
    const problem = Option.isSome(input.since) && Option.isSome(input.fromSeq)
      ? "--since and --from-seq cannot be used together: give one start point"
      : Option.isNone(input.since) && Option.isNone(input.fromSeq)
      ? "a start point is required: --since TIME or --from-seq N"
      : Option.isSome(input.until) && Option.isSome(input.toSeq)
      ? "--until and --to-seq cannot be used together: give one end point"
      : !isToken(input.tenant)
      ? `--tenant ${JSON.stringify(input.tenant)} is not a tenant id (letters, digits, '_' or '-')`
      : Option.isSome(input.provider) && !isToken(input.provider.value)
      ? `--provider ${JSON.stringify(input.provider.value)} is not a provider id`
      : Option.isSome(input.fromSeq) && Option.isSome(input.toSeq) && input.toSeq.value < input.fromSeq.value
      ? `--to-seq ${input.toSeq.value} is before --from-seq ${input.fromSeq.value}`
      : Option.isSome(input.since) && Option.isSome(input.until) && input.until.value < input.since.value
      ? `--until ${input.until.value.toISOString()} is before --since ${input.since.value.toISOString()}`
      : undefined
    return problem === undefined ? Effect.void : Effect.fail(new CliError.ValidationError({ message: problem }))
  })
)
