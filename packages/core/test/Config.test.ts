import { describe, expect, it } from "@effect/vitest"
import Ajv2020 from "ajv/dist/2020.js"
import { readFileSync } from "node:fs"
import { join } from "node:path"
import { parse as parseYaml } from "yaml"
import * as Config from "../src/Config.ts"

const root = join(import.meta.dirname, "../../..")
const example = readFileSync(join(root, "deploy/examples/acme.yaml"), "utf8")

describe("tenant configuration", () => {
  it("accepts the example tenant and decodes durations and rules", () => {
    const parsed = Config.parseTenantYaml(example)
    if (!parsed.ok) throw new Error(Config.formatIssues("acme.yaml", parsed.issues))
    const qbo = parsed.config.connections[0]
    expect(qbo?.provider).toBe("quickbooks")
    expect(qbo?.polling).toEqual({ floor: 30_000, ceiling: 900_000, safety: 3_600_000 })
    expect(qbo?.entities.invoice).toEqual({ direction: "both", policy: "review" })
    expect(Config.rulesFor(parsed.config, "acme-qbo").map((r) => r.name)).toEqual(["card-sales", "cash-sales", "processor"])
  })

  it("reports every bad field with its YAML path and line", () => {
    const bad = [
      "version: 1", //                                   1
      "tenant: acme", //                                 2
      "connections:", //                                 3
      "  - id: acme-qbo", //                             4
      "    provider: quickbooks", //                     5
      "    entities:", //                                6
      "      invoice: { direction: sideways }", //       7
      "      journal_entry: { direction: push, policy: guess }", // 8
      "      widget: { direction: push }", //            9
      "    polling: { floor: 30s, ceiling: soon }", //   10
      "    reconciliation: { schedule: \"every night\" }", // 11
      "glRules:", //                                     12
      "  - name: cards", //                              13
      "    match: { type: sale, currency: DOLLARS }", // 14
      "    accounts: { clearing: \"1210\", revnue: \"4000\" }" // 15
    ].join("\n")
    const parsed = Config.parseTenantYaml(bad)
    expect(parsed.ok).toBe(false)
    if (parsed.ok) return
    const byPath = Object.fromEntries(parsed.issues.map((i) => [i.path, i.line]))
    expect(byPath).toMatchObject({
      "connections[0].entities.invoice.direction": 7,
      "connections[0].entities.journal_entry.policy": 8,
      "connections[0].entities.widget": 9,
      "connections[0].polling.ceiling": 10,
      "connections[0].reconciliation.schedule": 11,
      "glRules[0].match.currency": 14,
      "glRules[0].accounts.revnue": 15
    })
    const text = Config.formatIssues("t.yaml", parsed.issues)
    expect(text).toContain("t.yaml:10:")
    expect(text).toContain("Expected a duration")
  })

  it("reports YAML syntax errors with their line", () => {
    const parsed = Config.parseTenantYaml("version: 1\ntenant: [unclosed\n")
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) expect(parsed.issues[0]?.line).toBeGreaterThan(0)
  })

  it("refuses duplicate connection ids and rule names", () => {
    const parsed = Config.parseTenantYaml([
      "version: 1",
      "tenant: t",
      "connections:",
      "  - { id: c, provider: xero, entities: {} }",
      "  - { id: c, provider: xero, entities: {} }"
    ].join("\n"))
    expect(parsed.ok).toBe(false)
    if (!parsed.ok) expect(parsed.issues).toMatchObject([{ path: "connections[1].id", line: 5 }])
  })

  it("parses durations in short and long form", () => {
    expect(Config.parseDuration("30s")).toBe(30_000)
    expect(Config.parseDuration("15 minutes")).toBe(900_000)
    expect(Config.parseDuration("1.5h")).toBe(5_400_000)
    expect(Config.parseDuration("soon")).toBeUndefined()
  })

  it("generates the committed JSON Schema, which editors can check the example against", () => {
    const committed = JSON.parse(readFileSync(join(root, "deploy/tenant-config.schema.json"), "utf8"))
    expect(committed).toEqual(JSON.parse(JSON.stringify(Config.jsonSchema())))
    const ajv = new Ajv2020.default({ allErrors: true, strict: false })
    const validate = ajv.compile(committed)
    expect(validate(parseYaml(example))).toBe(true)
    expect(validate({ version: 1, tenant: "t", connections: [{ id: "c", provider: "xero", entities: { invoice: { direction: "sideways" } } }] })).toBe(false)
  })
})
