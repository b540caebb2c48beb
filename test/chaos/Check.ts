/**
 * After a seed's workload and faults: wait until nothing is in flight, then
 * verify convergence — every record equal on both sides or under an open
 * conflict, no duplicates in any sandbox, every accepted app change in the
 * audit log, the audit chains intact, and no drift between the app's records
 * and what the sandboxes hold.
 */
import { connect } from "nats"
import { callApi } from "../support/child-engine.ts"
import { eventually } from "../support/engine.ts"
import type { AcceptedOp, AccountantEdit, Sandbox } from "./Harness.ts"
import { CONNECTION, FIELD, TENANT, WIRE_FIELD } from "./Harness.ts"
import type { Side } from "./Workload.ts"

export interface Observed {
  readonly url: string
  readonly sandboxes: Record<Side, Sandbox>
  readonly accepted: ReadonlyArray<AcceptedOp>
  readonly edits: ReadonlyArray<AccountantEdit>
  readonly natsUrl: string
  readonly prefix: string
  readonly note: (line: string) => void
  readonly anyFaultsOnWebhooks: boolean
}

type Json = Record<string, any>
const sides: ReadonlyArray<Side> = ["quickbooks", "xero"]
const minor = (v: unknown) => Math.round(Number(v) * 100)

/**
 * How long, once the faults stop and the engine runs clean, every accepted
 * change may take to settle (and the inbound consumer to drain): a message
 * backing off after 5 failures waits 1+2+4+8 s, a killed node's unacked ones
 * 3 s; a minute is ample for a healthy engine.
 */
const SETTLE_MS = Number(process.env.CHAOS_SETTLE_MS ?? 60_000)

/** Waits until every accepted operation is settled, the webhooks are delivered and the inbound consumer is drained. */
export const quiesce = async (o: Observed): Promise<ReadonlyArray<string>> => {
  const problems: Array<string> = []
  const pending = new Set(o.accepted.map((a) => a.operationId))
  await eventually(async () => {
    for (const id of [...pending]) {
      const op = await callApi(o.url, "GET", `/v1/operations/${id}`)
      if (op.status !== 200 || op.body.status === "accepted") return undefined
      pending.delete(id)
    }
    return true
  }, SETTLE_MS, 250).catch(() => {
    problems.push(`${pending.size} accepted operations not settled ${SETTLE_MS / 1000} s after the faults stopped (e.g. ${[...pending].slice(0, 3).join(", ")})`)
  })
  const nc = await connect({ servers: o.natsUrl })
  try {
    const jsm = await nc.jetstreamManager()
    const stream = `${o.prefix.toUpperCase()}_CONCORD_IN`
    const consumer = `${o.prefix.toUpperCase()}_concord-engine`
    for (let round = 0; round < 2; round++) {
      for (const side of sides) await o.sandboxes[side].webhooksIdle()
      let quietSince = 0
      let last = ""
      await eventually(async () => {
        const info = await jsm.consumers.info(stream, consumer)
        last = `pending ${info.num_pending}, ack pending ${info.num_ack_pending}`
        const idle = info.num_pending === 0 && info.num_ack_pending === 0
        if (!idle) quietSince = 0
        else if (quietSince === 0) quietSince = Date.now()
        return idle && Date.now() - quietSince > 1000 ? true : undefined
      }, SETTLE_MS, 200).catch(() => {
        problems.push(`the inbound consumer did not drain in ${SETTLE_MS / 1000} s (${last})`)
      })
    }
  } finally {
    await nc.close()
  }
  return problems
}

const listAll = async (url: string, tenant: string, entity: string): Promise<Array<Json>> => {
  const items: Array<Json> = []
  let after = ""
  for (;;) {
    const page = await callApi(url, "GET", `/v1/tenants/${tenant}/records/${entity}?limit=1000${after === "" ? "" : `&after=${encodeURIComponent(after)}`}`)
    if (page.status !== 200) throw new Error(`listing ${tenant} ${entity}: ${page.status} ${JSON.stringify(page.body)}`)
    items.push(...page.body.items)
    if (page.body.next === null) return items
    after = page.body.next
  }
}

/** The provider's view of a record, in the app's terms, for the fields the workload touches. */
const wireId = (side: Side, w: Json): string => String(side === "quickbooks" ? w.Id : (w.InvoiceID ?? w.ContactID ?? w.ManualJournalID)).toLowerCase()
const voided = (side: Side, w: Json): boolean =>
  side === "quickbooks" ? (Number(w.TotalAmt ?? 0) === 0 && String(w.PrivateNote ?? "").startsWith("Voided")) : (w.Status === "VOIDED" || w.Status === "DELETED")
const invoiceLines = (side: Side, w: Json): Array<Json> =>
  side === "quickbooks" ? (w.Line ?? []).filter((l: Json) => l.DetailType === "SalesItemLineDetail") : (w.LineItems ?? [])
const invoiceMarker = (side: Side, w: Json): string => String(invoiceLines(side, w)[0]?.Description ?? "")
const invoiceAmount = (side: Side, w: Json): number => minor(side === "quickbooks" ? invoiceLines(side, w)[0]?.Amount : invoiceLines(side, w)[0]?.LineAmount)
const contactName = (side: Side, w: Json): string => String(side === "quickbooks" ? w.DisplayName : w.Name)
const contactEmail = (side: Side, w: Json): string | undefined => side === "quickbooks" ? w.PrimaryEmailAddr?.Address : w.EmailAddress
const journalDebits = (side: Side, w: Json): number =>
  side === "quickbooks"
    ? (w.Line ?? []).filter((l: Json) => l.JournalEntryLineDetail?.PostingType === "Debit").reduce((s: number, l: Json) => s + minor(l.Amount), 0)
    : (w.JournalLines ?? []).filter((l: Json) => Number(l.LineAmount) > 0).reduce((s: number, l: Json) => s + minor(l.LineAmount), 0)

export const check = async (o: Observed, settled: () => void = () => {}): Promise<ReadonlyArray<string>> => {
  const failures: Array<string> = [...await quiesce(o)]
  settled()
  o.note(`quiet: ${o.accepted.length} accepted app changes, ${o.edits.length} accountant edits`)
  for (const side of sides) {
    const tenant = TENANT[side]
    const sandbox = o.sandboxes[side]
    const account = sandbox.accounts[0] as string
    const fail = (m: string) => failures.push(`${side}: ${m}`)
    const conflicts = await callApi(o.url, "GET", `/v1/tenants/${tenant}/conflicts`)
    const conflicted = new Set<string>((conflicts.body as Array<Json>).map((c) => `${c.entity}/${c.recordId}`))
    const ops = o.accepted.filter((a) => a.side === side)

    // Every accepted operation settled; a failed one is a change the engine accepted and did not apply.
    for (const a of ops) {
      const op = await callApi(o.url, "GET", `/v1/operations/${a.operationId}`)
      if (op.body?.status === "failed") fail(`operation ${a.operationId} (${a.entity} ${a.recordId}) failed: ${JSON.stringify(op.body.items)}`)
    }

    for (const entity of ["contact", "invoice", "journal_entry"] as const) {
      const app = new Map((await listAll(o.url, tenant, entity)).map((r) => [String(r.id), r]))
      const wire = sandbox.records(account, entity) as ReadonlyArray<Json>
      const wireById = new Map(wire.map((w) => [wireId(side, w), w]))
      const linked = new Set<string>()
      const lastOp = new Map<string, AcceptedOp>()
      for (const a of ops.filter((x) => x.entity === entity)) lastOp.set(a.recordId, a)
      for (const [recordId, last] of lastOp) {
        const key = `${entity}/${recordId}`
        const r = app.get(recordId)
        if (r === undefined) {
          fail(`${key}: accepted by the app API but absent from the app's records`)
          continue
        }
        const sync = r.sync?.[0] as Json | undefined
        // QuickBooks external ids name the wire entity ("customer:2"); the sandbox keys by Id.
        const ext = typeof sync?.externalId === "string" ? (sync.externalId as string).split(":").at(-1)?.toLowerCase() : undefined
        if (ext) linked.add(ext)
        if (conflicted.has(key)) continue
        const w = ext ? wireById.get(ext) : undefined
        if (last.record === undefined) {
          if (!r.deleted) fail(`${key}: the app deleted it, the app's record is not deleted`)
          if (w !== undefined && !voided(side, w)) fail(`${key}: deleted in the app, still live at ${side} (${ext})`)
          continue
        }
        if (r.deleted) {
          fail(`${key}: the app's last change was a write, the record is deleted`)
          continue
        }
        if (sync?.status !== "synced") fail(`${key}: sync status ${sync?.status} (${JSON.stringify(sync?.lastError)})`)
        if (w === undefined) {
          fail(`${key}: no record at ${side} for external id ${ext}`)
          continue
        }
        if (voided(side, w)) fail(`${key}: live in the app, voided/deleted at ${side}`)
        const rec = r.record as Json
        if (entity === "contact") {
          if (contactName(side, w) !== rec.name) fail(`${key}: name app ${rec.name} ≠ ${side} ${contactName(side, w)}`)
          if (contactEmail(side, w) !== rec.email) fail(`${key}: email app ${rec.email} ≠ ${side} ${contactEmail(side, w)}`)
          if (rec.email !== last.record.email) fail(`${key}: lost update: the app's last email was ${last.record.email}, the record holds ${rec.email}`)
        } else if (entity === "invoice") {
          const field = FIELD[side]
          const value = rec[field]
          if (w[WIRE_FIELD[side]] !== value) fail(`${key}: ${field} app "${value}" ≠ ${side} "${w[WIRE_FIELD[side]]}"`)
          const appAmount = Number((rec.lines as Array<Json>)[0]?.amount)
          if (invoiceAmount(side, w) !== appAmount) fail(`${key}: amount app ${appAmount} ≠ ${side} ${invoiceAmount(side, w)}`)
          const lastAmount = Number((last.record.lines as Array<Json>)[0]?.amount)
          if (appAmount !== lastAmount) fail(`${key}: lost update: the app's last amount was ${lastAmount}, the record holds ${appAmount}`)
          const later = o.edits.filter((e) => e.side === side && e.recordId === recordId && e.at > last.at).map((e) => e.value)
          const allowed = [last.record[field], ...later]
          if (!allowed.includes(value)) fail(`${key}: ${field} is "${value}", expected the app's last "${String(last.record[field])}"${later.length > 0 ? ` or a later accountant edit (${later.join(", ")})` : ""}`)
        } else {
          const total = Number(last.record.total)
          if (journalDebits(side, w) !== total) fail(`${key}: the journal's debits at ${side} are ${journalDebits(side, w)}, the transaction's total ${total}`)
        }
      }
      // No duplicates and no orphans: every provider record the workload caused is linked from exactly one app record.
      const ours = wire.filter((w) =>
        entity === "contact" ? contactName(side, w).startsWith("Chaos customer ") : entity === "invoice" ? invoiceMarker(side, w).startsWith("Chaos ") : true
      )
      const byMarker = new Map<string, Array<string>>()
      for (const w of ours) {
        const marker = entity === "contact" ? contactName(side, w) : entity === "invoice" ? invoiceMarker(side, w) : wireId(side, w)
        byMarker.set(marker, [...(byMarker.get(marker) ?? []), wireId(side, w)])
        if (!linked.has(wireId(side, w))) fail(`${entity} ${wireId(side, w)} (${marker}) exists at ${side} but no app record links to it (a duplicate or a lost link)`)
      }
      for (const [marker, ids] of byMarker) if (ids.length > 1) fail(`duplicate ${entity} at ${side}: ${marker} × ${ids.length} (${ids.join(", ")})`)
    }

    // Every accepted app change is in the audit log, and the chain verifies.
    const rows: Array<Json> = []
    for (let after = 0; ;) {
      const page = await callApi(o.url, "GET", `/v1/tenants/${tenant}/audit?after=${after}&limit=1000`)
      if (page.status !== 200 || page.body.length === 0) break
      rows.push(...page.body)
      after = page.body.at(-1).seq
    }
    const correlations = new Set(rows.filter((r) => r.action === "app_change" || r.action === "app_delete").map((r) => r.correlationId))
    for (const a of ops) if (!correlations.has(a.operationId)) fail(`accepted change ${a.operationId} (${a.entity} ${a.recordId}) has no audit row`)
    const verify = await callApi(o.url, "GET", `/v1/tenants/${tenant}/audit/verify`)
    if (verify.body?.ok !== true) fail(`the audit chain does not verify: ${JSON.stringify(verify.body)}`)

    // A final full-state reconciliation through the engine (drift runs): it must find nothing.
    const started = await callApi(o.url, "POST", `/v1/tenants/${tenant}/connections/${CONNECTION[side]}/drift/reconcile`, { body: {} })
    if (started.status !== 202) {
      fail(`starting the final reconciliation answered ${started.status}: ${JSON.stringify(started.body)}`)
    } else {
      const runId = String(started.body.id)
      const detail = await eventually(async () => {
        const r = await callApi(o.url, "GET", `/v1/tenants/${tenant}/drift/runs/${runId}?limit=20`)
        return r.status === 200 && r.body.run?.status !== "running" ? r.body : undefined
      }, 120_000, 250).catch((e) => {
        fail(`the final reconciliation ${runId} did not finish: ${String(e)}`)
        return undefined
      })
      if (detail !== undefined) {
        const run = detail.run as Json
        o.note(`${side}: final reconciliation ${runId}: ${run.status}, ${run.total} drift item(s), ${run.explained} explained by in-flight work`)
        if (run.status !== "completed") fail(`the final reconciliation ${runId} ${run.status}: ${String(run.error)}`)
        else if (Number(run.total) > 0) {
          const items = (detail.items as Array<Json>).map((i) => `${i.kind} ${i.entity} ${i.recordId ?? "-"}/${i.externalId ?? "-"} ${JSON.stringify(i.fields)} ${JSON.stringify(i.detail)}`)
          fail(`the final reconciliation found ${run.total} drift item(s): ${items.join("; ")}`)
        }
      }
    }
  }
  return failures
}
