/**
 * Webhook ingress. The signature is verified (constant time) before anything
 * else: a bad one gets 401 and nothing is published. Verified notices are
 * published to `CONCORD_IN` (one per connection of that provider account)
 * and only then answered 200. A payload already received is answered 200
 * without publishing again; notices older than the replay window are refused.
 */
import { Hash } from "@concord/core"
import { Clock, Context, Effect, Layer } from "effect"
import { SqlClient } from "effect/sql"
import { NotFound, Unauthorized, Unavailable } from "./api/Api.ts"
import { Ingest } from "./nats/Ingest.ts"
import { Providers } from "./Providers.ts"

/** Notices older than this are refused as replays. */
export const REPLAY_WINDOW_MS = 24 * 3_600_000

export type WebhookResult =
  | { readonly _tag: "Handshake" }
  | { readonly _tag: "Accepted"; readonly published: number; readonly duplicate: boolean }

export class Webhooks extends Context.Service<Webhooks, {
  readonly receive: (provider: string, headers: Readonly<Record<string, string | undefined>>, body: Uint8Array) => Effect.Effect<WebhookResult, Unauthorized | NotFound | Unavailable>
}>()("concord/server/Webhooks") {}

export const layer = Layer.effect(
  Webhooks,
  Effect.gen(function*() {
    const providers = yield* Providers
    const ingest = yield* Ingest
    const sql = yield* SqlClient.SqlClient

    const receive = (providerId: string, headers: Readonly<Record<string, string | undefined>>, body: Uint8Array) =>
      Effect.gen(function*() {
        const provider = providers.get(providerId)
        if (provider?.webhooks === undefined) return yield* new NotFound({ message: `no webhooks for provider '${providerId}'` })
        const secret = providers.app(providerId)?.webhookSecret
        if (secret === undefined) {
          return yield* new Unavailable({ message: `no webhook secret configured for ${providerId} (CONCORD_${providerId.toUpperCase()}_WEBHOOK_SECRET)` })
        }
        const verdict = provider.webhooks.receive(headers, body, secret)
        if (verdict._tag === "Invalid") return yield* new Unauthorized({ message: verdict.reason })
        if (verdict._tag === "Handshake") return { _tag: "Handshake" } satisfies WebhookResult
        const now = yield* Clock.currentTimeMillis
        const fresh = verdict.notices.filter((n) => {
          const at = Date.parse(n.occurredAt)
          return Number.isNaN(at) || now - at <= REPLAY_WINDOW_MS
        })
        if (verdict.notices.length > 0 && fresh.length === 0) {
          return yield* new Unauthorized({ message: "every event in this delivery is older than the replay window (24 hours)" })
        }
        const hash = Hash.sha256(`${providerId}:${Buffer.from(body).toString("base64")}`)
        const seen = yield* sql<{ hash: string }>`SELECT hash FROM webhook_receipts WHERE hash = ${hash}`.pipe(Effect.orDie)
        if (seen.length > 0) return { _tag: "Accepted", published: 0, duplicate: true } satisfies WebhookResult
        const accounts = [...new Set(fresh.map((n) => n.accountId))]
        const connections = accounts.length === 0 ? [] : yield* sql<{ id: string; tenant_id: string; account_id: string }>`
          SELECT id, tenant_id, account_id FROM connections WHERE provider = ${providerId} AND account_id IN ${sql.in(accounts)}`.pipe(Effect.orDie)
        let published = 0
        for (const notice of fresh) {
          for (const c of connections.filter((x) => x.account_id === notice.accountId)) {
            yield* ingest.publish(providerId, "webhook", {
              kind: "provider_change",
              tenant: c.tenant_id,
              connectionId: c.id,
              entity: notice.entity,
              externalId: notice.externalId,
              operation: notice.operation,
              occurredAt: notice.occurredAt
            }).pipe(Effect.mapError((e) => new Unavailable({ message: e.message })))
            published++
          }
        }
        yield* sql`INSERT INTO webhook_receipts (hash, provider) VALUES (${hash}, ${providerId}) ON CONFLICT DO NOTHING`.pipe(Effect.orDie)
        yield* sql`DELETE FROM webhook_receipts WHERE received_at < now() - interval '2 days'`.pipe(Effect.ignore)
        return { _tag: "Accepted", published, duplicate: false } satisfies WebhookResult
      })

    return Webhooks.of({ receive })
  })
)
