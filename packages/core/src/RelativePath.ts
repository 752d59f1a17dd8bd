/**
 * Relative paths of files inside an observation, a package or a location. A path filed by an
 * instrument ends up as a name in a tar archive and on disks at several sites, so it must never
 * escape the directory it is meant for.
 */
import * as Schema from "effect/Schema"
import * as TemporaryNames from "./TemporaryNames.js"

/** The longest relative path accepted, in UTF-8 bytes (PATH_MAX on Linux is 4096). */
export const maxBytes = 1024

/** Why a relative path is unsafe, or undefined when it is safe. */
export const problem = (path: string): string | undefined => {
  if (path.length === 0) return "a path must not be empty"
  if (path.includes("\0")) return "a path must not contain a NUL character"
  if (new TextEncoder().encode(path).length > maxBytes) return `a path must be at most ${maxBytes} bytes`
  if (path.startsWith("/") || /^[A-Za-z]:[\\/]/.test(path)) return "a path must be relative, not absolute"
  if (path.includes("\\")) return "a path must use / as separator, not \\"
  const parts = path.split("/")
  if (parts.some((p) => p === "..")) return "a path must not contain a .. segment"
  if (parts.some((p) => p === "" || p === ".")) return "a path must not contain empty or . segments"
  return undefined
}

/**
 * Why a path cannot be given to a new file, or undefined: `problem`, and no segment named like
 * a writer's temporary file (see `TemporaryNames`), which could be taken for a killed writer's
 * leftover. Checked where paths come in (filing), not where stored paths are read: a file filed
 * under such a name before this rule must stay readable and unpackable.
 */
export const problemOfNew = (path: string): string | undefined => {
  const found = problem(path)
  if (found !== undefined) return found
  if (path.split("/").some(TemporaryNames.isTemporary)) {
    return `a path must not use a name reserved for temporary files (${TemporaryNames.diskPrefix}… or .NAME.ccat-HEX.part)`
  }
  return undefined
}

/** A safe relative path: not absolute, no `..`, no NUL, bounded length. */
export const RelativePath = Schema.String.pipe(
  Schema.filter((s) => problem(s) ?? true, { identifier: "RelativePath" }),
  Schema.brand("RelativePath")
)
/** A validated relative path. */
export type RelativePath = typeof RelativePath.Type
