/**
 * Rows for the integrity view's tests, made the way the lifecycle makes them: archived
 * packages with copies at two archives verified at known ages, copies found CORRUPT and MISSING
 * through CopyFindings, a bad copy repaired (its move to DELETED with action `repaired`), dark
 * objects (one resolved) and an inventory pass. The expected figures are written beside them.
 */
import { type Ids, Transitions } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as CopyFindings from "../src/lifecycle/CopyFindings.js"

/** What `arrange` made. */
export interface Arranged {
  readonly archive: { readonly id: string; readonly name: string }
  readonly secondArchive: { readonly id: string; readonly name: string }
  readonly packages: { readonly good: string; readonly corrupt: string; readonly missing: string; readonly repaired: string }
  readonly copies: { readonly corrupt: string; readonly missing: string; readonly unverified: string }
}

const day = 86400

/**
 * At `world.archive` (A) and a second archive made here (A2), four archived packages:
 * - good: PRESENT at A (verified 10 d ago) and A2 (20 d);
 * - corrupt: CORRUPT at A (last verified 5 d ago), PRESENT at A2 (100 d): one good copy;
 * - missing: MISSING at A (200 d), PRESENT at A2 never verified: no good copy;
 * - repaired: a CORRUPT copy at A repaired (DELETED, action repaired), its replacement PRESENT at
 *   A (1 h), PRESENT at A2 (2 d).
 * A has two dark objects, one resolved, and an inventory pass finished an hour ago.
 */
export const arrange = (world: Fixtures.World) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const [second] = yield* sql<{ id: string; name: string }>`
      insert into data_location (site_id, name, type, technology) values (${world.cologne.id}, ${`second-archive-${Fixtures.suffix()}`}, 'LONG_TERM_ARCHIVE', 'disk')
      returning id, name`
    const eou = yield* Fixtures.executedObsUnit(world)
    const archived = () =>
      Effect.gen(function* () {
        const p = yield* Fixtures.rawDataPackage(world, eou)
        const checksum = Fixtures.checksum()
        yield* sql`update raw_data_package set status = 'completed', size_bytes = 4096, checksum = ${checksum} where id = ${p.id}`
        return { id: p.id as string, path: p.relativePath as string, checksum }
      })
    const copy = (locationId: string, p: { id: string; path: string; checksum: string }, agoSeconds: number | null, path = p.path) =>
      Effect.map(
        sql<{ id: string }>`
          insert into physical_copy (raw_data_package_id, data_location_id, path, size_bytes, checksum, status, verified_at)
          values (${p.id}, ${locationId}, ${path}, 4096, ${p.checksum}, 'PRESENT',
                  ${agoSeconds === null ? null : sql`now() - make_interval(secs => ${agoSeconds})`})
          returning id`,
        ([r]) => r.id
      )
    const found = { actor: "worker:test", by: "audit", detail: "checksum differs from the recorded one" }
    const A = world.archive.id

    const good = yield* archived()
    yield* copy(A, good, 10 * day)
    yield* copy(second.id, good, 20 * day)

    const corrupt = yield* archived()
    const corruptCopy = yield* copy(A, corrupt, 5 * day)
    yield* CopyFindings.mark(corruptCopy, "CORRUPT", found)
    yield* copy(second.id, corrupt, 100 * day)

    const missing = yield* archived()
    const missingCopy = yield* copy(A, missing, 200 * day)
    yield* CopyFindings.mark(missingCopy, "MISSING", { ...found, detail: "no object at the recorded path" })
    const unverified = yield* copy(second.id, missing, null)

    const repaired = yield* archived()
    const old = yield* copy(A, repaired, 30 * day, `${repaired.path}.old`)
    yield* CopyFindings.mark(old, "CORRUPT", found)
    // As repair does, in one transaction: the bad row gives its place (one live copy per location) to the replacement.
    yield* sql.withTransaction(Effect.gen(function* () {
      yield* Transitions.transition({
        entity: "PhysicalCopy",
        id: old as Ids.PhysicalCopyId,
        from: "CORRUPT",
        to: "DELETED",
        actor: "worker:test",
        details: { action: "repaired", source: second.name }
      })
      yield* copy(A, repaired, 3600)
    }))
    yield* copy(second.id, repaired, 2 * day)

    yield* sql`insert into dark_object (data_location_id, path, size_bytes) values (${A}, 'planted/unknown.bin', 10)`
    yield* sql`insert into dark_object (data_location_id, path, size_bytes, resolved_at) values (${A}, 'planted/gone.bin', 10, now())`
    yield* sql`insert into location_inventory (data_location_id, last_pass_completed_at) values (${A}, now() - interval '1 hour')`
    return {
      archive: { id: A, name: world.archive.name },
      secondArchive: second,
      packages: { good: good.id, corrupt: corrupt.id, missing: missing.id, repaired: repaired.id },
      copies: { corrupt: corruptCopy, missing: missingCopy, unverified }
    } satisfies Arranged
  }).pipe(Effect.orDie)

/** The figures of A and A2 with a 90-day cycle (lags and instants are checked apart, they move with the clock). */
export const expected = {
  archive: { copies: 4, audited: 3, unverifiedCopies: 0, corrupt: 1, missing: 1, dark: 1, repaired: 1 },
  secondArchive: { copies: 4, audited: 2, unverifiedCopies: 1, corrupt: 0, missing: 0, dark: 0, repaired: 0 },
  /** Audit lag: the oldest verification of a PRESENT copy, in days. */
  lagDays: { archive: 10, secondArchive: 100 },
  /** Latest verification, in seconds ago. */
  lastAuditAgo: { archive: 3600, secondArchive: 2 * day }
}
