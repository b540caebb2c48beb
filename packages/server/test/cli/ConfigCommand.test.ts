import { describe, expect, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"

const root = join(import.meta.dirname, "../../../..")
const concord = (...args: Array<string>) => {
  const r = spawnSync(process.execPath, [join(root, "bin/concord.js"), ...args], { encoding: "utf8" })
  return { code: r.status, stdout: r.stdout, stderr: r.stderr }
}

describe("concord config check", () => {
  it("accepts a valid tenant file", () => {
    const r = concord("config", "check", join(root, "deploy/examples/acme.yaml"))
    expect(r.code).toBe(0)
    expect(r.stdout).toContain("OK (tenant acme, 1 connection(s), 3 GL rule(s))")
  })

  it("prints every error with its path and line, and exits 1", () => {
    const dir = mkdtempSync(join(tmpdir(), "concord-cli-"))
    const file = join(dir, "bad.yaml")
    writeFileSync(file, "version: 1\ntenant: t\nconnections:\n  - id: a\n    provider: xero\n    entities:\n      invoice: { direction: up, policy: maybe }\n")
    const r = concord("config", "check", file)
    expect(r.code).toBe(1)
    expect(r.stdout).toContain(`${file}:7:`)
    expect(r.stdout).toContain("connections[0].entities.invoice.direction")
    expect(r.stdout).toContain("connections[0].entities.invoice.policy")
    const json = concord("config", "check", "--json", file)
    expect(json.code).toBe(1)
    expect(JSON.parse(json.stdout).issues).toHaveLength(2)
  })

  it("gives a one-line error and exit 2 for misuse, never a stack trace", () => {
    for (const args of [["config", "check"], ["config", "check", "/no/such/file.yaml"], ["config", "check", "--bogus", "x"], ["nonsense"]]) {
      const r = concord(...args)
      expect(r.code).toBe(2)
      expect(r.stderr.trim().split("\n")).toHaveLength(1)
      expect(r.stderr).toMatch(/^concord: /)
      expect(r.stderr).not.toMatch(/\s+at /)
    }
  })
})
