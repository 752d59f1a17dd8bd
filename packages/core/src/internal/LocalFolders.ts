/**
 * Which storages keep their objects as files in a folder on this machine (the port's
 * `declareLocalFolder` and `localFolder`): a declaration belongs to the very driver object it was
 * made for, and passes to the service `make` lifts from it, never to a copy of either.
 */
import type { StorageError, StorageErrorReason } from "../StorageError.js"

/** What went wrong reading a key of a `LocalFolder` off the driver's own calls. */
export interface FolderProblem {
  /** The reason the folder's rules give (a refused or missing key); none for a system error. */
  readonly reason?: StorageErrorReason | undefined
  /** The system error code (`EIO`, `EACCES`, ...), when there was one. */
  readonly code?: string | undefined
  readonly description: string
}

/**
 * A location whose objects are files in a folder on this machine, which other threads of this
 * process may read directly, following the disk driver's rules for a key: the file at `root/key`
 * whose real path lies inside `root` (a symlink may point anywhere inside, never outside, and a
 * dangling one is refused), never a writer's temporary name (`TemporaryNames`), not found unless
 * it is a regular file. A packager reads members this way on a thread of its own, without a call
 * through the service per file. A driver declares one with `StorageDriver.declareLocalFolder`;
 * `StorageDriver.localFolder` gives a lifted service's.
 */
export interface LocalFolder {
  /** The folder's real path, as `fs.realpath` returns it. */
  readonly root: string
  /** The driver's error for a problem met reading `key` there by `method`. */
  readonly failure: (method: string, key: string, problem: FolderProblem) => StorageError
}

const declared = new WeakMap<object, LocalFolder>()
const lifted = new WeakMap<object, LocalFolder>()

/** Records `folder` for this `driver` object; returns it. */
export const declare = <D extends object>(driver: D, folder: LocalFolder): D => {
  declared.set(driver, folder)
  return driver
}

/** Gives `service`, lifted from `driver`, the driver's folder if it declared one. */
export const carry = (driver: object, service: object): void => {
  const folder = declared.get(driver)
  if (folder !== undefined) lifted.set(service, folder)
}

/** The folder of a lifted service, if its driver declared one. */
export const of = (service: object): LocalFolder | undefined => lifted.get(service)
