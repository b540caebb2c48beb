/**
 * The QuickBooks Online adapter: Accounting API v3 over HTTP.
 *
 * - Reads: `GET /v3/company/{realm}/{entity}/{id}`; lists page through the
 *   query endpoint (`select * from X where … ORDERBY Id STARTPOSITION n
 *   MAXRESULTS m`, at most 1000 a page); changes come from `/cdc`. Its
 *   `changedSince` is inclusive and reaches back 30 days only, so the cursor
 *   follows QuickBooks' own clock: past a full page it is the newest
 *   LastUpdatedTime seen (page on from there); otherwise it is the answer's
 *   `time` less a few seconds of settling (a commit can show in the feed a
 *   moment late), or the newest change if that is later. A change is never
 *   missed, may be seen twice within those seconds (harmless for a
 *   state-based engine), and a quiet connection's cursor keeps up with the
 *   clock instead of falling out of the 30-day window. A cursor that fell out
 *   anyway (the engine was down for a month) is brought inside it, with a
 *   warning: the changes before are left to reconciliation.
 * - Writes: one operation goes to `POST /{entity}` (`?operation=delete|void`),
 *   several go to `/batch` (30 a request by default); every write carries
 *   `requestid` (the operation's idempotency key, or a digest of the keys of
 *   a batch), so a retried request is answered, not re-executed. Updates send
 *   the SyncToken they were based on, sparse: a stale one is a
 *   `StaleVersion`, never forced.
 * - Pacing: one RateLimiter per connection (500 requests/minute, 10 at
 *   once); a 429 pauses the whole connection for Retry-After (or a growing
 *   backoff) and retries; a 401 invalidates the access token and retries
 *   with a fresh one (twice at most, then `NeedsReauth`); 5xx, timeouts and
 *   network errors retry with bounded
 *   exponential backoff, then `ProviderUnavailable`.
 * - Faults become typed errors keeping QuickBooks' code, Message, Detail and
 *   element (`ProviderRejected`, `StaleVersion` for 5010, `NotFound` for 610
 *   on a read).
 */
import { Canonical } from "@concord/core"
import { Clock, Context, Effect, Option, Random, Redacted, Schema, type Scope, Stream } from "effect"
import { createHash } from "node:crypto"
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
  ChangesPage,
  ChangeNotice,
  ConnectionContext,
  EntityCapabilities,
  EntityType,
  ListOptions,
  OAuthApp,
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
import * as Mapping from "./Mapping.ts"
import { quote } from "./Query.ts"
import * as Wire from "./Wire.ts"

export const PROVIDER_ID = "quickbooks"
export const DEFAULT_BASE_URL = "https://quickbooks.api.intuit.com"
export const DEFAULT_ENDPOINTS = {
  authorizeUrl: "https://appcenter.intuit.com/connect/oauth2",
  tokenUrl: "https://oauth.platform.intuit.com/oauth2/v1/tokens/bearer",
  revokeUrl: "https://developer.api.intuit.com/v2/oauth2/tokens/revoke"
} as const
export const SCOPE = "com.intuit.quickbooks.accounting"
export const MINOR_VERSION = 75
export const BATCH_SIZE = 30
const MAX_PAGE = 1000
const CDC_MAX = 1000
/** How far back `/cdc` reaches. */
const CDC_WINDOW_MS = 30 * 86_400_000
/** A cursor brought inside the window keeps this much margin against the two clocks disagreeing. */
const CDC_WINDOW_MARGIN_MS = 10 * 60_000
/** The newest seconds of an answer are read again by the next poll: a commit can reach the feed a moment late. */
const CDC_SETTLE_MS = 5_000

type Json = Record<string, unknown>

// ---------------------------------------------------------------------------
// Capabilities

const cap = (
  entity: EntityType,
  opts: { write?: boolean; remove: EntityCapabilities["remove"]; webhooks?: boolean; changeFeed?: boolean; customFields?: boolean }
): EntityCapabilities => ({
  read: true,
  create: opts.write ?? true,
  update: opts.write ?? true,
  remove: opts.remove,
  webhooks: opts.webhooks ?? true,
  changeFeed: opts.changeFeed ?? true,
  batchSize: BATCH_SIZE,
  idempotency: opts.write ?? true,
  fields: Mapping.fields[entity],
  customFields: opts.customFields ?? false
})

export const capabilities: Readonly<Partial<Record<EntityType, EntityCapabilities>>> = {
  account: cap("account", { remove: "archive" }),
  currency: cap("currency", { remove: "archive", webhooks: false }),
  tax_rate: cap("tax_rate", { write: false, remove: "none", webhooks: false, changeFeed: false }),
  tracking_category: cap("tracking_category", { remove: "archive" }),
  contact: cap("contact", { remove: "archive" }),
  item: cap("item", { remove: "archive" }),
  invoice: cap("invoice", { remove: "void", customFields: true }),
  credit_note: cap("credit_note", { remove: "delete", customFields: true }),
  sales_receipt: cap("sales_receipt", { remove: "void", customFields: true }),
  refund: cap("refund", { remove: "delete", customFields: true }),
  bill: cap("bill", { remove: "delete" }),
  vendor_credit: cap("vendor_credit", { remove: "delete" }),
  expense: cap("expense", { remove: "delete" }),
  payment: cap("payment", { remove: "void" }),
  bill_payment: cap("bill_payment", { remove: "void" }),
  journal_entry: cap("journal_entry", { remove: "delete" }),
  deposit: cap("deposit", { remove: "delete" }),
  transfer: cap("transfer", { remove: "delete" })
}

// ---------------------------------------------------------------------------
// OAuth 2.0

const endpointsOf = (app: OAuthApp) => ({ ...DEFAULT_ENDPOINTS, ...app.endpoints })

const tokenRequest = (app: OAuthApp, form: Record<string, string>): Effect.Effect<{ status: number; body: unknown }, AuthFailed> =>
  Http.send({
    method: "POST",
    url: endpointsOf(app).tokenUrl,
    headers: {
      authorization: Http.basicAuth(app),
      accept: "application/json",
      "content-type": "application/x-www-form-urlencoded"
    },
    body: new URLSearchParams(form).toString()
  }).pipe(
    Effect.map((answer) => {
      let body: unknown
      try {
        body = JSON.parse(answer.text)
      } catch {
        body = answer.text
      }
      return { status: answer.status, body }
    }),
    Effect.timeout(30_000),
    Effect.catch((e) =>
      Effect.fail(new AuthFailed({ provider: PROVIDER_ID, reason: `token endpoint unreachable: ${"reason" in e ? e.reason : "no answer within 30 s"}` }))
    )
  )

const toTokenSet = (body: unknown): Effect.Effect<TokenSet, AuthFailed> =>
  Effect.gen(function*() {
    const decoded = Schema.decodeUnknownResult(Wire.TokenResponse)(body)
    if (decoded._tag === "Failure") {
      return yield* new AuthFailed({ provider: PROVIDER_ID, reason: `unexpected token response: ${String(decoded.failure)}` })
    }
    const t = decoded.success
    const now = yield* Clock.currentTimeMillis
    return {
      accessToken: Redacted.make(t.access_token),
      refreshToken: Redacted.make(t.refresh_token),
      accessTokenExpiresAt: now + t.expires_in * 1000,
      ...(t.x_refresh_token_expires_in === undefined ? {} : { refreshTokenExpiresAt: now + t.x_refresh_token_expires_in * 1000 }),
      scope: SCOPE
    }
  })

const tokenError = (status: number, body: unknown): { error: string; description: string } => {
  const d = Schema.decodeUnknownResult(Wire.TokenError)(body)
  return d._tag === "Success"
    ? { error: d.success.error, description: d.success.error_description ?? d.success.error }
    : { error: `http_${status}`, description: typeof body === "string" ? body.slice(0, 200) : JSON.stringify(body).slice(0, 200) }
}

export const auth: Provider["auth"] = {
  authorizationUrl: (app, state) => {
    const url = new URL(endpointsOf(app).authorizeUrl)
    url.searchParams.set("client_id", app.clientId)
    url.searchParams.set("response_type", "code")
    url.searchParams.set("scope", SCOPE)
    url.searchParams.set("redirect_uri", app.redirectUri)
    url.searchParams.set("state", state)
    return url.toString()
  },
  exchangeCode: (app, code, callbackParams) =>
    Effect.gen(function*() {
      const realmId = callbackParams.realmId
      if (realmId === undefined || realmId === "") {
        return yield* new AuthFailed({ provider: PROVIDER_ID, reason: "the callback carries no realmId (the QuickBooks company id)" })
      }
      const r = yield* tokenRequest(app, { grant_type: "authorization_code", code, redirect_uri: app.redirectUri })
      if (r.status !== 200) {
        const e = tokenError(r.status, r.body)
        return yield* new AuthFailed({ provider: PROVIDER_ID, reason: `code exchange refused: ${e.error} (${e.description})` })
      }
      return { tokens: yield* toTokenSet(r.body), accounts: [{ accountId: realmId }] }
    }),
  refresh: (app, refreshToken) =>
    Effect.gen(function*() {
      const r = yield* tokenRequest(app, { grant_type: "refresh_token", refresh_token: Redacted.value(refreshToken) })
      if (r.status === 200) return yield* toTokenSet(r.body)
      const e = tokenError(r.status, r.body)
      if (e.error === "invalid_grant") {
        return yield* new NeedsReauth({ provider: PROVIDER_ID, connectionId: "unknown", reason: `invalid_grant: ${e.description}` })
      }
      return yield* new AuthFailed({ provider: PROVIDER_ID, reason: `refresh refused: ${e.error} (${e.description})` })
    })
}

// ---------------------------------------------------------------------------
// Webhooks

const webhookOperation = (op: string): ChangeNotice["operation"] | undefined => {
  switch (op.toLowerCase()) {
    case "create":
    case "created":
      return "create"
    case "update":
    case "updated":
      return "update"
    case "delete":
    case "deleted":
      return "delete"
    case "void":
    case "voided":
      return "void"
    case "merge":
    case "merged":
      return "merge"
    default:
      return undefined
  }
}

const instant = (s: string): string => {
  const ms = Date.parse(s.replace(/([+-]\d{2})(\d{2})$/, "$1:$2"))
  return Number.isNaN(ms) ? s : new Date(ms).toISOString()
}

const notice = (accountId: string, entityName: string, id: string, op: string, at: string): ChangeNotice | undefined => {
  const name = Wire.entityNameOf(entityName)
  const entity = name === undefined ? undefined : Mapping.canonicalEntityOf(name)
  const operation = webhookOperation(op)
  if (name === undefined || entity === undefined || operation === undefined) return undefined
  return { accountId, entity, externalId: Mapping.externalIdOf(name, id), operation, occurredAt: instant(at) }
}

/** Parses a verified body (legacy `eventNotifications` or a CloudEvents array) into notices. */
export const parseWebhook = (rawBody: Uint8Array): { ok: true; notices: Array<ChangeNotice> } | { ok: false; reason: string } => {
  let body: unknown
  try {
    body = JSON.parse(Buffer.from(rawBody).toString("utf8"))
  } catch (e) {
    return { ok: false, reason: `body is not JSON: ${e instanceof Error ? e.message : String(e)}` }
  }
  const notices: Array<ChangeNotice> = []
  if (Array.isArray(body)) {
    const d = Schema.decodeUnknownResult(Wire.CloudEvents)(body)
    if (d._tag === "Failure") return { ok: false, reason: `not a CloudEvents batch: ${String(d.failure)}` }
    for (const e of d.success) {
      const m = /^qbo\.([a-z]+)\.([a-z]+)\.v\d+$/i.exec(e.type)
      if (m === null) continue
      const n = notice(e.intuitaccountid, m[1] as string, e.intuitentityid, m[2] as string, e.time)
      if (n !== undefined) notices.push(n)
    }
    return { ok: true, notices }
  }
  const d = Schema.decodeUnknownResult(Wire.LegacyNotification)(body)
  if (d._tag === "Failure") return { ok: false, reason: `not a QuickBooks notification: ${String(d.failure)}` }
  for (const n of d.success.eventNotifications) {
    for (const e of n.dataChangeEvent.entities) {
      const x = notice(n.realmId, e.name, e.id, e.operation, e.lastUpdated)
      if (x !== undefined) notices.push(x)
      if (e.deletedId !== undefined) {
        const merged = notice(n.realmId, e.name, e.deletedId, "delete", e.lastUpdated)
        if (merged !== undefined) notices.push(merged)
      }
    }
  }
  return { ok: true, notices }
}

export const webhooks: ProviderWebhooks = {
  signatureHeader: "intuit-signature",
  receive: (headers, rawBody, secret): WebhookVerdict => {
    const signature = Object.entries(headers).find(([k]) => k.toLowerCase() === "intuit-signature")?.[1]
    if (!verifyHmacSha256Base64(Redacted.value(secret), rawBody, signature)) {
      return { _tag: "Invalid", reason: signature === undefined ? "missing intuit-signature header" : "intuit-signature does not match the body" }
    }
    const parsed = parseWebhook(rawBody)
    return parsed.ok ? { _tag: "Notices", notices: parsed.notices } : { _tag: "Invalid", reason: parsed.reason }
  }
}

// ---------------------------------------------------------------------------
// Client

export interface QuickBooksClientOptions {
  /** `minorversion` sent with every request (default 75). */
  readonly minorVersion?: number
  /** Operations per `/batch` request (default 30; Intuit's learn pages say 10 for some accounts). */
  readonly batchSize?: number
  /** Records per query page when the caller does not say (default and maximum 1000). */
  readonly pageSize?: number
  /** One request's time limit (default 30 s). */
  readonly timeoutMs?: number
  /** Retries after 5xx, timeouts and network errors (default 5). */
  readonly maxRetries?: number
  /** Retries after 429 (default 30). */
  readonly maxThrottleRetries?: number
  /** First backoff delay (default 250 ms; doubles, capped at 15 s). */
  readonly backoffMs?: number
  /** The company's home currency, for records without a CurrencyRef (default USD). */
  readonly homeCurrency?: string
  /** Requests per minute and concurrency (default 500 and 10, QuickBooks' per-realm limits). */
  readonly requestsPerMinute?: number
  readonly concurrent?: number
}

const PriorityRef = Context.Reference<Priority>("concord/quickbooks/Priority", { defaultValue: () => "live" })

interface Call {
  readonly method: "GET" | "POST"
  readonly path: string
  readonly params?: Readonly<Record<string, string>>
  readonly body?: unknown
  /** For errors: the canonical entity, record and version concerned. */
  readonly entity: string
  readonly recordId?: string
  readonly version?: string
  readonly read?: boolean
}

type Attempt =
  | { readonly _tag: "Response"; readonly status: number; readonly headers: Readonly<Record<string, string>>; readonly text: string }
  | { readonly _tag: "Transport"; readonly reason: string }

/** One decoder per QuickBooks entity, built once. */
const wireDecoders = Object.fromEntries(
  Wire.entityNames.map((n) => [n, Schema.decodeUnknownResult(Wire.entitySchemas[n] as Schema.Codec<unknown, unknown>)])
) as Record<Wire.EntityName, (u: unknown) => ReturnType<ReturnType<typeof Schema.decodeUnknownResult<Schema.Codec<unknown, unknown>>>>>

const digest = (s: string, length: number): string => createHash("sha256").update(s).digest("hex").slice(0, length)

/** QuickBooks takes requestid up to 50 characters (36 with batch). */
const requestIdFor = (key: string, max: number): string => (key.length <= max && /^[A-Za-z0-9_.:-]+$/.test(key) ? key : digest(key, max))

export const makeClient = (context: ConnectionContext, options: QuickBooksClientOptions = {}): Effect.Effect<ProviderClient, never, Scope.Scope> =>
  Effect.gen(function*() {
    const limiter = yield* RateLimiter.make({
      requestsPerMinute: options.requestsPerMinute ?? 500,
      concurrent: options.concurrent ?? 10,
      ...(context.unlimited === undefined ? {} : { unlimited: context.unlimited })
    })
    const minor = String(options.minorVersion ?? MINOR_VERSION)
    const batchSize = Math.max(1, options.batchSize ?? BATCH_SIZE)
    const timeoutMs = options.timeoutMs ?? 30_000
    const maxRetries = options.maxRetries ?? 5
    const maxThrottle = options.maxThrottleRetries ?? 30
    const backoffMs = options.backoffMs ?? 250
    const defaultPage = options.pageSize ?? MAX_PAGE
    const mctx: Mapping.MappingContext = { homeCurrency: options.homeCurrency ?? "USD" }
    const root = `${context.baseUrl.replace(/\/+$/, "")}/v3/company/${encodeURIComponent(context.accountId)}`
    const base = { provider: PROVIDER_ID, connectionId: context.connectionId }

    const protocol = (reason: string) => new ProviderProtocolError({ ...base, reason })

    const backoff = (n: number) =>
      Random.next.pipe(Effect.map((r) => Math.min(15_000, backoffMs * 2 ** n) * (0.75 + r * 0.5)))

    const attempt = (call: Call, token: Redacted.Redacted<string>): Effect.Effect<Attempt> => {
      const query = new URLSearchParams({ ...call.params, minorversion: minor }).toString()
      const headers: Record<string, string> = { authorization: `Bearer ${Redacted.value(token)}`, accept: "application/json" }
      if (call.body !== undefined) headers["content-type"] = "application/json"
      return Http.send({
        method: call.method,
        url: `${root}/${call.path}?${query}`,
        headers,
        ...(call.body === undefined ? {} : { body: JSON.stringify(call.body) })
      }).pipe(
        Effect.map((answer): Attempt => ({ _tag: "Response", status: answer.status, headers: answer.headers, text: answer.text })),
        Effect.timeout(timeoutMs),
        Effect.catch((e) => Effect.succeed<Attempt>({ _tag: "Transport", reason: "reason" in e ? e.reason : `no answer within ${timeoutMs} ms` }))
      )
    }

    const parseBody = (text: string): Effect.Effect<Json, ProviderProtocolError> => {
      try {
        const v: unknown = JSON.parse(text)
        if (typeof v === "object" && v !== null && !Array.isArray(v)) return Effect.succeed(v as Json)
      } catch {
        // fall through
      }
      return Effect.fail(protocol(`expected a JSON object, got ${JSON.stringify(text.slice(0, 120))}`))
    }

    const parseLoose = (text: string): Json => {
      try {
        const v: unknown = JSON.parse(text)
        return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Json) : {}
      } catch {
        return {}
      }
    }

    const faultOf = (body: Json): Wire.Fault | undefined => {
      if (body.Fault === undefined) return undefined
      const d = Schema.decodeUnknownResult(Wire.Fault)(body.Fault)
      return d._tag === "Success" ? d.success : { Error: [{ Message: "Malformed Fault", Detail: JSON.stringify(body.Fault).slice(0, 300), code: "unknown" }] }
    }

    const hintFor = (code: string, element: string | undefined): string | undefined => {
      switch (code) {
        case "2500":
          return `create the referenced record in QuickBooks or fix the reference${element === undefined ? "" : ` in ${element}`}`
        case "610":
          return "the referenced record is inactive or deleted in QuickBooks: reactivate it or point at another"
        case "6240":
          return "another QuickBooks record already uses this name: rename one of them"
        case "2020":
          return `supply ${element ?? "the missing field"}`
        case "6000":
          return "QuickBooks' business rules refused the record; see the detail"
        default:
          return undefined
      }
    }

    const faultError = (fault: Wire.Fault, call: Call): ProviderError => {
      const first = fault.Error[0] ?? { Message: "Fault without errors", code: "unknown" }
      if (first.code === "5010") {
        return new StaleVersion({ ...base, entity: call.entity, externalId: call.recordId ?? "?", sentVersion: call.version ?? "?" })
      }
      if (first.code === "610" && call.read === true) {
        return new NotFound({ ...base, entity: call.entity, externalId: call.recordId ?? "?" })
      }
      if (first.code === "3001") return new RateLimited({ ...base, retryAfterMs: 60_000, limit: "minute" })
      const others = fault.Error.slice(1).map((e) => `[${e.code}] ${e.Message}${e.Detail === undefined ? "" : `: ${e.Detail}`}`)
      const detail = [first.Detail, ...others].filter((s): s is string => s !== undefined).join("; ")
      const hint = hintFor(first.code, first.element)
      return new ProviderRejected({
        ...base,
        entity: call.entity,
        ...(call.recordId === undefined ? {} : { recordId: call.recordId }),
        code: first.code,
        providerMessage: first.Message,
        ...(detail === "" ? {} : { detail }),
        ...(first.element === undefined || first.element === "" ? {} : { field: first.element }),
        ...(hint === undefined ? {} : { hint })
      })
    }

    /** One API call with pacing, token refresh, throttling and retries; the body of a 2xx answer without a Fault. */
    const send = (call: Call): Effect.Effect<Json, ProviderError> =>
      Effect.gen(function*() {
        const priority = yield* PriorityRef
        let transient = 0
        let throttled = 0
        let reauthed = 0
        for (;;) {
          const [token, outcome] = yield* limiter.run(
            Effect.gen(function*() {
              const token = yield* context.tokens.accessToken
              return [token, yield* attempt(call, token)] as const
            }),
            priority
          )
          if (context.onCall !== undefined) yield* context.onCall(outcome._tag === "Transport" ? 0 : outcome.status)
          if (outcome._tag === "Transport") {
            if (transient >= maxRetries) return yield* new ProviderUnavailable({ ...base, reason: `${call.method} ${call.path}: ${outcome.reason}` })
            yield* Effect.sleep(yield* backoff(transient++))
            continue
          }
          const { status } = outcome
          if (status === 429) {
            if (throttled >= maxThrottle) {
              return yield* new RateLimited({ ...base, retryAfterMs: retryAfterMs(outcome.headers) ?? 60_000, limit: "minute" })
            }
            const wait = retryAfterMs(outcome.headers) ?? (yield* backoff(throttled + 2))
            throttled++
            yield* limiter.pause(wait)
            // An unlimited limiter ignores pauses: this request still waits its turn.
            if (context.unlimited === true) yield* Effect.sleep(wait)
            continue
          }
          if (status === 401) {
            // Retry with a fresh token; a token refused right after a refresh (twice) means the grant is gone.
            if (reauthed >= 2) {
              return yield* new NeedsReauth({ ...base, reason: `QuickBooks refused a freshly refreshed access token (${outcome.text.slice(0, 200)})` })
            }
            reauthed++
            yield* context.tokens.invalidate(token)
            continue
          }
          if (status === 403) {
            const fault = faultOf(parseLoose(outcome.text))
            return yield* new NeedsReauth({ ...base, reason: `QuickBooks denied access to company ${context.accountId}: ${fault?.Error[0]?.Detail ?? fault?.Error[0]?.Message ?? "403"}` })
          }
          if (status >= 500) {
            if (transient >= maxRetries) {
              return yield* new ProviderUnavailable({ ...base, status, reason: `${call.method} ${call.path} answered ${status}: ${outcome.text.slice(0, 200)}` })
            }
            yield* Effect.sleep(yield* backoff(transient++))
            continue
          }
          const body = yield* parseBody(outcome.text)
          const fault = faultOf(body)
          if (fault !== undefined) return yield* Effect.fail(faultError(fault, call))
          if (status >= 400) return yield* protocol(`${call.method} ${call.path} answered ${status} without a Fault`)
          return body
        }
      })

    // --- decoding ---------------------------------------------------------------

    const decodeWire = (name: Wire.EntityName, value: unknown, where: string): Effect.Effect<unknown, ProviderProtocolError> => {
      const d = wireDecoders[name](value)
      return d._tag === "Success" ? Effect.succeed(d.success) : Effect.fail(protocol(`${where}: ${String(d.failure)}`))
    }

    const toRecord = (name: Wire.EntityName, wire: unknown, ctx: Mapping.MappingContext): Effect.Effect<ProviderRecord, ProviderError> => {
      const w = wire as { Id: string; SyncToken: string; MetaData?: Wire.MetaData }
      const entity = Mapping.canonicalEntityOf(name)
      if (entity === undefined) return Effect.fail(new Unsupported({ provider: PROVIDER_ID, entity: name, reason: "no canonical entity" }))
      const mapped = Mapping.fromWire(name, wire, ctx)
      if (!mapped.ok) return Effect.fail(new Unsupported({ provider: PROVIDER_ID, entity, reason: `${name} ${w.Id}: ${mapped.reason}` }))
      const valid = Canonical.validate(entity, mapped.value)
      if (!valid.ok) {
        return Effect.fail(protocol(`${name} ${w.Id} does not make a valid canonical ${entity}: ${valid.issues.map((i) => `${i.path}: ${i.message}`).join("; ")}`))
      }
      return Effect.succeed({
        entity,
        externalId: Mapping.externalIdOf(name, w.Id),
        version: w.SyncToken,
        updatedAt: Mapping.updatedAtOf(w),
        record: valid.value as Canonical.CanonicalRecord
      })
    }

    const fromBody = (name: Wire.EntityName, body: Json, ctx: Mapping.MappingContext, where: string) =>
      decodeWire(name, body[name], `${where}: ${name}`).pipe(Effect.flatMap((w) => toRecord(name, w, ctx)))

    // --- tax codes need their tax rates ------------------------------------------

    const taxRates: Effect.Effect<ReadonlyMap<string, Wire.TaxRate>, ProviderError> = Effect.gen(function*() {
      const out = new Map<string, Wire.TaxRate>()
      for (let start = 1;; start += MAX_PAGE) {
        const page = yield* queryPage("TaxRate", `select * from TaxRate where Active IN (true, false) STARTPOSITION ${start} MAXRESULTS ${MAX_PAGE}`, "tax_rate")
        for (const r of page.items) out.set((r as Wire.TaxRate).Id, r as Wire.TaxRate)
        if (page.items.length < MAX_PAGE) return out
      }
    })

    const contextFor = (entity: EntityType): Effect.Effect<Mapping.MappingContext, ProviderError> =>
      entity === "tax_rate" ? taxRates.pipe(Effect.map((rates) => ({ ...mctx, taxRates: rates }))) : Effect.succeed(mctx)

    // --- query -------------------------------------------------------------------

    const queryPage = (name: Wire.EntityName, text: string, entity: string) =>
      send({ method: "GET", path: "query", params: { query: text }, entity }).pipe(
        Effect.flatMap((body) => {
          const qr = body.QueryResponse
          if (typeof qr !== "object" || qr === null) return Effect.fail(protocol(`query answer has no QueryResponse (${text})`))
          const items = (qr as Json)[name]
          if (items === undefined) return Effect.succeed({ items: [] as Array<unknown> })
          if (!Array.isArray(items)) return Effect.fail(protocol(`QueryResponse.${name} is not an array`))
          return Effect.forEach(items, (item, i) => decodeWire(name, item, `QueryResponse.${name}[${i}]`)).pipe(Effect.map((decoded) => ({ items: decoded })))
        })
      )

    /** One query page of one wire entity: its records, and the next STARTPOSITION when the page was full. */
    const wirePage = (entity: EntityType, name: Wire.EntityName, ctx: Mapping.MappingContext, options: ListOptions | undefined, start: number) => {
      const size = Math.min(MAX_PAGE, Math.max(1, Math.floor(options?.pageSize ?? defaultPage)))
      const where: Array<string> = []
      if (Wire.nameListEntities.has(name)) where.push("Active IN (true, false)")
      if (options?.modifiedSince !== undefined) where.push(`MetaData.LastUpdatedTime >= ${quote(options.modifiedSince)}`)
      const clause = where.length === 0 ? "" : ` where ${where.join(" AND ")}`
      return queryPage(name, `select * from ${name}${clause} ORDERBY Id STARTPOSITION ${start} MAXRESULTS ${size}`, entity).pipe(
        Effect.flatMap(({ items }) =>
          Effect.forEach(items, (w) =>
            toRecord(name, w, ctx).pipe(
              Effect.map(Option.some),
              Effect.catchTags({
                Unsupported: (e) => Effect.logWarning(`QuickBooks ${name} skipped: ${e.message}`).pipe(Effect.as(Option.none<ProviderRecord>())),
                ProviderProtocolError: (e) => Effect.logWarning(`QuickBooks ${name} skipped: ${e.message}`).pipe(Effect.as(Option.none<ProviderRecord>()))
              })
            )).pipe(
              Effect.map((records) => ({
                records: records.flatMap((r) => (Option.isSome(r) ? [r.value] : [])),
                next: items.length < size ? undefined : start + items.length
              }))
            )
        )
      )
    }

    const listWire = (entity: EntityType, name: Wire.EntityName, ctx: Mapping.MappingContext, options: ListOptions | undefined) =>
      Stream.paginate(1, (start: number) =>
        wirePage(entity, name, ctx, options, start).pipe(
          Effect.map((p) => [p.records, p.next === undefined ? Option.none<number>() : Option.some(p.next)] as const)
        )
      )

    const list: ProviderClient["list"] = (entity, options) => {
      if (capabilities[entity] === undefined) {
        return Stream.fail(new Unsupported({ provider: PROVIDER_ID, entity, reason: "QuickBooks has no such entity" }))
      }
      return Stream.unwrap(
        contextFor(entity).pipe(
          Effect.map((ctx) =>
            Mapping.wireEntitiesOf[entity].map((name) => listWire(entity, name, ctx, options)).reduce((a, b) => Stream.concat(a, b))
          )
        )
      )
    }

    /** Cursor: `<index of the wire entity>:<STARTPOSITION>` (contacts span Customer and Vendor). */
    const listPage: ProviderClient["listPage"] = (entity, options) =>
      Effect.gen(function*() {
        if (capabilities[entity] === undefined) return yield* new Unsupported({ provider: PROVIDER_ID, entity, reason: "QuickBooks has no such entity" })
        const names = Mapping.wireEntitiesOf[entity]
        const m = /^(\d+):(\d+)$/.exec(options?.cursor ?? "0:1")
        if (m === null) return yield* protocol(`not a QuickBooks list cursor: ${options?.cursor}`)
        let index = Number(m[1])
        let start = Number(m[2])
        const ctx = yield* contextFor(entity)
        for (;;) {
          const name = names[index]
          if (name === undefined) return { records: [], next: undefined }
          const page = yield* wirePage(entity, name, ctx, options, start)
          if (page.next !== undefined) return { records: page.records, next: `${index}:${page.next}` }
          const more = index + 1 < names.length ? `${index + 1}:1` : undefined
          if (page.records.length > 0 || more === undefined) return { records: page.records, next: more }
          index++
          start = 1
        }
      })

    /** `select count(*)` of each wire entity behind the canonical one, with `list`'s filter. */
    const count: NonNullable<ProviderClient["count"]> = (entity, options) =>
      Effect.gen(function*() {
        if (capabilities[entity] === undefined) return yield* new Unsupported({ provider: PROVIDER_ID, entity, reason: "QuickBooks has no such entity" })
        let total = 0
        for (const name of Mapping.wireEntitiesOf[entity]) {
          const where: Array<string> = []
          if (Wire.nameListEntities.has(name)) where.push("Active IN (true, false)")
          if (options?.modifiedSince !== undefined) where.push(`MetaData.LastUpdatedTime >= ${quote(options.modifiedSince)}`)
          const clause = where.length === 0 ? "" : ` where ${where.join(" AND ")}`
          const body = yield* send({ method: "GET", path: "query", params: { query: `select count(*) from ${name}${clause}` }, entity })
          const qr = body.QueryResponse
          const n = typeof qr === "object" && qr !== null ? (qr as Json).totalCount : undefined
          if (typeof n !== "number") return yield* protocol(`count of ${name}: the answer has no QueryResponse.totalCount`)
          total += n
        }
        return total
      })

    // --- read --------------------------------------------------------------------

    const read: ProviderClient["read"] = Effect.fn("QuickBooks.read")(function*(entity: EntityType, externalId: string): Effect.fn.Return<ProviderRecord, ProviderError> {
        if (capabilities[entity] === undefined) return yield* new Unsupported({ provider: PROVIDER_ID, entity, reason: "QuickBooks has no such entity" })
        const target = Mapping.parseExternalId(entity, externalId)
        if (!target.ok) return yield* new NotFound({ ...base, entity, externalId })
        const { name, id } = target.value
        const ctx = yield* contextFor(entity)
        const body = yield* send({ method: "GET", path: `${Wire.pathOf(name)}/${encodeURIComponent(id)}`, entity, recordId: externalId, read: true })
        return yield* fromBody(name, body, ctx, `GET ${Wire.pathOf(name)}/${id}`)
      })

    // --- changes -----------------------------------------------------------------

    const changes: ProviderClient["changes"] = Effect.fn("QuickBooks.changes")(function*(entities: ReadonlyArray<EntityType>, cursor: string | undefined, since?: string): Effect.fn.Return<ChangesPage, ProviderError> {
        const names = [...new Set(entities.filter((e) => capabilities[e]?.changeFeed === true).flatMap((e) => Mapping.wireEntitiesOf[e]))]
        const now = yield* Clock.currentTimeMillis
        const oldest = now - CDC_WINDOW_MS + CDC_WINDOW_MARGIN_MS
        const requested = cursor ?? since
        let changedSince = requested ?? new Date(oldest).toISOString()
        let gap: ChangesPage["gap"]
        if (requested !== undefined && !(Date.parse(requested) >= oldest)) {
          changedSince = new Date(oldest).toISOString()
          gap = { from: requested, to: changedSince }
          yield* Effect.logWarning(
            `QuickBooks connection ${context.connectionId}: changes since ${requested} were asked for, but /cdc reaches back 30 days only; reading from ${changedSince}. A reconciliation finds any change made before that.`
          )
        }
        if (names.length === 0) return { changes: [], cursor: changedSince, hasMore: false }
        const body = yield* send({ method: "GET", path: "cdc", params: { entities: names.join(","), changedSince }, entity: entities.join(",") })
        const decoded = Schema.decodeUnknownResult(Wire.CdcResponse)(body)
        if (decoded._tag === "Failure") return yield* protocol(`cdc: ${String(decoded.failure)}`)
        const out: Array<{ change: Change; at: number }> = []
        let newest = changedSince
        let newestMs = Date.parse(changedSince)
        let seen = 0
        for (const block of decoded.success.CDCResponse ?? []) {
          if (block.Fault !== undefined) return yield* Effect.fail(faultError(block.Fault, { method: "GET", path: "cdc", entity: entities.join(",") }))
          for (const qr of block.QueryResponse ?? []) {
            for (const [key, value] of Object.entries(qr)) {
              const name = Wire.entityNameOf(key)
              if (name === undefined || name !== key || !Array.isArray(value)) continue
              const entity = Mapping.canonicalEntityOf(name)
              if (entity === undefined) continue
              for (const [i, obj] of value.entries()) {
                seen++
                const o = obj as Json
                const meta = o.MetaData as Wire.MetaData | undefined
                const at = meta?.LastUpdatedTime ?? decoded.success.time ?? new Date(now).toISOString()
                const atMs = Date.parse(at)
                if (atMs > newestMs) {
                  newest = at
                  newestMs = atMs
                }
                if (o.status === "Deleted") {
                  out.push({ change: { _tag: "Deleted", entity, externalId: Mapping.externalIdOf(name, String(o.Id)), deletedAt: at }, at: atMs })
                  continue
                }
                const record = yield* decodeWire(name, o, `CDCResponse.${name}[${i}]`).pipe(
                  Effect.flatMap((w) => toRecord(name, w, mctx)),
                  Effect.map(Option.some),
                  Effect.catchTags({
                    Unsupported: (e) => Effect.logWarning(`QuickBooks ${name} change skipped: ${e.message}`).pipe(Effect.as(Option.none<ProviderRecord>())),
                    ProviderProtocolError: (e) => Effect.logWarning(`QuickBooks ${name} change skipped: ${e.message}`).pipe(Effect.as(Option.none<ProviderRecord>()))
                  })
                )
                if (Option.isSome(record)) out.push({ change: { _tag: "Upserted", record: record.value }, at: atMs })
              }
            }
          }
        }
        out.sort((a, b) => a.at - b.at)
        const hasMore = seen >= CDC_MAX
        // Not paging on: move up to QuickBooks' clock at this answer, less the settling seconds.
        const answeredAt = decoded.success.time === undefined ? Number.NaN : Date.parse(decoded.success.time)
        if (!hasMore && Number.isFinite(answeredAt) && answeredAt - CDC_SETTLE_MS > newestMs) {
          newest = new Date(answeredAt - CDC_SETTLE_MS).toISOString()
        }
        return { changes: out.map((c) => c.change), cursor: newest, hasMore, ...(gap === undefined ? {} : { gap }) }
      })

    // --- writes ------------------------------------------------------------------

    interface Prepared {
      readonly index: number
      readonly op: WriteOp
      readonly name: Wire.EntityName
      readonly operation: "create" | "update" | "delete" | "void"
      /** `include=void` (`optionsData` in a batch). */
      readonly include?: "void"
      readonly body: Json
    }

    const prepare = (op: WriteOp, index: number, today: string): Prepared | WriteResult => {
      const caps = capabilities[op.entity]
      const unsupported = (reason: string): WriteResult => ({ _tag: "Failed", error: new Unsupported({ provider: PROVIDER_ID, entity: op.entity, reason }) })
      if (caps === undefined) return unsupported("QuickBooks has no such entity")
      if (op._tag === "Create" || op._tag === "Update") {
        if (op._tag === "Create" ? !caps.create : !caps.update) return unsupported(`QuickBooks does not let apps ${op._tag === "Create" ? "create" : "update"} ${op.entity} records`)
        if (op.record.entity !== op.entity) return unsupported(`the record is a ${op.record.entity}, not a ${op.entity}`)
        const wire = Mapping.toWire(op.record)
        if (!wire.ok) return unsupported(wire.reason)
        if (op._tag === "Create") {
          // QuickBooks tracks an inventory item's quantity from a start date; canonical items have none: start today.
          const body = wire.value.name === "Item" && wire.value.body.Type === "Inventory" && wire.value.body.InvStartDate === undefined
            ? { ...wire.value.body, InvStartDate: today }
            : wire.value.body
          return { index, op, name: wire.value.name, operation: "create", body }
        }
        const target = Mapping.parseExternalId(op.entity, op.externalId)
        if (!target.ok) return unsupported(target.reason)
        if (target.value.name !== wire.value.name) return unsupported(`${op.externalId} is a ${target.value.name}; the record would make it a ${wire.value.name}`)
        return { index, op, name: wire.value.name, operation: "update", body: { ...wire.value.body, Id: target.value.id, SyncToken: op.version, sparse: true } }
      }
      const target = Mapping.parseExternalId(op.entity, op.externalId)
      if (!target.ok) return unsupported(target.reason)
      const ident = { Id: target.value.id, SyncToken: op.version }
      switch (caps.remove) {
        case "delete":
          return { index, op, name: target.value.name, operation: "delete", body: ident }
        case "void":
          // Invoices void with operation=void; payments, sales receipts and bill payments with a sparse update + include=void.
          return target.value.name === "Invoice"
            ? { index, op, name: target.value.name, operation: "void", body: ident }
            : { index, op, name: target.value.name, operation: "update", include: "void", body: { ...ident, sparse: true } }
        case "archive":
          return { index, op, name: target.value.name, operation: "update", body: { ...ident, sparse: true, Active: false } }
        default:
          return unsupported(`QuickBooks cannot remove ${op.entity} records`)
      }
    }

    const callFor = (p: Prepared): Pick<Call, "entity" | "recordId" | "version"> => ({
      entity: p.op.entity,
      ...(p.op._tag === "Create" ? {} : { recordId: p.op.externalId, version: p.op.version })
    })

    const resultFor = (p: Prepared, entityBody: unknown, where: string): Effect.Effect<WriteResult, ProviderError> => {
      if (p.op._tag === "Remove") {
        return Effect.succeed<WriteResult>({ _tag: "Removed", entity: p.op.entity, externalId: p.op.externalId })
      }
      return decodeWire(p.name, entityBody, where).pipe(
        Effect.flatMap((w) => toRecord(p.name, w, mctx)),
        Effect.map((record): WriteResult => ({ _tag: "Written", record }))
      )
    }

    const failed = (e: ProviderError): WriteResult => ({ _tag: "Failed", error: e })

    const writeOne = (p: Prepared): Effect.Effect<WriteResult, ProviderError> =>
      send({
        method: "POST",
        path: Wire.pathOf(p.name),
        params: {
          requestid: requestIdFor(p.op.idempotencyKey, 50),
          ...(p.operation === "create" ? {} : { operation: p.operation }),
          ...(p.include === undefined ? {} : { include: p.include })
        },
        body: p.body,
        ...callFor(p)
      }).pipe(
        Effect.flatMap((body) => resultFor(p, body[p.name], `POST ${Wire.pathOf(p.name)}`)),
        Effect.catch((e: ProviderError) =>
          e._tag === "ProviderRejected" || e._tag === "StaleVersion" || e._tag === "Unsupported" || e._tag === "NotFound" ? Effect.succeed(failed(e)) : Effect.fail(e)
        )
      )

    const writeBatch = (items: ReadonlyArray<Prepared>): Effect.Effect<ReadonlyArray<WriteResult>, ProviderError> =>
      Effect.gen(function*() {
        const request = {
          BatchItemRequest: items.map((p, i) => ({
            bId: String(i + 1),
            operation: p.operation,
            ...(p.include === undefined ? {} : { optionsData: p.include }),
            [p.name]: p.body
          }))
        }
        let rejectedWhole: ProviderError | undefined
        // A Fault for the whole request (e.g. too many operations) fails each of its operations, not the call.
        const body = yield* send({
          method: "POST",
          path: "batch",
          params: { requestid: digest(items.map((p) => p.op.idempotencyKey).join("\n"), 36) },
          body: request,
          entity: [...new Set(items.map((p) => p.op.entity))].join(",")
        }).pipe(
          Effect.map((b): Json | undefined => b),
          Effect.catchTag("ProviderRejected", (e) =>
            Effect.sync(() => {
              rejectedWhole = e
              return undefined
            }))
        )
        if (body === undefined) return items.map(() => failed(rejectedWhole as ProviderError))
        const decoded = Schema.decodeUnknownResult(Wire.BatchResponse)(body)
        if (decoded._tag === "Failure") return yield* protocol(`batch: ${String(decoded.failure)}`)
        const byId = new Map<string, Json>()
        for (const r of decoded.success.BatchItemResponse) if (typeof r.bId === "string") byId.set(r.bId, r as Json)
        return yield* Effect.forEach(items, (p, i) => {
          const r = byId.get(String(i + 1))
          if (r === undefined) return Effect.succeed(failed(protocol(`batch answer has no item bId ${i + 1}`)))
          const fault = faultOf(r)
          if (fault !== undefined) return Effect.succeed(failed(faultError(fault, { method: "POST", path: "batch", ...callFor(p) })))
          return resultFor(p, r[p.name], `BatchItemResponse[bId=${i + 1}].${p.name}`).pipe(Effect.catch((e: ProviderError) => Effect.succeed(failed(e))))
        })
      })

    const write: ProviderClient["write"] = Effect.fn("QuickBooks.write")(function*(ops: ReadonlyArray<WriteOp>): Effect.fn.Return<ReadonlyArray<WriteResult>, ProviderError> {
        const results: Array<WriteResult | undefined> = ops.map(() => undefined)
        const pending: Array<Prepared> = []
        const today = new Date(yield* Clock.currentTimeMillis).toISOString().slice(0, 10)
        ops.forEach((op, i) => {
          const p = prepare(op, i, today)
          if ("_tag" in p) results[i] = p
          else pending.push(p)
        })
        if (pending.length === 1) {
          const p = pending[0] as Prepared
          results[p.index] = yield* writeOne(p)
        } else if (pending.length > 1) {
          const chunks: Array<Array<Prepared>> = []
          for (let i = 0; i < pending.length; i += batchSize) chunks.push(pending.slice(i, i + batchSize))
          yield* Effect.forEach(
            chunks,
            (chunk) =>
              writeBatch(chunk).pipe(Effect.map((rs) => {
                chunk.forEach((p, i) => {
                  results[p.index] = rs[i]
                })
              })),
            { concurrency: options.concurrent ?? 10, discard: true }
          )
        }
        return results.map((r) => r ?? failed(protocol("operation produced no result")))
      })

    const client: ProviderClient = {
      provider: PROVIDER_ID,
      connectionId: context.connectionId,
      list,
      listPage,
      count,
      read,
      changes,
      write,
      withPriority: (priority, effect) => Effect.provideService(effect, PriorityRef, priority)
    }
    return client
  })

const retryAfterMs = (headers: Readonly<Record<string, string>>): number | undefined => {
  const v = headers["retry-after"]
  if (v === undefined) return undefined
  const seconds = Number(v)
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000)
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now())
}

export const QuickBooks: Provider = {
  id: PROVIDER_ID,
  displayName: "QuickBooks Online",
  entities: capabilities,
  rateLimit: { requestsPerMinute: 500, concurrent: 10, batchSize: BATCH_SIZE },
  auth,
  webhooks,
  defaultBaseUrl: DEFAULT_BASE_URL,
  client: (context) => makeClient(context)
}
