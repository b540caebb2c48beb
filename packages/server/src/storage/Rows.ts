/** `sql.insert` takes a non-empty array; callers check the length first. */
export const nonEmpty = <A>(rows: ReadonlyArray<A>): readonly [A, ...Array<A>] => rows as readonly [A, ...Array<A>]

/** The driver binds at most 32,767 parameters a statement. */
const MAX_PARAMETERS = 32_000

/** Splits rows of `columns` columns into statements that stay under the parameter limit. */
export const chunks = <A>(rows: ReadonlyArray<A>, columns: number): Array<ReadonlyArray<A>> => {
  const size = Math.max(1, Math.floor(MAX_PARAMETERS / columns))
  const out: Array<ReadonlyArray<A>> = []
  for (let i = 0; i < rows.length; i += size) out.push(rows.slice(i, i + size))
  return out
}
