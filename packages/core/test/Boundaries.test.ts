import { describe, expect, it } from "@effect/vitest"
import { readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"

const src = join(import.meta.dirname, "../src")
const imports = (file: string): Array<string> =>
  [...readFileSync(join(src, file), "utf8").matchAll(/^\s*(?:import|export)[^"']*?from\s+["']([^"']+)["']/gm)].map((m) => m[1] as string)

describe("packages/core boundaries", () => {
  it("imports nothing of ours and no I/O module: only effect, yaml, node:crypto (hashing) and itself", () => {
    const allowed = (spec: string) => spec.startsWith("./") || spec === "effect" || spec === "yaml" || spec === "node:crypto"
    const offending = readdirSync(src)
      .filter((f) => f.endsWith(".ts"))
      .flatMap((f) => imports(f).filter((spec) => !allowed(spec)).map((spec) => `${f} imports ${spec}`))
    expect(offending).toEqual([])
  })
})
