/**
 * The inbound consumer: a durable pull consumer on `CONCORD_IN`, shared by
 * every node. Each fetched message is decoded (a message that does not decode
 * goes to the DLQ with the reason), grouped by connection and handed to that
 * connection's actor. The JetStream message is acked when the actor has
 * committed, nak'ed with backoff on a retryable failure, and dead-lettered
 * to `CONCORD_DLQ` with its last error after `maxDeliver` attempts or at
 * once when retrying cannot help.
 */
import { Canonical } from "@concord/core"
import { Connection, type ProcessItem } from "@concord/reconciler/ConnectionActor"
import { subjects } from "@concord/reconciler/Events"
import { InboundMessage } from "@concord/reconciler/Inbound"
import type { Outcome } from "@concord/reconciler/Work"
import { Effect, Exit, Fiber, Queue, Schema, Semaphore } from "effect"
import { SqlClient } from "effect/sql"
import { AckPolicy, DeliverPolicy, headers as natsHeaders, type JsMsg, nanos } from "nats"
import { Metrics } from "../Observability.ts"
import { Settings } from "../Settings.ts"
import { DeadLetter, ORIGINAL_SEQ_HEADER, REPLACES_HEADER, REPLAY_OF_HEADER } from "./DeadLetters.ts"
import { Nats, type StreamNames } from "./Nats.ts"

const decodeInbound = Schema.decodeUnknownExit(Schema.fromJsonString(InboundMessage))
const decoder = new TextDecoder()
const encoder = new TextEncoder()

/** Backoff before the next attempt of a failed message: 1 s, 2 s, 4 s … capped at 60 s. */
export const backoffMs = (deliveries: number): number => Math.min(60_000, 1000 * 2 ** Math.max(0, deliveries - 1))

/** A positive integer header, if present. */
const seqHeader = (msg: JsMsg, name: string): number | undefined => {
  const n = Number(msg.headers?.get(name) ?? "")
  return Number.isSafeInteger(n) && n > 0 ? n : undefined
}

/** Tenant and provider from `concord.in.<tenant>.<provider>.<source>`. */
const route = (subject: string): { tenant: string; provider: string } => {
  const parts = subject.split(".")
  const i = parts.indexOf("in")
  return { tenant: parts[i + 1] ?? "unknown", provider: parts[i + 2] ?? "unknown" }
}

/** The durable pull consumer on `CONCORD_IN` that every node shares (also written to deploy/nats/). */
export const consumerConfig = (names: StreamNames, ackWaitMs: number) => ({
  durable_name: names.consumer,
  ack_policy: AckPolicy.Explicit,
  deliver_policy: DeliverPolicy.All,
  // Short, so a crashed node's messages come back quickly; long batches heartbeat (working()).
  ack_wait: nanos(ackWaitMs),
  max_ack_pending: 20_000,
  // Never given up by JetStream: the engine dead-letters after CONCORD_MAX_DELIVER attempts itself.
  max_deliver: -1
})

export const run = Effect.gen(function*() {
  const nats = yield* Nats
  const settings = yield* Settings
  const metrics = yield* Metrics
  const sql = yield* SqlClient.SqlClient
  const client = yield* Connection.client
  const names = nats.names

  const config = consumerConfig(names, settings.ackWaitMs)
  yield* Effect.tryPromise(async () => {
    const exists = await nats.jsm.consumers.info(names.inbound, names.consumer).then(() => true, () => false)
    if (exists) await nats.jsm.consumers.update(names.inbound, names.consumer, config)
    else await nats.jsm.consumers.add(names.inbound, config)
  })
  const consumer = yield* Effect.tryPromise(() => nats.js.consumers.get(names.inbound, names.consumer))
  const inFlight = yield* Semaphore.make(8192)

  /**
   * A replayed dead letter (`Concord-Replay-Of`) leaves the DLQ once its copy
   * is settled: on success (after the ack), or when the copy is dead-lettered
   * again (after the new dead letter is stored, so it is never lost and never
   * listed twice). Deleting an entry that is already gone is fine.
   */
  const forgetReplayedDeadLetter = (msg: JsMsg) => {
    const dlqSeq = seqHeader(msg, REPLAY_OF_HEADER)
    return dlqSeq === undefined
      ? Effect.void
      : Effect.tryPromise(() => nats.jsm.streams.deleteMessage(names.dlq, dlqSeq)).pipe(Effect.ignore)
  }

  const deadLetter = (msg: JsMsg, error: { tag: string; message: string }, message: unknown) =>
    Effect.gen(function*() {
      const { tenant, provider } = route(names.unprefix(msg.subject))
      const letter: DeadLetter = {
        originalSubject: names.unprefix(msg.subject),
        streamSequence: msg.seq,
        deliveries: msg.info.redeliveryCount,
        error,
        message,
        deadAt: new Date().toISOString()
      }
      const h = natsHeaders()
      h.set("Concord-Error", error.tag)
      // A replayed copy that failed again: its dead letter says which one it replaces, and keeps the original order.
      const original = seqHeader(msg, ORIGINAL_SEQ_HEADER)
      if (original !== undefined) h.set(ORIGINAL_SEQ_HEADER, String(original))
      const replaces = seqHeader(msg, REPLAY_OF_HEADER)
      if (replaces !== undefined) h.set(REPLACES_HEADER, String(replaces))
      yield* Effect.tryPromise(() =>
        nats.js.publish(names.subject(subjects.dlq(tenant, provider)), encoder.encode(JSON.stringify(letter)), { msgID: `dlq-${names.inbound}-${msg.seq}`, headers: h })
      )
      yield* forgetReplayedDeadLetter(msg)
      const op = typeof message === "object" && message !== null ? (message as { operationId?: unknown; connectionId?: unknown; entity?: unknown; recordId?: unknown }) : undefined
      if (typeof op?.operationId === "string" && typeof op.connectionId === "string" && typeof op.entity === "string" && typeof op.recordId === "string") {
        yield* sql`
          INSERT INTO operation_items (operation_id, connection_id, entity, record_id, status, detail)
          VALUES (${op.operationId}, ${op.connectionId}, ${op.entity}, ${op.recordId}, 'failed', ${JSON.stringify({ ...error, deadLettered: true })})
          ON CONFLICT (operation_id, connection_id, entity, record_id) DO UPDATE SET status = 'failed', detail = EXCLUDED.detail, updated_at = now()`.pipe(Effect.ignore)
      }
      yield* metrics.deadLettered(provider)
      // A bare +TERM: NATS 2.9 does not understand "+TERM <reason>" and would leave the message pending.
      msg.term()
    })

  const settle = (msg: JsMsg, outcome: Outcome, message: unknown, provider: string) =>
    Effect.gen(function*() {
      switch (outcome._tag) {
        case "Done":
          msg.ack()
          yield* metrics.synced(provider, outcome.status)
          yield* forgetReplayedDeadLetter(msg)
          return
        case "Dead":
          yield* metrics.synced(provider, "dead")
          return yield* deadLetter(msg, outcome.error, message)
        case "Retry":
          // A provider's rate limit says "later", not "this message is bad": it never dead-letters a message
          // (a 429 storm longer than maxDeliver backoffs used to dead-letter app changes).
          // Nor does a provider record waiting for our own unanswered create to be committed (bounded by its age).
          if (msg.info.redeliveryCount >= settings.maxDeliver && outcome.error.tag !== "RateLimited" && outcome.error.tag !== "PendingCreate") {
            yield* metrics.synced(provider, "dead")
            return yield* deadLetter(msg, { ...outcome.error, message: `${outcome.error.message} (gave up after ${msg.info.redeliveryCount} attempts)` }, message)
          }
          yield* metrics.synced(provider, "retry")
          msg.nak(outcome.delayMs ?? backoffMs(msg.info.redeliveryCount))
      }
    })

  const dispatch = (connectionId: string, batch: ReadonlyArray<{ msg: JsMsg; message: InboundMessage }>) =>
    Effect.gen(function*() {
      const items: Array<ProcessItem> = batch.map(({ msg, message }) => {
        // A replayed copy is ordered as its original (only ever earlier than itself).
        const original = seqHeader(msg, ORIGINAL_SEQ_HEADER)
        return { key: String(msg.seq), seq: original !== undefined && original < msg.seq ? original : msg.seq, message }
      })
      const provider = route(names.unprefix(batch[0]?.msg.subject ?? "")).provider
      const start = Date.now()
      // Tell JetStream the batch is still being worked on, so a slow provider is not mistaken for a dead node.
      const heartbeat = yield* Effect.forkChild(
        Effect.sync(() => {
          for (const { msg } of batch) msg.working()
        }).pipe(Effect.delay(Math.max(1000, Math.floor(settings.ackWaitMs / 3))), Effect.forever)
      )
      const answer = yield* Effect.exit(client(connectionId).Process({ items }))
      yield* Fiber.interrupt(heartbeat)
      yield* metrics.batchSeconds(provider, (Date.now() - start) / 1000)
      const outcomes = new Map<string, Outcome>()
      if (Exit.isSuccess(answer)) for (const a of answer.value) outcomes.set(a.key, a.outcome as Outcome)
      for (const { msg, message } of batch) {
        const outcome = outcomes.get(String(msg.seq)) ??
          ({ _tag: "Retry", error: { tag: "ActorUnavailable", message: `the actor of connection ${connectionId} did not answer` } } satisfies Outcome)
        yield* settle(msg, outcome, message, provider).pipe(Effect.catchCause((c) => Effect.logWarning("could not settle an inbound message", c)))
      }
    }).pipe(inFlight.withPermits(batch.length), Effect.annotateLogs({ connection: connectionId }))

  /** Connection → its tenant (a connection never changes tenant, so what is found is kept). */
  const owners = new Map<string, string>()
  const ownerOf = (connectionId: string): Effect.Effect<string | undefined> => {
    const known = owners.get(connectionId)
    if (known !== undefined) return Effect.succeed(known)
    return sql<{ tenant_id: string }>`SELECT tenant_id FROM connections WHERE id = ${connectionId}`.pipe(
      Effect.map((rows) => {
        const tenant = rows[0]?.tenant_id
        if (tenant !== undefined) owners.set(connectionId, tenant)
        return tenant
      }),
      // Storage trouble: the actor reads the connection again and retries if it must.
      Effect.catchCause(() => Effect.succeed(undefined))
    )
  }

  /**
   * What the schema cannot check: the message names the tenant of its subject, its
   * connection belongs to that tenant (anyone allowed to publish on one tenant's
   * subjects reaches only that tenant), and an app change's record is a valid
   * record of its entity (given its defaults, as the HTTP API does). Returns the
   * message to process, or why it is refused.
   */
  const admit = (subject: string, m: InboundMessage) =>
    Effect.gen(function*() {
      const { tenant } = route(subject)
      if (tenant !== m.tenant) return { refused: `the message names tenant ${m.tenant} but was published on ${subject}, a subject of tenant ${tenant}` } as const
      const owner = yield* ownerOf(m.connectionId)
      if (owner !== undefined && owner !== m.tenant) return { refused: `connection ${m.connectionId} does not belong to tenant ${m.tenant}` } as const
      if (m.kind !== "app_change" || m.deleted === true) return { message: m } as const
      const record = m.record
      if (typeof record !== "object" || record === null || Array.isArray(record)) {
        return { refused: `record: an app change needs the record as a JSON object (or deleted: true)` } as const
      }
      const input = { entity: m.entity, id: m.recordId, schemaVersion: 1, ...(record as Record<string, unknown>) }
      if (input.entity !== m.entity) return { refused: `record.entity: the record is a ${String(input.entity)}, but the message says ${m.entity}` } as const
      if (input.id !== m.recordId) return { refused: `record.id: the record's id is ${JSON.stringify(input.id)}, but the message's recordId is ${m.recordId}` } as const
      const valid = Canonical.validate(m.entity, input)
      if (!valid.ok) return { refused: `record: ${valid.issues.map((i) => `${i.path === "" ? "(record)" : i.path}: ${i.message}`).join("; ")}` } as const
      return { message: { ...m, record: Canonical.toJson(valid.value as Canonical.CanonicalRecord) } } as const
    })

  // Messages stream in continuously (JetStream bounds what is in flight with max_ack_pending);
  // each round takes whatever is waiting, at least one and at most 1,000: a quiet system answers
  // at once, a busy one batches.
  const inbox = yield* Queue.unbounded<JsMsg>()
  yield* Effect.forkChild(
    Effect.tryPromise({
      try: async (signal) => {
        const stream = await consumer.consume({ max_messages: 1000 })
        signal.addEventListener("abort", () => void stream.stop())
        for await (const m of stream) Queue.offerUnsafe(inbox, m)
      },
      catch: (e) => e
    }).pipe(
      Effect.catch((e) => Effect.logWarning(`consuming ${names.inbound} stopped; resuming`, e)),
      Effect.andThen(Effect.sleep("1 second")),
      Effect.forever
    )
  )
  // One batch in flight per connection; what arrives meanwhile is that connection's next batch.
  // Busy connections get big batches (the pipeline's cost is per batch), quiet ones answer at once.
  const lanes = new Map<string, Array<{ msg: JsMsg; message: InboundMessage }>>()
  const drain = (connectionId: string): Effect.Effect<void> =>
    Effect.suspend(() => {
      const waiting = lanes.get(connectionId) ?? []
      if (waiting.length === 0) {
        lanes.delete(connectionId)
        return Effect.void
      }
      const batch = waiting.splice(0, 2000)
      return dispatch(connectionId, batch).pipe(Effect.andThen(drain(connectionId)))
    })
  for (;;) {
    const messages = yield* Queue.takeBetween(inbox, 1, 1000)
    for (const msg of messages) {
      const raw = decoder.decode(msg.data)
      const decoded = decodeInbound(raw)
      if (Exit.isFailure(decoded)) {
        const reason = decoded.cause.reasons[0]
        const text = reason?._tag === "Fail" ? reason.error.message : "unreadable message"
        yield* deadLetter(msg, { tag: "InvalidMessage", message: `the message does not fit the inbound schema: ${text}` }, raw).pipe(Effect.ignore)
        continue
      }
      const admitted = yield* admit(names.unprefix(msg.subject), decoded.value)
      if ("refused" in admitted) {
        yield* deadLetter(msg, { tag: "InvalidMessage", message: admitted.refused }, decoded.value).pipe(Effect.ignore)
        continue
      }
      const message = admitted.message
      const connectionId = message.connectionId
      const lane = lanes.get(connectionId)
      if (lane !== undefined) {
        lane.push({ msg, message })
        continue
      }
      lanes.set(connectionId, [{ msg, message }])
      yield* Effect.forkChild(drain(connectionId))
    }
  }
}).pipe(Effect.withSpan("concord.consumer"))
