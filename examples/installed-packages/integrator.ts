/**
 * A program written against the packages as npm installs them: values reached through the
 * namespaces of every entry point (`Ids.RawDataPackageId.make`), names that are both a type and a
 * value, and `@ts-expect-error` lines that pass only if the types are real, not `any`.
 * `npm run typecheck` checks it against the sources; installedPackages.test.ts against the
 * declarations of the packed tarballs alone.
 */
import { createClient, FilingOutbox, RetryPolicy } from "@ccat/client"
import { Checksum, Ids, PackageManifest, RelativePath, StorageDriver, StorageError } from "@ccat/core"
import { Hashing, OpsDb } from "@ccat/core/node"
import { TestDatabase, waitUntil, WaitUntil } from "@ccat/core/testing"
import { Disk, TapeLibrary, TapeLocation } from "@ccat/storage-drivers"
import { BbcpRouteOptions, BbcpTransfer } from "@ccat/transfer-bbcp"
import { RsyncRouteOptions, RsyncTransfer } from "@ccat/transfer-rsync"
import type * as PgClient from "@effect/sql-pg/PgClient"
import * as Effect from "effect/Effect"
import type * as Either from "effect/Either"
import type * as Layer from "effect/Layer"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"

/** A branded id made by its schema: a value of the `Ids` namespace. */
export const packageId: Ids.RawDataPackageId = Ids.RawDataPackageId.make("0b8f6c1e-4a7d-4c36-9a51-3f0e2d9b7c11")

// @ts-expect-error: a file's id is not a package's (were the ids `any`, this would pass)
export const notAPackageId: Ids.RawDataPackageId = Ids.RawDataFileId.make("5d2a9e40-8c1b-4f6e-b7d3-0a4c6e8f2b19")

/** A checksum, both a value (the schema) and a type of the `Checksum` namespace. */
export const checksum: Checksum.Checksum = Checksum.make("sha256", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
export const isChecksum: (u: unknown) => u is Checksum.Checksum = Schema.is(Checksum.Checksum)

/** A manifest read from bytes: `Manifest` is a schema and the type it decodes to. */
export const manifest: Either.Either<PackageManifest.Manifest, string> = PackageManifest.decode(new TextEncoder().encode("{}"))
export const isManifest: (u: unknown) => u is PackageManifest.Manifest = Schema.is(PackageManifest.Manifest)

/** The smallest driver: it holds nothing, and says so by its errors. */
export const emptyDriver: StorageDriver.Service = StorageDriver.make({
  name: "empty",
  capabilities: StorageDriver.noCapabilities,
  put: (key, body) =>
    Stream.runDrain(body).pipe(
      Effect.zipRight(
        Effect.fail(new StorageError.StorageError({ reason: "Unsupported", driver: "empty", method: "put", key, description: "read-only" }))
      )
    ),
  get: (key) => Stream.fail(new StorageError.StorageError({ reason: "NotFound", driver: "empty", method: "get", key })),
  stat: (key) => Effect.fail(new StorageError.StorageError({ reason: "NotFound", driver: "empty", method: "stat", key })),
  delete: () => Effect.void
})

/** A key of a stored object, checked by the `RelativePath` schema. */
export const key: RelativePath.RelativePath = RelativePath.RelativePath.make("raw/2026/scan.fits")

/** @ccat/core/node: the ops-db's connection, and hashing of files. */
export const opsDbUrl: string = OpsDb.describeUrl("postgres://ccat:secret@db.example.org/ccat")
export const hashFile = Hashing.hashFile

/** @ccat/core/testing: a fresh test database, and waiting for a condition with a bound. */
export const testDatabase: Layer.Layer<PgClient.PgClient> = TestDatabase.layer
export const ready: Promise<true> = waitUntil("the answer", () => true, WaitUntil.defaultIntervalMs * 10)

/** The drivers and adapters: values of their namespaces, and the options schemas named by type. */
export const disk = Disk.layer
export const tapeVolume = (v: TapeLibrary.Volume): string => v.label
export const tapeOptions: Schema.Schema<TapeLocation.VirtualOptions, any> = TapeLocation.VirtualOptions
export const rsync: string = RsyncTransfer.name
export const rsyncRoute: Schema.Schema<RsyncRouteOptions.RouteOptions, any> = RsyncRouteOptions.RouteOptions
export const bbcp: string = BbcpTransfer.name
export const bbcpRoute: Schema.Schema<BbcpRouteOptions.RouteOptions, any> = BbcpRouteOptions.RouteOptions

/** The client: its promise API and the outbox's stored call, a schema and a type. */
export const client = () => createClient({ baseUrl: "https://ccat-dc.example.org", retry: { times: 3 } })
export const transient: boolean = RetryPolicy.isTransient(new Error("socket hang up"))
export const storedCall: Schema.Schema<FilingOutbox.StoredCall, any> = FilingOutbox.StoredCall
