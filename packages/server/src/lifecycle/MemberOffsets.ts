/**
 * Where each file of a RawDataPackage sits in its tar (ops-db `raw_data_package_member`), so one
 * file can be read from any online copy of the package by a ranged read. The packager records
 * the offsets with the package; a package written before they were recorded gets them the first
 * time one of its files is asked for, from its manifest (the archive's first member, read by
 * range): the tar's layout is a pure function of the manifest, so nothing else has to be read.
 */
import { type Ids, PackageLayout, PackageManifest, type StorageDriver, StorageError, TarFormat } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Stream from "effect/Stream"

/** A file's place in its package's tar. */
export interface Offsets {
  readonly headerOffset: number
  readonly dataOffset: number
  readonly sizeBytes: number
}

/** The offsets of every file a package's manifest lists, as one array per column (for `unnest`). */
export const columns = (manifest: PackageManifest.Manifest) => {
  if (manifest._tag !== "RawDataPackage") return { fileIds: [], headerOffsets: [], dataOffsets: [], sizes: [] }
  const offsets = PackageLayout.memberOffsets(manifest)
  return {
    fileIds: manifest.files.map((f) => f.id as string),
    headerOffsets: offsets.map((o) => o.headerOffset),
    dataOffsets: offsets.map((o) => o.dataOffset),
    sizes: manifest.files.map((f) => f.sizeBytes)
  }
}

/** Records the offsets of every file a package's manifest lists (idempotent). */
export const record = (manifest: PackageManifest.Manifest) =>
  Effect.gen(function* () {
    if (manifest._tag !== "RawDataPackage") return
    const sql = yield* SqlClient.SqlClient
    const c = columns(manifest)
    yield* sql`
      insert into raw_data_package_member (raw_data_package_id, raw_data_file_id, header_offset, data_offset, size_bytes)
      select ${manifest.packageId}::uuid, m.file, m.header, m.data, m.size
      from unnest(${c.fileIds}::uuid[], ${c.headerOffsets}::bigint[], ${c.dataOffsets}::bigint[], ${c.sizes}::bigint[])
        as m(file, header, data, size)
      where exists (select 1 from raw_data_file f where f.id = m.file)
      on conflict do nothing`
  })

/** The recorded offsets of a file in a package, if any. */
export const of = (packageId: Ids.RawDataPackageId, fileId: Ids.RawDataFileId) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const rows = yield* sql<{ headerOffset: string; dataOffset: string; sizeBytes: string }>`
      select header_offset, data_offset, size_bytes from raw_data_package_member
      where raw_data_package_id = ${packageId} and raw_data_file_id = ${fileId}`
    const row = rows[0]
    return row === undefined
      ? undefined
      : { headerOffset: Number(row.headerOffset), dataOffset: Number(row.dataOffset), sizeBytes: Number(row.sizeBytes) } satisfies Offsets
  })

const bytesOf = (storage: StorageDriver.Service, key: string, start: number, end: number) =>
  Stream.runCollect(storage.get(key, { range: { start, end } })).pipe(
    Effect.map((chunks) => Buffer.concat([...chunks]))
  )

const corrupt = (storage: StorageDriver.Service, key: string, description: string) =>
  new StorageError.StorageError({ reason: "Corrupt", driver: storage.name, method: "get", key, description })

/**
 * Reads a package's manifest from one of its copies (two ranged reads: the first header, then
 * the manifest's bytes) and records every file's offsets. Fails with Corrupt when the object
 * does not begin with the manifest of this package.
 */
export const fillFromArchive = (packageId: Ids.RawDataPackageId, storage: StorageDriver.Service, key: string) =>
  Effect.gen(function* () {
    const head = yield* bytesOf(storage, key, 0, TarFormat.blockSize)
    const header = head.length === TarFormat.blockSize ? TarFormat.decodeHeader(head) : "shorter than one tar header"
    if (typeof header === "string") return yield* corrupt(storage, key, `the archive's first header: ${header}`)
    if (header.name !== PackageManifest.manifestName || header.size > PackageManifest.maxManifestBytes) {
      return yield* corrupt(storage, key, `the archive does not begin with ${PackageManifest.manifestName}`)
    }
    const body = yield* bytesOf(storage, key, TarFormat.blockSize, TarFormat.blockSize + header.size)
    const manifest = PackageManifest.decode(body)
    if (Either.isLeft(manifest)) return yield* corrupt(storage, key, manifest.left)
    if (manifest.right._tag !== "RawDataPackage" || manifest.right.packageId !== packageId) {
      return yield* corrupt(storage, key, `the manifest is not that of package ${packageId}`)
    }
    yield* record(manifest.right)
    return manifest.right
  })
