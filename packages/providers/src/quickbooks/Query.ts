/**
 * The QuickBooks Online query language subset the sandbox answers:
 *
 *   SELECT * | COUNT(*) | Field[, Field…] FROM Entity
 *     [WHERE cond [AND cond]…]
 *     [ORDERBY Field [ASC|DESC][, …]]
 *     [STARTPOSITION n] [MAXRESULTS n]
 *
 *   cond := Field (= | != | < | > | <= | >=) value | Field IN (value, …) | Field LIKE 'pattern'
 *
 * Keywords and entity names are case-insensitive; values are 'quoted
 * strings' (with \' for a quote), numbers, or true/false. Like QuickBooks:
 * no OR, no joins, no sub-selects. Also `quote` for writing values into a
 * query safely.
 */

export type Value = string | number | boolean

export type Op = "=" | "!=" | "<" | ">" | "<=" | ">=" | "IN" | "LIKE"

export interface Condition {
  readonly field: string
  readonly op: Op
  readonly values: ReadonlyArray<Value>
}

export interface Order {
  readonly field: string
  readonly descending: boolean
}

export interface Query {
  readonly select: "*" | "count" | ReadonlyArray<string>
  readonly from: string
  readonly where: ReadonlyArray<Condition>
  readonly orderBy: ReadonlyArray<Order>
  readonly startPosition?: number
  readonly maxResults?: number
}

export class QueryParseError extends Error {}

type Token =
  | { readonly kind: "word"; readonly text: string; readonly at: number }
  | { readonly kind: "string"; readonly text: string; readonly at: number }
  | { readonly kind: "punct"; readonly text: string; readonly at: number }

const tokenize = (input: string): Array<Token> => {
  const out: Array<Token> = []
  let i = 0
  while (i < input.length) {
    const c = input[i] as string
    if (/\s/.test(c)) {
      i++
      continue
    }
    if (c === "'") {
      let text = ""
      let j = i + 1
      for (;;) {
        if (j >= input.length) throw new QueryParseError(`QueryParserError: Encountered an unterminated string at column ${i + 1}.`)
        const d = input[j] as string
        if (d === "\\" && j + 1 < input.length) {
          text += input[j + 1]
          j += 2
          continue
        }
        if (d === "'") break
        text += d
        j++
      }
      out.push({ kind: "string", text, at: i + 1 })
      i = j + 1
      continue
    }
    const two = input.slice(i, i + 2)
    if (two === "<=" || two === ">=" || two === "!=" || two === "<>") {
      out.push({ kind: "punct", text: two === "<>" ? "!=" : two, at: i + 1 })
      i += 2
      continue
    }
    if ("=<>(),*".includes(c)) {
      out.push({ kind: "punct", text: c, at: i + 1 })
      i++
      continue
    }
    const m = /^[A-Za-z0-9_.:\-+$]+/.exec(input.slice(i))
    if (m === null) throw new QueryParseError(`QueryParserError: Encountered "${c}" at line 1, column ${i + 1}.`)
    out.push({ kind: "word", text: m[0], at: i + 1 })
    i += m[0].length
  }
  return out
}

/** Parses a query; throws `QueryParseError` with a QuickBooks-like detail. */
export const parse = (input: string): Query => {
  const tokens = tokenize(input)
  let p = 0
  const peek = (): Token | undefined => tokens[p]
  const unexpected = (t: Token | undefined): never => {
    throw new QueryParseError(
      t === undefined ? "QueryParserError: Encountered \"<EOF>\" at the end of the query." : `QueryParserError: Encountered "${t.text}" at line 1, column ${t.at}.`
    )
  }
  const isKeyword = (t: Token | undefined, kw: string) => t?.kind === "word" && t.text.toUpperCase() === kw
  const expectKeyword = (kw: string) => {
    const t = peek()
    if (!isKeyword(t, kw)) unexpected(t)
    p++
  }
  const expectPunct = (s: string) => {
    const t = peek()
    if (t?.kind !== "punct" || t.text !== s) unexpected(t)
    p++
  }
  const word = (): string => {
    const t = peek()
    if (t?.kind !== "word") return unexpected(t)
    p++
    return t.text
  }
  const value = (): Value => {
    const t = peek()
    if (t === undefined) return unexpected(t)
    p++
    if (t.kind === "string") return t.text
    if (t.kind === "word") {
      if (/^true$/i.test(t.text)) return true
      if (/^false$/i.test(t.text)) return false
      if (/^-?\d+(\.\d+)?$/.test(t.text)) return Number(t.text)
    }
    return unexpected(t)
  }
  const integer = (): number => {
    const v = value()
    if (typeof v !== "number" || !Number.isInteger(v) || v < 0) unexpected(tokens[p - 1])
    return v as number
  }

  expectKeyword("SELECT")
  let select: Query["select"]
  const first = peek()
  if (first?.kind === "punct" && first.text === "*") {
    p++
    select = "*"
  } else if (isKeyword(first, "COUNT")) {
    p++
    expectPunct("(")
    expectPunct("*")
    expectPunct(")")
    select = "count"
  } else {
    const names = [word()]
    while (peek()?.kind === "punct" && peek()?.text === ",") {
      p++
      names.push(word())
    }
    select = names
  }
  expectKeyword("FROM")
  const from = word()
  const where: Array<Condition> = []
  const orderBy: Array<Order> = []
  let startPosition: number | undefined
  let maxResults: number | undefined
  if (isKeyword(peek(), "WHERE")) {
    p++
    for (;;) {
      const field = word()
      const t = peek()
      let op: Op
      if (t?.kind === "punct" && ["=", "!=", "<", ">", "<=", ">="].includes(t.text)) {
        op = t.text as Op
        p++
        where.push({ field, op, values: [value()] })
      } else if (isKeyword(t, "IN")) {
        p++
        op = "IN"
        expectPunct("(")
        const values = [value()]
        while (peek()?.kind === "punct" && peek()?.text === ",") {
          p++
          values.push(value())
        }
        expectPunct(")")
        where.push({ field, op, values })
      } else if (isKeyword(t, "LIKE")) {
        p++
        where.push({ field, op: "LIKE", values: [value()] })
      } else {
        unexpected(t)
      }
      if (isKeyword(peek(), "AND")) {
        p++
        continue
      }
      if (isKeyword(peek(), "OR")) unexpected(peek())
      break
    }
  }
  if (isKeyword(peek(), "ORDERBY") || isKeyword(peek(), "ORDER")) {
    if (isKeyword(peek(), "ORDER")) {
      p++
      expectKeyword("BY")
    } else p++
    for (;;) {
      const field = word()
      let descending = false
      if (isKeyword(peek(), "DESC")) {
        p++
        descending = true
      } else if (isKeyword(peek(), "ASC")) p++
      orderBy.push({ field, descending })
      if (peek()?.kind === "punct" && peek()?.text === ",") {
        p++
        continue
      }
      break
    }
  }
  for (;;) {
    if (isKeyword(peek(), "STARTPOSITION")) {
      p++
      startPosition = integer()
      continue
    }
    if (isKeyword(peek(), "MAXRESULTS")) {
      p++
      maxResults = integer()
      continue
    }
    break
  }
  if (p < tokens.length) unexpected(peek())
  return {
    select,
    from,
    where,
    orderBy,
    ...(startPosition === undefined ? {} : { startPosition }),
    ...(maxResults === undefined ? {} : { maxResults })
  }
}

/** Writes a string as a query literal. */
export const quote = (s: string): string => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`

// ---------------------------------------------------------------------------
// Evaluation

/** The value at a dotted path; a reference (`{value, name}`) compares by its `value`. */
export const fieldValue = (obj: Readonly<Record<string, unknown>>, path: string): unknown => {
  let cur: unknown = obj
  for (const part of path.split(".")) {
    if (cur === null || typeof cur !== "object") return undefined
    const rec = cur as Record<string, unknown>
    cur = part in rec ? rec[part] : Object.entries(rec).find(([k]) => k.toLowerCase() === part.toLowerCase())?.[1]
  }
  if (cur !== null && typeof cur === "object" && "value" in (cur as Record<string, unknown>)) {
    return (cur as Record<string, unknown>).value
  }
  return cur
}

const isTimeField = (field: string) => /time$/i.test(field) || /date$/i.test(field)

/** Compares a stored value with a query value: -1, 0, 1, or undefined when incomparable. */
export const compareValues = (field: string, stored: unknown, wanted: Value): number | undefined => {
  if (stored === undefined || stored === null) return undefined
  if (typeof wanted === "boolean" || typeof stored === "boolean") {
    const s = stored === true || stored === "true"
    const w = wanted === true || wanted === "true"
    return s === w ? 0 : s ? 1 : -1
  }
  if (isTimeField(field) && typeof stored === "string" && typeof wanted === "string") {
    const a = Date.parse(stored)
    const b = Date.parse(wanted)
    if (!Number.isNaN(a) && !Number.isNaN(b)) return a === b ? 0 : a < b ? -1 : 1
  }
  const sn = typeof stored === "number" ? stored : typeof stored === "string" && /^-?\d+(\.\d+)?$/.test(stored) ? Number(stored) : undefined
  const wn = typeof wanted === "number" ? wanted : /^-?\d+(\.\d+)?$/.test(wanted) ? Number(wanted) : undefined
  if (sn !== undefined && wn !== undefined) return sn === wn ? 0 : sn < wn ? -1 : 1
  const a = String(stored).toLowerCase()
  const b = String(wanted).toLowerCase()
  return a === b ? 0 : a < b ? -1 : 1
}

const likeRegex = new Map<string, RegExp>()

export const matches = (obj: Readonly<Record<string, unknown>>, c: Condition): boolean => {
  const stored = fieldValue(obj, c.field)
  switch (c.op) {
    case "IN":
      return c.values.some((v) => compareValues(c.field, stored, v) === 0)
    case "LIKE": {
      const pattern = String(c.values[0])
      let re = likeRegex.get(pattern)
      if (re === undefined) {
        re = new RegExp(`^${pattern.split("%").map((s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")).join(".*")}$`, "i")
        likeRegex.set(pattern, re)
      }
      return typeof stored === "string" && re.test(stored)
    }
    default: {
      const cmp = compareValues(c.field, stored, c.values[0] as Value)
      if (cmp === undefined) return c.op === "!="
      switch (c.op) {
        case "=":
          return cmp === 0
        case "!=":
          return cmp !== 0
        case "<":
          return cmp < 0
        case ">":
          return cmp > 0
        case "<=":
          return cmp <= 0
        case ">=":
          return cmp >= 0
      }
    }
  }
}

/** Sort comparator for ORDERBY. */
export const comparator = (orderBy: ReadonlyArray<Order>) => (a: Readonly<Record<string, unknown>>, b: Readonly<Record<string, unknown>>): number => {
  for (const o of orderBy) {
    const av = fieldValue(a, o.field)
    const bv = fieldValue(b, o.field)
    let cmp: number
    if (av === bv) cmp = 0
    else if (av === undefined || av === null) cmp = -1
    else if (bv === undefined || bv === null) cmp = 1
    else cmp = compareValues(o.field, av, typeof bv === "number" || typeof bv === "boolean" ? bv : String(bv)) ?? 0
    if (cmp !== 0) return o.descending ? -cmp : cmp
  }
  return 0
}
