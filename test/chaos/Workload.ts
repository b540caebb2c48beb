/**
 * The deterministic part of a chaos seed: the workload (app creates, updates
 * and deletes, accountant edits in the sandboxes, GL-mapped POS transactions)
 * interleaved with the faults to inject. The same seed always gives the same
 * plan; only the timing of what the engine does in between varies.
 */
import { prng } from "./Prng.ts"

export type Side = "quickbooks" | "xero"

export type Step =
  | { readonly t: "put_contact"; readonly side: Side; readonly id: string; readonly version: number }
  | { readonly t: "put_invoice"; readonly side: Side; readonly id: string; readonly contact: string; readonly version: number; readonly amount: number }
  | { readonly t: "delete_invoice"; readonly side: Side; readonly id: string }
  | { readonly t: "accountant_edit"; readonly side: Side; readonly id: string; readonly version: number }
  | { readonly t: "transaction"; readonly side: Side; readonly id: string; readonly amount: number; readonly tax: number }
  | { readonly t: "sleep"; readonly ms: number }
  // Faults
  | { readonly t: "kill_engine"; readonly downMs: number }
  | { readonly t: "crash_at"; readonly point: "after-provider-write" | "after-commit" | "after-publish" }
  | { readonly t: "restart_nats"; readonly downMs: number }
  | { readonly t: "terminate_pg" }
  | { readonly t: "storm"; readonly side: Side; readonly ms: number }
  | { readonly t: "errors"; readonly side: Side; readonly rate: number; readonly ms: number }
  | { readonly t: "timeouts"; readonly side: Side; readonly rate: number; readonly hangMs: number; readonly ms: number }
  | { readonly t: "expire_tokens"; readonly side: Side }
  | { readonly t: "token_expiry"; readonly side: Side; readonly rate: number; readonly ms: number }

export interface WebhookFaultPlan {
  readonly duplicateRate: number
  readonly reorder: boolean
  readonly dropRate: number
}

export interface Plan {
  readonly seed: number
  readonly steps: ReadonlyArray<Step>
  readonly webhooks: Record<Side, WebhookFaultPlan>
}

export const isFault = (s: Step): boolean =>
  s.t === "kill_engine" || s.t === "crash_at" || s.t === "restart_nats" || s.t === "terminate_pg" || s.t === "storm" || s.t === "errors" ||
  s.t === "timeouts" || s.t === "expire_tokens" || s.t === "token_expiry"

export const describeStep = (s: Step): string => {
  switch (s.t) {
    case "put_contact":
      return `app PUT ${s.side} contact ${s.id} (v${s.version})`
    case "put_invoice":
      return `app PUT ${s.side} invoice ${s.id} (v${s.version}, contact ${s.contact}, ${s.amount})`
    case "delete_invoice":
      return `app DELETE ${s.side} invoice ${s.id}`
    case "accountant_edit":
      return `accountant edits ${s.side} invoice ${s.id} (a${s.version})`
    case "transaction":
      return `app POST ${s.side} transaction ${s.id} (${s.amount} + tax ${s.tax})`
    case "sleep":
      return `wait ${s.ms} ms`
    case "kill_engine":
      return `FAULT SIGKILL the engine, restart after ${s.downMs} ms`
    case "crash_at":
      return `FAULT restart the engine with CONCORD_CRASH_AT=${s.point} (it SIGKILLs itself there; restarted)`
    case "restart_nats":
      return `FAULT restart nats-server (down ${s.downMs} ms)`
    case "terminate_pg":
      return "FAULT pg_terminate_backend every connection to the seed's database"
    case "storm":
      return `FAULT ${s.side} 429 storm for ${s.ms} ms`
    case "errors":
      return `FAULT ${s.side} 5xx on ${Math.round(s.rate * 100)}% of calls for ${s.ms} ms`
    case "timeouts":
      return `FAULT ${s.side} ${Math.round(s.rate * 100)}% of calls hang ${s.hangMs} ms then 504, for ${s.ms} ms`
    case "expire_tokens":
      return `FAULT ${s.side} every access token expires now (the engine refreshes; the refresh token rotates)`
    case "token_expiry":
      return `FAULT ${s.side} ${Math.round(s.rate * 100)}% of calls find their access token expired mid-call, for ${s.ms} ms`
  }
}

export interface PlanOptions {
  /** Allow dropped webhooks (only when the engine can heal a lost one by reconciliation). */
  readonly dropWebhooks: boolean
  /** Number of workload operations (default: 40–80, drawn from the seed). */
  readonly operations?: number
  /** Inject faults (default true; false runs the same workload on a healthy system, for diagnosis). */
  readonly faults?: boolean
}

const sides: ReadonlyArray<Side> = ["quickbooks", "xero"]

export const plan = (seed: number, options: PlanOptions): Plan => {
  const r = prng(seed)
  const ops = options.operations ?? r.int(40, 80)
  const webhooks = (): WebhookFaultPlan => ({
    duplicateRate: r.chance(0.6) ? r.pick([0.1, 0.3, 0.5]) : 0,
    reorder: r.chance(0.6),
    dropRate: options.dropWebhooks && r.chance(0.5) ? r.pick([0.05, 0.15]) : 0
  })
  const wh = { quickbooks: webhooks(), xero: webhooks() }

  // Model, so that operations make sense (update what exists, edit what was created a while ago).
  const contacts: Record<Side, Array<{ id: string; version: number }>> = { quickbooks: [], xero: [] }
  const invoices: Record<Side, Array<{ id: string; version: number; contact: string; amount: number; createdAt: number; deleted: boolean; edits: number }>> = { quickbooks: [], xero: [] }
  let txns = 0

  const workload: Array<Step> = []
  for (let i = 0; i < ops; i++) {
    const side = r.pick(sides)
    const cs = contacts[side]
    const is = invoices[side]
    const live = is.filter((x) => !x.deleted)
    const editable = live.filter((x) => i - x.createdAt >= 6)
    const roll = r.next()
    if (cs.length < 2 || (roll < 0.12 && cs.length < 8)) {
      const c = { id: `c-${cs.length}`, version: 1 }
      cs.push(c)
      workload.push({ t: "put_contact", side, id: c.id, version: c.version })
    } else if (roll < 0.2) {
      const c = r.pick(cs)
      c.version++
      workload.push({ t: "put_contact", side, id: c.id, version: c.version })
    } else if (roll < 0.5 || live.length === 0) {
      const inv = { id: `inv-${is.length}`, version: 1, contact: r.pick(cs).id, amount: r.int(100, 99_999), createdAt: i, deleted: false, edits: 0 }
      is.push(inv)
      workload.push({ t: "put_invoice", side, id: inv.id, contact: inv.contact, version: inv.version, amount: inv.amount })
    } else if (roll < 0.68) {
      const inv = r.pick(live)
      inv.version++
      if (r.chance(0.3)) inv.amount = r.int(100, 99_999)
      workload.push({ t: "put_invoice", side, id: inv.id, contact: inv.contact, version: inv.version, amount: inv.amount })
    } else if (roll < 0.73 && live.length > 3) {
      const inv = r.pick(live)
      inv.deleted = true
      workload.push({ t: "delete_invoice", side, id: inv.id })
    } else if (roll < 0.88 && editable.length > 0) {
      const inv = r.pick(editable)
      inv.edits++
      workload.push({ t: "accountant_edit", side, id: inv.id, version: inv.edits })
    } else {
      txns++
      workload.push({ t: "transaction", side, id: `s-${txns}`, amount: r.int(100, 50_000), tax: r.int(0, 900) })
    }
    if (r.chance(0.15)) workload.push({ t: "sleep", ms: r.int(50, 400) })
  }

  // Faults at random positions: 1–2 engine kills, a NATS restart in some seeds, Postgres terminations, provider faults.
  const faults: Array<Step> = []
  const kills = r.int(1, 2)
  for (let k = 0; k < kills; k++) {
    faults.push(r.chance(0.3) ? { t: "crash_at", point: r.pick(["after-provider-write", "after-commit", "after-publish"] as const) } : { t: "kill_engine", downMs: r.int(0, 800) })
  }
  if (r.chance(0.4)) faults.push({ t: "restart_nats", downMs: r.int(200, 1500) })
  const pgKills = r.int(0, 2)
  for (let k = 0; k < pgKills; k++) faults.push({ t: "terminate_pg" })
  const providerFaults = r.int(2, 5)
  for (let k = 0; k < providerFaults; k++) {
    const side = r.pick(sides)
    const kind = r.int(0, 4)
    if (kind === 0) faults.push({ t: "storm", side, ms: r.int(300, 2500) })
    else if (kind === 1) faults.push({ t: "errors", side, rate: r.pick([0.1, 0.25, 0.5]), ms: r.int(500, 3000) })
    else if (kind === 2) faults.push({ t: "timeouts", side, rate: r.pick([0.05, 0.15]), hangMs: r.int(500, 3000), ms: r.int(500, 3000) })
    else if (kind === 3) faults.push({ t: "expire_tokens", side })
    else faults.push({ t: "token_expiry", side, rate: r.pick([0.05, 0.2]), ms: r.int(500, 3000) })
  }
  const steps = [...workload]
  for (const f of faults) steps.splice(r.int(1, steps.length), 0, f)
  if (options.faults === false) {
    const none = { duplicateRate: 0, reorder: false, dropRate: 0 }
    return { seed, steps: steps.filter((s) => !isFault(s)), webhooks: { quickbooks: none, xero: none } }
  }
  return { seed, steps, webhooks: wh }
}
