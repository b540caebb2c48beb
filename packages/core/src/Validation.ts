/**
 * Turning Schema failures into the list of bad fields a person can act on.
 */
import { Cause, Effect, Exit, Schema, SchemaIssue } from "effect"

/** One bad field: where it is and what is wrong with it. */
export const FieldIssue = Schema.Struct({
  path: Schema.String,
  message: Schema.String
})
export type FieldIssue = typeof FieldIssue.Type

/** Input was refused; `issues` names every bad field. */
export class ValidationError extends Schema.TaggedError<ValidationError>()("ValidationError", {
  subject: Schema.String,
  issues: Schema.Array(FieldIssue)
}) {
  override get message(): string {
    const list = this.issues.map((i) => `${i.path === "" ? "(root)" : i.path}: ${i.message}`).join("; ")
    return `${this.subject} is invalid: ${list}`
  }
}

/** `["lines", 2, "amount"]` → `lines[2].amount`. */
export const formatPath = (path: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }>): string => {
  let out = ""
  for (const segment of path) {
    const key = typeof segment === "object" && segment !== null ? segment.key : segment
    if (typeof key === "number") out += `[${key}]`
    else {
      const s = String(key)
      out += /^[A-Za-z_$][\w$-]*$/.test(s) ? (out === "" ? s : `.${s}`) : `[${JSON.stringify(s)}]`
    }
  }
  return out
}

const formatter = SchemaIssue.makeFormatterStandardSchemaV1()

/**
 * Every bad field of a schema failure, with its path. When several checks
 * fail on one field (12.5 is neither an integer nor a safe integer), the
 * first, most basic, message is kept.
 */
export const issuesOf = (issue: SchemaIssue.Issue): Array<FieldIssue> => {
  const byPath = new Map<string, string>()
  for (const i of formatter(issue).issues) {
    const path = formatPath(i.path ?? [])
    if (!byPath.has(path)) byPath.set(path, i.message)
  }
  return [...byPath].map(([path, message]) => ({ path, message }))
}

const parseOptions = { errors: "all", onExcessProperty: "error" } as const

/**
 * Decodes unknown input, refusing it with every bad field when it does not fit.
 * Unknown properties are errors, so a misspelt field is never silently dropped.
 */
export const decode = <S extends Schema.ConstraintDecoder<unknown>>(schema: S, subject: string) => {
  const run = Schema.decodeUnknownExit(schema)
  return (input: unknown): Effect.Effect<S["Type"], ValidationError> => {
    const exit = run(input, parseOptions)
    if (Exit.isSuccess(exit)) return Effect.succeed(exit.value)
    return Effect.fail(new ValidationError({ subject, issues: issuesFromCause(exit.cause) }))
  }
}

/** Synchronous variant of {@link decode} returning either the value or the issues. */
export const decodeEither = <S extends Schema.ConstraintDecoder<unknown>>(schema: S) => {
  const run = Schema.decodeUnknownExit(schema)
  return (input: unknown): { readonly ok: true; readonly value: S["Type"] } | { readonly ok: false; readonly issues: Array<FieldIssue> } => {
    const exit = run(input, parseOptions)
    return Exit.isSuccess(exit) ? { ok: true, value: exit.value } : { ok: false, issues: issuesFromCause(exit.cause) }
  }
}

const issuesFromCause = (cause: Cause.Cause<Schema.SchemaError>): Array<FieldIssue> => {
  const out: Array<FieldIssue> = []
  for (const reason of cause.reasons) {
    if (Cause.isFailReason(reason)) out.push(...issuesOf(reason.error.issue))
    else if (Cause.isDieReason(reason)) out.push({ path: "", message: String(reason.defect) })
  }
  return out
}
