/**
 * The `checksum` domain's check, lifted for a superuser load and proved afterwards set-based.
 *
 * Its regular expression (`^(sha256:[0-9a-f]{64}|sha1:[0-9a-f]{40}|…)$`) costs PostgreSQL about
 * 35 µs of CPU per value: the counted repetitions build a large automaton whose states are made
 * again on every match. With a checksum per file and per copy that was three fifths of the
 * database's work on those tables, more than every index and foreign key together. So the
 * loader drops the constraint, loads, adds it back with the very definition it had (`NOT VALID`,
 * so every value written from then on is checked again), proves every stored value of the domain
 * with an equivalent predicate that costs under a µs, and only then marks the constraint
 * validated, which is what `VALIDATE CONSTRAINT` would have recorded.
 *
 * Safe because: the definition is compared with the one this module knows before anything is
 * dropped (a changed domain is left alone and checked per row as before); the equivalence of
 * the two predicates is checked on edge cases in the database itself before the drop; the proof
 * covers every column of the domain in every table, not only what the loader wrote; a value that
 * fails makes the load fail with its table and column; and the load runs in a database of its
 * own (the test template being built, or the benchmark's), so no other writer sees the gap.
 */
import type pg from "pg"

/** The hash algorithms the domain accepts and the hex digits of each. */
const algorithms: ReadonlyArray<readonly [string, number]> = [
  ["sha256", 64],
  ["sha1", 40],
  ["sha512", 128],
  ["md5", 32],
  ["blake2b512", 128]
]

/** The check as `pg_get_constraintdef` prints it (migration 0001's, unchanged since). */
const definition = `CHECK ((VALUE ~ '^(${algorithms.map(([a, n]) => `${a}:[0-9a-f]{${n}}`).join("|")})$'::text))`

/**
 * The same condition without counted repetitions: the value starts with an algorithm and a
 * colon, the rest is lowercase hex digits (so one byte each) and its length is the algorithm's.
 */
const fast = (value: string) =>
  `(case ${
    algorithms.map(([a, n]) =>
      `when ${value} like '${a}:%' then octet_length(${value}) = ${a.length + 1 + n} and substr(${value}, ${a.length + 2}) ~ '^[0-9a-f]*$'`
    ).join(" ")
  } else false end)`

/** Values on both sides of every rule of the check, to compare the two predicates on. */
const probes = (): Array<string> => {
  const hex = (n: number, c = "a") => c.repeat(n)
  const out = ["", ":", "sha256", "sha256:", "SHA256:" + hex(64), " sha256:" + hex(64), "sha256:" + hex(64) + "\n", "sha256::" + hex(63)]
  for (const [a, n] of algorithms) {
    out.push(
      `${a}:${hex(n)}`,
      `${a}:${"0123456789abcdef".repeat(8).slice(0, n)}`,
      `${a}:${hex(n - 1)}`,
      `${a}:${hex(n + 1)}`,
      `${a}:${hex(n, "A")}`,
      `${a}:${hex(n - 1)}g`,
      `${a}:${hex(n - 1)}é`,
      `${a}:${hex(n - 2)}é`,
      `${a}${hex(n + 1)}`,
      `x${a}:${hex(n)}`,
      `${a}:${hex(n)}:`
    )
  }
  return out
}

/** What was lifted, to put back. */
export interface Lifted {
  readonly name: string
  readonly definition: string
}

/**
 * Drops the `checksum` domain's check when it is the one this module can prove set-based;
 * returns it, or null (the check then stays and runs per row). Superusers only.
 */
export const lift = async (client: pg.Client): Promise<Lifted | null> => {
  const found = await client.query<{ name: string; def: string }>(
    `select conname as name, pg_get_constraintdef(oid) as def from pg_constraint where contypid = to_regtype('checksum') and contype = 'c'`
  )
  if (found.rows.length !== 1 || found.rows[0]!.def !== definition) return null
  // Arrays or domains of the domain would hold values the proof does not read: leave it alone.
  const others = await client.query<{ n: number }>(
    `select count(*)::int as n from pg_type t where t.typbasetype = 'checksum'::regtype
       or t.oid = (select typarray from pg_type where oid = 'checksum'::regtype) and exists (select 1 from pg_attribute a where a.atttypid = t.oid and not a.attisdropped)`
  )
  if (others.rows[0]!.n > 0) return null
  const values = probes()
  const compared = await client.query<{ value: string; domain: boolean; proof: boolean }>(
    `select v as value, v ~ '^(${algorithms.map(([a, n]) => `${a}:[0-9a-f]{${n}}`).join("|")})$' as domain, ${
      fast("v")
    } as proof from unnest($1::text[]) v`,
    [values]
  )
  const differ = compared.rows.filter((r) => r.domain !== r.proof)
  if (differ.length > 0 || compared.rows.filter((r) => r.domain).length !== algorithms.length * 2) {
    throw new Error(`the checksum proof disagrees with the domain on ${JSON.stringify(differ.map((r) => r.value))}`)
  }
  const name = found.rows[0]!.name
  await client.query(`alter domain checksum drop constraint ${name}`)
  return { name, definition }
}

/** One statement of the proof: the rows of a column that break the check (zero when it holds). */
export interface Proof {
  readonly column: string
  readonly query: string
}

/**
 * Puts the check back, enforced from this statement on but not yet validated, and returns the
 * proof: one count per column of the domain in every table (a partitioned table's reads its
 * partitions), to run on connections of their own, then hand to `validated`.
 */
export const reattach = async (client: pg.Client, lifted: Lifted): Promise<ReadonlyArray<Proof>> => {
  await client.query(`alter domain checksum add constraint ${lifted.name} ${lifted.definition} not valid`)
  const columns = await client.query<{ rel: string; col: string }>(
    `select format('%I.%I', n.nspname, c.relname) as rel, quote_ident(a.attname) as col
       from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
      where a.atttypid = 'checksum'::regtype and not a.attisdropped and a.attnum > 0 and c.relkind in ('r', 'p', 'm') and not c.relispartition`
  )
  return columns.rows.map(({ rel, col }) => ({
    column: `${rel}.${col}`,
    query: `select count(*)::int8::text as n from ${rel} where ${col} is not null and ${fast(col)} is not true`
  }))
}

/**
 * Records the check as validated once every proof counted nothing (what `VALIDATE CONSTRAINT`
 * records after its scan; the proofs were that scan). Fails with the columns that break it,
 * and the check then stays enforced but not validated.
 */
export const validated = async (client: pg.Client, lifted: Lifted, counts: ReadonlyArray<readonly [Proof, number]>): Promise<void> => {
  const bad = counts.filter(([, n]) => n > 0).map(([p, n]) => `${n} rows of ${p.column}`)
  if (bad.length > 0) throw new Error(`the catalog broke the checksum domain's check: ${bad.join(", ")}`)
  const marked = await client.query(
    `update pg_constraint set convalidated = true where contypid = 'checksum'::regtype and conname = $1 and not convalidated`,
    [lifted.name]
  )
  if (marked.rowCount !== 1) throw new Error(`the checksum domain's check ${lifted.name} was not found to mark validated`)
  const now = await client.query<{ def: string; valid: boolean }>(
    `select pg_get_constraintdef(oid) as def, convalidated as valid from pg_constraint where contypid = 'checksum'::regtype and contype = 'c'`
  )
  if (now.rows.length !== 1 || now.rows[0]!.def !== lifted.definition || !now.rows[0]!.valid) {
    throw new Error(`the checksum domain's check is not back as it was: ${JSON.stringify(now.rows)}`)
  }
}
