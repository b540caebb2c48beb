/**
 * The CLI's direct line to NATS JetStream (for `concord replay` and
 * `concord dlq`): the `--nats` and `--prefix` flags, a scoped connection, and
 * a bounded read of a stream range through an ephemeral consumer.
 */
import { Clock, Config, Effect, Random } from "effect"
import { Flag } from "effect/cli"
import {
  AckPolicy,
  connect,
  type ConsumerConfig,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  headers as natsHeaders,
  type JsMsg,
  type MsgHdrs,
  type NatsConnection,
  nanos,
  type StoredMsg
} from "nats"
import { ORIGINAL_SEQ_HEADER } from "../nats/DeadLetters.ts"
import { type StreamNames, streamNames } from "../nats/Nats.ts"
import { CliFailure } from "./Output.ts"

export const DEFAULT_NATS = "nats://127.0.0.1:4222"

/** `--nats` and `--prefix`, for every command that talks to NATS. */
export const natsFlags = {
  nats: Flag.String("nats").pipe(
    Flag.withMetavar("URL"),
    Flag.withDescription(`NATS server with JetStream (default: $NATS_URL, else ${DEFAULT_NATS})`),
    Flag.withFallbackConfig(Config.String("NATS_URL")),
    Flag.withDefault(DEFAULT_NATS)
  ),
  prefix: Flag.String("prefix").pipe(
    Flag.withMetavar("PREFIX"),
    Flag.withDescription("The deployment's stream prefix (default: $CONCORD_NATS_PREFIX, else none)"),
    Flag.withFallbackConfig(Config.String("CONCORD_NATS_PREFIX")),
    Flag.withDefault("")
  )
}

export interface Jetstream {
  readonly url: string
  readonly connection: NatsConnection
  readonly js: JetStreamClient
  readonly jsm: JetStreamManager
  readonly names: StreamNames
}

const reason = (e: unknown): string => {
  const code = typeof e === "object" && e !== null ? (e as { code?: unknown }).code : undefined
  const message = e instanceof Error ? e.message : String(e)
  return typeof code === "string" && !message.includes(code) ? `${message} (${code})` : message
}

/** A NATS call; a failure becomes a one-line `CliFailure` (exit 1) that says what was being done. */
export const natsCall = <A>(what: string, f: () => Promise<A>): Effect.Effect<A, CliFailure> =>
  Effect.tryPromise({ try: f, catch: (e) => new CliFailure({ message: `${what}: ${reason(e)}`, exitCode: 1 }) })

/** Connects for the scope and checks that the deployment's streams exist. */
export const connectJetstream = (options: { readonly nats: string; readonly prefix: string }) =>
  Effect.gen(function*() {
    const connection = yield* Effect.acquireRelease(
      natsCall(`cannot reach NATS at ${options.nats}`, () => connect({ servers: options.nats, name: "concord-cli", timeout: 3000, maxReconnectAttempts: 0 })),
      (nc) => Effect.promise(() => nc.close().catch(() => undefined))
    )
    const jsm = yield* natsCall(`JetStream is not available on ${options.nats}`, () => connection.jetstreamManager())
    const names = streamNames(options.prefix)
    yield* Effect.tryPromise({
      try: () => jsm.streams.info(names.inbound),
      catch: () =>
        new CliFailure({
          message: `NATS at ${options.nats} has no stream ${names.inbound}: is Concord running against it${options.prefix === "" ? "" : ` with CONCORD_NATS_PREFIX=${options.prefix}`}? (set --prefix to the deployment's CONCORD_NATS_PREFIX)`,
          exitCode: 1
        })
    })
    return { url: options.nats, connection, js: connection.jetstream(), jsm, names } satisfies Jetstream
  })

/** A subject token that is safe in a subject filter (no dots, spaces or wildcards). */
export const isToken = (s: string): boolean => /^[A-Za-z0-9_-]+$/.test(s)

export type StartAt = { readonly _tag: "All" } | { readonly _tag: "Seq"; readonly seq: number } | { readonly _tag: "Time"; readonly at: Date }

/**
 * Reads `stream` from `start` through an ephemeral consumer (nothing is
 * acked or changed), calling `each` for every message whose subject matches
 * `filter`, in order, and stopping after `endSeq` (the stream's last
 * sequence when the read began, unless given lower), once `until` is
 * passed, or after `limit` messages. `onTotal` hears how many messages match at the start (for a
 * progress bar). Returns how many messages `each` saw.
 */
export const scan = (
  jet: Jetstream,
  stream: string,
  options: {
    readonly filter: string
    readonly start: StartAt
    readonly endSeq?: number
    readonly until?: Date
    /** Stop after this many messages. */
    readonly limit?: number
    /** Deliver headers only, not the payloads (for a scan that needs sequences, subjects or headers). */
    readonly headersOnly?: boolean
    readonly onTotal?: (total: number) => Effect.Effect<void>
  },
  each: (msg: JsMsg) => Effect.Effect<void, CliFailure>
): Effect.Effect<number, CliFailure> =>
  Effect.scoped(Effect.gen(function*() {
    const info = yield* natsCall(`cannot read stream ${stream}`, () => jet.jsm.streams.info(stream))
    const last = info.state.last_seq
    const endSeq = Math.min(options.endSeq ?? last, last)
    const config: Partial<ConsumerConfig> = {
      ack_policy: AckPolicy.None,
      filter_subject: options.filter,
      inactive_threshold: nanos(60_000),
      mem_storage: true,
      ...(options.headersOnly === true ? { headers_only: true } : {}),
      ...(options.start._tag === "All"
        ? { deliver_policy: DeliverPolicy.All }
        : options.start._tag === "Seq"
        ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: options.start.seq }
        : { deliver_policy: DeliverPolicy.StartTime, opt_start_time: options.start.at.toISOString() })
    }
    const consumerInfo = yield* Effect.acquireRelease(
      natsCall(`cannot read stream ${stream}`, () => jet.jsm.consumers.add(stream, config)),
      (c) => Effect.promise(() => jet.jsm.consumers.delete(stream, c.name).catch(() => false))
    )
    const total = consumerInfo.num_pending
    if (options.onTotal !== undefined) yield* options.onTotal(total)
    if (total === 0) return 0
    const consumer = yield* natsCall(`cannot read stream ${stream}`, () => jet.js.consumers.get(stream, consumerInfo.name))
    let seen = 0
    let delivered = 0
    for (;;) {
      // Asking for no more than are pending, the fetch returns as soon as they arrive.
      const batch = yield* natsCall(`reading stream ${stream} failed`, async () => {
        const out: Array<JsMsg> = []
        const iter = await consumer.fetch({ max_messages: Math.max(1, Math.min(256, total - delivered)), expires: 5000 })
        for await (const m of iter) out.push(m)
        return out
      })
      if (batch.length === 0) return seen
      delivered += batch.length
      for (const m of batch) {
        if (m.seq > endSeq || (options.limit !== undefined && seen >= options.limit)) return seen
        if (options.until !== undefined && m.info.timestampNanos / 1e6 > options.until.getTime()) return seen
        seen++
        yield* each(m)
      }
      const tail = batch[batch.length - 1]
      if (delivered >= total || tail === undefined || tail.info.pending === 0 || tail.seq >= endSeq) return seen
    }
  }))

/** One stored message by sequence, or undefined when there is none (deleted or never written). */
export const getMessage = (jet: Jetstream, stream: string, seq: number): Effect.Effect<StoredMsg | undefined, CliFailure> =>
  Effect.tryPromise({
    try: () => jet.jsm.streams.getMessage(stream, { seq }),
    catch: (e) => e
  }).pipe(
    Effect.catch((e) => {
      const text = reason(e)
      return /no message found|not found|10037/i.test(text)
        ? Effect.succeed(undefined)
        : Effect.fail(new CliFailure({ message: `cannot read message ${seq} of ${stream}: ${text}`, exitCode: 1 }))
    })
  )

/**
 * Publishes a copy of an inbound message to `subject` (already prefixed)
 * under a new `Nats-Msg-Id`, so JetStream's duplicate window does not drop
 * it. The copy keeps the original's headers and says which `CONCORD_IN`
 * sequence it copies (`Concord-Original-Seq`), so the pipeline orders it as
 * the original. Resolves with the copy's sequence.
 */
export const republish = (
  jet: Jetstream,
  copy: {
    readonly subject: string
    readonly data: Uint8Array
    readonly headers?: MsgHdrs | undefined
    readonly originalSeq: number
    readonly msgId: string
    readonly extraHeaders?: Readonly<Record<string, string>>
  }
): Effect.Effect<number, CliFailure> => {
  const h = natsHeaders()
  const replaced = new Set(["nats-msg-id", ORIGINAL_SEQ_HEADER.toLowerCase(), ...Object.keys(copy.extraHeaders ?? {}).map((k) => k.toLowerCase())])
  if (copy.headers !== undefined) {
    for (const k of copy.headers.keys()) {
      if (replaced.has(k.toLowerCase())) continue
      for (const v of copy.headers.values(k)) h.append(k, v)
    }
  }
  h.set(ORIGINAL_SEQ_HEADER, String(copy.originalSeq))
  for (const [k, v] of Object.entries(copy.extraHeaders ?? {})) h.set(k, v)
  return natsCall(`cannot publish to ${copy.subject}`, () => jet.js.publish(copy.subject, copy.data, { msgID: copy.msgId, headers: h })).pipe(
    Effect.map((ack) => ack.seq)
  )
}

/** The sequence a message copies: its `Concord-Original-Seq` when it is itself a copy, else its own. */
export const originalSeqOf = (seq: number, headers: MsgHdrs | undefined): number => {
  const n = Number(headers?.get(ORIGINAL_SEQ_HEADER) ?? "")
  return Number.isSafeInteger(n) && n > 0 && n < seq ? n : seq
}

/** A short id for one CLI run, part of the message ids it publishes. */
export const runId = Effect.gen(function*() {
  const now = yield* Clock.currentTimeMillis
  const r = yield* Random.nextIntBetween(0, 36 ** 5)
  return `${now.toString(36)}${r.toString(36).padStart(5, "0")}`
})
