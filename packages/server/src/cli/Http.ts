/**
 * The CLI's side of the HTTP API: a client derived from the same `Api`
 * definition the server implements (so the two cannot drift), the `--url` and
 * `--admin-key` flags, and the mapping of API errors to one-line failures:
 *
 * - 400, 401, 403, 404, 422 (the request was wrong: unknown tenant, bad key, bad value) → exit 2
 * - 409, 503, unreachable server, unexpected answers (the operation failed)             → exit 1
 */
import { Config, Effect, Redacted } from "effect"
import { Flag } from "effect/cli"
import { FetchHttpClient, HttpClient, HttpClientRequest } from "effect/http"
import { HttpApiClient } from "effect/http-api"
import type { Api } from "../api/Api.ts"
import { CliFailure } from "./Output.ts"

export const DEFAULT_URL = "http://127.0.0.1:8080"

/** `--url` and `--admin-key`, for every command that talks to the API. */
export const apiFlags = {
  url: Flag.String("url").pipe(
    Flag.withMetavar("URL"),
    Flag.withDescription(`Concord's HTTP API (default: $CONCORD_URL, else ${DEFAULT_URL})`),
    Flag.withFallbackConfig(Config.String("CONCORD_URL")),
    Flag.withDefault(DEFAULT_URL)
  ),
  adminKey: Flag.Redacted("admin-key").pipe(
    Flag.withMetavar("KEY"),
    Flag.withDescription("The operators' API key (default: $CONCORD_ADMIN_KEY); a tenant key works for that tenant's commands"),
    Flag.withFallbackConfig(Config.Redacted("CONCORD_ADMIN_KEY"))
  )
}

export type ApiClient = HttpApiClient.ForApi<typeof Api>

/**
 * The typed API client for `url`, sending `key` as the bearer token. The API definition is loaded here,
 * when a command calls it, not at start-up (building its schemas is a third of a second).
 */
export const client = (options: { readonly url: string; readonly adminKey: Redacted.Redacted<string> }) =>
  Effect.promise(() => import("../api/Api.ts")).pipe(
    Effect.flatMap(({ Api }) =>
      HttpApiClient.make(Api, {
        baseUrl: options.url,
        transformClient: HttpClient.mapRequest(HttpClientRequest.bearerToken(Redacted.value(options.adminKey)))
      })
    ),
    Effect.provide(FetchHttpClient.layer)
  )

const requestErrors = new Set(["BadRequest", "Unauthorized", "Forbidden", "NotFound", "Unprocessable"])

/** The deepest cause of a transport failure, by its code when it has one (ECONNREFUSED, ENOTFOUND, …). */
const describe = (e: unknown): string => {
  let text = e instanceof Error ? e.message : String(e)
  let cur: unknown = e
  for (let i = 0; i < 8 && typeof cur === "object" && cur !== null; i++) {
    const code = (cur as { code?: unknown }).code
    if (typeof code === "string") return code
    if (cur instanceof Error && cur.message !== "") text = cur.message
    cur = (cur as { cause?: unknown }).cause
  }
  return text
}

/** Turns anything a client call can fail with into a one-line `CliFailure`. */
export const toFailure = (url: string) => (e: unknown): CliFailure => {
  if (e instanceof CliFailure) return e
  const tag = typeof e === "object" && e !== null ? (e as { _tag?: unknown })._tag : undefined
  const message = typeof e === "object" && e !== null && typeof (e as { message?: unknown }).message === "string" ? (e as { message: string }).message : String(e)
  if (typeof tag === "string" && (requestErrors.has(tag) || tag === "Conflict" || tag === "Unavailable")) {
    const issues = (e as { issues?: ReadonlyArray<{ path: string; message: string }> }).issues ?? []
    const detail = issues.length === 0 ? "" : `: ${issues.map((i) => `${i.path === "" ? "(body)" : i.path}: ${i.message}`).join("; ")}`
    return new CliFailure({ message: `${message}${detail}`, exitCode: requestErrors.has(tag) ? 2 : 1 })
  }
  if (tag === "HttpClientError") {
    const reason = (e as { reason?: { _tag?: string; response?: { status?: number } } }).reason
    if (reason?._tag === "TransportError") return new CliFailure({ message: `cannot reach Concord at ${url}: ${describe(reason)}`, exitCode: 1 })
    if (reason?._tag === "InvalidUrlError") return new CliFailure({ message: `--url ${url} is not a valid URL`, exitCode: 2 })
    if (reason?.response?.status !== undefined) {
      return new CliFailure({ message: `Concord at ${url} answered HTTP ${reason.response.status} unexpectedly (is --url a Concord API?)`, exitCode: 1 })
    }
    return new CliFailure({ message: `request to ${url} failed: ${message.split("\n")[0]}`, exitCode: 1 })
  }
  if (tag === "SchemaError") {
    return new CliFailure({ message: `Concord at ${url} sent an answer this CLI does not understand (is --url a Concord API of the same version?): ${message.split("\n")[0]}`, exitCode: 1 })
  }
  return new CliFailure({ message: message.split("\n")[0] ?? "request failed", exitCode: 1 })
}

/**
 * Runs `f` with a client for the flags' URL and key; every failure becomes a
 * one-line `CliFailure`.
 */
export const withApi = <A, E, R>(
  options: { readonly url: string; readonly adminKey: Redacted.Redacted<string> },
  f: (api: ApiClient) => Effect.Effect<A, E, R>
): Effect.Effect<A, CliFailure, R> =>
  client(options).pipe(
    Effect.flatMap((api) => f(api as ApiClient)),
    Effect.mapError(toFailure(options.url))
  )
