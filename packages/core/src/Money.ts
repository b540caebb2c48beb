/**
 * Money: integer minor units plus an ISO 4217 currency. Never a float.
 *
 * Rounding (only when a provider or a rate hands us more precision than the
 * currency's minor unit): half away from zero for every currency, the rule
 * QuickBooks, Xero and card processors apply to posted amounts. `fromDecimal`
 * takes another mode when a caller needs one.
 */
import { Schema } from "effect"
import * as Currency from "./Currency.ts"
import * as Decimal from "./Decimal.ts"

/** An ISO 4217 currency code, e.g. "USD". */
export const CurrencyCode = Schema.String.check(
  Schema.makeFilter((s: string) => Currency.isCode(s) || `Expected an ISO 4217 currency code such as "USD", got ${JSON.stringify(s)}`)
).pipe(Schema.annotate({ title: "CurrencyCode" }))
export type CurrencyCode = typeof CurrencyCode.Type

/** An amount in minor units (cents for USD): a safe integer. */
export const MinorUnits = Schema.Int.check(
  Schema.makeFilter((n: number) => Number.isSafeInteger(n) || `Expected a safe integer amount in minor units, got ${n}`)
).pipe(Schema.annotate({ title: "MinorUnits", description: "Integer amount in the currency's minor unit (e.g. cents)" }))
export type MinorUnits = typeof MinorUnits.Type

/** A non-negative amount in minor units. */
export const NonNegativeMinorUnits = MinorUnits.check(
  Schema.makeFilter((n: number) => n >= 0 || `Expected a non-negative amount, got ${n}`)
)

export const Money = Schema.Struct({
  amount: MinorUnits,
  currency: CurrencyCode
}).pipe(Schema.annotate({ title: "Money" }))
export type Money = typeof Money.Type

export type Rounding = "half_away_from_zero" | "half_even" | "toward_zero" | "away_from_zero"

/** The rounding Concord applies to a currency when a value has extra precision. */
export const roundingFor = (_currency: string): Rounding => "half_away_from_zero"

export const make = (amount: number, currency: string): Money => ({ amount, currency })

export const zero = (currency: string): Money => ({ amount: 0, currency })

/** Sum of integer minor-unit amounts (exact for safe integers). */
export const sumAmounts = (amounts: Iterable<number>): number => {
  let total = 0
  for (const a of amounts) total += a
  return total
}

const roundScaled = (value: bigint, drop: number, mode: Rounding): bigint => {
  if (drop <= 0) return value
  const divisor = 10n ** BigInt(drop)
  const negative = value < 0n
  const abs = negative ? -value : value
  const quotient = abs / divisor
  const remainder = abs % divisor
  let rounded = quotient
  if (remainder !== 0n) {
    const twice = remainder * 2n
    switch (mode) {
      case "toward_zero":
        break
      case "away_from_zero":
        rounded = quotient + 1n
        break
      case "half_away_from_zero":
        if (twice >= divisor) rounded = quotient + 1n
        break
      case "half_even":
        if (twice > divisor || (twice === divisor && quotient % 2n === 1n)) rounded = quotient + 1n
        break
    }
  }
  return negative ? -rounded : rounded
}

/**
 * Minor units from a decimal amount in major units ("10.5" USD → 1050).
 * Digits beyond the currency's exponent are rounded with `mode`.
 */
export const fromDecimal = (
  value: string | number,
  currency: string,
  mode: Rounding = roundingFor(currency)
): number => {
  const d = typeof value === "number" ? Decimal.fromNumber(value) : Decimal.normalize(value)
  if (d === undefined) throw new RangeError(`not a decimal amount: ${String(value)}`)
  const exp = Currency.exponent(currency)
  const { frac } = Decimal.parts(d)
  const scale = Math.max(frac.length, exp)
  const scaled = roundScaled(Decimal.toScaledBigInt(d, scale), scale - exp, mode)
  const n = Number(scaled)
  if (!Number.isSafeInteger(n)) throw new RangeError(`amount ${d} ${currency} is too large`)
  return n === 0 ? 0 : n
}

/** The decimal string in major units, with exactly the currency's exponent (1050 USD → "10.50"). */
export const toDecimalString = (amount: number, currency: string): string => {
  const exp = Currency.exponent(currency)
  const negative = amount < 0
  const digits = Math.abs(amount).toString().padStart(exp + 1, "0")
  const int = digits.slice(0, digits.length - exp)
  const frac = digits.slice(digits.length - exp)
  return `${negative ? "-" : ""}${int}${exp > 0 ? `.${frac}` : ""}`
}

/** The amount in major units as a JSON number, for wire formats that want numbers (exact for display precision). */
export const toMajorNumber = (amount: number, currency: string): number => Number(toDecimalString(amount, currency))

/** Multiplies minor units by an exact decimal (a rate, a quantity), rounding per currency. */
export const multiplyDecimal = (amount: number, factor: string, currency: string, mode: Rounding = roundingFor(currency)): number => {
  const { frac } = Decimal.parts(factor)
  const product = BigInt(amount) * Decimal.toScaledBigInt(factor, frac.length)
  return Number(roundScaled(product, frac.length, mode))
}

/**
 * Splits `amount` into parts proportional to `weights` without losing or
 * inventing a minor unit: the remainder goes to the largest fractional parts
 * (ties to the earliest). The parts always sum to `amount`.
 */
export const allocate = (amount: number, weights: ReadonlyArray<number>): Array<number> => {
  const total = weights.reduce((s, w) => s + w, 0)
  if (weights.length === 0) return []
  if (total === 0) {
    const out = weights.map(() => 0)
    out[0] = amount
    return out
  }
  const sign = amount < 0 ? -1 : 1
  const abs = Math.abs(amount)
  const raw = weights.map((w) => (abs * w) / total)
  const floors = raw.map(Math.floor)
  let remainder = abs - floors.reduce((s, f) => s + f, 0)
  const order = raw.map((r, i) => ({ i, frac: r - Math.floor(r) })).sort((a, b) => b.frac - a.frac || a.i - b.i)
  for (const { i } of order) {
    if (remainder <= 0) break
    floors[i] = (floors[i] ?? 0) + 1
    remainder--
  }
  return floors.map((f) => (f === 0 ? 0 : sign * f))
}
