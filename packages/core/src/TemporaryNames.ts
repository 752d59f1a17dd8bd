/**
 * The names writers give a file while it is incomplete, defined once: the disk driver writes
 * `.ccat-tmp-<name>-<hex>` beside the final name, the local transfer adapter writes
 * `.<name>.ccat-<hex>.part`. A writer killed mid-write (SIGKILL, power cut) leaves such a file
 * behind; the disk driver's `sweepTemporary` recognises both patterns and removes old ones, and
 * refuses keys that match them, so a sweep can never take a committed object for a leftover.
 *
 * rsync's `--partial-dir` folders (`.ccat-partial`) are not among them on purpose: what they
 * hold is the basis of the next attempt's resume (see docs/storage-drivers.md).
 */

/** The disk driver's temporary files start with this; listing hides them and keys may not use it. */
export const diskPrefix = ".ccat-tmp-"

/** Characters of the final name kept in a temporary name: enough to tell whose it is, short enough for NAME_MAX. */
const keptChars = 64

/** The disk driver's temporary name for a file whose final name is `base`; `random` is hex. */
export const disk = (base: string, random: string): string => `${diskPrefix}${base.slice(0, keptChars)}-${random}`

/** The local transfer adapter's temporary name for a file whose final name is `base`; `random` is hex. */
export const part = (base: string, random: string): string => `.${base.slice(0, keptChars)}.ccat-${random}.part`

/** The local transfer adapter's temporary names. */
export const partPattern = /^\..+\.ccat-[0-9a-f]+\.part$/

/** Whether a file name (one path segment) is a temporary name of one of our writers. */
export const isTemporary = (name: string): boolean => name.startsWith(diskPrefix) || partPattern.test(name)
