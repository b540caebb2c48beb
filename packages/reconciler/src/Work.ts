/**
 * A unit of work for a connection's pipeline, and its outcome.
 */
import type { Canonical } from "@concord/core"
import type { Provider } from "@concord/providers"
import type { EntityType, ItemStatus } from "./Ports.ts"

export interface WorkItem {
  /** Identifies the inbound message(s) this item answers for. */
  readonly key: string
  readonly entity: EntityType
  /** The app's id (app changes, resyncs). */
  readonly recordId?: string
  /** The provider's id (provider changes). */
  readonly externalId?: string
  readonly source: "app" | "provider" | "resync" | "dependency"
  /** An app change: the record (absent when deleted) and its stream sequence. */
  readonly appChange?: { readonly record?: Canonical.CanonicalRecord; readonly deleted: boolean; readonly seq: number }
  /** Drift repair: push the app state or pull the provider's, whatever changed. */
  readonly prefer?: "app" | "provider"
  readonly operationId?: string
  readonly correlationId?: string
  /** For a provider notice: when the provider says the change happened. */
  readonly occurredAt?: string
  /** The provider's state, already read (a backfill page): used instead of reading it again. */
  readonly provider?: Provider.ProviderRecord
}

export interface ErrorInfo {
  readonly tag: string
  readonly message: string
}

export type Outcome =
  | { readonly _tag: "Done"; readonly status: ItemStatus; readonly recordId?: string; readonly externalId?: string }
  /** Transient: try again later (nak with backoff). */
  | { readonly _tag: "Retry"; readonly error: ErrorInfo; readonly delayMs?: number }
  /** Permanent: retrying will not help (dead-letter with the error). */
  | { readonly _tag: "Dead"; readonly error: ErrorInfo }

export const errorInfo = (e: unknown): ErrorInfo => {
  if (typeof e === "object" && e !== null) {
    const tag = (e as { _tag?: unknown })._tag
    const message = (e as { message?: unknown }).message
    return { tag: typeof tag === "string" ? tag : "Error", message: typeof message === "string" ? message : String(e) }
  }
  return { tag: "Error", message: String(e) }
}
