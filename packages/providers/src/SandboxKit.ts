/**
 * Building blocks for provider sandboxes: local emulators of provider HTTP
 * APIs used by tests, the demo and users' own CI.
 *
 * - `serve`           an HTTP server with a small router (scoped);
 * - `OAuthEmulator`   authorization codes, expiring access tokens, rotating
 *                     refresh tokens (with an optional grace period), revocation;
 * - `LimitEmulator`   per-account requests/minute (sliding), concurrency and
 *                     per-day limits, answering 429 like the provider does;
 * - `Faults`          seeded fault injection: error rate, latency, 429 storms,
 *                     hung requests, tokens expiring mid-call;
 * - `WebhookDispatcher` signed webhook delivery with drop / duplicate /
 *                     reorder faults and retries.
 *
 * Emulator state is plain synchronous code; only the server's lifetime is an
 * Effect resource. Randomness is seeded so a failing chaos seed replays.
 */
import { Effect, Scope } from "effect"
import { randomBytes, randomUUID } from "node:crypto"
import * as Http from "node:http"
import type { AddressInfo } from "node:net"

// ---------------------------------------------------------------------------
// HTTP

export interface SandboxRequest {
  readonly method: string
  readonly path: string
  readonly query: URLSearchParams
  readonly headers: Http.IncomingHttpHeaders
  readonly rawBody: Buffer
  /** Path parameters captured by the route (`:realmId`). */
  readonly params: Readonly<Record<string, string>>
  header(name: string): string | undefined
}

export interface SandboxResponse {
  readonly status: number
  readonly headers?: Readonly<Record<string, string>>
  /** A string or Buffer is sent as is; anything else as JSON. */
  readonly body?: unknown
}

export type Handler = (req: SandboxRequest) => SandboxResponse | Promise<SandboxResponse>

export interface Route {
  readonly method: string
  /** A path template: `/v3/company/:realmId/query`; `*` matches the rest. */
  readonly path: string
  readonly handler: Handler
}

/** Runs before routing; returning a response short-circuits (auth, limits, faults). */
export type Middleware = (req: SandboxRequest, route: Route) => SandboxResponse | undefined | Promise<SandboxResponse | undefined>

interface CompiledRoute {
  readonly route: Route
  readonly regex: RegExp
  readonly names: ReadonlyArray<string>
}

const compile = (route: Route): CompiledRoute => {
  const names: Array<string> = []
  const source = route.path
    .split("/")
    .map((part) => {
      if (part.startsWith(":")) {
        names.push(part.slice(1))
        return "([^/]+)"
      }
      if (part === "*") {
        names.push("rest")
        return "(.*)"
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")
    })
    .join("/")
  return { route, regex: new RegExp(`^${source}$`, "i"), names }
}

export const json = (status: number, body: unknown, headers?: Readonly<Record<string, string>>): SandboxResponse => ({
  status,
  body,
  headers: { "content-type": "application/json", ...headers }
})

export interface ServeOptions {
  readonly port?: number
  readonly host?: string
  readonly routes: ReadonlyArray<Route>
  readonly middleware?: ReadonlyArray<Middleware>
  /** Largest accepted body (default 8 MiB); larger gets 413. */
  readonly maxBodyBytes?: number
}

export interface Served {
  readonly url: string
  readonly port: number
}

const send = (res: Http.ServerResponse, response: SandboxResponse): void => {
  const body = response.body
  const payload = body === undefined ? "" : typeof body === "string" || Buffer.isBuffer(body) ? body : JSON.stringify(body)
  const headers: Record<string, string> = { ...response.headers }
  if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type")) {
    headers["content-type"] = typeof body === "string" || Buffer.isBuffer(body) ? "text/plain" : "application/json"
  }
  res.writeHead(response.status, headers)
  res.end(payload)
}

/** Starts an HTTP server for the scope's lifetime. */
export const serve = (options: ServeOptions): Effect.Effect<Served, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.promise(() => {
      const compiled = options.routes.map(compile)
      const max = options.maxBodyBytes ?? 8 * 1024 * 1024
      const server = Http.createServer((req, res) => {
        const chunks: Array<Buffer> = []
        let size = 0
        let tooLarge = false
        req.on("data", (c: Buffer) => {
          size += c.length
          if (size > max) tooLarge = true
          else chunks.push(c)
        })
        req.on("end", () => {
          if (tooLarge) return send(res, json(413, { error: "payload too large" }))
          const url = new URL(req.url ?? "/", "http://sandbox")
          const method = (req.method ?? "GET").toUpperCase()
          let match: { route: Route; params: Record<string, string> } | undefined
          for (const c of compiled) {
            if (c.route.method !== "*" && c.route.method !== method) continue
            const m = c.regex.exec(url.pathname)
            if (m === null) continue
            const params: Record<string, string> = {}
            c.names.forEach((n, i) => {
              params[n] = decodeURIComponent(m[i + 1] ?? "")
            })
            match = { route: c.route, params }
            break
          }
          if (match === undefined) return send(res, json(404, { error: `no route for ${method} ${url.pathname}` }))
          const sreq: SandboxRequest = {
            method,
            path: url.pathname,
            query: url.searchParams,
            headers: req.headers,
            rawBody: Buffer.concat(chunks),
            params: match.params,
            header: (name) => {
              const v = req.headers[name.toLowerCase()]
              return Array.isArray(v) ? v[0] : v
            }
          }
          const route = match.route
          void (async () => {
            try {
              for (const mw of options.middleware ?? []) {
                const early = await mw(sreq, route)
                if (early !== undefined) return send(res, early)
              }
              send(res, await route.handler(sreq))
            } catch (e) {
              send(res, json(500, { error: "sandbox handler failed", detail: String(e) }))
            }
          })()
        })
      })
      server.keepAliveTimeout = 30_000
      return new Promise<{ server: Http.Server; served: Served }>((resolve, reject) => {
        server.once("error", reject)
        server.listen(options.port ?? 0, options.host ?? "127.0.0.1", () => {
          const port = (server.address() as AddressInfo).port
          resolve({ server, served: { url: `http://${options.host ?? "127.0.0.1"}:${port}`, port } })
        })
      })
    }),
    ({ server }) =>
      Effect.promise(() =>
        new Promise<void>((resolve) => {
          server.close(() => resolve())
          server.closeAllConnections()
        })
      )
  ).pipe(Effect.map(({ served }) => served))

// ---------------------------------------------------------------------------
// Seeded randomness

/** A small, fast, seedable PRNG (mulberry32) returning floats in [0, 1). */
export const seededRandom = (seed: number): (() => number) => {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

// ---------------------------------------------------------------------------
// OAuth 2.0

export interface OAuthEmulatorOptions {
  readonly clientId: string
  readonly clientSecret: string
  /** Access-token lifetime (QuickBooks 3600 s, Xero 1800 s). */
  readonly accessTtlMs: number
  /** Refresh-token lifetime (QuickBooks ~100 days, Xero 60 days). */
  readonly refreshTtlMs: number
  /** How long a rotated-out refresh token still works (Xero: 30 minutes; QuickBooks: 0). */
  readonly refreshGraceMs: number
  readonly now?: () => number
}

interface Grant {
  readonly id: string
  readonly accounts: ReadonlyArray<string>
  revoked: boolean
}

interface AccessToken {
  readonly grant: Grant
  expiresAt: number
}

interface RefreshToken {
  readonly grant: Grant
  expiresAt: number
  /** Set once rotated out: usable until then. */
  retiredAt?: number
  /** The token that replaced it (a retried refresh within the grace gets the same successor). */
  successor?: string
}

export interface IssuedTokens {
  readonly access_token: string
  readonly refresh_token: string
  readonly token_type: "bearer" | "Bearer"
  readonly expires_in: number
  readonly x_refresh_token_expires_in: number
}

export class OAuthEmulator {
  private readonly access = new Map<string, AccessToken>()
  private readonly refresh = new Map<string, RefreshToken>()
  private readonly codes = new Map<string, { grant: Grant; redirectUri: string; expiresAt: number }>()
  private readonly now: () => number
  /** Counters for tests. */
  readonly stats = { refreshes: 0, invalidGrants: 0, exchanges: 0 }

  readonly options: OAuthEmulatorOptions

  constructor(options: OAuthEmulatorOptions) {
    this.options = options
    this.now = options.now ?? Date.now
  }

  private token(): string {
    return randomBytes(24).toString("base64url")
  }

  private issue(grant: Grant): IssuedTokens {
    const now = this.now()
    const access = this.token()
    const refresh = this.token()
    this.access.set(access, { grant, expiresAt: now + this.options.accessTtlMs })
    this.refresh.set(refresh, { grant, expiresAt: now + this.options.refreshTtlMs })
    return {
      access_token: access,
      refresh_token: refresh,
      token_type: "bearer",
      expires_in: Math.round(this.options.accessTtlMs / 1000),
      x_refresh_token_expires_in: Math.round(this.options.refreshTtlMs / 1000)
    }
  }

  /** Tokens for `accounts` without the browser round trip (tests, demo). */
  grant(accounts: ReadonlyArray<string>): IssuedTokens {
    return this.issue({ id: randomUUID(), accounts, revoked: false })
  }

  /** The authorization step, auto-approved: a one-time code bound to the redirect URI. */
  authorize(accounts: ReadonlyArray<string>, redirectUri: string): string {
    const code = this.token()
    this.codes.set(code, { grant: { id: randomUUID(), accounts, revoked: false }, redirectUri, expiresAt: this.now() + 600_000 })
    return code
  }

  /** True when the Basic credentials are the app's. */
  clientAuthenticated(authorization: string | undefined, form?: URLSearchParams): boolean {
    if (authorization?.startsWith("Basic ")) {
      const [id, secret] = Buffer.from(authorization.slice(6), "base64").toString().split(":")
      return id === this.options.clientId && secret === this.options.clientSecret
    }
    return form?.get("client_id") === this.options.clientId && form?.get("client_secret") === this.options.clientSecret
  }

  /** The token endpoint (RFC 6749 §4.1.3 and §6), form-encoded. */
  tokenEndpoint(req: SandboxRequest): SandboxResponse {
    const form = new URLSearchParams(req.rawBody.toString())
    if (!this.clientAuthenticated(req.header("authorization"), form)) {
      return json(401, { error: "invalid_client" })
    }
    const grantType = form.get("grant_type")
    if (grantType === "authorization_code") {
      const code = form.get("code") ?? ""
      const entry = this.codes.get(code)
      this.codes.delete(code)
      if (entry === undefined || entry.expiresAt < this.now() || entry.redirectUri !== form.get("redirect_uri")) {
        this.stats.invalidGrants++
        return json(400, { error: "invalid_grant", error_description: "authorization code is invalid, expired or used" })
      }
      this.stats.exchanges++
      return json(200, this.issue(entry.grant))
    }
    if (grantType === "refresh_token") {
      const presented = form.get("refresh_token") ?? ""
      const entry = this.refresh.get(presented)
      const now = this.now()
      const usable = entry !== undefined && !entry.grant.revoked && entry.expiresAt > now &&
        (entry.retiredAt === undefined || now - entry.retiredAt <= this.options.refreshGraceMs)
      if (!usable || entry === undefined) {
        this.stats.invalidGrants++
        return json(400, { error: "invalid_grant", error_description: "refresh token is invalid, expired, revoked or already rotated" })
      }
      this.stats.refreshes++
      if (entry.retiredAt !== undefined && entry.successor !== undefined) {
        // A retry inside the grace period: same successor refresh token, fresh access token.
        const access = this.token()
        this.access.set(access, { grant: entry.grant, expiresAt: now + this.options.accessTtlMs })
        const successor = this.refresh.get(entry.successor)
        return json(200, {
          access_token: access,
          refresh_token: entry.successor,
          token_type: "bearer",
          expires_in: Math.round(this.options.accessTtlMs / 1000),
          x_refresh_token_expires_in: Math.round(((successor?.expiresAt ?? now) - now) / 1000)
        })
      }
      const issued = this.issue(entry.grant)
      entry.retiredAt = now
      entry.successor = issued.refresh_token
      return json(200, issued)
    }
    return json(400, { error: "unsupported_grant_type" })
  }

  /** Revokes the grant behind a token (access or refresh). */
  revoke(token: string): boolean {
    const grant = this.access.get(token)?.grant ?? this.refresh.get(token)?.grant
    if (grant === undefined) return false
    grant.revoked = true
    return true
  }

  /** Checks a `Bearer` header for `account`. */
  check(authorization: string | undefined, account: string): "ok" | "missing" | "invalid" | "expired" | "forbidden" {
    if (authorization === undefined || !/^bearer /i.test(authorization)) return "missing"
    const entry = this.access.get(authorization.slice(7).trim())
    if (entry === undefined || entry.grant.revoked) return "invalid"
    if (entry.expiresAt <= this.now()) return "expired"
    if (!entry.grant.accounts.includes(account)) return "forbidden"
    return "ok"
  }

  /** The accounts the bearer token may access. */
  accountsOf(authorization: string | undefined): ReadonlyArray<string> {
    const entry = authorization === undefined ? undefined : this.access.get(authorization.replace(/^bearer /i, "").trim())
    return entry === undefined || entry.grant.revoked ? [] : entry.grant.accounts
  }

  /** Every access token expires now (as after an hour). */
  expireAccessTokens(): void {
    for (const t of this.access.values()) t.expiresAt = Math.min(t.expiresAt, this.now())
  }

  /** Expires one access token now ("token expiry mid-call"). */
  expireAccessToken(authorization: string | undefined): void {
    const entry = authorization === undefined ? undefined : this.access.get(authorization.replace(/^bearer /i, "").trim())
    if (entry !== undefined) entry.expiresAt = this.now()
  }

  /** Every grant is revoked: refreshes get `invalid_grant`. */
  revokeAll(): void {
    for (const t of this.refresh.values()) t.grant.revoked = true
  }
}

// ---------------------------------------------------------------------------
// Rate limits

export interface LimitOptions {
  readonly perMinute: number
  readonly concurrent: number
  readonly perDay?: number
  readonly now?: () => number
}

export type LimitVerdict =
  | { readonly ok: true; readonly leave: () => void }
  | { readonly ok: false; readonly problem: "minute" | "concurrent" | "day"; readonly retryAfterSeconds: number }

export class LimitEmulator {
  enabled = true
  private readonly minute = new Map<string, Array<number>>()
  private readonly day = new Map<string, { day: number; count: number }>()
  private readonly inFlight = new Map<string, number>()
  private readonly now: () => number
  readonly stats = { throttled: 0, admitted: 0 }

  readonly options: LimitOptions

  constructor(options: LimitOptions) {
    this.options = options
    this.now = options.now ?? Date.now
  }

  /** Admits a request for `account`, or says which limit it hit. */
  enter(account: string): LimitVerdict {
    const now = this.now()
    if (!this.enabled) {
      this.stats.admitted++
      return { ok: true, leave: () => undefined }
    }
    const window = (this.minute.get(account) ?? []).filter((t) => t > now - 60_000)
    this.minute.set(account, window)
    const today = Math.floor(now / 86_400_000)
    const d = this.day.get(account)
    const dayCount = d !== undefined && d.day === today ? d.count : 0
    if (this.options.perDay !== undefined && dayCount >= this.options.perDay) {
      this.stats.throttled++
      return { ok: false, problem: "day", retryAfterSeconds: Math.ceil(((today + 1) * 86_400_000 - now) / 1000) }
    }
    if (window.length >= this.options.perMinute) {
      this.stats.throttled++
      return { ok: false, problem: "minute", retryAfterSeconds: Math.max(1, Math.ceil(((window[0] ?? now) + 60_000 - now) / 1000)) }
    }
    const active = this.inFlight.get(account) ?? 0
    if (active >= this.options.concurrent) {
      this.stats.throttled++
      return { ok: false, problem: "concurrent", retryAfterSeconds: 1 }
    }
    window.push(now)
    this.day.set(account, { day: today, count: dayCount + 1 })
    this.inFlight.set(account, active + 1)
    this.stats.admitted++
    let left = false
    return {
      ok: true,
      leave: () => {
        if (left) return
        left = true
        this.inFlight.set(account, (this.inFlight.get(account) ?? 1) - 1)
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Faults

export interface FaultSettings {
  /** Fraction of API requests answered with a 500 (0–1). */
  readonly errorRate: number
  /** Added latency per request, in ms. */
  readonly latencyMs: number
  /** Extra random latency up to this many ms. */
  readonly latencyJitterMs: number
  /** Every request gets 429 until this epoch-ms instant. */
  readonly stormUntil: number
  /** Fraction of requests that hang for `hangMs` before a 504 (client timeouts). */
  readonly timeoutRate: number
  readonly hangMs: number
  /** Fraction of requests whose access token expires mid-call (401). */
  readonly tokenExpiryRate: number
}

export const noFaults: FaultSettings = {
  errorRate: 0,
  latencyMs: 0,
  latencyJitterMs: 0,
  stormUntil: 0,
  timeoutRate: 0,
  hangMs: 30_000,
  tokenExpiryRate: 0
}

export type FaultDecision =
  | { readonly _tag: "Pass"; readonly delayMs: number }
  | { readonly _tag: "Error"; readonly delayMs: number }
  | { readonly _tag: "Storm" }
  | { readonly _tag: "Hang"; readonly delayMs: number }
  | { readonly _tag: "ExpireToken"; readonly delayMs: number }

export class Faults {
  settings: FaultSettings = noFaults
  private readonly random: () => number
  private readonly now: () => number
  readonly stats = { errors: 0, storms: 0, hangs: 0, expiries: 0 }

  constructor(seed: number, now?: () => number) {
    this.random = seededRandom(seed)
    this.now = now ?? Date.now
  }

  set(patch: Partial<FaultSettings>): void {
    this.settings = { ...this.settings, ...patch }
  }

  reset(): void {
    this.settings = noFaults
  }

  /** A 429 storm for the next `ms` milliseconds. */
  storm(ms: number): void {
    this.set({ stormUntil: this.now() + ms })
  }

  decide(): FaultDecision {
    const s = this.settings
    const delayMs = s.latencyMs + (s.latencyJitterMs > 0 ? Math.floor(this.random() * s.latencyJitterMs) : 0)
    if (s.stormUntil > this.now()) {
      this.stats.storms++
      return { _tag: "Storm" }
    }
    if (s.timeoutRate > 0 && this.random() < s.timeoutRate) {
      this.stats.hangs++
      return { _tag: "Hang", delayMs: s.hangMs }
    }
    if (s.errorRate > 0 && this.random() < s.errorRate) {
      this.stats.errors++
      return { _tag: "Error", delayMs }
    }
    if (s.tokenExpiryRate > 0 && this.random() < s.tokenExpiryRate) {
      this.stats.expiries++
      return { _tag: "ExpireToken", delayMs }
    }
    return { _tag: "Pass", delayMs }
  }

  /** A fresh seeded draw in [0, 1) (for sandbox-specific decisions). */
  draw(): number {
    return this.random()
  }
}

export const sleep = (ms: number): Promise<void> => (ms > 0 ? new Promise((r) => setTimeout(r, ms)) : Promise.resolve())

// ---------------------------------------------------------------------------
// Webhooks

export interface WebhookFaults {
  /** Fraction of deliveries silently dropped. */
  readonly dropRate: number
  /** Fraction of deliveries sent twice. */
  readonly duplicateRate: number
  /** Shuffle the order of deliveries waiting in one flush. */
  readonly reorder: boolean
}

export interface WebhookDispatcherOptions<E> {
  /** Events gathered for this long are sent together (QuickBooks batches notifications). */
  readonly batchWindowMs: number
  /** Largest number of events in one delivery. */
  readonly maxBatch: number
  /** Builds the raw body for a batch of events. */
  readonly body: (events: ReadonlyArray<E>) => string
  /** Signature headers for a raw body. */
  readonly sign: (rawBody: string) => Readonly<Record<string, string>>
  readonly random: () => number
  /** Delivery attempts before giving up on a batch (default 3). */
  readonly attempts?: number
}

/** Queues events and delivers them, signed, to the configured URL. */
export class WebhookDispatcher<E> {
  url: string | undefined
  faults: WebhookFaults = { dropRate: 0, duplicateRate: 0, reorder: false }
  private queue: Array<E> = []
  private timer: ReturnType<typeof setTimeout> | undefined
  private inFlight = 0
  private idleWaiters: Array<() => void> = []
  readonly stats = { delivered: 0, dropped: 0, duplicated: 0, failed: 0, events: 0 }
  /** Bodies delivered, newest last (for tests). */
  readonly log: Array<{ body: string; status: number }> = []

  private readonly options: WebhookDispatcherOptions<E>

  constructor(options: WebhookDispatcherOptions<E>) {
    this.options = options
  }

  emit(event: E): void {
    if (this.url === undefined) return
    this.queue.push(event)
    if (this.timer === undefined) this.timer = setTimeout(() => this.flush(), this.options.batchWindowMs)
  }

  /** Sends what is queued now. */
  flush(): void {
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const events = this.queue
    this.queue = []
    const batches: Array<Array<E>> = []
    for (let i = 0; i < events.length; i += this.options.maxBatch) batches.push(events.slice(i, i + this.options.maxBatch))
    if (this.faults.reorder) {
      for (const batch of batches) shuffle(batch, this.options.random)
      shuffle(batches, this.options.random)
    }
    for (const batch of batches) {
      if (this.options.random() < this.faults.dropRate) {
        this.stats.dropped++
        continue
      }
      const copies = this.options.random() < this.faults.duplicateRate ? 2 : 1
      if (copies === 2) this.stats.duplicated++
      for (let c = 0; c < copies; c++) void this.deliver(this.options.body(batch), batch.length)
    }
    this.settle()
  }

  private async deliver(body: string, count: number): Promise<void> {
    const url = this.url
    if (url === undefined) return
    this.inFlight++
    try {
      for (let attempt = 1; attempt <= (this.options.attempts ?? 3); attempt++) {
        try {
          const res = await fetch(url, {
            method: "POST",
            headers: { "content-type": "application/json", ...this.options.sign(body) },
            body
          })
          await res.arrayBuffer()
          this.log.push({ body, status: res.status })
          if (res.status < 500) {
            this.stats.delivered++
            this.stats.events += count
            return
          }
        } catch {
          // Receiver down: retry after a pause.
        }
        await sleep(100 * 2 ** attempt)
      }
      this.stats.failed++
    } finally {
      this.inFlight--
      this.settle()
    }
  }

  private settle(): void {
    if (this.inFlight === 0 && this.queue.length === 0 && this.timer === undefined) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const w of waiters) w()
    }
  }

  /** Resolves once everything queued has been delivered (or dropped). */
  idle(): Promise<void> {
    if (this.queue.length > 0) this.flush()
    if (this.inFlight === 0 && this.queue.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }
}

const shuffle = <A>(arr: Array<A>, random: () => number): void => {
  for (let i = arr.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1))
    const tmp = arr[i] as A
    arr[i] = arr[j] as A
    arr[j] = tmp
  }
}

// ---------------------------------------------------------------------------
// What every provider sandbox exposes

/** Options every sandbox accepts. */
export interface SandboxOptions {
  readonly port?: number
  readonly host?: string
  /** Seed for fault injection and generated ids. */
  readonly seed?: number
  /** Enforce the provider's real rate limits (default true). */
  readonly limits?: boolean
  /** Where to deliver webhooks (can be set later). */
  readonly webhookUrl?: string
  /** Number of provider accounts (realms / tenants) to create (default 1). */
  readonly accounts?: number
  /** Clock for token expiry and limits (default Date.now). */
  readonly now?: () => number
  /** Webhook delivery attempts before a batch is given up (default 3; real providers keep retrying for hours). */
  readonly webhookAttempts?: number
}

/** A running sandbox, as tests, the demo and `concord sandbox` see it. */
export interface SandboxHandle {
  readonly provider: string
  /** The API base URL to give `ConnectionContext.baseUrl`. */
  readonly baseUrl: string
  /** The server's root URL (control endpoints live under `/__sandbox`). */
  readonly rootUrl: string
  readonly endpoints: { readonly authorizeUrl: string; readonly tokenUrl: string; readonly revokeUrl?: string; readonly connectionsUrl?: string }
  /** Provider accounts: QuickBooks realm ids, Xero tenant ids. */
  readonly accounts: ReadonlyArray<string>
  readonly clientId: string
  readonly clientSecret: string
  /** The webhook signing secret (QuickBooks verifier token, Xero webhook key). */
  readonly webhookSecret: string
  readonly oauth: OAuthEmulator
  readonly limits: LimitEmulator
  readonly faults: Faults
  /** Tokens for accounts without the browser round trip. */
  readonly issueTokens: (accounts?: ReadonlyArray<string>) => IssuedTokens
  readonly setWebhookUrl: (url: string | undefined) => void
  readonly setWebhookFaults: (faults: Partial<WebhookFaults>) => void
  /** Resolves when queued webhooks are delivered. */
  readonly webhooksIdle: () => Promise<void>
  /**
   * Changes a record as an accountant would in the provider's UI: the
   * version bumps, the change feed and a webhook report it. `patch` is in the
   * provider's wire format; without it a harmless field (memo/reference) changes.
   */
  readonly accountantEdit: (account: string, entity: string, externalId: string, patch?: Record<string, unknown>) => unknown
  /** Deletes (or voids) a record as an accountant would. */
  readonly accountantDelete: (account: string, entity: string, externalId: string) => void
  /** Records of a canonical entity type held for an account (wire format), for counting in tests. */
  readonly records: (account: string, entity: string) => ReadonlyArray<Record<string, unknown>>
  /** Text printed by `concord sandbox <provider>`: base URL, accounts, credentials. */
  readonly describe: () => string
}
