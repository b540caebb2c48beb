/** `sql.insert` takes a non-empty array; callers check the length first. */
export const nonEmpty = <A>(rows: ReadonlyArray<A>): readonly [A, ...Array<A>] => rows as readonly [A, ...Array<A>]
