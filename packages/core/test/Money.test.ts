import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import * as Currency from "../src/Currency.ts"
import * as Decimal from "../src/Decimal.ts"
import * as Money from "../src/Money.ts"

const runs = { numRuns: 1000 }

describe("Currency", () => {
  it("knows the exponent of each ISO 4217 currency", () => {
    expect(Currency.exponent("USD")).toBe(2)
    expect(Currency.exponent("JPY")).toBe(0)
    expect(Currency.exponent("KWD")).toBe(3)
    expect(Currency.exponent("CLF")).toBe(4)
    expect(Currency.isCode("XYZ")).toBe(false)
    expect(Currency.codes.length).toBeGreaterThan(150)
  })
})

describe("Money", () => {
  it("converts between decimal strings and minor units per currency exponent", () => {
    expect(Money.fromDecimal("10.5", "USD")).toBe(1050)
    expect(Money.fromDecimal(10.5, "USD")).toBe(1050)
    expect(Money.fromDecimal("1050", "JPY")).toBe(1050)
    expect(Money.fromDecimal("1.234", "KWD")).toBe(1234)
    expect(Money.toDecimalString(1050, "USD")).toBe("10.50")
    expect(Money.toDecimalString(-5, "USD")).toBe("-0.05")
    expect(Money.toDecimalString(1050, "JPY")).toBe("1050")
    expect(Money.toDecimalString(1, "KWD")).toBe("0.001")
  })

  it("rounds extra precision half away from zero by default, and by the requested mode", () => {
    expect(Money.fromDecimal("0.125", "USD")).toBe(13)
    expect(Money.fromDecimal("-0.125", "USD")).toBe(-13)
    expect(Money.fromDecimal("0.125", "USD", "half_even")).toBe(12)
    expect(Money.fromDecimal("0.135", "USD", "half_even")).toBe(14)
    expect(Money.fromDecimal("0.129", "USD", "toward_zero")).toBe(12)
    expect(Money.fromDecimal("0.121", "USD", "away_from_zero")).toBe(13)
    expect(Money.fromDecimal("12.5", "JPY")).toBe(13)
  })

  it("round-trips every amount through its decimal string", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1e13, max: 1e13 }),
        fc.constantFrom("USD", "JPY", "KWD", "EUR", "CLF", "BHD"),
        (amount, currency) => Money.fromDecimal(Money.toDecimalString(amount, currency), currency) === amount
      ),
      runs
    )
  })

  it("allocates without losing or inventing a minor unit", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -1e9, max: 1e9 }),
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 12 }),
        (amount, weights) => {
          const parts = Money.allocate(amount, weights)
          expect(parts.reduce((s, p) => s + p, 0)).toBe(amount)
          expect(parts).toHaveLength(weights.length)
          const total = weights.reduce((s, w) => s + w, 0)
          if (total > 0) {
            parts.forEach((p, i) => expect(Math.abs(p - (amount * (weights[i] ?? 0)) / total)).toBeLessThan(1))
          }
        }
      ),
      runs
    )
  })

  it("multiplies by an exact decimal with per-currency rounding", () => {
    expect(Money.multiplyDecimal(1000, "0.08875", "USD")).toBe(89)
    expect(Money.multiplyDecimal(333, "1.5", "USD")).toBe(500)
  })
})

describe("Decimal", () => {
  it("normalises decimal literals so equal values are equal strings", () => {
    expect(Decimal.normalize("001.500")).toBe("1.5")
    expect(Decimal.normalize("+2")).toBe("2")
    expect(Decimal.normalize("-0.0")).toBe("0")
    expect(Decimal.normalize("1e5")).toBeUndefined()
    expect(Decimal.fromNumber(0.1)).toBe("0.1")
    expect(Decimal.multiply("1.5", "2.25")).toBe("3.375")
  })

  it("keeps numeric order when comparing", () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer(), fc.integer({ min: 0, max: 6 }), (a, b, scale) => {
        const da = Decimal.fromScaledBigInt(BigInt(a), scale)
        const db = Decimal.fromScaledBigInt(BigInt(b), scale)
        expect(Decimal.compare(da, db)).toBe(Math.sign(a - b))
      }),
      runs
    )
  })
})
