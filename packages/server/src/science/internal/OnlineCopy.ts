/**
 * Whether a copy can be read for a reader now, without staging: its location's storage must be
 * built, online (not nearline media, which belongs to staging), able to read byte ranges when the
 * reader needs them, and hold the copy's object; a copy whose object is gone is skipped before
 * anything is sent (and found by the inventory).
 */
import type { Checksum, StorageDriver } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import type { LocationSpec, StoragesService } from "../../lifecycle/Storages.js"

/** A copy of a package as the ops-db records it. */
export interface CopyRow {
  readonly id: string
  readonly path: string
  readonly sizeBytes: string
  readonly checksum: Checksum.Checksum
  readonly locationId: string
}

/** A package's present copies at readable locations, archive copies first, then by priority. */
export const copiesOf = (packageId: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql<CopyRow>`
    select c.id, c.path, c.size_bytes, c.checksum, c.data_location_id as location_id
    from physical_copy c join data_location l on l.id = c.data_location_id
    where c.raw_data_package_id = ${packageId} and c.status = 'PRESENT' and l.readable and c.checksum is not null
    order by (l.type = 'LONG_TERM_ARCHIVE') desc, l.priority, l.name`).pipe(Effect.orDie)

/** A copy ready to read from `storage`, one on nearline media, or why it cannot be read now. */
export type Readiness =
  | { readonly _tag: "Ready"; readonly storage: StorageDriver.Service }
  | { readonly _tag: "Nearline" }
  | { readonly _tag: "Problem"; readonly problem: string }

/** Checks the copy at `path` in `location` in that order, a problem named after the location. */
export const readiness = (
  storages: StoragesService,
  location: LocationSpec,
  path: string,
  needs: { readonly rangeRead: boolean }
): Effect.Effect<Readiness> =>
  Effect.gen(function* () {
    const storage = yield* storages.of(location).pipe(Effect.option)
    if (storage._tag === "None") return { _tag: "Problem", problem: `${location.name}: its storage cannot be built` } as const
    const s = storage.value
    if (s.capabilities.nearline) return { _tag: "Nearline" } as const
    if (needs.rangeRead && !s.capabilities.rangeRead) {
      return { _tag: "Problem", problem: `${location.name}: its driver does not read byte ranges` } as const
    }
    const present = yield* s.stat(path).pipe(Effect.either)
    if (present._tag === "Left") return { _tag: "Problem", problem: `${location.name}: ${present.left.message}` } as const
    return { _tag: "Ready", storage: s } as const
  })
