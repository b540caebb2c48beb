/**
 * The Xero adapter: the Accounting API (`/api.xro/2.0`) for one tenant per
 * connection (`xero-tenant-id` = ConnectionContext.accountId).
 *
 * - Reads: `GET /{Collection}` with `If-Modified-Since` and `page`/`pageSize`
 *   where Xero pages; `changes` keeps one position per collection
 *   (`If-Modified-Since` = the newest UpdatedDateUTC seen, plus the ids
 *   already delivered at that instant, so nothing is skipped or repeated).
 *   Xero has no delete feed: voided/deleted documents arrive as records with
 *   that status, archived contacts and accounts with status archived, and
 *   deleted items simply stop being listed.
 * - Writes: arrays of up to 50 elements per `PUT`/`POST` with
 *   `summarizeErrors=false`, so a bad element fails alone with its
 *   `ValidationErrors`; `Idempotency-Key` = the op's key (a batch's key is
 *   the hash of its ops' keys, so a retried batch replays). Updates and
 *   removes re-read the current `UpdatedDateUTC` first and answer
 *   `StaleVersion` when it moved: Xero has no conditional update, so a
 *   concurrent edit landing between the re-read and the write (milliseconds)
 *   is the one window left.
 * - Pacing: 60 calls a minute and 5 at once per tenant (sliding window), a
 *   429 pauses every request for `Retry-After`; the 5,000-a-day limit fails
 *   fast with `RateLimited("day")` instead of spinning. 401 → invalidate the
 *   token and retry once; 5xx and timeouts → three retries, then
 *   `ProviderUnavailable`.
 * - Webhooks: `x-xero-signature` verified in constant time; an empty
 *   `events` array is the intent-to-receive handshake.
 */
import { type Canonical, Hash } from "@concord/core"
import { Clock, Context, Duration, Effect, Option, Redacted, Schema, Semaphore, Stream } from "effect"
import { randomUUID } from "node:crypto"
import { Validation } from "@concord/core"
import {
  AuthFailed,
  NeedsReauth,
  NotFound,
  type ProviderError,
  ProviderProtocolError,
  ProviderRejected,
  ProviderUnavailable,
  RateLimited,
  StaleVersion,
  Unsupported
} from "../Errors.ts"
import type {
  Change,
  ChangeNotice,
  ChangesPage,
  ConnectionContext,
  EntityCapabilities,
  EntityType,
  ListOptions,
  ListPage,
  OAuthApp,
  OAuthEndpoints,
  Priority,
  Provider,
  ProviderClient,
  ProviderRecord,
  ProviderWebhooks,
  TokenSet,
  WebhookVerdict,
  WriteOp,
  WriteResult
} from "../Provider.ts"
import * as Http from "../Http.ts"
import * as RateLimiter from "../RateLimiter.ts"
import { verifyHmacSha256Base64 } from "../Signatures.ts"
import * as M from "./Mapping.ts"
import * as W from "./Wire.ts"

const PROVIDER = "xero"

export const defaultEndpoints: OAuthEndpoints = {
  authorizeUrl: "https://login.xero.com/identity/connect/authorize",
  tokenUrl: "https://identity.xero.com/connect/token",
  revokeUrl: "https://identity.xero.com/connect/revocation",
  connectionsUrl: "https://api.xero.com/connections"
}

/** Scopes Concord asks for: offline access (refresh tokens) and read/write accounting. */
export const scopes = ["openid", "profile", "email", "offline_access", "accounting.transactions", "accounting.contacts", "accounting.settings"] as const

/** Most elements Concord sends in one request (Xero recommends about 50; 3.5 MB max). */
export const BATCH_SIZE = 50
const PAGE_SIZE = 100
const REQUEST_TIMEOUT_MS = 30_000
const DAY_LIMIT = 5_000

// ---------------------------------------------------------------------------
// Capabilities

const cap = (entity: M.Supported, c: Omit<EntityCapabilities, "fields" | "customFields" | "idempotency" | "read">): EntityCapabilities => ({
  read: true,
  idempotency: true,
  customFields: false,
  fields: M.fields[entity],
  ...c
})

export const capabilities: Readonly<Record<M.Supported, EntityCapabilities>> = {
  account: cap("account", { create: true, update: true, remove: "archive", webhooks: false, changeFeed: true, batchSize: 1 }),
  contact: cap("contact", { create: true, update: true, remove: "archive", webhooks: true, changeFeed: true, batchSize: BATCH_SIZE }),
  item: cap("item", { create: true, update: true, remove: "delete", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  tax_rate: cap("tax_rate", { create: true, update: true, remove: "archive", webhooks: false, changeFeed: false, batchSize: 1 }),
  currency: cap("currency", { create: true, update: false, remove: "none", webhooks: false, changeFeed: false, batchSize: 1 }),
  tracking_category: cap("tracking_category", { create: true, update: true, remove: "archive", webhooks: false, changeFeed: false, batchSize: 1 }),
  invoice: cap("invoice", { create: true, update: true, remove: "void", webhooks: true, changeFeed: true, batchSize: BATCH_SIZE }),
  bill: cap("bill", { create: true, update: true, remove: "void", webhooks: true, changeFeed: true, batchSize: BATCH_SIZE }),
  credit_note: cap("credit_note", { create: true, update: true, remove: "void", webhooks: true, changeFeed: true, batchSize: BATCH_SIZE }),
  vendor_credit: cap("vendor_credit", { create: true, update: true, remove: "void", webhooks: true, changeFeed: true, batchSize: BATCH_SIZE }),
  payment: cap("payment", { create: true, update: false, remove: "delete", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  bill_payment: cap("bill_payment", { create: true, update: false, remove: "delete", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  journal_entry: cap("journal_entry", { create: true, update: true, remove: "void", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  sales_receipt: cap("sales_receipt", { create: true, update: true, remove: "delete", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  expense: cap("expense", { create: true, update: true, remove: "delete", webhooks: false, changeFeed: true, batchSize: BATCH_SIZE }),
  transfer: cap("transfer", { create: true, update: false, remove: "delete", webhooks: false, changeFeed: true, batchSize: 1 })
}

/** Collections whose GET honours If-Modified-Since, and those that page. */
const modifiedSinceAware = new Set<W.Collection>(["Accounts", "Contacts", "Items", "Invoices", "CreditNotes", "Payments", "ManualJournals", "BankTransactions", "BankTransfers"])
const pagedCollections = new Set<W.Collection>(["Contacts", "Invoices", "CreditNotes", "Payments", "ManualJournals", "BankTransactions"])
/** Collections whose PUT/POST take `summarizeErrors=false` with several elements. */
const batchCollections = new Set<W.Collection>(["Contacts", "Items", "Invoices", "CreditNotes", "Payments", "ManualJournals", "BankTransactions"])

// ---------------------------------------------------------------------------
// Small helpers

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString()
const endpointsOf = (app: OAuthApp): OAuthEndpoints => ({ ...defaultEndpoints, ...app.endpoints })

const parseJson = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return undefined
  }
}

const describeIssue = (e: Schema.SchemaError): string =>
  Validation.issuesOf(e.issue).map((i) => `${i.path === "" ? "(root)" : i.path}: ${i.message}`).join("; ")

// ---------------------------------------------------------------------------
// Auth

const tokenSetOf = (t: typeof W.TokenResponse.Type, now: number): TokenSet => ({
  accessToken: Redacted.make(t.access_token),
  refreshToken: Redacted.make(t.refresh_token),
  accessTokenExpiresAt: now + t.expires_in * 1000,
  // Xero refresh tokens expire after 60 days unused.
  refreshTokenExpiresAt: now + 60 * 86_400_000,
  ...(t.scope === undefined ? {} : { scope: t.scope })
})

const tokenRequest = (app: OAuthApp, body: Record<string, string>) =>
  Effect.gen(function*() {
    const res = yield* Http.send({
      method: "POST",
      url: endpointsOf(app).tokenUrl,
      headers: { authorization: Http.basicAuth(app), "content-type": "application/x-www-form-urlencoded", accept: "application/json" },
      body: form(body)
    }).pipe(Effect.mapError((e) => new AuthFailed({ provider: PROVIDER, reason: `token endpoint unreachable: ${e.reason}` })))
    const payload = parseJson(res.text)
    if (res.status !== 200) {
      const err = Schema.decodeUnknownOption(W.TokenError)(payload)
      const code = err._tag === "Some" ? err.value.error : `HTTP ${res.status}`
      const description = err._tag === "Some" && err.value.error_description !== undefined ? `: ${err.value.error_description}` : ""
      return yield* Effect.fail({ code, message: `${code}${description}` })
    }
    const decoded = Schema.decodeUnknownResult(W.TokenResponse)(payload)
    if (decoded._tag === "Failure") return yield* Effect.fail({ code: "bad_response", message: `token response: ${describeIssue(decoded.failure)}` })
    return tokenSetOf(decoded.success, yield* Clock.currentTimeMillis)
  })

const listConnections = (app: OAuthApp, accessToken: string) =>
  Effect.gen(function*() {
    const url = endpointsOf(app).connectionsUrl ?? defaultEndpoints.connectionsUrl as string
    const res = yield* Http.send({ method: "GET", url, headers: { authorization: `Bearer ${accessToken}`, accept: "application/json" } }).pipe(
      Effect.mapError((e) => new AuthFailed({ provider: PROVIDER, reason: `connections endpoint unreachable: ${e.reason}` }))
    )
    if (res.status !== 200) return yield* new AuthFailed({ provider: PROVIDER, reason: `GET /connections answered HTTP ${res.status}: ${res.text.slice(0, 200)}` })
    const decoded = Schema.decodeUnknownResult(W.Connections)(parseJson(res.text))
    if (decoded._tag === "Failure") return yield* new AuthFailed({ provider: PROVIDER, reason: `GET /connections: ${describeIssue(decoded.failure)}` })
    return decoded.success
      .filter((c) => c.tenantType === "ORGANISATION")
      .map((c) => (c.tenantName === undefined || c.tenantName === null ? { accountId: c.tenantId } : { accountId: c.tenantId, name: c.tenantName }))
  })

export const auth: Provider["auth"] = {
  authorizationUrl: (app, state) => {
    const url = new URL(endpointsOf(app).authorizeUrl)
    url.searchParams.set("response_type", "code")
    url.searchParams.set("client_id", app.clientId)
    url.searchParams.set("redirect_uri", app.redirectUri)
    url.searchParams.set("scope", scopes.join(" "))
    url.searchParams.set("state", state)
    return url.toString()
  },
  exchangeCode: (app, code, _callbackParams) =>
    Effect.gen(function*() {
      const tokens = yield* tokenRequest(app, { grant_type: "authorization_code", code, redirect_uri: app.redirectUri }).pipe(
        Effect.mapError((e) => (e instanceof AuthFailed ? e : new AuthFailed({ provider: PROVIDER, reason: `code exchange failed: ${e.message}` })))
      )
      const accounts = yield* listConnections(app, Redacted.value(tokens.accessToken))
      return { tokens, accounts }
    }),
  refresh: (app, refreshToken) =>
    tokenRequest(app, { grant_type: "refresh_token", refresh_token: Redacted.value(refreshToken) }).pipe(
      Effect.mapError((e) => {
        if (e instanceof AuthFailed) return e
        if (e.code === "invalid_grant") return new NeedsReauth({ provider: PROVIDER, connectionId: "", reason: `Xero refused the refresh token (${e.message})` })
        return new AuthFailed({ provider: PROVIDER, reason: `refresh failed: ${e.message}` })
      })
    )
}

// ---------------------------------------------------------------------------
// Webhooks

const webhookEntity: Readonly<Record<string, EntityType>> = { INVOICE: "invoice", CONTACT: "contact", CREDITNOTE: "credit_note" }

export const webhooks: ProviderWebhooks = {
  signatureHeader: "x-xero-signature",
  receive: (headers, rawBody, secret): WebhookVerdict => {
    const signature = headers["x-xero-signature"] ?? Object.entries(headers).find(([k]) => k.toLowerCase() === "x-xero-signature")?.[1]
    if (!verifyHmacSha256Base64(Redacted.value(secret), rawBody, signature)) {
      return { _tag: "Invalid", reason: signature === undefined ? "missing x-xero-signature header" : "x-xero-signature does not match the body" }
    }
    const decoded = Schema.decodeUnknownResult(W.WebhookPayload)(parseJson(Buffer.from(rawBody).toString("utf8")))
    if (decoded._tag === "Failure") return { _tag: "Invalid", reason: `not a Xero webhook payload: ${describeIssue(decoded.failure)}` }
    const payload = decoded.success
    if (payload.events.length === 0) return { _tag: "Handshake" }
    const notices: Array<ChangeNotice> = []
    for (const e of payload.events) {
      const entity = webhookEntity[e.eventCategory]
      if (entity === undefined) continue
      const at = /[zZ]|[+-]\d{2}:?\d{2}$/.test(e.eventDateUtc) ? e.eventDateUtc : `${e.eventDateUtc}Z`
      const ms = Date.parse(at)
      notices.push({
        accountId: e.tenantId,
        entity,
        externalId: e.resourceId,
        operation: e.eventType === "CREATE" ? "create" : "update",
        occurredAt: Number.isNaN(ms) ? e.eventDateUtc : new Date(ms).toISOString()
      })
    }
    return { _tag: "Notices", notices }
  }
}

// ---------------------------------------------------------------------------
// The client

/** The priority of requests made by the running fiber (see `withPriority`). */
const CurrentPriority = Context.Reference<Priority>("concord/providers/xero/Priority", { defaultValue: () => "live" })

interface Position {
  readonly since?: string
  readonly page: number
  /** Ids already delivered whose UpdatedDateUTC equals `since`. */
  readonly skip: ReadonlyArray<string>
}

interface Cursor {
  readonly v: 1
  readonly positions: Readonly<Record<string, Position>>
  /** Index into the requested collections of the one to read next. */
  readonly next: number
}

const encodeCursor = (c: Cursor) => Buffer.from(JSON.stringify(c)).toString("base64url")
const decodeCursor = (s: string | undefined): Cursor | undefined => {
  if (s === undefined) return undefined
  try {
    const c = JSON.parse(Buffer.from(s, "base64url").toString("utf8")) as Cursor
    return c.v === 1 && typeof c.positions === "object" ? c : undefined
  } catch {
    return undefined
  }
}

type Request = {
  readonly method: "GET" | "PUT" | "POST" | "DELETE"
  readonly path: string
  readonly query?: Readonly<Record<string, string>>
  readonly body?: unknown
  readonly idempotencyKey?: string
  readonly ifModifiedSince?: string
}

const idFieldOf = W.idField as Readonly<Record<W.Collection, string>>

const client = (context: ConnectionContext) =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({ requestsPerMinute: 60, concurrent: 5, ...(context.unlimited === true ? { unlimited: true } : {}) })
    const base = context.baseUrl.replace(/\/+$/, "")
    let dayBlockedUntil = 0
    let dayNo = -1
    let dayCount = 0

    const errBase = { provider: PROVIDER, connectionId: context.connectionId }
    const unavailable = (reason: string, status?: number) => new ProviderUnavailable({ ...errBase, reason, ...(status === undefined ? {} : { status }) })
    const protocol = (reason: string) => new ProviderProtocolError({ ...errBase, reason })

    /** One attempt: a limiter slot, the token, the call. */
    const attempt = (req: Request, token: Redacted.Redacted<string>) =>
      Effect.gen(function*() {
        const url = new URL(`${base}${req.path}`)
        for (const [k, v] of Object.entries(req.query ?? {})) url.searchParams.set(k, v)
        const headers: Record<string, string> = {
          authorization: `Bearer ${Redacted.value(token)}`,
          "xero-tenant-id": context.accountId,
          accept: "application/json"
        }
        if (req.body !== undefined) headers["content-type"] = "application/json"
        if (req.idempotencyKey !== undefined) headers["Idempotency-Key"] = req.idempotencyKey
        if (req.ifModifiedSince !== undefined) headers["If-Modified-Since"] = req.ifModifiedSince
        return yield* Http.send({ method: req.method, url: url.toString(), headers, ...(req.body === undefined ? {} : { body: JSON.stringify(req.body) }) }).pipe(
          Effect.timeoutOrElse({
            duration: Duration.millis(REQUEST_TIMEOUT_MS),
            orElse: () => Effect.fail({ reason: `no answer within ${REQUEST_TIMEOUT_MS} ms` })
          }),
          Effect.map((r) => ({ _tag: "Response" as const, response: r })),
          Effect.catch((e) => Effect.succeed({ _tag: "Transport" as const, reason: e.reason }))
        )
      })

    const countDay = Effect.gen(function*() {
      if (context.unlimited === true) return
      const now = yield* Clock.currentTimeMillis
      if (now < dayBlockedUntil) {
        return yield* new RateLimited({ ...errBase, retryAfterMs: dayBlockedUntil - now, limit: "day" })
      }
      const today = Math.floor(now / 86_400_000)
      if (today !== dayNo) {
        dayNo = today
        dayCount = 0
      }
      if (dayCount >= DAY_LIMIT) {
        dayBlockedUntil = (today + 1) * 86_400_000
        return yield* new RateLimited({ ...errBase, retryAfterMs: dayBlockedUntil - now, limit: "day" })
      }
      dayCount++
    })

    /** A request with 401 / 429 / 5xx handling. Resolves with the final response (any status below 500 but 401/429). */
    const send = (req: Request): Effect.Effect<Http.HttpAnswer, ProviderError> =>
      Effect.gen(function*() {
        const priority = yield* CurrentPriority
        let authRetried = false
        let transient = 0
        let throttled = 0
        while (true) {
          yield* countDay
          const token = yield* context.tokens.accessToken
          const outcome = yield* limiter.run(attempt(req, token), priority)
          if (context.onCall !== undefined) yield* context.onCall(outcome._tag === "Transport" ? 0 : outcome.response.status)
          if (outcome._tag === "Transport") {
            transient++
            if (transient > 3) return yield* unavailable(`${req.method} ${req.path}: ${outcome.reason}`)
            yield* Effect.sleep(Duration.millis(200 * 2 ** transient))
            continue
          }
          const res = outcome.response
          if (res.status === 401) {
            if (authRetried) return yield* new NeedsReauth({ ...errBase, reason: `Xero refused a freshly refreshed token: ${res.text.slice(0, 200)}` })
            authRetried = true
            yield* context.tokens.invalidate(token)
            continue
          }
          if (res.status === 429) {
            const retryAfterMs = Math.max(1, Number(res.headers["retry-after"] ?? "1") || 1) * 1000
            const problem = res.headers["x-rate-limit-problem"] ?? "minute"
            if (problem.toLowerCase() === "day") {
              const now = yield* Clock.currentTimeMillis
              dayBlockedUntil = now + retryAfterMs
              return yield* new RateLimited({ ...errBase, retryAfterMs, limit: "day" })
            }
            throttled++
            if (throttled > 10) return yield* new RateLimited({ ...errBase, retryAfterMs, limit: problem })
            yield* limiter.pause(retryAfterMs)
            continue
          }
          if (res.status >= 500) {
            transient++
            if (transient > 3) return yield* unavailable(`${req.method} ${req.path} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`, res.status)
            yield* Effect.sleep(Duration.millis(200 * 2 ** transient))
            continue
          }
          const remaining = res.headers["x-daylimit-remaining"]
          if (remaining === "0" && context.unlimited !== true) {
            const now = yield* Clock.currentTimeMillis
            dayBlockedUntil = Math.max(dayBlockedUntil, (Math.floor(now / 86_400_000) + 1) * 86_400_000)
          }
          return res
        }
      })

    /** Decodes a 200 body as a collection envelope. */
    const decodeEnvelope = <C extends W.Collection>(collection: C, res: Http.HttpAnswer): Effect.Effect<{ elements: ReadonlyArray<Record<string, unknown>>; raw: ReadonlyArray<Record<string, unknown>>; dateTimeUTC?: string }, ProviderProtocolError> => {
      const body = parseJson(res.text)
      const decoded = Schema.decodeUnknownResult(W.Responses[collection] as Schema.Codec<unknown>)(body)
      if (decoded._tag === "Failure") return Effect.fail(protocol(`${collection} response: ${describeIssue(decoded.failure)}`))
      const value = decoded.success as Record<string, unknown>
      const raw = ((body as Record<string, unknown>)[collection] ?? []) as ReadonlyArray<Record<string, unknown>>
      const dt = value.DateTimeUTC
      return Effect.succeed({ elements: value[collection] as ReadonlyArray<Record<string, unknown>>, raw, ...(typeof dt === "string" ? { dateTimeUTC: dt } : {}) })
    }

    const rejected = (entity: string, recordId: string | undefined, res: Http.HttpAnswer, fallback: string): ProviderRejected => {
      const decoded = Schema.decodeUnknownOption(W.ApiException)(parseJson(res.text))
      const ex = decoded._tag === "Some" ? decoded.value : undefined
      const messages = (ex?.Elements ?? []).flatMap((el) => ((el.ValidationErrors ?? []) as ReadonlyArray<{ Message?: string }>).map((v) => v.Message ?? ""))
      return new ProviderRejected({
        ...errBase,
        entity,
        ...(recordId === undefined ? {} : { recordId }),
        code: ex?.Type ?? `HTTP ${res.status}`,
        providerMessage: messages.length > 0 ? messages.join("; ") : (ex?.Message ?? (res.text.slice(0, 300) || fallback)),
        ...(ex?.Message !== undefined && messages.length > 0 ? { detail: ex.Message } : {})
      })
    }

    // -------------------------------------------------------------------------
    // Lookup of account codes, item codes and the base currency

    let lookup: M.Lookup | undefined
    const lookupLock = Semaphore.makeUnsafe(1)
    const loadLookup = Effect.gen(function*() {
      const org = yield* send({ method: "GET", path: "/Organisation" })
      if (org.status !== 200) return yield* protocol(`GET /Organisation answered HTTP ${org.status}`)
      const orgs = yield* decodeEnvelope("Organisations", org)
      const baseCurrency = (orgs.elements[0] as W.WireTypes["Organisations"] | undefined)?.BaseCurrency ?? "USD"
      const accounts = yield* send({ method: "GET", path: "/Accounts" })
      const items = yield* send({ method: "GET", path: "/Items" })
      const a = yield* decodeEnvelope("Accounts", accounts)
      const i = yield* decodeEnvelope("Items", items)
      const built = M.makeLookup(a.elements as ReadonlyArray<W.Account>, i.elements as ReadonlyArray<W.Item>, baseCurrency)
      lookup = built
      return built
    })
    const getLookup = (refresh: boolean): Effect.Effect<M.Lookup, ProviderError> =>
      lookupLock.withPermit(Effect.suspend(() => (lookup !== undefined && !refresh ? Effect.succeed(lookup) : loadLookup)))

    /** Runs a mapping; when it names an unknown account or item, reloads the lookup once and tries again. */
    const withLookup = <A>(f: (l: M.Lookup) => M.Mapped<A>): Effect.Effect<M.Mapped<A>, ProviderError> =>
      Effect.gen(function*() {
        const first = f(yield* getLookup(false))
        if (first.ok || first.missing === undefined) return first
        return f(yield* getLookup(true))
      })

    const now = Clock.currentTimeMillis.pipe(Effect.map((ms) => new Date(ms).toISOString()))

    const toProviderRecord = (collection: W.Collection, wire: Record<string, unknown>) =>
      Effect.gen(function*() {
        const observedAt = yield* now
        const mapped = yield* withLookup((l) => M.fromWire(collection, wire, l, observedAt))
        if (!mapped.ok) return yield* protocol(`${collection} ${String(wire[idFieldOf[collection]] ?? "")}: ${mapped.reason}`)
        const { record, version, updatedAt } = mapped.value
        return { entity: record.entity, externalId: record.id, version, updatedAt, record } satisfies ProviderRecord
      })

    const optionRecords = (category: Record<string, unknown>, observedAt: string): Effect.Effect<Array<ProviderRecord>, ProviderError> =>
      Effect.gen(function*() {
        const out: Array<ProviderRecord> = []
        for (const option of (category.Options ?? []) as ReadonlyArray<W.TrackingOption>) {
          const mapped = M.fromWireOption(String(category.TrackingCategoryID), option, observedAt)
          if (!mapped.ok) return yield* protocol(`tracking option: ${mapped.reason}`)
          out.push({ entity: "tracking_category", externalId: mapped.value.record.id, version: mapped.value.version, updatedAt: mapped.value.updatedAt, record: mapped.value.record })
        }
        return out
      })

    const unsupported = (entity: string, reason?: string) =>
      new Unsupported({ provider: PROVIDER, entity, reason: reason ?? M.unsupportedReasons[entity as EntityType] ?? `Xero has no ${entity}` })

    const collectionFor = (entity: EntityType): Effect.Effect<W.Collection, Unsupported> =>
      M.isSupported(entity) ? Effect.succeed(M.collectionOf[entity]) : Effect.fail(unsupported(entity))

    /** Does a mapped record belong to the requested entity (invoice vs bill share a collection)? */
    const belongs = (requested: EntityType, actual: EntityType) => requested === actual

    // -------------------------------------------------------------------------
    // Reads

    const readPage = (collection: W.Collection, query: Record<string, string>, ifModifiedSince: string | undefined) =>
      Effect.gen(function*() {
        const res = yield* send({ method: "GET", path: `/${collection}`, query, ...(ifModifiedSince === undefined ? {} : { ifModifiedSince }) })
        if (res.status !== 200) return yield* protocol(`GET /${collection} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`)
        return yield* decodeEnvelope(collection, res)
      })

    const listQuery = (collection: W.Collection): Record<string, string> => ({
      ...(collection === "Contacts" || collection === "TrackingCategories" ? { includeArchived: "true" } : {}),
      ...(pagedCollections.has(collection) || modifiedSinceAware.has(collection) ? { order: "UpdatedDateUTC ASC" } : {})
    })

    /** One page of a collection (collections Xero does not page are one page). */
    const collectionPage = (entity: EntityType, options: ListOptions | undefined, page: number) =>
      Effect.gen(function*() {
        const collection = yield* collectionFor(entity)
        const since = options?.modifiedSince !== undefined && modifiedSinceAware.has(collection) ? options.modifiedSince : undefined
        const pageSize = Math.min(1000, Math.max(1, options?.pageSize ?? PAGE_SIZE))
        const paged = pagedCollections.has(collection)
        const p = yield* readPage(collection, paged ? { ...listQuery(collection), page: String(page), pageSize: String(pageSize) } : listQuery(collection), since)
        const out: Array<ProviderRecord> = []
        const observedAt = yield* now
        for (const el of p.elements) {
          if (collection === "TrackingCategories") {
            const category = yield* toProviderRecord(collection, el)
            out.push(category, ...(yield* optionRecords(el, observedAt)))
            continue
          }
          if (collection === "BankTransactions" && M.bankTransactionEntityOf(el as W.BankTransaction) === undefined) continue
          const rec = yield* toProviderRecord(collection, el)
          if (belongs(entity, rec.entity)) out.push(rec)
        }
        return { records: out, next: paged && p.elements.length >= pageSize ? page + 1 : undefined }
      })

    const list = (entity: EntityType, options?: ListOptions): Stream.Stream<ProviderRecord, ProviderError> =>
      Stream.paginate(1, (page: number) =>
        collectionPage(entity, options, page).pipe(
          Effect.map((p) => [p.records, p.next === undefined ? Option.none<number>() : Option.some(p.next)] as const)
        ))

    /** Cursor: the page number. */
    const listPage = (entity: EntityType, options?: ListOptions & { readonly cursor?: string }): Effect.Effect<ListPage, ProviderError> =>
      Effect.gen(function*() {
        const page = options?.cursor === undefined ? 1 : Number(options.cursor)
        if (!Number.isInteger(page) || page < 1) return yield* protocol(`not a Xero list cursor: ${options?.cursor}`)
        const p = yield* collectionPage(entity, options, page)
        return { records: p.records, next: p.next === undefined ? undefined : String(p.next) }
      })

    const read = (entity: EntityType, externalId: string): Effect.Effect<ProviderRecord, ProviderError> =>
      Effect.gen(function*() {
        const collection = yield* collectionFor(entity)
        const notFound = new NotFound({ ...errBase, entity, externalId })
        if (collection === "TrackingCategories") {
          const parts = M.splitOptionId(externalId)
          const res = yield* send({ method: "GET", path: `/TrackingCategories/${encodeURIComponent(parts?.categoryId ?? externalId)}`, query: { includeArchived: "true" } })
          if (res.status === 404) return yield* notFound
          if (res.status !== 200) return yield* protocol(`GET /TrackingCategories answered HTTP ${res.status}`)
          const env = yield* decodeEnvelope(collection, res)
          const category = env.elements[0]
          if (category === undefined) return yield* notFound
          if (parts === undefined) return yield* toProviderRecord(collection, category)
          const options = yield* optionRecords(category, yield* now)
          return options.find((o) => o.externalId.toLowerCase() === externalId.toLowerCase()) ?? (yield* notFound)
        }
        const res = yield* send({ method: "GET", path: `/${collection}/${encodeURIComponent(externalId)}` })
        if (res.status === 404) return yield* notFound
        if (res.status !== 200) return yield* protocol(`GET /${collection}/${externalId} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`)
        const env = yield* decodeEnvelope(collection, res)
        const el = env.elements[0]
        if (el === undefined) return yield* notFound
        if (collection === "BankTransactions" && M.bankTransactionEntityOf(el as W.BankTransaction) === undefined) return yield* notFound
        // An invoice id may turn out to be a bill (webhooks say INVOICE for both): the record carries its real entity.
        return yield* toProviderRecord(collection, el)
      })

    // -------------------------------------------------------------------------
    // Change feed

    const changes = (entities: ReadonlyArray<EntityType>, cursor: string | undefined, since?: string): Effect.Effect<ChangesPage, ProviderError> =>
      Effect.gen(function*() {
        const wanted = new Set(entities)
        for (const e of entities) {
          if (!M.isSupported(e) || !capabilities[e].changeFeed) return yield* unsupported(e, `Xero has no change feed for ${e}`)
        }
        const collections = [...new Set(entities.map((e) => M.collectionOf[e as M.Supported]))].sort()
        const state: Cursor = decodeCursor(cursor) ?? { v: 1, positions: {}, next: 0 }
        const index = state.next % Math.max(1, collections.length)
        const collection = collections[index] as W.Collection
        const pos: Position = state.positions[collection] ?? { ...(since === undefined ? {} : { since }), page: 1, skip: [] }
        const paged = pagedCollections.has(collection)
        const query = { ...listQuery(collection), ...(paged ? { page: String(pos.page), pageSize: String(PAGE_SIZE) } : {}) }
        const page = yield* readPage(collection, query, pos.since)
        const skip = new Set(pos.skip)
        const out: Array<Change> = []
        let newest = pos.since
        let newestMs = pos.since === undefined ? Number.NEGATIVE_INFINITY : Date.parse(pos.since)
        let atNewest: Array<string> = [...pos.skip]
        for (const el of page.elements) {
          const id = String(el[idFieldOf[collection]] ?? "")
          const u = typeof el.UpdatedDateUTC === "string" ? W.parseMsDate(el.UpdatedDateUTC) : undefined
          if (u !== undefined) {
            if (u === newestMs && skip.has(id)) continue
            if (u > newestMs) {
              newestMs = u
              newest = new Date(u).toISOString()
              atNewest = []
            }
            if (u === newestMs) atNewest.push(id)
          }
          if (collection === "BankTransactions" && M.bankTransactionEntityOf(el as W.BankTransaction) === undefined) continue
          const rec = yield* toProviderRecord(collection, el)
          if (wanted.has(rec.entity)) out.push({ _tag: "Upserted", record: rec })
        }
        const full = paged && page.elements.length >= PAGE_SIZE
        let nextPos: Position
        if (collection === "BankTransfers") {
          // No UpdatedDateUTC on transfers: resume from Xero's clock at this answer.
          const server = page.dateTimeUTC === undefined ? undefined : W.parseMsDate(page.dateTimeUTC)
          nextPos = { ...(server === undefined ? (pos.since === undefined ? {} : { since: pos.since }) : { since: new Date(server).toISOString() }), page: 1, skip: [] }
        } else if (full && newest === pos.since) {
          // A whole page at one instant: page on at the same instant.
          nextPos = { ...(pos.since === undefined ? {} : { since: pos.since }), page: pos.page + 1, skip: pos.skip }
        } else {
          nextPos = { ...(newest === undefined ? {} : { since: newest }), page: 1, skip: atNewest }
        }
        const caughtUp = !full
        const nextIndex = caughtUp ? index + 1 : index
        const roundDone = caughtUp && nextIndex >= collections.length
        const next: Cursor = { v: 1, positions: { ...state.positions, [collection]: nextPos }, next: roundDone ? 0 : nextIndex }
        return { changes: out, cursor: encodeCursor(next), hasMore: !roundDone }
      })

    // -------------------------------------------------------------------------
    // Writes

    const batchKey = (ops: ReadonlyArray<WriteOp>) =>
      ops.length === 1 ? (ops[0] as WriteOp).idempotencyKey.slice(0, 128) : `batch-${Hash.sha256(ops.map((o) => o.idempotencyKey).join("\n")).slice(0, 40)}`

    const failed = (error: ProviderError): WriteResult => ({ _tag: "Failed", error })

    /** Interprets one element of a write answer. */
    const elementResult = (collection: W.Collection, op: WriteOp, el: Record<string, unknown> | undefined, decoded: Record<string, unknown> | undefined) =>
      Effect.gen(function*() {
        if (el === undefined) return failed(protocol(`${collection} answer is missing an element for ${op._tag.toLowerCase()} ${op.entity}`))
        const errors = (el.ValidationErrors ?? []) as ReadonlyArray<{ Message?: string }>
        if (el.HasErrors === true || el.HasValidationErrors === true || el.StatusAttributeString === "ERROR" || errors.length > 0) {
          const recordId = op._tag === "Create" ? op.record.id : op.externalId
          return failed(new ProviderRejected({
            ...errBase,
            entity: op.entity,
            recordId,
            code: "ValidationException",
            providerMessage: errors.map((e) => e.Message ?? "").join("; ") || "validation failed",
            detail: JSON.stringify(el).slice(0, 2000)
          }))
        }
        if (op._tag === "Remove") return { _tag: "Removed", entity: op.entity, externalId: op.externalId } as WriteResult
        return { _tag: "Written", record: yield* toProviderRecord(collection, decoded ?? el) } as WriteResult
      })

    /** Sends elements (one request, or one per element where Xero takes only one). */
    const sendElements = (
      collection: W.Collection,
      method: "PUT" | "POST",
      ops: ReadonlyArray<WriteOp>,
      bodies: ReadonlyArray<Record<string, unknown>>
    ): Effect.Effect<Array<WriteResult>, ProviderError> =>
      Effect.gen(function*() {
        const res = yield* send({
          method,
          path: `/${collection}`,
          query: batchCollections.has(collection) ? { summarizeErrors: "false" } : {},
          body: { [collection]: bodies },
          idempotencyKey: batchKey(ops)
        })
        if (res.status === 400) {
          // Single-element endpoints answer a ValidationException for their one element.
          const one = ops.length === 1 ? ops[0] : undefined
          if (one !== undefined) return [failed(rejected(one.entity, one._tag === "Create" ? one.record.id : one.externalId, res, "validation failed"))]
          return ops.map((op) => failed(rejected(op.entity, op._tag === "Create" ? op.record.id : op.externalId, res, "the batch was refused")))
        }
        if (res.status === 404 && ops.length === 1) {
          const op = ops[0] as WriteOp
          return [failed(new NotFound({ ...errBase, entity: op.entity, externalId: op._tag === "Create" ? "" : op.externalId }))]
        }
        if (res.status !== 200) return yield* protocol(`${method} /${collection} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`)
        const env = yield* decodeEnvelope(collection, res)
        // Element errors are kept from the raw body: decoding keeps only known fields.
        return yield* Effect.forEach(ops, (op, i) => elementResult(collection, op, env.raw[i] ?? env.elements[i], env.elements[i]))
      })

    const createGroup = (collection: W.Collection, ops: ReadonlyArray<Extract<WriteOp, { _tag: "Create" }>>) =>
      Effect.gen(function*() {
        const out: Array<WriteResult | undefined> = ops.map(() => undefined)
        const ready: Array<{ i: number; op: WriteOp; body: Record<string, unknown> }> = []
        for (const [i, op] of ops.entries()) {
          if (!M.isSupported(op.entity)) {
            out[i] = failed(unsupported(op.entity))
            continue
          }
          if (op.entity === "tracking_category" && op.record.entity === "tracking_category" && op.record.parentId !== undefined) {
            out[i] = yield* createOption(op, op.record.parentId)
            continue
          }
          const mapped = yield* withLookup((l) => M.toWire(op.record, l))
          if (!mapped.ok) out[i] = failed(unsupported(op.entity, mapped.reason))
          else ready.push({ i, op, body: mapped.value.body })
        }
        const size = batchCollections.has(collection) ? BATCH_SIZE : 1
        const chunks: Array<typeof ready> = []
        for (let k = 0; k < ready.length; k += size) chunks.push(ready.slice(k, k + size))
        yield* Effect.forEach(chunks, (chunk) =>
          sendElements(collection, "PUT", chunk.map((c) => c.op), chunk.map((c) => c.body)).pipe(
            Effect.map((rs) => rs.forEach((r, k) => {
              out[(chunk[k] as { i: number }).i] = r
            }))
          ), { concurrency: 5, discard: true })
        return out as Array<WriteResult>
      })

    const createOption = (op: Extract<WriteOp, { _tag: "Create" }>, categoryId: string) =>
      Effect.gen(function*() {
        const rec = op.record as Canonical.RecordOf<"tracking_category">
        const res = yield* send({ method: "PUT", path: `/TrackingCategories/${encodeURIComponent(categoryId)}/Options`, body: { Options: [{ Name: rec.name }] }, idempotencyKey: op.idempotencyKey.slice(0, 128) })
        if (res.status === 400) return failed(rejected(op.entity, rec.id, res, "validation failed"))
        if (res.status === 404) return failed(new NotFound({ ...errBase, entity: "tracking_category", externalId: categoryId }))
        if (res.status !== 200) return yield* protocol(`PUT /TrackingCategories/${categoryId}/Options answered HTTP ${res.status}`)
        const env = yield* decodeEnvelope("Options", res)
        const option = env.elements[0] as W.TrackingOption | undefined
        if (option === undefined) return failed(protocol("PUT Options answered no option"))
        let created: W.TrackingOption = option
        if (rec.status === "archived" && option.TrackingOptionID !== undefined) {
          const upd = yield* send({ method: "POST", path: `/TrackingCategories/${encodeURIComponent(categoryId)}/Options/${option.TrackingOptionID}`, body: { Options: [{ Status: "ARCHIVED" }] } })
          if (upd.status === 200) created = ((yield* decodeEnvelope("Options", upd)).elements[0] as W.TrackingOption | undefined) ?? option
        }
        const mapped = M.fromWireOption(categoryId, created, yield* now)
        if (!mapped.ok) return failed(protocol(mapped.reason))
        return { _tag: "Written", record: { entity: "tracking_category", externalId: mapped.value.record.id, version: mapped.value.version, updatedAt: mapped.value.updatedAt, record: mapped.value.record } } as WriteResult
      })

    /** Current wire state of records, for the version check before an update or remove. */
    const currentOf = (collection: W.Collection, ids: ReadonlyArray<string>): Effect.Effect<Map<string, Record<string, unknown>>, ProviderError> =>
      Effect.gen(function*() {
        const found = new Map<string, Record<string, unknown>>()
        if (collection === "Invoices" || collection === "Contacts") {
          for (let k = 0; k < ids.length; k += 50) {
            const chunk = ids.slice(k, k + 50)
            const page = yield* readPage(collection, { IDs: chunk.join(","), ...(collection === "Contacts" ? { includeArchived: "true" } : {}) }, undefined)
            for (const el of page.raw) found.set(String(el[idFieldOf[collection]]).toLowerCase(), el)
          }
          return found
        }
        yield* Effect.forEach(ids, (id) =>
          Effect.gen(function*() {
            if (collection === "TrackingCategories") {
              const parts = M.splitOptionId(id)
              const res = yield* send({ method: "GET", path: `/TrackingCategories/${encodeURIComponent(parts?.categoryId ?? id)}`, query: { includeArchived: "true" } })
              if (res.status !== 200) return
              const cat = (yield* decodeEnvelope(collection, res)).raw[0]
              if (cat === undefined) return
              if (parts === undefined) found.set(id.toLowerCase(), cat)
              else {
                const option = ((cat.Options ?? []) as ReadonlyArray<Record<string, unknown>>).find((o) => String(o.TrackingOptionID).toLowerCase() === parts.optionId.toLowerCase())
                if (option !== undefined) found.set(id.toLowerCase(), option)
              }
              return
            }
            const res = yield* send({ method: "GET", path: `/${collection}/${encodeURIComponent(id)}` })
            if (res.status === 404) return
            if (res.status !== 200) return yield* protocol(`GET /${collection}/${id} answered HTTP ${res.status}`)
            const el = (yield* decodeEnvelope(collection, res)).raw[0]
            if (el !== undefined) found.set(id.toLowerCase(), el)
          }), { concurrency: 5, discard: true })
        return found
      })

    /** Versions compare on the decoded element (what `read` reports). */
    const versionOfRaw = (collection: W.Collection, raw: Record<string, unknown>): string => {
      const decoded = Schema.decodeUnknownOption(W.Responses[collection] as Schema.Codec<unknown>)({ [collection]: [raw] })
      const el = decoded._tag === "Some" ? ((decoded.value as Record<string, unknown>)[collection] as ReadonlyArray<Record<string, unknown>>)[0] : undefined
      return M.versionOf(el ?? raw)
    }

    type Changing = Extract<WriteOp, { _tag: "Update" | "Remove" }>

    const removalBody = (op: Changing, current: Record<string, unknown>): Record<string, unknown> | "delete" | Unsupported => {
      switch (op.entity) {
        case "account": return { Status: "ARCHIVED" }
        case "contact": return { ContactStatus: "ARCHIVED" }
        case "item": return "delete"
        case "tax_rate": return { Status: "ARCHIVED", Name: current.Name }
        case "tracking_category": return { Status: "ARCHIVED" }
        case "invoice":
        case "bill":
        case "credit_note":
        case "vendor_credit":
          return { Status: current.Status === "DRAFT" || current.Status === "SUBMITTED" ? "DELETED" : "VOIDED" }
        case "journal_entry": return { Status: current.Status === "DRAFT" ? "DELETED" : "VOIDED" }
        case "payment":
        case "bill_payment":
        case "sales_receipt":
        case "expense":
        case "transfer":
          return { Status: "DELETED" }
        default:
          return unsupported(op.entity, `Xero cannot remove a ${op.entity}`)
      }
    }

    const alreadyRemoved = (current: Record<string, unknown>): boolean =>
      current.Status === "VOIDED" || current.Status === "DELETED" || current.Status === "ARCHIVED" || current.ContactStatus === "ARCHIVED"

    const changeGroup = (collection: W.Collection, ops: ReadonlyArray<Changing>) =>
      Effect.gen(function*() {
        const out: Array<WriteResult | undefined> = ops.map(() => undefined)
        const current = yield* currentOf(collection, [...new Set(ops.map((o) => o.externalId))])
        const ready: Array<{ i: number; op: Changing; body: Record<string, unknown> }> = []
        for (const [i, op] of ops.entries()) {
          const entity = op.entity
          if (!M.isSupported(entity)) {
            out[i] = failed(unsupported(entity))
            continue
          }
          if (op._tag === "Update" && !capabilities[entity].update) {
            out[i] = failed(unsupported(entity, `Xero cannot change a ${entity} once created; remove it and create a new one`))
            continue
          }
          if (op._tag === "Remove" && capabilities[entity].remove === "none") {
            out[i] = failed(unsupported(entity, `Xero cannot remove a ${entity}`))
            continue
          }
          const cur = current.get(op.externalId.toLowerCase())
          if (cur === undefined) {
            out[i] = failed(new NotFound({ ...errBase, entity, externalId: op.externalId }))
            continue
          }
          // Removed already (our earlier remove whose answer was lost, or someone in Xero): Xero refuses to void a
          // voided invoice ("not of valid status for modification"), and there is nothing left to do.
          if (op._tag === "Remove" && alreadyRemoved(cur)) {
            out[i] = { _tag: "Removed", entity, externalId: op.externalId }
            continue
          }
          const currentVersion = versionOfRaw(collection === "TrackingCategories" && M.splitOptionId(op.externalId) !== undefined ? "Options" : collection, cur)
          if (currentVersion !== op.version) {
            out[i] = failed(new StaleVersion({ ...errBase, entity, externalId: op.externalId, sentVersion: op.version, currentVersion }))
            continue
          }
          let body: Record<string, unknown>
          if (op._tag === "Remove") {
            const r = removalBody(op, cur)
            if (r instanceof Unsupported) {
              out[i] = failed(r)
              continue
            }
            if (r === "delete") {
              out[i] = yield* deleteItem(op)
              continue
            }
            body = r
          } else {
            const mapped = yield* withLookup((l) => M.toWire(op.record, l))
            if (!mapped.ok) {
              out[i] = failed(unsupported(entity, mapped.reason))
              continue
            }
            body = mapped.value.body
          }
          if (collection === "TrackingCategories") {
            out[i] = yield* updateTracking(op, body)
            continue
          }
          ready.push({ i, op, body: collection === "TaxRates" ? { ...body, TaxType: op.externalId } : M.withId(collection, body, op.externalId) })
        }
        if (batchCollections.has(collection)) {
          const chunks: Array<typeof ready> = []
          for (let k = 0; k < ready.length; k += BATCH_SIZE) chunks.push(ready.slice(k, k + BATCH_SIZE))
          yield* Effect.forEach(chunks, (chunk) =>
            sendElements(collection, "POST", chunk.map((c) => c.op), chunk.map((c) => c.body)).pipe(
              Effect.map((rs) => rs.forEach((r, k) => {
                out[(chunk[k] as { i: number }).i] = r
              }))
            ), { concurrency: 5, discard: true })
        } else {
          yield* Effect.forEach(ready, (c) =>
            Effect.gen(function*() {
              const path = collection === "TaxRates" ? `/TaxRates` : `/${collection}/${encodeURIComponent(c.op.externalId)}`
              const res = yield* send({ method: "POST", path, body: { [collection]: [c.body] }, idempotencyKey: c.op.idempotencyKey.slice(0, 128) })
              if (res.status === 400) {
                out[c.i] = failed(rejected(c.op.entity, c.op.externalId, res, "validation failed"))
                return
              }
              if (res.status === 404) {
                out[c.i] = failed(new NotFound({ ...errBase, entity: c.op.entity, externalId: c.op.externalId }))
                return
              }
              if (res.status !== 200) return yield* protocol(`POST ${path} answered HTTP ${res.status}: ${res.text.slice(0, 200)}`)
              const env = yield* decodeEnvelope(collection, res)
              out[c.i] = yield* elementResult(collection, c.op, env.raw[0] ?? env.elements[0], env.elements[0])
            }), { concurrency: 5, discard: true })
        }
        return out as Array<WriteResult>
      })

    const deleteItem = (op: Changing) =>
      Effect.gen(function*() {
        const res = yield* send({ method: "DELETE", path: `/Items/${encodeURIComponent(op.externalId)}`, idempotencyKey: op.idempotencyKey.slice(0, 128) })
        if (res.status === 204 || res.status === 200) return { _tag: "Removed", entity: op.entity, externalId: op.externalId } as WriteResult
        if (res.status === 404) return failed(new NotFound({ ...errBase, entity: op.entity, externalId: op.externalId }))
        return failed(rejected(op.entity, op.externalId, res, "delete refused"))
      })

    const updateTracking = (op: Changing, body: Record<string, unknown>) =>
      Effect.gen(function*() {
        const parts = M.splitOptionId(op.externalId)
        const path = parts === undefined
          ? `/TrackingCategories/${encodeURIComponent(op.externalId)}`
          : `/TrackingCategories/${encodeURIComponent(parts.categoryId)}/Options/${encodeURIComponent(parts.optionId)}`
        if (op._tag === "Update" && op.record.entity === "tracking_category" && (op.record.parentId ?? undefined) !== (parts?.categoryId ?? undefined)) {
          return failed(unsupported(op.entity, "a Xero tracking option cannot move to another category"))
        }
        const key = parts === undefined ? "TrackingCategories" : "Options"
        const res = yield* send({ method: "POST", path, body: { [key]: [body] }, idempotencyKey: op.idempotencyKey.slice(0, 128) })
        if (res.status === 400) return failed(rejected(op.entity, op.externalId, res, "validation failed"))
        if (res.status === 404) return failed(new NotFound({ ...errBase, entity: op.entity, externalId: op.externalId }))
        if (res.status !== 200) return yield* protocol(`POST ${path} answered HTTP ${res.status}`)
        if (op._tag === "Remove") return { _tag: "Removed", entity: op.entity, externalId: op.externalId } as WriteResult
        return { _tag: "Written", record: yield* read("tracking_category", op.externalId) } as WriteResult
      })

    const write = (ops: ReadonlyArray<WriteOp>): Effect.Effect<ReadonlyArray<WriteResult>, ProviderError> =>
      Effect.gen(function*() {
        const out: Array<WriteResult | undefined> = ops.map(() => undefined)
        // Group by (kind of write, collection), keeping each op's position.
        const groups = new Map<string, { collection: W.Collection; kind: "create" | "change"; items: Array<{ i: number; op: WriteOp }> }>()
        for (const [i, op] of ops.entries()) {
          if (!M.isSupported(op.entity)) {
            out[i] = failed(unsupported(op.entity))
            continue
          }
          const collection = M.collectionOf[op.entity]
          const kind = op._tag === "Create" ? "create" : "change"
          const key = `${kind}:${collection}`
          const g = groups.get(key) ?? { collection, kind, items: [] }
          g.items.push({ i, op })
          groups.set(key, g)
        }
        // Master data first, so documents in the same call can reference it.
        const order: ReadonlyArray<W.Collection> = ["Currencies", "TaxRates", "Accounts", "TrackingCategories", "Contacts", "Items", "Invoices", "CreditNotes", "ManualJournals", "BankTransactions", "BankTransfers", "Payments"]
        const sorted = [...groups.values()].sort((a, b) => order.indexOf(a.collection) - order.indexOf(b.collection) || (a.kind === "create" ? -1 : 1))
        for (const g of sorted) {
          const rs = g.kind === "create"
            ? yield* createGroup(g.collection, g.items.map((x) => x.op as Extract<WriteOp, { _tag: "Create" }>))
            : yield* changeGroup(g.collection, g.items.map((x) => x.op as Changing))
          rs.forEach((r, k) => {
            out[(g.items[k] as { i: number }).i] = r
          })
          if (g.collection === "Accounts" || g.collection === "Items") {
            // New codes: the next mapping must see them.
            lookup = undefined
          }
        }
        return out.map((r) => r ?? failed(protocol("no result for an operation")))
      })

    const withPriority = <A, E, R>(priority: Priority, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.provideService(effect, CurrentPriority, priority)

    return {
      provider: PROVIDER,
      connectionId: context.connectionId,
      list,
      listPage,
      read,
      changes,
      write,
      withPriority
    } satisfies ProviderClient
  })

export const Xero: Provider = {
  id: PROVIDER,
  displayName: "Xero",
  entities: capabilities,
  rateLimit: { requestsPerMinute: 60, concurrent: 5, requestsPerDay: DAY_LIMIT, batchSize: BATCH_SIZE },
  auth,
  webhooks,
  defaultBaseUrl: "https://api.xero.com/api.xro/2.0",
  client
}

/** A fresh idempotency key (for callers without one of their own). */
export const newIdempotencyKey = (): string => randomUUID()
