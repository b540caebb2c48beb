/**
 * The adapters' HTTP exchange with a provider API: one request, the whole
 * answer as text, nothing else (retries, pacing, token handling and error
 * mapping stay in each adapter).
 *
 * Built on undici's `request` over one keep-alive connection pool per origin
 * for the whole process, rather than on `fetch`: a poll of an idle connection
 * is one small request, and at ten thousand connections that request's cost
 * is most of what an idle node spends; `fetch` adds WHATWG streams, a Request
 * and Response object per call, about three times the CPU. Answers are
 * decompressed (gzip, deflate, br), as `fetch` would, and redirects are not
 * followed (the provider APIs answer where they are asked).
 */
import { Effect, Redacted } from "effect"
import { promisify } from "node:util"
import { brotliDecompress, gunzip, inflate, inflateRaw } from "node:zlib"
import { Agent, request as undiciRequest } from "undici"
import type { OAuthApp } from "./Provider.ts"

export interface HttpRequest {
  readonly method: "GET" | "POST" | "PUT" | "DELETE"
  readonly url: string
  readonly headers: Readonly<Record<string, string>>
  readonly body?: string
}

export interface HttpAnswer {
  readonly status: number
  /** Header names in lower case; a repeated header's values joined with ", ". */
  readonly headers: Readonly<Record<string, string>>
  readonly text: string
}

/** No answer: the connection failed, was reset, or the call was interrupted (a timeout). */
export interface HttpTransportFailure {
  readonly reason: string
}

const dispatcher = new Agent({ keepAliveTimeout: 30_000, keepAliveMaxTimeout: 120_000, connect: { timeout: 10_000 } })

const gunzipAsync = promisify(gunzip)
const inflateAsync = promisify(inflate)
const inflateRawAsync = promisify(inflateRaw)
const brotliAsync = promisify(brotliDecompress)

/** The body as text, inflated per Content-Encoding (deflate as zlib, else raw, as browsers accept both). */
const decode = async (body: Buffer, encoding: string | undefined): Promise<string> => {
  let out = body
  for (const coding of (encoding ?? "").split(",").map((c) => c.trim().toLowerCase()).filter((c) => c !== "" && c !== "identity").reverse()) {
    if (coding === "gzip" || coding === "x-gzip") out = await gunzipAsync(out)
    else if (coding === "br") out = await brotliAsync(out)
    else if (coding === "deflate") out = await inflateAsync(out).catch(() => inflateRawAsync(out))
    else throw new Error(`unsupported Content-Encoding '${coding}'`)
  }
  return out.toString("utf8")
}

const flatten = (headers: Record<string, string | Array<string> | undefined>): Record<string, string> => {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(headers)) {
    if (v !== undefined) out[k.toLowerCase()] = Array.isArray(v) ? v.join(", ") : v
  }
  return out
}

/** Sends `req` and reads the whole answer; interrupting the effect aborts the request. */
export const send = (req: HttpRequest): Effect.Effect<HttpAnswer, HttpTransportFailure> =>
  Effect.tryPromise({
    try: async (signal) => {
      const res = await undiciRequest(req.url, {
        method: req.method,
        headers: { "accept-encoding": "gzip, deflate, br", ...req.headers },
        ...(req.body === undefined ? {} : { body: req.body }),
        dispatcher,
        signal
      })
      const headers = flatten(res.headers)
      const text = await decode(Buffer.from(await res.body.arrayBuffer()), headers["content-encoding"])
      return { status: res.statusCode, headers, text } satisfies HttpAnswer
    },
    catch: (e): HttpTransportFailure => ({ reason: e instanceof Error ? `${e.name}: ${e.message}` : String(e) })
  })

/** The `authorization` header an OAuth app sends to a token endpoint (RFC 6749 §2.3.1 client_secret_basic). */
export const basicAuth = (app: OAuthApp): string =>
  `Basic ${Buffer.from(`${app.clientId}:${Redacted.value(app.clientSecret)}`).toString("base64")}`
