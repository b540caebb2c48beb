/**
 * Exact decimal numbers as normalised strings ("12.5", "-0.125", "3").
 *
 * Quantities, unit prices, tax and exchange rates can carry more precision
 * than a currency's minor unit, so they are kept as decimal strings, never as
 * floats. Decoding normalises the form (no leading "+", no superfluous zeros),
 * so equal values compare and hash equal.
 */
import { Schema, SchemaGetter } from "effect"

const pattern = /^[+-]?(\d+)(?:\.(\d+))?$/

/** Normalises a decimal literal, or returns undefined when it is not one. */
export const normalize = (input: string): string | undefined => {
  const m = pattern.exec(input.trim())
  if (m === null) return undefined
  const negative = input.trim().startsWith("-")
  const int = (m[1] ?? "0").replace(/^0+(?=\d)/, "")
  const frac = (m[2] ?? "").replace(/0+$/, "")
  const body = frac.length > 0 ? `${int}.${frac}` : int
  return negative && body !== "0" ? `-${body}` : body
}

/** A JSON number that is a finite decimal, as a normalised decimal string. */
export const fromNumber = (n: number): string | undefined => {
  if (!Number.isFinite(n)) return undefined
  // String(n) is the shortest literal that reads back as n; expand exponents.
  const s = Math.abs(n) < 1e21 && Math.abs(n) >= 1e-7 || n === 0 ? String(n) : n.toFixed(20)
  return normalize(s)
}

const isNormalized = (s: string): boolean => normalize(s) === s

/**
 * A decimal number. Accepts a decimal string or a finite JSON number on
 * input, always holds the normalised string.
 */
export const Decimal = Schema.Union([Schema.String, Schema.Finite]).pipe(
  Schema.decodeTo(
    Schema.String.check(
      Schema.makeFilter((s: string) => isNormalized(s) || `Expected a decimal number such as "12.50", got ${JSON.stringify(s)}`)
    ),
    {
      decode: SchemaGetter.transform((input: string | number) =>
        typeof input === "number" ? (fromNumber(input) ?? String(input)) : (normalize(input) ?? input)
      ),
      encode: SchemaGetter.transform((s: string) => s)
    }
  ),
  Schema.annotate({ title: "Decimal", description: "An exact decimal number written as a string, e.g. \"12.5\"" })
)
export type Decimal = typeof Decimal.Type

/** Splits a normalised decimal into sign, integer digits and fraction digits. */
export const parts = (d: string): { negative: boolean; int: string; frac: string } => {
  const negative = d.startsWith("-")
  const [int = "0", frac = ""] = (negative ? d.slice(1) : d).split(".")
  return { negative, int, frac }
}

/** Compares two decimal strings numerically (-1, 0, 1). */
export const compare = (a: string, b: string): number => {
  const scale = Math.max(parts(a).frac.length, parts(b).frac.length)
  const x = toScaledBigInt(a, scale)
  const y = toScaledBigInt(b, scale)
  return x < y ? -1 : x > y ? 1 : 0
}

/** The decimal times 10^scale as a bigint, truncating extra digits. */
export const toScaledBigInt = (d: string, scale: number): bigint => {
  const { negative, int, frac } = parts(d)
  const digits = int + frac.padEnd(scale, "0").slice(0, scale)
  const value = BigInt(digits)
  return negative ? -value : value
}

/** Writes a bigint scaled by 10^scale as a normalised decimal string. */
export const fromScaledBigInt = (value: bigint, scale: number): string => {
  const negative = value < 0n
  const abs = (negative ? -value : value).toString().padStart(scale + 1, "0")
  const int = abs.slice(0, abs.length - scale)
  const frac = abs.slice(abs.length - scale)
  return normalize(`${negative ? "-" : ""}${int}${scale > 0 ? `.${frac}` : ""}`) ?? "0"
}

/** Exact product of two decimals. */
export const multiply = (a: string, b: string): string => {
  const sa = parts(a).frac.length
  const sb = parts(b).frac.length
  return fromScaledBigInt(toScaledBigInt(a, sa) * toScaledBigInt(b, sb), sa + sb)
}
