/**
 * How often a connection is polled, and for which entities. Pure: the poller
 * (`Poller.ts`) feeds it what it observed and schedules what it answers.
 *
 * - Entities without webhooks are polled through the provider's change feed
 *   at an interval that adapts to the observed change rate: a poll that finds
 *   changes halves the interval (towards the floor), a quiet poll grows it
 *   by half (towards the ceiling). A quiet connection ends at the ceiling, a
 *   busy one at the floor, and the interval never leaves [floor, ceiling].
 * - Entities with webhooks get a slow safety poll at a fixed interval,
 *   because webhooks get lost.
 * - Entities without a change feed are not polled (full-state
 *   reconciliation covers them).
 */
import type { Config } from "@concord/core"
import type { Provider } from "@concord/providers"

/** Used when a connection's config has no `polling` section (documented in `Config.Polling`). */
export const DEFAULT_FLOOR_MS = 30_000
export const DEFAULT_CEILING_MS = 15 * 60_000
export const DEFAULT_SAFETY_MS = 60 * 60_000

export interface PollSettings {
  readonly floorMs: number
  readonly ceilingMs: number
  readonly safetyMs: number
}

/** A connection's polling settings: its config, or the defaults (a lone floor or ceiling keeps the pair ordered). */
export const settingsOf = (polling: typeof Config.Polling.Type | undefined): PollSettings => {
  if (polling === undefined) return { floorMs: DEFAULT_FLOOR_MS, ceilingMs: DEFAULT_CEILING_MS, safetyMs: DEFAULT_SAFETY_MS }
  const floorMs = Math.max(1, polling.floor)
  return { floorMs, ceilingMs: Math.max(floorMs, polling.ceiling), safetyMs: Math.max(1, polling.safety ?? DEFAULT_SAFETY_MS) }
}

/** `ms` within the connection's floor and ceiling. */
export const clamp = (s: PollSettings, ms: number): number => Math.min(s.ceilingMs, Math.max(s.floorMs, Math.round(ms)))

/** The interval a connection starts with (busy until shown quiet: new connections often import). */
export const initialInterval = (s: PollSettings): number => s.floorMs

/**
 * The next interval after a poll that found `changes` changes, starting from
 * `current` (clamped first, so a changed config takes effect at once).
 */
export const nextInterval = (s: PollSettings, current: number, changes: number): number => {
  const from = clamp(s, current)
  return clamp(s, changes > 0 ? from / 2 : from * 1.5)
}

export interface PollPlan {
  /** Polled at the adaptive interval (no webhooks). */
  readonly adaptive: ReadonlyArray<Provider.EntityType>
  /** Polled at the safety interval (webhooks, which get lost). */
  readonly safety: ReadonlyArray<Provider.EntityType>
}

/**
 * What to poll for a connection: its enabled entities that flow from the
 * provider (`pull` or `both`) and that the provider has a change feed for.
 */
export const planOf = (provider: Provider.Provider, entities: Readonly<Record<string, { readonly direction: Config.Direction } | undefined>>): PollPlan => {
  const adaptive: Array<Provider.EntityType> = []
  const safety: Array<Provider.EntityType> = []
  for (const [entity, settings] of Object.entries(entities)) {
    if (settings === undefined || settings.direction === "push") continue
    const caps = provider.entities[entity as Provider.EntityType]
    if (caps === undefined || !caps.changeFeed) continue
    ;(caps.webhooks ? safety : adaptive).push(entity as Provider.EntityType)
  }
  return { adaptive: adaptive.sort(), safety: safety.sort() }
}
