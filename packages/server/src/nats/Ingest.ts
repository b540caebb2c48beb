/**
 * Ingest: every inbound change goes onto `CONCORD_IN` with `Nats-Msg-Id` =
 * its content hash, and is acknowledged to the sender only after JetStream
 * has stored it. A duplicate (a retried request, a redelivered webhook) is
 * dropped by JetStream's duplicate window — and would be harmless anyway,
 * because the pipeline is state-based.
 */
import { Hash } from "@concord/core"
import { subjects } from "@concord/reconciler/Events"
import type { InboundMessage } from "@concord/reconciler/Inbound"
import { Clock, Context, Effect, Layer, Schema } from "effect"
import { headers as natsHeaders } from "nats"
import { Metrics } from "../Observability.ts"
import { Nats } from "./Nats.ts"

export class IngestFailed extends Schema.TaggedError<IngestFailed>()("IngestFailed", {
  subject: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `could not store the change on ${this.subject}: ${this.reason}; retry the request`
  }
}

/**
 * The hash that dedupes a message. A provider notice is what changed, not when or by which request. An app
 * change is its operation: the app may send the same content again as a new request (a retry whose answer it
 * lost, or A → B → A), and each accepted operation must be processed and audited; deduping it by content
 * left such an operation "accepted" for ever and could drop the A that undoes B (found by the chaos harness).
 */
export const messageId = (m: InboundMessage): string => {
  switch (m.kind) {
    case "app_change":
      return Hash.contentHash(["app", m.connectionId, m.entity, m.recordId, m.operationId ?? null, m.deleted === true, m.record ?? null])
    case "provider_change":
      // Not the operation: a webhook's "create" and a poll's "update" of the same change are one message.
      return Hash.contentHash(["provider", m.connectionId, m.entity, m.externalId, m.occurredAt])
    case "resync":
      return Hash.contentHash(["resync", m.connectionId, m.entity, m.recordId ?? null, m.externalId ?? null, m.reason, m.prefer ?? null, m.operationId ?? null])
  }
}

export interface Published {
  readonly seq: number
  readonly duplicate: boolean
}

export interface IngestShape {
  /** Publishes for `provider`'s connection of `tenant`; resolves once JetStream stored it. */
  readonly publish: (provider: string, source: "app" | "webhook" | "poll" | "system", message: InboundMessage) => Effect.Effect<Published, IngestFailed>
}

export class Ingest extends Context.Service<Ingest, IngestShape>()("concord/server/Ingest") {}

const encoder = new TextEncoder()

export const layer = Layer.effect(
  Ingest,
  Effect.gen(function*() {
    const nats = yield* Nats
    const metrics = yield* Metrics
    return Ingest.of({
      publish: (provider, source, message) => {
        const subject = nats.names.subject(subjects.inbound(message.tenant, provider, source))
        return Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          const h = natsHeaders()
          h.set("Concord-Kind", message.kind)
          const ack = yield* Effect.tryPromise({
            try: () => nats.js.publish(subject, encoder.encode(JSON.stringify(message)), { msgID: messageId(message), headers: h }),
            catch: (e) => new IngestFailed({ subject, reason: e instanceof Error ? e.message : String(e) })
          })
          yield* metrics.eventIn(source)
          yield* metrics.ingestSeconds(source, ((yield* Clock.currentTimeMillis) - start) / 1000)
          return { seq: ack.seq, duplicate: ack.duplicate }
        })
      }
    })
  })
)
