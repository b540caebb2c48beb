/**
 * The poller: one scheduler for every connection of this deployment (not a
 * loop per connection). Connections sit in a min-heap by the time their next
 * poll is due; one fiber sleeps until the earliest, polls what is due (a few
 * at a time, at background priority) and puts each back at its new due time.
 *
 * A poll pages the provider's change feed (QuickBooks `/cdc`, Xero
 * `If-Modified-Since`) from the connection's cursor in `sync_cursors` and
 * publishes each change to `CONCORD_IN` exactly as a verified webhook would
 * (a `provider_change` with the provider's change time), then commits the
 * cursor — only after JetStream acknowledged every change of the page, so a
 * crash polls the page again rather than losing it. The message id is the
 * change's content hash (`Ingest.messageId`), so a change that a webhook and a
 * poll both report is dropped by JetStream's duplicate window, and after it
 * the pipeline finds the provider state it already holds (a no-op). A page
 * that reports a gap (the cursor is older than the feed keeps: QuickBooks'
 * `/cdc` reaches back 30 days) starts a reconciliation of those entities
 * (`DriftRuns.catchUp`), which finds what the feed can no longer tell.
 *
 * The schedule lives in `poll_state` (interval, due times, last poll, last
 * change count): a restarted node keeps each connection's cadence, and a poll
 * is claimed in that row first, so two nodes never poll one connection at
 * the same time. Only `active` connections are scheduled; a paused or
 * re-authorising one leaves the heap until its row changes again (the
 * connection list is re-read incrementally every `CONCORD_POLL_DISCOVERY_MS`,
 * default 5 s).
 */
import { Config } from "@concord/core"
import type { Provider } from "@concord/providers"
import type { ProviderChange } from "@concord/reconciler/Inbound"
import { type ConnectionInfo, ProviderSessions, SyncStore } from "@concord/reconciler/Ports"
import { Cause, Clock, Context, Effect, Layer, Option, Random, Schema } from "effect"
import { SqlClient } from "effect/sql"
import { DriftRuns } from "./Drift.ts"
import { Ingest } from "./nats/Ingest.ts"
import { Metrics } from "./Observability.ts"
import * as Cadence from "./PollCadence.ts"
import { Providers } from "./Providers.ts"
import { chunks, nonEmpty } from "./storage/Rows.ts"

/** What the status API shows of a connection's polling. */
export interface PollStatus {
  /** Entities polled at the adaptive interval (no webhooks). */
  readonly entities: ReadonlyArray<string>
  /** Entities that only get the safety poll (they have webhooks). */
  readonly safetyEntities: ReadonlyArray<string>
  readonly intervalMs: number
  readonly floorMs: number
  readonly ceilingMs: number
  readonly safetyMs: number
  readonly lastPollAt: string | null
  /** Changes the last adaptive poll found. */
  readonly lastChanges: number | null
  readonly nextPollAt: string | null
  readonly nextSafetyAt: string | null
  readonly polls: number
  readonly lastError: string | null
}

export class Poller extends Context.Service<Poller, {
  /** The connection's polling state; none when it has nothing to poll or was never scheduled. */
  readonly status: (connectionId: string) => Effect.Effect<Option.Option<PollStatus>>
}>()("concord/server/Poller") {}

/** Cursor names in `sync_cursors`. */
export const ADAPTIVE_CURSOR = "poll"
export const SAFETY_CURSOR = "poll:safety"

/** A claimed poll not finished within this is taken over (its node died). */
const LEASE_MS = 2 * 60_000
/** Most change-feed pages one poll reads; more waiting means the next poll comes at the floor. */
const MAX_PAGES = 50

const decodeConnection = Schema.decodeUnknownOption(Config.ConnectionConfig)

/** The provider's change time as an instant (QuickBooks writes offsets like -07:00 or -0700). */
export const instant = (s: string): string => {
  const ms = Date.parse(s.replace(/([+-]\d{2})(\d{2})$/, "$1:$2"))
  return Number.isNaN(ms) ? s : new Date(ms).toISOString()
}

/** A change from the feed as the inbound message a webhook notice would have produced. */
export const toMessage = (connection: { readonly id: string; readonly tenantId: string }, change: Provider.Change): ProviderChange =>
  change._tag === "Upserted"
    ? {
      kind: "provider_change",
      tenant: connection.tenantId,
      connectionId: connection.id,
      entity: change.record.entity,
      externalId: change.record.externalId,
      operation: "update",
      occurredAt: instant(change.record.updatedAt)
    }
    : {
      kind: "provider_change",
      tenant: connection.tenantId,
      connectionId: connection.id,
      entity: change.entity,
      externalId: change.externalId,
      operation: "delete",
      occurredAt: instant(change.deletedAt)
    }

// ---------------------------------------------------------------------------
// The schedule

interface Slot {
  readonly due: number
  readonly id: string
  readonly gen: number
}

/** A binary min-heap of due times; stale slots (an older `gen`) are skipped when popped. */
class Heap {
  private readonly items: Array<Slot> = []
  get size(): number {
    return this.items.length
  }
  peek(): Slot | undefined {
    return this.items[0]
  }
  push(slot: Slot): void {
    const a = this.items
    a.push(slot)
    let i = a.length - 1
    while (i > 0) {
      const p = (i - 1) >> 1
      if ((a[p] as Slot).due <= slot.due) break
      a[i] = a[p] as Slot
      i = p
    }
    a[i] = slot
  }
  pop(): Slot | undefined {
    const a = this.items
    const top = a[0]
    const last = a.pop()
    if (top === undefined || last === undefined || a.length === 0) return top
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      if (l >= a.length) break
      const r = l + 1
      const c = r < a.length && (a[r] as Slot).due < (a[l] as Slot).due ? r : l
      if ((a[c] as Slot).due >= last.due) break
      a[i] = a[c] as Slot
      i = c
    }
    a[i] = last
    return top
  }
}

interface Entry {
  readonly id: string
  provider: string
  /** Bumped whenever the entry is rescheduled or dropped: older heap slots are stale. */
  gen: number
  due: number
  /** A poll of it is running (it is not in the heap meanwhile). */
  busy: boolean
  /** What discovery last saw (status, config), to skip unchanged rows. */
  signature: string
  tenantId: string
  /** The connection's config as discovery last read it (re-read when the tenant changes). */
  config: Config.ConnectionConfig
  plan: Cadence.PollPlan
  settings: Cadence.PollSettings
}

interface StateRow {
  readonly connection_id: string
  readonly interval_ms: number
  readonly next_poll_at: Date | null
  readonly next_safety_at: Date | null
  readonly last_poll_at: Date | null
  readonly last_changes: number | null
  readonly last_error: string | null
  readonly polls: string | number
  readonly started_at: Date
  readonly claimed_until: Date | null
}

interface ClaimRow extends StateRow {
  readonly status: string
  readonly provider: string
  readonly tenant_id: string
  readonly account_id: string | null
  readonly base_url: string | null
  readonly adaptive_cursor: string | null
  readonly safety_cursor: string | null
}

const ms = (d: Date | null | undefined): number | undefined => (d === null || d === undefined ? undefined : d.getTime())
const isoOrNull = (d: Date | null): string | null => (d === null ? null : d.toISOString())

/** The earliest time any of the plan's polls is due. */
const dueOf = (plan: Cadence.PollPlan, row: { readonly next_poll_at: Date | null; readonly next_safety_at: Date | null }): number =>
  Math.min(
    plan.adaptive.length > 0 ? (ms(row.next_poll_at) ?? 0) : Number.POSITIVE_INFINITY,
    plan.safety.length > 0 ? (ms(row.next_safety_at) ?? 0) : Number.POSITIVE_INFINITY
  )

export const layer = Layer.effect(
  Poller,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const store = yield* SyncStore
    const sessions = yield* ProviderSessions
    const providers = yield* Providers
    const ingest = yield* Ingest
    const metrics = yield* Metrics
    const drift = yield* DriftRuns

    const discoveryMs = Number(process.env.CONCORD_POLL_DISCOVERY_MS ?? 5_000)
    const concurrency = Math.max(1, Number(process.env.CONCORD_POLL_CONCURRENCY ?? 8))
    const scope = yield* Effect.scope
    const entries = new Map<string, Entry>()
    const heap = new Heap()
    let inFlight = 0
    /**
     * The longest the loop sleeps between claims (default 1 s; never over a quarter of the smallest polling
     * floor in use). Polls falling due meanwhile are claimed, run and recorded together: at 10,000 quiet
     * connections (`npm run bench -- idle`) a 250 ms tick cost an idle node 4.1% of a core, a 1 s tick
     * 2.7–3.6%; a poll is at most a tick late.
     */
    const maxTickMs = Math.max(1, Number(process.env.CONCORD_POLL_TICK_MS ?? 1_000))
    let tickMs = maxTickMs
    const retick = () => {
      let floor = Number.POSITIVE_INFINITY
      for (const e of entries.values()) floor = Math.min(floor, e.settings.floorMs)
      tickMs = Math.max(1, Math.min(maxTickMs, Math.floor(floor / 4)))
    }

    const schedule = (entry: Entry, due: number) => {
      entry.gen++
      entry.due = due
      if (!entry.busy) heap.push({ due, id: entry.id, gen: entry.gen })
    }
    const drop = (id: string) => {
      const e = entries.get(id)
      if (e === undefined) return
      e.gen++
      entries.delete(id)
    }

    const planFor = (providerId: string, config: Config.ConnectionConfig | undefined): Cadence.PollPlan | undefined => {
      const provider = providers.get(providerId)
      if (provider === undefined || config === undefined) return undefined
      const plan = Cadence.planOf(provider, config.entities)
      return plan.adaptive.length + plan.safety.length === 0 ? undefined : plan
    }

    // --- discovery: which connections to poll --------------------------------

    let seenUntil = new Date(0)
    /** When each connection (or its tenant) last changed, as discovery last read it. */
    const seen = new Map<string, number>()
    const discover = Effect.gen(function*() {
      const started = (yield* sql<{ now: Date }>`SELECT now() AS now`)[0]?.now ?? new Date()
      // A minute of overlap: a transaction that committed late with an older updated_at is not missed.
      // Only ids and change times come back; configs are read for what really changed.
      const since = new Date(seenUntil.getTime() - 60_000)
      const changed = (yield* sql<{ id: string; changed: number }>`
        SELECT c.id, (extract(epoch FROM greatest(c.updated_at, t.updated_at)) * 1000)::float8 AS changed
        FROM connections c JOIN tenants t ON t.id = c.tenant_id
        WHERE c.updated_at > ${since} OR t.updated_at > ${since}`).filter((r) => seen.get(r.id) !== r.changed)
      seenUntil = started
      const rows: Array<{ id: string; tenant_id: string; provider: string; status: string; config: unknown }> = []
      for (const part of chunks(changed, 1)) {
        rows.push(...yield* sql<{ id: string; tenant_id: string; provider: string; status: string; config: unknown }>`
          SELECT c.id, c.tenant_id, c.provider, c.status,
            (SELECT x FROM jsonb_array_elements(t.config->'connections') x WHERE x->>'id' = c.id LIMIT 1) AS config
          FROM connections c JOIN tenants t ON t.id = c.tenant_id
          WHERE c.id IN ${sql.in(part.map((r) => r.id))}`)
      }
      for (const r of changed) seen.set(r.id, r.changed)
      const fresh: Array<{ id: string; plan: Cadence.PollPlan; settings: Cadence.PollSettings }> = []
      for (const row of rows) {
        const signature = `${row.status}|${row.provider}|${JSON.stringify(row.config)}`
        const known = entries.get(row.id)
        if (known !== undefined && known.signature === signature) continue
        const config = Option.getOrUndefined(decodeConnection(row.config))
        const plan = planFor(row.provider, config)
        if (row.status !== "active" || plan === undefined || config === undefined) {
          drop(row.id)
          continue
        }
        const settings = Cadence.settingsOf(config.polling)
        if (known !== undefined) {
          Object.assign(known, { signature, provider: row.provider, tenantId: row.tenant_id, config, plan, settings })
        } else {
          entries.set(row.id, { id: row.id, provider: row.provider, gen: 0, due: Number.POSITIVE_INFINITY, busy: false, signature, tenantId: row.tenant_id, config, plan, settings })
        }
        fresh.push({ id: row.id, plan, settings })
      }
      if (fresh.length === 0) return
      // New connections get a schedule row: the first poll within one floor (spread, not all at once),
      // and changes are read from now on (history is the backfill's job).
      const now = yield* Clock.currentTimeMillis
      const inserts: Array<{ connection_id: string; interval_ms: number; next_poll_at: Date; next_safety_at: Date; started_at: Date }> = []
      for (const f of fresh) {
        const first = now + Math.floor((yield* Random.next) * f.settings.floorMs)
        inserts.push({
          connection_id: f.id,
          interval_ms: Cadence.initialInterval(f.settings),
          next_poll_at: new Date(first),
          next_safety_at: new Date(now + f.settings.safetyMs),
          started_at: new Date(now)
        })
      }
      for (const part of chunks(inserts, 5)) {
        yield* sql`INSERT INTO poll_state ${sql.insert(nonEmpty(part.map((r): Record<string, unknown> => r)))} ON CONFLICT (connection_id) DO NOTHING`
      }
      const states = new Map<string, StateRow>()
      for (let i = 0; i < fresh.length; i += 5000) {
        const ids = fresh.slice(i, i + 5000).map((f) => f.id)
        for (const r of yield* sql<StateRow>`SELECT * FROM poll_state WHERE connection_id IN ${sql.in(ids)}`) states.set(r.connection_id, r)
      }
      for (const f of fresh) {
        const entry = entries.get(f.id)
        const state = states.get(f.id)
        if (entry === undefined || state === undefined) continue
        // A shorter ceiling or safety interval in new config applies from the last poll.
        const last = ms(state.last_poll_at) ?? ms(state.started_at) ?? 0
        schedule(entry, Math.min(
          f.plan.adaptive.length > 0 ? Math.min(ms(state.next_poll_at) ?? 0, last + f.settings.ceilingMs) : Number.POSITIVE_INFINITY,
          f.plan.safety.length > 0 ? Math.min(ms(state.next_safety_at) ?? 0, last + f.settings.safetyMs) : Number.POSITIVE_INFINITY
        ))
      }
    })

    // --- one poll --------------------------------------------------------------

    /**
     * Pages the change feed from `cursorName`, publishing every change before committing each page's cursor.
     * A cursor reached past pages without changes (a quiet connection's every poll) is not written here but
     * handed back as `deferred`, to be written with the poll's schedule row: nothing was published that
     * depends on it, so losing it in a crash only means the next poll reads the same quiet stretch again.
     */
    const drain = (info: ConnectionInfo, client: Provider.ProviderClient, entities: ReadonlyArray<Provider.EntityType>, cursorName: string, from: string | null, since: string) =>
      Effect.gen(function*() {
        let cursor = from ?? undefined
        let written = cursor
        let total = 0
        let more = true
        for (let page = 0; page < MAX_PAGES && more; page++) {
          const p = yield* client.changes(entities, cursor, cursor === undefined ? since : undefined)
          // The feed skipped a stretch (the cursor is older than it keeps): a full-state run finds what was in it.
          if (p.gap !== undefined) yield* drift.catchUp(info.id, entities, p.gap)
          yield* Effect.forEach(p.changes, (c) => ingest.publish(info.provider, "poll", toMessage(info, c)), { concurrency: 16, discard: true })
          total += p.changes.length
          if (p.changes.length > 0 && p.cursor !== written) {
            yield* store.setCursor(info.id, cursorName, p.cursor)
            written = p.cursor
          }
          cursor = p.cursor
          more = p.hasMore
        }
        return { changes: total, more, deferred: cursor !== undefined && cursor !== written ? cursor : null }
      })

    const describe = (cause: Cause.Cause<unknown>): string => {
      const e = cause.reasons.find((r) => r._tag === "Fail")
      if (e !== undefined && e._tag === "Fail") {
        const err = e.error
        return err instanceof Error ? err.message : typeof err === "object" && err !== null && "message" in err ? String((err as { message: unknown }).message) : String(err)
      }
      return Cause.pretty(cause).split("\n")[0] ?? "poll failed"
    }

    /**
     * Claims due polls in one statement, reading each connection's status and cursors with it; a
     * connection claimed by another node (or gone) is missing from the answer.
     */
    const claim = (ids: ReadonlyArray<string>, now: number) =>
      sql<ClaimRow>`
        UPDATE poll_state p SET claimed_until = ${new Date(now + LEASE_MS)}
        FROM connections c
        WHERE p.connection_id IN ${sql.in(ids)} AND c.id = p.connection_id AND (p.claimed_until IS NULL OR p.claimed_until < ${new Date(now)})
        RETURNING p.*, c.status, c.provider, c.tenant_id, c.account_id, c.base_url,
          (SELECT cursor FROM sync_cursors s WHERE s.connection_id = p.connection_id AND s.name = ${ADAPTIVE_CURSOR}) AS adaptive_cursor,
          (SELECT cursor FROM sync_cursors s WHERE s.connection_id = p.connection_id AND s.name = ${SAFETY_CURSOR}) AS safety_cursor`

    /** Finished polls, written (and their claims released) together a few times a second. */
    interface Finished {
      readonly connection_id: string
      readonly interval_ms: number
      readonly next_poll_at: string | null
      readonly next_safety_at: string | null
      readonly last_poll_at: string
      readonly last_changes: number | null
      readonly last_error: string | null
      /** Change-feed cursors reached past quiet pages (see `drain`), written with the row. */
      readonly adaptive_cursor: string | null
      readonly safety_cursor: string | null
    }
    const finished: Array<Finished> = []
    const flush = Effect.suspend(() => {
      if (finished.length === 0) return Effect.void
      const rows = finished.splice(0)
      return sql`
        WITH v AS (
          SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(connection_id text, interval_ms integer, next_poll_at timestamptz,
            next_safety_at timestamptz, last_poll_at timestamptz, last_changes integer, last_error text, adaptive_cursor text, safety_cursor text)
        ), cursors AS (
          INSERT INTO sync_cursors (connection_id, name, cursor, updated_at)
          SELECT v.connection_id, x.name, x.cursor, now()
          FROM v JOIN connections c ON c.id = v.connection_id
          CROSS JOIN LATERAL (VALUES (${ADAPTIVE_CURSOR}, v.adaptive_cursor), (${SAFETY_CURSOR}, v.safety_cursor)) AS x(name, cursor)
          WHERE x.cursor IS NOT NULL
          ON CONFLICT (connection_id, name) DO UPDATE SET cursor = EXCLUDED.cursor, updated_at = now()
        )
        UPDATE poll_state p SET interval_ms = v.interval_ms, next_poll_at = v.next_poll_at, next_safety_at = v.next_safety_at,
          last_poll_at = v.last_poll_at, last_changes = v.last_changes, last_error = v.last_error,
          polls = p.polls + 1, claimed_until = NULL, updated_at = now()
        FROM v
        WHERE p.connection_id = v.connection_id`.pipe(
        Effect.asVoid,
        // Not written: the claims lapse after the lease and the polls run again from the committed cursors.
        Effect.catchCause((c) => Effect.logWarning("poller: could not record finished polls", c))
      )
    })

    const pollOnce = (entry: Entry, row: ClaimRow | undefined) =>
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        if (row === undefined) return { _tag: "Elsewhere" as const, due: now + discoveryMs }
        const release = (due: number) => sql`UPDATE poll_state SET claimed_until = NULL WHERE connection_id = ${entry.id}`.pipe(Effect.as(due))
        if (row.status !== "active" || row.provider !== entry.provider) {
          yield* release(0)
          return { _tag: "Drop" as const }
        }
        // The session needs only this connection's part of the tenant's config (discovery keeps it current).
        const info: ConnectionInfo = {
          id: entry.id,
          tenantId: row.tenant_id,
          provider: row.provider,
          accountId: row.account_id ?? undefined,
          baseUrl: row.base_url ?? undefined,
          status: "active",
          config: entry.config,
          tenant: { version: 1, tenant: row.tenant_id, connections: [entry.config] }
        }
        const { plan, settings } = entry
        // Polls due within a tick are taken now (the loop claims a tick's worth together), and a safety poll
        // due in the first half of the coming adaptive interval rides along with this adaptive poll: one
        // provider session per wake-up, and the safety poll never later than its interval.
        const adaptiveDue = plan.adaptive.length > 0 && (ms(row.next_poll_at) ?? 0) <= now + tickMs
        const safetyDue = plan.safety.length > 0 &&
          (ms(row.next_safety_at) ?? 0) <= now + (adaptiveDue ? Cadence.clamp(settings, row.interval_ms) / 2 : tickMs)
        // Another node polled it since this node looked: follow the row.
        if (!adaptiveDue && !safetyDue) return { _tag: "Later" as const, due: yield* release(dueOf(plan, row)) }

        const since = row.started_at.toISOString()
        const polled = yield* Effect.scoped(Effect.gen(function*() {
          const { client } = yield* sessions.open(info)
          return yield* client.withPriority("background", Effect.gen(function*() {
            const adaptive = adaptiveDue ? yield* drain(info, client, plan.adaptive, ADAPTIVE_CURSOR, row.adaptive_cursor, since) : undefined
            const safety = safetyDue ? yield* drain(info, client, plan.safety, SAFETY_CURSOR, row.safety_cursor, since) : undefined
            return { adaptive, safety }
          }))
        })).pipe(Effect.exit)

        const finishedAt = yield* Clock.currentTimeMillis
        const ok = polled._tag === "Success"
        const error = ok ? null : describe(polled.cause)
        const adaptive = ok ? polled.value.adaptive : undefined
        const safety = ok ? polled.value.safety : undefined
        // A failed poll keeps its interval and tries again after it.
        const interval = adaptive === undefined
          ? Cadence.clamp(settings, row.interval_ms)
          : adaptive.more ? settings.floorMs : Cadence.nextInterval(settings, row.interval_ms, adaptive.changes)
        const nextPoll = adaptiveDue ? new Date(finishedAt + interval) : row.next_poll_at
        const nextSafety = safetyDue ? new Date(finishedAt + settings.safetyMs) : row.next_safety_at
        const lastChanges = adaptive !== undefined ? adaptive.changes : row.last_changes
        const iso = (d: Date | null) => (d === null ? null : d.toISOString())
        finished.push({
          connection_id: entry.id,
          interval_ms: interval,
          next_poll_at: iso(nextPoll),
          next_safety_at: iso(nextSafety),
          last_poll_at: new Date(finishedAt).toISOString(),
          last_changes: lastChanges,
          last_error: error,
          adaptive_cursor: adaptive?.deferred ?? null,
          safety_cursor: safety?.deferred ?? null
        })
        const outcome = ok ? "ok" : "error"
        if (adaptiveDue) yield* metrics.polled(info.provider, "adaptive", outcome, adaptive?.changes ?? 0, interval / 1000)
        if (safetyDue) yield* metrics.polled(info.provider, "safety", outcome, safety?.changes ?? 0, undefined)
        if (!ok) yield* Effect.logWarning(`poll of connection ${entry.id} failed: ${error}`)
        return { _tag: "Later" as const, due: dueOf(plan, { next_poll_at: nextPoll, next_safety_at: nextSafety }) }
      })

    const runPoll = (entry: Entry, row: ClaimRow | undefined) =>
      pollOnce(entry, row).pipe(
        Effect.catchCause((cause) =>
          Effect.gen(function*() {
            yield* Effect.logWarning(`poll of connection ${entry.id} failed`, cause)
            yield* sql`UPDATE poll_state SET claimed_until = NULL, last_error = ${describe(cause)} WHERE connection_id = ${entry.id}`.pipe(Effect.ignore)
            return { _tag: "Later" as const, due: (yield* Clock.currentTimeMillis) + discoveryMs }
          })
        ),
        Effect.tap((result) =>
          Effect.sync(() => {
            entry.busy = false
            inFlight--
            if (entries.get(entry.id) !== entry) return
            if (result._tag === "Drop") {
              drop(entry.id)
              seen.delete(entry.id)
            }
            else schedule(entry, result.due)
          })
        ),
        Effect.annotateLogs({ connection: entry.id })
      )

    // --- the loop --------------------------------------------------------------

    const loop = Effect.gen(function*() {
      let nextDiscovery = 0
      for (;;) {
        let now = yield* Clock.currentTimeMillis
        if (now >= nextDiscovery) {
          yield* discover.pipe(Effect.catchCause((c) => Effect.logWarning("poller: could not read the connections", c)))
          retick()
          now = yield* Clock.currentTimeMillis
          nextDiscovery = now + discoveryMs
          yield* metrics.pollSchedule(entries.size, Math.max(0, (now - (heap.peek()?.due ?? now)) / 1000))
        }
        const batch: Array<Entry> = []
        while (inFlight + batch.length < concurrency) {
          const top = heap.peek()
          if (top === undefined || top.due > now) break
          heap.pop()
          const entry = entries.get(top.id)
          if (entry === undefined || entry.gen !== top.gen || entry.busy) continue
          entry.busy = true
          batch.push(entry)
        }
        if (batch.length > 0) {
          // Finished polls are recorded first: a claim must read the cursors they reached, and the record
          // (which releases its claim) must not land on top of the new claim.
          yield* flush
          inFlight += batch.length
          const claimed = yield* claim(batch.map((e) => e.id), now).pipe(
            Effect.catchCause((c) => Effect.logWarning("poller: could not claim polls", c).pipe(Effect.as([] as ReadonlyArray<ClaimRow>)))
          )
          const byId = new Map(claimed.map((r) => [r.connection_id, r]))
          // The batch's sessions that are not open read their credentials in one query, not one each.
          yield* sessions.prepare(claimed.filter((r) => r.status === "active").map((r) => r.connection_id))
          for (const entry of batch) yield* Effect.forkIn(runPoll(entry, byId.get(entry.id)), scope)
        }
        yield* flush
        // Busy: come back soon. Idle: sleep until the next due poll, but wake at most every tick, so
        // polls falling due close together are claimed and recorded together.
        const top = heap.peek()
        const pending = inFlight >= concurrency || (top !== undefined && top.due <= now)
        const wake = Math.min(nextDiscovery, top?.due ?? Number.POSITIVE_INFINITY)
        yield* Effect.sleep(pending ? 20 : Math.max(tickMs, Math.min(wake - now, 1000)))
      }
    })

    const status = (connectionId: string) =>
      Effect.gen(function*() {
        const info = Option.getOrUndefined(yield* store.connection(connectionId).pipe(Effect.orElseSucceed(() => Option.none())))
        if (info === undefined) return Option.none<PollStatus>()
        const plan = planFor(info.provider, info.config)
        const row = (yield* sql<StateRow>`SELECT * FROM poll_state WHERE connection_id = ${connectionId}`)[0]
        if (plan === undefined || row === undefined) return Option.none<PollStatus>()
        const settings = Cadence.settingsOf(info.config.polling)
        return Option.some<PollStatus>({
          entities: plan.adaptive,
          safetyEntities: plan.safety,
          intervalMs: row.interval_ms,
          floorMs: settings.floorMs,
          ceilingMs: settings.ceilingMs,
          safetyMs: settings.safetyMs,
          lastPollAt: isoOrNull(row.last_poll_at),
          lastChanges: row.last_changes,
          nextPollAt: plan.adaptive.length > 0 ? isoOrNull(row.next_poll_at) : null,
          nextSafetyAt: plan.safety.length > 0 ? isoOrNull(row.next_safety_at) : null,
          polls: Number(row.polls),
          lastError: row.last_error
        })
      }).pipe(Effect.orDie)

    yield* Effect.forkScoped(loop.pipe(Effect.catchCause((c) => Effect.logError("poller stopped", c))))
    yield* Effect.addFinalizer(() => flush)
    return Poller.of({ status })
  })
)
