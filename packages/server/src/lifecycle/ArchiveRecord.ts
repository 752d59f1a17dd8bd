/**
 * Recording an archive (a RawDataPackage tar or a DataTransferPackage bundle) that a worker has
 * just written into a buffer: its size and checksum on its row, which must still be
 * in_progress, and its verified PhysicalCopy at the buffer. Callers run it inside the
 * transaction that also enqueues what comes next.
 */
import { EventLog } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as JobStatements from "../engine/JobStatements.js"
import type * as Packager from "./Packager.js"
import type * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/**
 * What the buffer's driver says identifies the object just written (null where it tells none, or
 * cannot be asked now): recorded with the copy so cleanup never deletes an object replaced since.
 */
export const identityOf = (buffer: Sites.Location, key: string) =>
  Effect.flatMap(Storages, (storages) => storages.of(buffer)).pipe(
    Effect.flatMap((storage) => storage.stat(key)),
    Effect.map((info) => info.identity ?? null),
    Effect.orElseSucceed(() => null)
  )

/** Which archive was written. */
export type Subject =
  | { readonly kind: "RawDataPackage"; readonly id: string }
  | { readonly kind: "DataTransferPackage"; readonly id: string }

/** The job that follows from the written archive: its queue and data (a flat object of strings). */
export interface Next {
  readonly queue: string
  readonly data: Readonly<Record<string, string>>
  readonly singletonKey: string
}

/**
 * Records the written archive; dies if its row left in_progress meanwhile (a bug, not a race).
 * `identity` is what the buffer's driver said identifies the written object, where it tells one.
 * `next`, when given, is enqueued in the same statement (its queue must exist).
 */
export const record = (subject: Subject, buffer: Sites.Location, written: Packager.Written, identity: string | null = null, next?: Next) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const table = subject.kind === "RawDataPackage" ? "raw_data_package" : "data_transfer_package"
    // One statement (one round trip): the outcome on the row, the copy and its creation event, and the next job.
    const copies = yield* sql<{ id: string }>`
      with updated as (
        update ${sql(table)} set size_bytes = ${written.sizeBytes}, checksum = ${written.checksum}, updated_at = now()
        where id = ${subject.id} and status = 'in_progress' returning id),
      copy as (
        insert into physical_copy (raw_data_package_id, data_transfer_package_id, data_location_id, path, size_bytes, checksum, status, verified_at, identity)
        select ${subject.kind === "RawDataPackage" ? subject.id : null}::uuid, ${
          subject.kind === "DataTransferPackage" ? subject.id : null
        }::uuid,
          ${buffer.id}::uuid, ${written.key}::text, ${written.sizeBytes}::bigint, ${written.checksum}::text,
          'PRESENT'::physical_copy_status, now(), ${identity}::text
        from updated
        returning id, status),
      created as (${EventLog.appendFrom(sql, { kind: "PhysicalCopy", rows: "copy", from: null, to: { column: "status" } })})
      ${
        next === undefined ? sql.literal("") : sql`, job as (${
          JobStatements.sendFrom(sql, {
            queue: next.queue,
            rows: "copy",
            data: sql`${JSON.stringify(next.data)}::jsonb`,
            singletonKey: sql`${next.singletonKey}::text`
          })
        })`
      }
      select id from copy`
    if (copies.length === 0) return yield* Effect.dieMessage(`${subject.kind} ${subject.id} left in_progress while it was written`)
  })
