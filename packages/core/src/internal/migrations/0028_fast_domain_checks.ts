/**
 * The `checksum` and `relative_path` domains' checks in the form PostgreSQL evaluates cheaply
 * (`DomainChecks`): the same accepted values, the same constraint names (errors read as before),
 * about 1 µs of CPU per checksum instead of 35, and a third less per path. Every file and copy
 * inserted pays both, so a filing of 10,000 files saves about 0.35 s of the database's CPU.
 *
 * First the two forms are compared on every probe in this database (its regular expressions,
 * encoding and collation decide), and the migration fails, changing nothing, if any probe is
 * judged differently. Then per domain: the new check is added NOT VALID (no scan), the old one
 * dropped, the new one takes its name, and VALIDATE CONSTRAINT reads every stored value once.
 * PostgreSQL validates a domain's constraint under a SHARE lock on each table with a column of
 * the domain, so writes to files, copies, packages and bundles wait for that scan (seconds at
 * 10^6 files, docs/scaling.md) until the migration commits; reads go on.
 *
 * Compatible with a running previous release: it writes and reads the same values, and the
 * old and new checks refuse the same ones under the same name.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as DomainChecks from "../DomainChecks.js"

/** This database judges some probe differently in the two forms: the checks are left as they were. */
class DomainChecksDisagree extends Data.TaggedError("DomainChecksDisagree")<{
  readonly probes: ReadonlyArray<{ readonly domain: string; readonly value: string | null }>
}> {
  override get message(): string {
    return `the fast domain checks judge these probes differently from the old ones in this database: ${JSON.stringify(this.probes)}`
  }
}

const compatible = "-- ccat:compatible the new check accepts exactly the values the old one did, under the same name"

const replace = (d: DomainChecks.DomainCheck) => [
  `${compatible}\nalter domain ${d.domain} add constraint ${d.constraint}_fast check (${d.fast("value")}) not valid`,
  `${compatible}\nalter domain ${d.domain} drop constraint ${d.constraint}`,
  `${compatible}\nalter domain ${d.domain} rename constraint ${d.constraint}_fast to ${d.constraint}`,
  `${compatible}\nalter domain ${d.domain} validate constraint ${d.constraint}`
]

/** Replaces both domains' checks with their fast forms once the database agrees on every probe. */
export default Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const probe = DomainChecks.disagreements()
  const differ = yield* sql.unsafe<{ domain: string; value: string | null }>(probe.sql, probe.params)
  if (differ.length > 0) return yield* new DomainChecksDisagree({ probes: differ })
  for (const statement of DomainChecks.all.flatMap(replace)) yield* sql.unsafe(statement).raw
})
