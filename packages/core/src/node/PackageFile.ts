/**
 * A package on a local disk, opened by its path: the `PackageReader` operations on a file a
 * pipeline developer holds (a copy fetched from an archive, a staged package), so it can be
 * checked before it is trusted. A file that cannot be read fails Unreadable, naming the path.
 */
import type * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import type * as PackageManifest from "../PackageManifest.js"
import * as PackageReader from "../PackageReader.js"

/** Bytes read from the file per chunk. */
const chunkBytes = 1024 * 1024

const unreadable = (path: string, cause: unknown) =>
  new PackageReader.PackageReadError({
    reason: "Unreadable",
    members: [],
    description: `cannot read ${path}: ${cause instanceof Error ? cause.message : String(cause)}`
  })

/** The file's bytes, read as the consumer pulls them; the file is closed when the stream ends. */
export const stream = (path: string): Stream.Stream<Uint8Array, PackageReader.PackageReadError> =>
  Stream.suspend(() =>
    Stream.fromAsyncIterable(
      fs.createReadStream(path, { highWaterMark: chunkBytes }) as AsyncIterable<Buffer>,
      (cause) => unreadable(path, cause)
    )
  ).pipe(Stream.map((b): Uint8Array => b))

/** The manifest of the package at `path`: only its first member is read. */
export const manifest = (path: string): Effect.Effect<PackageManifest.Manifest, PackageReader.PackageReadError> =>
  PackageReader.manifest(stream(path))

/**
 * Checks every member of the package at `path` against its manifest (and the whole file against
 * `checksum`, e.g. the catalog's, when given); fails Corrupt naming each bad member.
 */
export const verify = (
  path: string,
  options?: PackageReader.VerifyOptions
): Effect.Effect<PackageReader.Verified, PackageReader.PackageReadError> => PackageReader.verify(stream(path), options)

/** One member's bytes from the package at `path`, checked against the manifest as they flow. */
export const readMember = (
  path: string,
  relativePath: string,
  options?: PackageReader.ReadOptions
): Stream.Stream<Uint8Array, PackageReader.PackageReadError> => PackageReader.readMember(stream(path), relativePath, options)
