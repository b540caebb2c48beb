/**
 * Logs, metrics and traces.
 *
 * - Logs are JSON lines with the fiber's annotations (tenant, connection,
 *   correlation id). Tokens only exist as `Redacted` values, which log as
 *   `<redacted>`.
 * - Metrics are Effect metrics, exposed for Prometheus at `/metrics`.
 * - Traces: every pipeline step is a span (`sync.fetch-both`, …); with
 *   `OTEL_EXPORTER_OTLP_ENDPOINT` set they are exported over OTLP/HTTP.
 */
import { FetchHttpClient } from "effect/http"
import { Context, Effect, Layer, Logger, Metric } from "effect"
import { Otlp } from "effect/observability"
import { OtlpSerialization } from "effect/observability"

const latencyBuckets = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

const eventsIn = Metric.counter("concord_events_in_total", { description: "Inbound changes accepted onto CONCORD_IN", incremental: true })
const synced = Metric.counter("concord_records_synced_total", { description: "Records processed by the pipeline, by outcome", incremental: true })
const conflicts = Metric.counter("concord_conflicts_opened_total", { description: "Conflicts opened for review", incremental: true })
const conflictsOpen = Metric.gauge("concord_conflicts_open", { description: "Conflicts waiting for review" })
const conflictAge = Metric.gauge("concord_conflicts_oldest_age_seconds", { description: "Age of the oldest open conflict" })
const dlq = Metric.counter("concord_dlq_total", { description: "Inbound messages sent to the DLQ", incremental: true })
const dlqDepth = Metric.gauge("concord_dlq_depth", { description: "Messages in CONCORD_DLQ" })
const providerCalls = Metric.counter("concord_provider_calls_total", { description: "Provider API calls, by status", incremental: true })
const providerThrottled = Metric.counter("concord_provider_429_total", { description: "Provider answers 429 (rate limited)", incremental: true })
const refreshes = Metric.counter("concord_token_refreshes_total", { description: "OAuth token refreshes", incremental: true })
const pipelineLatency = Metric.histogram("concord_pipeline_batch_seconds", { description: "Time to sync one batch of a connection", boundaries: latencyBuckets })
const ingestLatency = Metric.histogram("concord_ingest_seconds", { description: "Time from request to JetStream acknowledgement", boundaries: latencyBuckets })
const published = Metric.counter("concord_events_published_total", { description: "Events published from the outbox", incremental: true })
const polls = Metric.counter("concord_polls_total", { description: "Change-feed polls, by kind (adaptive, safety) and outcome", incremental: true })
const pollChanges = Metric.counter("concord_poll_changes_total", { description: "Changes found by polling, by kind", incremental: true })
const pollInterval = Metric.histogram("concord_poll_interval_seconds", { description: "Adaptive poll interval chosen after each poll", boundaries: [1, 5, 15, 30, 60, 120, 300, 600, 900, 1800, 3600] })
const polledConnections = Metric.gauge("concord_polled_connections", { description: "Connections on this node's poll schedule" })
const pollLag = Metric.gauge("concord_poll_lag_seconds", { description: "How overdue the most overdue scheduled poll is (the poller keeps up when ~0)" })

export interface MetricsShape {
  readonly eventIn: (source: string, n?: number) => Effect.Effect<void>
  readonly synced: (provider: string, status: string, n?: number) => Effect.Effect<void>
  readonly conflictOpened: (provider: string, n?: number) => Effect.Effect<void>
  readonly conflictsWaiting: (provider: string, open: number, oldestAgeSeconds: number) => Effect.Effect<void>
  readonly deadLettered: (provider: string) => Effect.Effect<void>
  readonly dlqDepth: (n: number) => Effect.Effect<void>
  readonly providerCall: (provider: string, status: number) => Effect.Effect<void>
  readonly tokenRefreshed: (provider: string) => Effect.Effect<void>
  readonly batchSeconds: (provider: string, seconds: number) => Effect.Effect<void>
  readonly ingestSeconds: (source: string, seconds: number) => Effect.Effect<void>
  readonly eventPublished: (n: number) => Effect.Effect<void>
  /** One poll of a connection; `intervalSeconds` is the adaptive interval chosen after it. */
  readonly polled: (provider: string, kind: "adaptive" | "safety", outcome: string, changes: number, intervalSeconds: number | undefined) => Effect.Effect<void>
  readonly pollSchedule: (connections: number, lagSeconds: number) => Effect.Effect<void>
}

export class Metrics extends Context.Service<Metrics, MetricsShape>()("concord/server/Metrics") {
  static readonly layer = Layer.succeed(Metrics, Metrics.of({
    eventIn: (source, n = 1) => Metric.update(Metric.withAttributes(eventsIn, { source }), n),
    synced: (provider, status, n = 1) => Metric.update(Metric.withAttributes(synced, { provider, status }), n),
    conflictOpened: (provider, n = 1) => Metric.update(Metric.withAttributes(conflicts, { provider }), n),
    conflictsWaiting: (provider, open, age) =>
      Effect.andThen(Metric.update(Metric.withAttributes(conflictsOpen, { provider }), open), Metric.update(Metric.withAttributes(conflictAge, { provider }), age)),
    deadLettered: (provider) => Metric.update(Metric.withAttributes(dlq, { provider }), 1),
    dlqDepth: (n) => Metric.update(dlqDepth, n),
    providerCall: (provider, status) =>
      Effect.andThen(
        Metric.update(Metric.withAttributes(providerCalls, { provider, status: String(status) }), 1),
        status === 429 ? Metric.update(Metric.withAttributes(providerThrottled, { provider }), 1) : Effect.void
      ),
    tokenRefreshed: (provider) => Metric.update(Metric.withAttributes(refreshes, { provider }), 1),
    batchSeconds: (provider, s) => Metric.update(Metric.withAttributes(pipelineLatency, { provider }), s),
    ingestSeconds: (source, s) => Metric.update(Metric.withAttributes(ingestLatency, { source }), s),
    eventPublished: (n) => Metric.update(published, n),
    polled: (provider, kind, outcome, changes, intervalSeconds) =>
      Effect.all([
        Metric.update(Metric.withAttributes(polls, { provider, kind, outcome }), 1),
        changes > 0 ? Metric.update(Metric.withAttributes(pollChanges, { provider, kind }), changes) : Effect.void,
        intervalSeconds === undefined ? Effect.void : Metric.update(Metric.withAttributes(pollInterval, { provider }), intervalSeconds)
      ], { discard: true }),
    pollSchedule: (connections, lagSeconds) => Effect.andThen(Metric.update(polledConnections, connections), Metric.update(pollLag, lagSeconds))
  }))
}

/** JSON log lines on stdout. */
export const logging = Logger.layer([Logger.consoleJson])

/** OTLP export of traces, metrics and logs when `OTEL_EXPORTER_OTLP_ENDPOINT` is set. */
export const tracing = Layer.unwrap(
  Effect.sync(() => {
    const endpoint = process.env.OTEL_EXPORTER_OTLP_ENDPOINT
    const otlp = Otlp.layer({ baseUrl: endpoint ?? "", resource: { serviceName: process.env.OTEL_SERVICE_NAME ?? "concord" } }).pipe(
      Layer.provide(FetchHttpClient.layer),
      Layer.provide(OtlpSerialization.layerJson)
    )
    return endpoint === undefined || endpoint === "" ? Layer.empty : otlp
  })
)
