/**
 * Node stream <-> Effect Stream glue and errno classification shared by the drivers.
 */
import { StorageError } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import type { Readable } from "node:stream"

/** An Effect stream over a Node readable made on demand; the readable is destroyed on exit. */
export const fromReadable = <E>(
  acquire: Effect.Effect<Readable, E>,
  onError: (cause: unknown) => E
): Stream.Stream<Uint8Array, E> =>
  Stream.acquireRelease(acquire, (readable) => Effect.sync(() => readable.destroy())).pipe(
    Stream.flatMap((readable) => Stream.fromAsyncIterable(readable as AsyncIterable<Uint8Array>, onError))
  )

/** The storage reason for a Node system error code. */
export const reasonOfErrno = (cause: unknown): StorageError.StorageErrorReason => {
  const code = (cause as { code?: unknown } | null)?.code
  switch (code) {
    case "ENOENT":
    case "ENOTDIR":
      return "NotFound"
    case "EEXIST":
      return "AlreadyExists"
    case "EACCES":
    case "EPERM":
    case "EROFS":
    case "ELOOP":
      return "PermissionDenied"
    default:
      return "Unavailable"
  }
}

/** Builds a StorageError for a failed Node call. */
export const errnoError = (driver: string, method: string, key: string | undefined, cause: unknown): StorageError.StorageError =>
  new StorageError.StorageError({
    reason: reasonOfErrno(cause),
    driver,
    method,
    key,
    description: cause instanceof Error ? cause.message : String(cause),
    cause
  })
