/**
 * The adapters' HTTP exchange: whole answers as text, header names in lower
 * case, compressed answers inflated (real provider APIs gzip large pages), no
 * answer a transport failure that says why, interruption aborting the call.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect, Exit, Fiber } from "effect"
import { createServer, type IncomingMessage, type ServerResponse } from "node:http"
import type { AddressInfo } from "node:net"
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib"
import * as Http from "../src/Http.ts"

const serve = (handler: (req: IncomingMessage, res: ServerResponse) => void) =>
  Effect.acquireRelease(
    Effect.promise(() =>
      new Promise<{ url: string; close: () => Promise<void> }>((resolve) => {
        const server = createServer(handler)
        server.listen(0, "127.0.0.1", () => {
          const { port } = server.address() as AddressInfo
          resolve({
            url: `http://127.0.0.1:${port}`,
            close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()) })
          })
        })
      })
    ),
    (s) => Effect.promise(() => s.close())
  )

describe("Http.send", () => {
  it.live("sends method, headers and body, and returns status, lower-cased headers and the text", () =>
    Effect.gen(function*() {
      const seen: Array<{ method: string; auth: string | undefined; body: string }> = []
      const server = yield* serve((req, res) => {
        let body = ""
        req.on("data", (d) => (body += d))
        req.on("end", () => {
          seen.push({ method: req.method ?? "", auth: req.headers.authorization, body })
          res.writeHead(201, { "Content-Type": "application/json", "Retry-After": "7", "X-Rate-Limit-Problem": "minute" })
          res.end(JSON.stringify({ ok: true }))
        })
      })
      const answer = yield* Http.send({ method: "POST", url: `${server.url}/x?a=1`, headers: { authorization: "Bearer t" }, body: "{\"n\":1}" })
      expect(answer.status).toBe(201)
      expect(JSON.parse(answer.text)).toEqual({ ok: true })
      expect(answer.headers["retry-after"]).toBe("7")
      expect(answer.headers["x-rate-limit-problem"]).toBe("minute")
      expect(seen).toEqual([{ method: "POST", auth: "Bearer t", body: "{\"n\":1}" }])
    }))

  it.live("asks for compressed answers and inflates gzip, brotli and deflate", () =>
    Effect.gen(function*() {
      const page = JSON.stringify({ QueryResponse: { Customer: Array.from({ length: 500 }, (_, i) => ({ Id: String(i), DisplayName: `Customer ${i}` })) } })
      const accepted: Array<string | undefined> = []
      const server = yield* serve((req, res) => {
        accepted.push(req.headers["accept-encoding"])
        const coding = req.url?.slice(1) ?? ""
        res.writeHead(200, { "Content-Type": "application/json", "Content-Encoding": coding })
        res.end(coding === "br" ? brotliCompressSync(page) : coding === "deflate" ? deflateSync(page) : gzipSync(page))
      })
      for (const coding of ["gzip", "br", "deflate"]) {
        expect((yield* Http.send({ method: "GET", url: `${server.url}/${coding}`, headers: {} })).text, coding).toBe(page)
      }
      expect(accepted.every((a) => a !== undefined && /gzip/.test(a) && /br/.test(a))).toBe(true)
    }))

  it.live("reports an answer it cannot inflate as a transport failure naming the encoding", () =>
    Effect.gen(function*() {
      const server = yield* serve((_req, res) => {
        res.writeHead(200, { "Content-Encoding": "zstd-unknown" })
        res.end("????")
      })
      const failure = yield* Effect.flip(Http.send({ method: "GET", url: server.url, headers: {} }))
      expect(failure.reason).toMatch(/Content-Encoding 'zstd-unknown'/)
    }))

  it.live("reports a refused connection as a transport failure that says why", () =>
    Effect.gen(function*() {
      const failure = yield* Effect.flip(Http.send({ method: "GET", url: "http://127.0.0.1:1/nothing", headers: {} }))
      expect(failure.reason).toMatch(/ECONNREFUSED|connect/i)
    }))

  it.live("aborts the request when interrupted (a timeout), and the server sees the connection go", () =>
    Effect.gen(function*() {
      let closed = false
      const server = yield* serve((req) => {
        req.socket.on("close", () => (closed = true))
      })
      const fiber = yield* Effect.forkChild(Http.send({ method: "GET", url: `${server.url}/hang`, headers: {} }))
      yield* Effect.sleep(100)
      yield* Fiber.interrupt(fiber)
      expect(Exit.hasInterrupts(yield* Fiber.await(fiber))).toBe(true)
      yield* Effect.promise(async () => {
        for (let i = 0; i < 50 && !closed; i++) await new Promise((r) => setTimeout(r, 20))
      })
      expect(closed).toBe(true)
    }))
})
