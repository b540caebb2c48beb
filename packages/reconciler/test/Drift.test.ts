/**
 * Drift classification, one record at a time: what a reconciliation reports
 * for each combination of link, app record and provider record, and how the
 * entity's policy resolves it. A wrong answer here is either noise in every
 * report or drift nobody hears about.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Drift from "../src/Drift.ts"
import type { ProjectionSpec } from "../src/Projection.ts"

const spec: ProjectionSpec = { fields: ["entity", "schemaVersion", "id", "name", "email", "number", "lines", "currency", "status", "memo"], customFields: {}, defaults: {} }

const contact = (over: Record<string, unknown> = {}) => ({ entity: "contact", schemaVersion: 1, id: "c-1", name: "Ada", email: "ada@example.com", status: "active", ...over })

const journal = (debit: number, credit: number, over: Record<string, unknown> = {}) => ({
  entity: "journal_entry",
  schemaVersion: 1,
  id: "je-1",
  number: "JE-1",
  currency: "USD",
  status: "posted",
  lines: [
    { lineId: "a", postingType: "debit", accountId: "6000", amount: debit },
    { lineId: "b", postingType: "credit", accountId: "4000", amount: credit }
  ],
  ...over
})

const linked = (app: Record<string, unknown> | undefined, provider: Record<string, unknown> | null, over: Partial<Drift.LinkedInput> = {}) =>
  Drift.classifyLinked({
    entity: (app?.entity ?? provider?.entity ?? "contact") as Drift.Finding["entity"],
    recordId: "c-1",
    externalId: "ext-1",
    app: app === undefined ? undefined : { data: app, deleted: false },
    providerDeleted: false,
    provider,
    spec,
    ...over
  })

describe("classifyLinked", () => {
  it("reports nothing when both projections agree, whatever app-only fields the app holds", () => {
    expect(linked(contact({ notes: "app only", customFields: { x: 1 } }), contact())).toEqual([])
  })

  it("lists every differing field with both values", () => {
    const found = linked(contact(), contact({ email: "other@example.com", memo: "set at the provider" }))
    expect(found).toHaveLength(1)
    expect(found[0]).toMatchObject({ kind: "field_mismatch", recordId: "c-1", externalId: "ext-1" })
    expect(found[0]?.fields).toEqual(expect.arrayContaining([
      { path: "email", app: "ada@example.com", provider: "other@example.com" },
      { path: "memo", app: undefined, provider: "set at the provider" }
    ]))
    expect(found[0]?.fields).toHaveLength(2)
  })

  it("compares lines by position, not by the line ids each side gave them", () => {
    expect(linked(journal(100, 100), journal(100, 100, { lines: journal(100, 100).lines.map((l, i) => ({ ...l, lineId: `p${i}` })) }))).toEqual([])
  })

  it("calls a linked record gone at the provider missing_in_provider, unless the app deleted it too", () => {
    expect(linked(contact(), null)).toEqual([expect.objectContaining({ kind: "missing_in_provider", recordId: "c-1", externalId: "ext-1" })])
    expect(linked(contact(), contact({ status: "deleted" }))).toEqual([expect.objectContaining({ kind: "missing_in_provider" })])
    expect(Drift.classifyLinked({ entity: "contact", recordId: "c-1", externalId: "e", app: { data: contact(), deleted: true }, providerDeleted: false, provider: null, spec })).toEqual([])
  })

  it("calls a record the app deleted but the provider keeps live missing_in_app; removed at the provider is in sync", () => {
    const base = { entity: "contact" as const, recordId: "c-1", externalId: "e", app: { data: contact(), deleted: true }, provider: contact(), spec }
    expect(Drift.classifyLinked({ ...base, providerDeleted: false })).toEqual([expect.objectContaining({ kind: "missing_in_app", recordId: "c-1" })])
    expect(Drift.classifyLinked({ ...base, providerDeleted: true })).toEqual([])
  })

  it("calls a link without an app record an orphan, whether or not the provider has it", () => {
    expect(linked(undefined, null)).toEqual([expect.objectContaining({ kind: "orphan_link" })])
    expect(linked(undefined, contact())).toEqual([expect.objectContaining({ kind: "orphan_link" })])
  })

  it("reports an unbalanced journal (either side) instead of a field mismatch, with the totals", () => {
    const found = linked(journal(500, 400), journal(500, 500))
    expect(found).toEqual([expect.objectContaining({ kind: "unbalanced", fields: [{ path: "balance.USD", app: { debit: 500, credit: 400 }, provider: { debit: 500, credit: 500 } }], detail: { side: "app" } })])
    expect(linked(journal(1, 1), journal(2, 1))[0]).toMatchObject({ kind: "unbalanced", detail: { side: "provider" } })
    expect(linked(journal(7, 7), journal(7, 7))).toEqual([])
  })

  it("balances per currency: a multi-currency journal balanced in each currency is fine", () => {
    const multi = journal(100, 100, {
      lines: [
        { postingType: "debit", accountId: "1", amount: 100 },
        { postingType: "credit", accountId: "2", amount: 100 },
        { postingType: "debit", accountId: "1", amount: 30, currency: "EUR" },
        { postingType: "credit", accountId: "2", amount: 30, currency: "EUR" }
      ]
    })
    expect(Drift.unbalanced("journal_entry", multi)).toEqual([])
    const off = journal(0, 0, { lines: [...(multi.lines as Array<object>), { postingType: "debit", accountId: "1", amount: 5, currency: "EUR" }] })
    expect(Drift.unbalanced("journal_entry", off)).toEqual([{ currency: "EUR", debit: 35, credit: 30 }])
  })

  it("is symmetric in what it finds: swapping sides swaps the values, never the verdict", () => {
    fc.assert(fc.property(fc.string(), fc.string(), (a, b) => {
      const x = linked(contact({ memo: a }), contact({ memo: b }))
      const y = linked(contact({ memo: b }), contact({ memo: a }))
      expect(x.length).toBe(y.length)
      expect(x.length).toBe(a === b ? 0 : 1)
      if (x[0] !== undefined) expect(x[0].fields).toEqual((y[0]?.fields ?? []).map((f) => ({ path: f.path, app: f.provider, provider: f.app })))
    }))
  })
})

describe("unlinked records", () => {
  it("a provider record whose natural key matches an app record linked elsewhere is a duplicate; else missing_in_app", () => {
    const dup = Drift.classifyUnlinkedProvider({ entity: "invoice", externalId: "99", provider: { number: " inv-7 " }, sameKey: { recordId: "inv-7", externalId: "12" } })
    expect(dup).toMatchObject({ kind: "duplicate_in_provider", recordId: "inv-7", externalId: "99", detail: { duplicates: "12" } })
    expect(Drift.classifyUnlinkedProvider({ entity: "invoice", externalId: "99", provider: { number: "INV-8" }, sameKey: undefined })).toMatchObject({ kind: "missing_in_app", recordId: null, externalId: "99" })
    // No natural key (a payment): never a duplicate.
    expect(Drift.classifyUnlinkedProvider({ entity: "payment", externalId: "5", provider: {}, sameKey: { recordId: "p", externalId: "6" } })).toMatchObject({ kind: "missing_in_app" })
    // Kept as deleted by the provider: nothing the app misses.
    expect(Drift.classifyUnlinkedProvider({ entity: "invoice", externalId: "5", provider: { status: "deleted" }, sameKey: undefined })).toBeUndefined()
  })

  it("natural keys: document number, name, account code (else name); trimmed, case-insensitive", () => {
    expect(Drift.naturalKey("invoice", { number: " INV-1 " })).toBe("inv-1")
    expect(Drift.naturalKey("contact", { name: "Ada Ltd" })).toBe("ada ltd")
    expect(Drift.naturalKey("account", { code: "4000", name: "Sales" })).toBe("4000")
    expect(Drift.naturalKey("account", { name: "Sales" })).toBe("sales")
    expect(Drift.naturalKey("payment", { number: "x" })).toBeUndefined()
    expect(Drift.naturalKey("invoice", { number: "  " })).toBeUndefined()
  })

  it("an app record never linked is missing_in_provider only when the connection pushes that entity", () => {
    const at = { entity: "contact" as const, recordId: "c-9", deleted: false }
    expect(Drift.classifyUnlinkedApp({ ...at, direction: "push" })).toEqual([expect.objectContaining({ kind: "missing_in_provider", recordId: "c-9", externalId: null })])
    expect(Drift.classifyUnlinkedApp({ ...at, direction: "both" })).toHaveLength(1)
    expect(Drift.classifyUnlinkedApp({ ...at, direction: "pull" })).toEqual([])
    expect(Drift.classifyUnlinkedApp({ ...at, deleted: true, direction: "both" })).toEqual([])
  })
})

describe("resolutionFor", () => {
  const f = (kind: Drift.DriftKind, recordId: string | null = "r", externalId: string | null = "x"): Drift.Finding => ({ kind, entity: "invoice", recordId, externalId, fields: [] })

  it("follows the policy: app_wins re-pushes, provider_wins pulls, review opens conflicts", () => {
    expect(Drift.resolutionFor(f("field_mismatch"), "app_wins", "both")).toBe("repush")
    expect(Drift.resolutionFor(f("field_mismatch"), "provider_wins", "both")).toBe("pull")
    expect(Drift.resolutionFor(f("field_mismatch"), "review", "both")).toBe("conflict")
    expect(Drift.resolutionFor(f("field_mismatch"), undefined, "both")).toBe("conflict")
    expect(Drift.resolutionFor(f("field_mismatch"), { default: "app_wins", fields: { memo: "review" } }, "both")).toBe("repush")
  })

  it("never acts against the direction: no re-push of a pull-only entity, no pull of a push-only one", () => {
    expect(Drift.resolutionFor(f("field_mismatch"), "app_wins", "pull")).toBe("review")
    expect(Drift.resolutionFor(f("field_mismatch"), "provider_wins", "push")).toBe("review")
  })

  it("missing records: re-created under app_wins, pulled under provider_wins, never deleted on a guess", () => {
    expect(Drift.resolutionFor(f("missing_in_provider"), "app_wins", "both")).toBe("repush")
    expect(Drift.resolutionFor(f("missing_in_provider", "r", null), "provider_wins", "both")).toBe("review")
    expect(Drift.resolutionFor(f("missing_in_app", null, "x"), "provider_wins", "both")).toBe("pull")
    expect(Drift.resolutionFor(f("missing_in_app", null, "x"), "app_wins", "both")).toBe("review")
  })

  it("duplicates, unbalanced journals and orphan links always go to a person", () => {
    for (const kind of ["duplicate_in_provider", "unbalanced", "orphan_link"] as const) {
      for (const policy of ["app_wins", "provider_wins", "review"] as const) expect(Drift.resolutionFor(f(kind), policy, "both")).toBe("review")
    }
  })
})
