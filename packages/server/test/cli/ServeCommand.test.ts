import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { getHeapStatistics } from "node:v8"

const root = join(import.meta.dirname, "../../../..")
const serve = (env: Record<string, string>) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CONCORD_") && k !== "DATABASE_URL" && k !== "NATS_URL" && k !== "PORT" && k !== "NODE_OPTIONS"))
  const r = spawnSync(process.execPath, [join(root, "bin/concord.js"), "serve"], {
    encoding: "utf8",
    timeout: 60_000,
    env: { ...base, CONCORD_DATA_DIR: mkdtempSync(join(tmpdir(), "concord-serve-")), ...env }
  })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe("concord serve that cannot start", () => {
  it("says why in one line and exits 1, never a stack trace", () => {
    for (const [env, message] of [
      [{ DATABASE_URL: "postgres://nobody:x@127.0.0.1:1/nothing", NATS_URL: "nats://127.0.0.1:1", PORT: "18089" }, /connect/i],
      [{ PORT: "eighty" }, /PORT/]
    ] as const) {
      const r = serve(env)
      expect(r.code, JSON.stringify(env)).toBe(1)
      const lines = r.stderr.trim().split("\n")
      expect(lines, r.stderr).toHaveLength(1)
      expect(lines[0]).toMatch(/^concord: /)
      expect(lines[0]).toMatch(message)
      expect(r.stderr).not.toMatch(/^\s+at .+:\d+/m)
    }
  })
})

describe("concord serve's memory", () => {
  // A node that starts and stops at once (its Postgres is unreachable) says its heap limit first.
  const unreachable = { DATABASE_URL: "postgres://nobody:x@127.0.0.1:1/nothing", NATS_URL: "nats://127.0.0.1:1", PORT: "18089" }
  const heapLimitMb = (env: Record<string, string>) => {
    const r = serve({ ...unreachable, ...env })
    const m = /V8 heap limit (\d+) MB/.exec(r.stdout)
    expect(m, r.stdout + r.stderr).not.toBeNull()
    return Number(m?.[1])
  }
  const nodeDefaultMb = getHeapStatistics().heap_size_limit / 1048576

  it("bounds the V8 heap at CONCORD_MAX_HEAP_MB (default 1024 MB), never above Node's own default", () => {
    // --max-old-space-size=N gives a heap limit of N plus the young generation (tens of MB).
    const expected = (mb: number) => (mb < nodeDefaultMb ? [mb, mb + 100] : [nodeDefaultMb - 1, nodeDefaultMb + 1])
    const [lo, hi] = expected(1024)
    const byDefault = heapLimitMb({})
    expect(byDefault).toBeGreaterThanOrEqual(lo as number)
    expect(byDefault).toBeLessThanOrEqual(hi as number)
    const small = heapLimitMb({ CONCORD_MAX_HEAP_MB: "256" })
    expect(small).toBeGreaterThanOrEqual(256)
    expect(small).toBeLessThanOrEqual(356)
    // 0: Node's own default; an operator's own --max-old-space-size wins over the setting.
    expect(Math.abs(heapLimitMb({ CONCORD_MAX_HEAP_MB: "0" }) - nodeDefaultMb)).toBeLessThanOrEqual(1)
    const own = heapLimitMb({ CONCORD_MAX_HEAP_MB: "256", NODE_OPTIONS: "--max-old-space-size=300" })
    expect(own).toBeGreaterThanOrEqual(300)
    expect(own).toBeLessThanOrEqual(400)
  }, 120_000)

  it("refuses a CONCORD_MAX_HEAP_MB that is not a whole number of megabytes, naming it", () => {
    for (const bad of ["lots", "12.5", "10"]) {
      const r = serve({ ...unreachable, CONCORD_MAX_HEAP_MB: bad })
      expect(r.code, bad).toBe(2)
      expect(r.stderr.trim().split("\n"), r.stderr).toHaveLength(1)
      expect(r.stderr).toMatch(/CONCORD_MAX_HEAP_MB/)
    }
  })
})
