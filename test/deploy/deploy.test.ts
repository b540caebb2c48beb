/**
 * deploy/ stays true to the code:
 *
 * - every generated file (tenant-config and payload JSON Schemas, NATS stream
 *   and consumer definitions) is committed and up to date (`npm run schemas`),
 *   with nothing stale beside it, and every schema compiles and accepts what
 *   the engine really sends;
 * - the compose file, the Kubernetes manifests and the Dockerfile only set
 *   environment variables the server reads, probe endpoints the API serves,
 *   and run `node bin/concord.js serve`.
 */
import { Registry } from "@concord/providers"
import Ajv2020 from "ajv/dist/2020.js"
import { existsSync, readdirSync, readFileSync } from "node:fs"
import { join } from "node:path"
import { describe, expect, it } from "vitest"
import { parse as parseYaml, parseAllDocuments } from "yaml"
import { generated } from "../../scripts/schemas.ts"
import { routes } from "../security/support.ts"

const root = join(import.meta.dirname, "../..")
const read = (file: string) => readFileSync(join(root, file), "utf8")

const sourceFiles = (dir: string): Array<string> =>
  readdirSync(join(root, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(`${dir}/${e.name}`) : e.name.endsWith(".ts") ? [`${dir}/${e.name}`] : []
  )

/** The environment variables the server's code reads, found in its source. */
const variablesRead = (): { readonly exact: Set<string>; readonly perProvider: Set<string> } => {
  const exact = new Set<string>()
  const perProvider = new Set<string>()
  for (const file of sourceFiles("packages/server/src")) {
    const text = read(file)
    for (const m of text.matchAll(/Config\.(?:String|Redacted|Int|Number|Boolean|Port|Integer)\("([A-Z0-9_]+)"\)/g)) exact.add(m[1] as string)
    for (const m of text.matchAll(/process\.env\.([A-Z0-9_]+)/g)) exact.add(m[1] as string)
    for (const m of text.matchAll(/process\.env\[`CONCORD_\$\{p\}_([A-Z0-9_]+)`\]/g)) perProvider.add(m[1] as string)
  }
  return { exact, perProvider }
}

const isReadByServer = (name: string): boolean => {
  const { exact, perProvider } = variablesRead()
  if (exact.has(name)) return true
  const m = /^CONCORD_([A-Z0-9]+)_([A-Z0-9_]+)$/.exec(name)
  return m !== null && Registry.providers.some((p) => p.id.toUpperCase() === m[1]) && perProvider.has(m[2] as string)
}

describe("generated deployment files", () => {
  const files = generated()

  it("are committed and up to date (run `npm run schemas` after changing a schema or a stream)", () => {
    const stale: Array<string> = []
    for (const [file, content] of Object.entries(files)) {
      if (!existsSync(join(root, file)) || read(file) !== content) stale.push(file)
    }
    expect(stale).toEqual([])
    // Nothing is left behind that the code no longer produces.
    for (const dir of ["deploy/schemas", "deploy/nats"]) {
      const extra = readdirSync(join(root, dir)).filter((f) => f.endsWith(".json") && files[`${dir}/${f}`] === undefined)
      expect(extra, dir).toEqual([])
    }
  })

  it("cover every published event, the dead letters, inbound messages, records and transactions, and the three streams", () => {
    expect(Object.keys(files).sort()).toEqual(expect.arrayContaining([
      "deploy/schemas/change-event.schema.json",
      "deploy/schemas/conflict-event.schema.json",
      "deploy/schemas/drift-event.schema.json",
      "deploy/schemas/health-event.schema.json",
      "deploy/schemas/dead-letter.schema.json",
      "deploy/schemas/inbound-message.schema.json",
      "deploy/schemas/canonical-record.schema.json",
      "deploy/schemas/transaction.schema.json",
      "deploy/nats/CONCORD_IN.json",
      "deploy/nats/CONCORD_EVENTS.json",
      "deploy/nats/CONCORD_DLQ.json",
      "deploy/nats/concord-engine.consumer.json"
    ]))
    const events = JSON.parse(read("deploy/nats/CONCORD_EVENTS.json"))
    expect(events.subjects).toEqual(["concord.changes.>", "concord.drift.>", "concord.conflicts.>", "concord.health.>"])
  })

  it("compile, and accept what the engine sends while refusing what it refuses", () => {
    const ajv = new Ajv2020.default({ allErrors: true, strict: false })
    const schema = (name: string) => ajv.compile(JSON.parse(read(`deploy/schemas/${name}.schema.json`)))
    for (const f of readdirSync(join(root, "deploy/schemas"))) {
      expect(() => new Ajv2020.default({ strict: false }).compile(JSON.parse(read(`deploy/schemas/${f}`))), f).not.toThrow()
    }
    const inbound = schema("inbound-message")
    const change = { kind: "app_change", tenant: "acme", connectionId: "acme-qbo", entity: "contact", recordId: "c1", record: { name: "Ada" }, at: "2026-03-01T00:00:00.000Z" }
    expect(inbound(change), JSON.stringify(inbound.errors)).toBe(true)
    expect(inbound({ ...change, entity: "unicorn" })).toBe(false)
    expect(inbound({ kind: "provider_change", tenant: "acme", connectionId: "acme-qbo", entity: "invoice", externalId: "9", operation: "update", occurredAt: "2026-03-01T00:00:00Z" })).toBe(true)
    const record = schema("canonical-record")
    expect(record({ entity: "contact", schemaVersion: 1, id: "c1", name: "Ada Lovelace", roles: ["customer"], status: "active" }), JSON.stringify(record.errors)).toBe(true)
    expect(record({ entity: "contact", schemaVersion: 1, id: "c1", name: 42, roles: ["customer"], status: "active" })).toBe(false)
    const txn = schema("transaction")
    expect(txn({ id: "s-1", type: "sale", tender: "card", date: "2026-03-02", currency: "USD", lines: [{ amount: 1000 }], tax: 89, tip: 200, total: 1289 }), JSON.stringify(txn.errors)).toBe(true)
    expect(txn({ id: "s-1", type: "sale" })).toBe(false)
    const health = schema("health-event")
    expect(health({ type: "connection.needs_reauth", tenant: "acme", connectionId: "acme-qbo", provider: "quickbooks", reason: "invalid_grant", occurredAt: "2026-03-01T00:00:00Z" })).toBe(true)
    expect(health({ type: "connection.exploded", tenant: "acme", connectionId: "acme-qbo", provider: "quickbooks", occurredAt: "x" })).toBe(false)
  })
})

describe("container, compose and Kubernetes files", () => {
  const paths = new Set(routes().filter((r) => r.method === "GET").map((r) => r.path))

  it("the server really reads the variables this test knows about (the scan of its source works)", () => {
    for (const name of ["PORT", "HOST", "DATABASE_URL", "NATS_URL", "CONCORD_ADMIN_KEY", "CONCORD_ENCRYPTION_KEYS", "CONCORD_CLUSTER", "CONCORD_RUNNER_HOST", "CONCORD_QUICKBOOKS_CLIENT_SECRET", "CONCORD_XERO_WEBHOOK_SECRET"]) {
      expect(isReadByServer(name), name).toBe(true)
    }
    expect(isReadByServer("CONCORD_DATABASE")).toBe(false)
    expect(isReadByServer("CONCORD_SAGE_CLIENT_ID")).toBe(false)
  })

  it("the Dockerfile runs `node bin/concord.js serve` on Node 22 without dev dependencies, and copies what exists", () => {
    const docker = read("deploy/Dockerfile")
    expect(docker).toMatch(/^FROM node:22[-.\w]*$/m)
    expect(docker).toMatch(/npm ci --omit=dev/)
    expect(docker).toContain(`ENTRYPOINT ["node", "bin/concord.js"]`)
    expect(docker).toContain(`CMD ["serve"]`)
    for (const m of docker.matchAll(/^COPY (\S+)(?: (\S+))? \S+$/gm)) {
      for (const src of [m[1], m[2]].filter((s): s is string => s !== undefined)) expect(existsSync(join(root, src)), src).toBe(true)
    }
    for (const m of docker.matchAll(/^ENV ([\s\S]*?)\n\n/gm)) {
      for (const v of (m[1] as string).matchAll(/([A-Z_]+)=/g)) expect(isReadByServer(v[1] as string), v[1]).toBe(true)
    }
    // The build context leaves out the local node_modules.
    expect(read(".dockerignore")).toMatch(/^node_modules$/m)
  })

  it("compose runs concord with Postgres and NATS JetStream, and sets only variables the server reads", () => {
    const compose = parseYaml(read("deploy/docker-compose.yml"))
    expect(Object.keys(compose.services).sort()).toEqual(["concord", "nats", "postgres"])
    expect(compose.services.nats.command).toContain("-js")
    const concord = compose.services.concord
    expect(existsSync(join(root, "deploy", concord.build.context, concord.build.dockerfile))).toBe(true)
    const env = concord.environment as Record<string, unknown>
    for (const name of Object.keys(env)) expect(isReadByServer(name), `${name} is not read by the server`).toBe(true)
    expect(env.HOST).toBe("0.0.0.0")
    expect(env.DATABASE_URL).toMatch(/@postgres:5432\//)
    expect(env.NATS_URL).toBe("nats://nats:4222")
    for (const dependency of ["postgres", "nats"]) expect(concord.depends_on[dependency].condition).toBe("service_healthy")
    expect(JSON.stringify(concord.healthcheck.test)).toContain("/readyz")
    expect(paths.has("/readyz")).toBe(true)
  })

  it("the Kubernetes manifests wire config, secrets, probes and the service to what the server serves", () => {
    const docs = readdirSync(join(root, "deploy/k8s"))
      .filter((f) => f.endsWith(".yaml"))
      .flatMap((f) => parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => ({ file: f, doc: d.toJS() as Record<string, any> })))
    const byKind = (kind: string) => docs.filter((d) => d.doc.kind === kind).map((d) => d.doc)
    const kustomization = byKind("Kustomization")[0] as { resources: Array<string> }
    for (const r of kustomization.resources) expect(existsSync(join(root, "deploy/k8s", r)), r).toBe(true)
    const [deployment] = byKind("Deployment")
    const [config] = byKind("ConfigMap")
    const [secret] = byKind("Secret")
    const [service] = byKind("Service")
    const pod = deployment?.spec.template
    const container = pod.spec.containers[0]
    expect(container.args).toEqual(["serve"])
    // Config and secrets come from the ConfigMap and the Secret, and hold only variables the server reads.
    expect(container.envFrom).toEqual([{ configMapRef: { name: config?.metadata.name } }, { secretRef: { name: secret?.metadata.name } }])
    for (const name of [...Object.keys(config?.data ?? {}), ...Object.keys(secret?.stringData ?? {}), ...container.env.map((e: { name: string }) => e.name)]) {
      expect(isReadByServer(name), `${name} is not read by the server`).toBe(true)
    }
    for (const required of ["DATABASE_URL", "CONCORD_ADMIN_KEY", "CONCORD_ENCRYPTION_KEYS"]) expect(Object.keys(secret?.stringData ?? {})).toContain(required)
    expect(config?.data.HOST).toBe("0.0.0.0")
    // Probes hit endpoints the API serves, on a port the container declares.
    const ports = new Map<string, number>(container.ports.map((p: { name: string; containerPort: number }) => [p.name, p.containerPort]))
    expect(ports.get("http")).toBe(Number(config?.data.PORT))
    expect(ports.get("runner")).toBe(Number(config?.data.CONCORD_RUNNER_PORT))
    for (const probe of ["startupProbe", "livenessProbe", "readinessProbe"]) {
      const get = container[probe].httpGet
      expect(paths.has(get.path), `${probe} ${get.path}`).toBe(true)
      expect(ports.has(get.port), `${probe} port ${get.port}`).toBe(true)
    }
    expect(container.readinessProbe.httpGet.path).toBe("/readyz")
    // The Service selects the pods and targets the HTTP port.
    for (const [k, v] of Object.entries(service?.spec.selector as Record<string, string>)) expect(pod.metadata.labels[k]).toBe(v)
    expect(ports.has(service?.spec.ports[0].targetPort)).toBe(true)
    expect(deployment?.spec.selector.matchLabels).toEqual(service?.spec.selector)
  })
})
