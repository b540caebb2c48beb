import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "../../../..")
const serve = (env: Record<string, string>) => {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("CONCORD_") && k !== "DATABASE_URL" && k !== "NATS_URL" && k !== "PORT"))
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
