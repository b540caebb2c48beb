/**
 * Field paths inside a record: structured segments plus a readable string.
 *
 * `lines[L1].amount` — member `amount` of the line whose `lineId` is "L1";
 * `lines[#2].amount` — the third line (matched by position);
 * `customFields["Order ID"]` — a key that is not a plain identifier.
 */
import type { Json } from "./Merge.ts"

export type Segment =
  | { readonly key: string }
  | { readonly lineId: string }
  | { readonly index: number }

export type Path = ReadonlyArray<Segment>

const plain = /^[A-Za-z_$][\w$-]*$/

/** The readable form of a path. */
export const format = (path: Path): string => {
  let out = ""
  for (const s of path) {
    if ("key" in s) out += plain.test(s.key) ? (out === "" ? s.key : `.${s.key}`) : `[${JSON.stringify(s.key)}]`
    else if ("index" in s) out += `[#${s.index}]`
    else out += `[${s.lineId}]`
  }
  return out
}

const isObject = (v: unknown): v is { readonly [key: string]: Json } =>
  typeof v === "object" && v !== null && !Array.isArray(v)

const locate = (arr: ReadonlyArray<Json>, s: { readonly lineId: string } | { readonly index: number }): number =>
  "index" in s ? (s.index < arr.length ? s.index : -1) : arr.findIndex((el) => isObject(el) && el.lineId === s.lineId)

/** The value at `path`, or undefined when absent. */
export const get = (value: Json | undefined, path: Path): Json | undefined => {
  let cur: Json | undefined = value
  for (const s of path) {
    if (cur === undefined) return undefined
    if ("key" in s) cur = isObject(cur) ? cur[s.key] : undefined
    else if (Array.isArray(cur)) {
      const i = locate(cur, s)
      cur = i < 0 ? undefined : cur[i]
    } else return undefined
  }
  return cur
}

/**
 * A copy of `value` with `path` set to `next` (removed when `next` is
 * undefined). Missing objects on the way are created; a missing line is
 * appended (by id) or placed at its position.
 */
export const set = (value: Json | undefined, path: Path, next: Json | undefined): Json | undefined => {
  if (path.length === 0) return next
  const [head, ...rest] = path as [Segment, ...Array<Segment>]
  if ("key" in head) {
    const obj: { [key: string]: Json } = isObject(value) ? { ...value } : {}
    const child = set(obj[head.key], rest, next)
    if (child === undefined) delete obj[head.key]
    else obj[head.key] = child
    return obj
  }
  const arr: Array<Json> = Array.isArray(value) ? [...value] : []
  const i = locate(arr, head)
  const child = set(i < 0 ? undefined : arr[i], rest, next)
  if (i >= 0) {
    if (child === undefined) arr.splice(i, 1)
    else arr[i] = child
  } else if (child !== undefined) {
    if ("index" in head) arr.splice(Math.min(head.index, arr.length), 0, child)
    else arr.push(child)
  }
  return arr
}
