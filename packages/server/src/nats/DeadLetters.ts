/**
 * What `CONCORD_DLQ` holds and the headers of re-published messages: shared by
 * the consumer and the operators' CLI (which loads this alone, not the
 * pipeline, so it starts quickly).
 */
import { Schema } from "effect"

export const DeadLetter = Schema.Struct({
  originalSubject: Schema.String,
  streamSequence: Schema.Number,
  deliveries: Schema.Number,
  error: Schema.Struct({ tag: Schema.String, message: Schema.String }),
  /** The original message as JSON when it decoded, else its raw text. */
  message: Schema.Unknown,
  deadAt: Schema.String
}).pipe(Schema.annotate({ identifier: "DeadLetter", description: "An inbound message that exhausted its retries or could never succeed" }))
export type DeadLetter = typeof DeadLetter.Type

// Re-published messages (`concord replay`, `concord dlq replay`) carry these headers.
/**
 * The `CONCORD_IN` sequence of the first copy of a re-published message. App
 * changes are ordered by it, so a replayed old change keeps its place and never
 * overrides a newer one (the pipeline then uses the newer stored state).
 */
export const ORIGINAL_SEQ_HEADER = "Concord-Original-Seq"
/** The `CONCORD_DLQ` sequence of the dead letter a re-published message re-processes. */
export const REPLAY_OF_HEADER = "Concord-Replay-Of"
/** On a dead letter whose replay failed again: the `CONCORD_DLQ` sequence of the dead letter it replaces. */
export const REPLACES_HEADER = "Concord-Replaces"
