/**
 * ISO 4217 currencies and their minor-unit exponents.
 *
 * The exponent says how many decimal places the currency's minor unit has:
 * USD 2 (cents), JPY 0, KWD 3, CLF 4. Money amounts are integers in minor
 * units, so the exponent is what turns `1050` into `"10.50"` and back.
 */

/** Active ISO 4217 codes whose exponent is not 2. */
const nonTwo: Readonly<Record<string, number>> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0,
  UGX: 0, UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
  CLF: 4, UYW: 4
}

/** Active ISO 4217 codes with two decimal places. */
const two = [
  "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN", "BMD",
  "BND", "BOB", "BOV", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHE", "CHF", "CHW", "CNY",
  "COP", "COU", "CRC", "CUP", "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ERN", "ETB", "EUR", "FJD", "FKP",
  "GBP", "GEL", "GHS", "GIP", "GMD", "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IRR",
  "JMD", "KES", "KGS", "KHR", "KPW", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MGA",
  "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN", "MXV", "MYR", "MZN", "NAD", "NGN", "NIO",
  "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP", "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD",
  "SCR", "SDG", "SEK", "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS",
  "TMT", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "USN", "UYU", "UZS", "VED", "VES", "WST", "XCD",
  "XCG", "YER", "ZAR", "ZMW", "ZWG"
]

const table: ReadonlyMap<string, number> = new Map<string, number>([
  ...two.map((code): [string, number] => [code, 2]),
  ...Object.entries(nonTwo)
])

/** Every ISO 4217 code Concord accepts, sorted. */
export const codes: ReadonlyArray<string> = [...table.keys()].sort()

/** True for an active ISO 4217 code (upper case). */
export const isCode = (code: string): boolean => table.has(code)

/**
 * The number of decimal places of the currency's minor unit.
 * Throws on an unknown code: callers hold a decoded `CurrencyCode`.
 */
export const exponent = (code: string): number => {
  const e = table.get(code)
  if (e === undefined) throw new RangeError(`unknown ISO 4217 currency '${code}'`)
  return e
}
