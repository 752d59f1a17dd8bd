/**
 * How staged data is laid out on a PROCESSING host with a local folder, so programs stay apart:
 *
 * - the staged copies (one per file, shared by every request that staged it) live in a store only
 *   the service may enter: `<root>/.store/<executedObsUnitId>/<relativePath>`, its top folder mode
 *   0700 (copies staged by earlier releases keep their `<executedObsUnitId>/...` paths, and their
 *   top folder is closed the same way once a request links them);
 * - each request gets its own folder per observing program whose data it holds,
 *   `<root>/<program>/<request id>/<executedObsUnitId>/<relativePath>`, whose files are hard links
 *   to the store's (no byte is written twice); the program and request folders and everything in
 *   them have the configured modes (`policy.staging`) and, where the program has one configured,
 *   its group, so only the service and that group may read them;
 * - releasing (or expiry) removes the request's folder; the store's copies go once no live
 *   request needs them (cleanup).
 *
 * `<program>` is the program's name when it is a plain file name (letters, digits, `.`, `_`, `-`,
 * not starting with `.` and not shaped like an id), else `program-<program id>`: distinct programs
 * never share a folder.
 */
import type { Topology } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Clock from "effect/Clock"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { execFile } from "node:child_process"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { promisify } from "node:util"
import * as CopyFindings from "./CopyFindings.js"
import { LifecyclePolicy } from "./Packaging.js"
import type * as Sites from "./Sites.js"
import { Storages } from "./Storages.js"

/** The store's top folder, inside the location's root. */
export const storeFolder = ".store"

/** Where a staged copy is: its key at the PROCESSING location, stable across requests. */
export const stagedKey = (executedObsUnitId: string, relativePath: string): string => `${storeFolder}/${executedObsUnitId}/${relativePath}`

const uuidShaped = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

/** The folder of a program's staged data, below the location's root (one segment). */
export const programFolder = (program: { readonly id: string; readonly name: string }): string =>
  /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/.test(program.name) && !uuidShaped.test(program.name) && !program.name.startsWith("program-")
    ? program.name
    : `program-${program.id}`

/** A request's folder for one program, below the location's root. */
export const requestFolder = (program: { readonly id: string; readonly name: string }, requestId: string): string =>
  `${programFolder(program)}/${requestId}`

/** Whether a recorded folder is one `requestFolder` makes (cleanup removes nothing else). */
export const isRequestFolder = (folder: string): boolean => {
  const [program, request, ...rest] = folder.split("/")
  return rest.length === 0 && program !== undefined && request !== undefined && program !== storeFolder &&
    /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}$/.test(program) && uuidShaped.test(request)
}

/** The layout could not be made as configured: the request fails with this reason. */
export class LayoutError extends Data.TaggedError("LayoutError")<{ readonly message: string }> {}

/** How long a group name's gid is used before the host's group database is asked again. */
export const groupTtlMillis = 60_000

// Names looked up lately (a process spawn per request otherwise); a name not found is not kept,
// so a group added on the host is found at the next request. Bounded by the configured names.
const knownGroups = new Map<string, { readonly gid: number; readonly until: number }>()
const maxKnownGroups = 1024

/** A configured group as a gid: a number as it is, a name through the host's group database (`getent`), kept `groupTtlMillis`. */
export const resolveGroup = (program: string, group: number | string) =>
  typeof group === "number"
    ? Effect.succeed(group)
    : Effect.gen(function* () {
      const now = yield* Clock.currentTimeMillis
      const known = knownGroups.get(group)
      if (known !== undefined && known.until > now) return known.gid
      const gid = yield* Effect.tryPromise(() => promisify(execFile)("getent", ["group", group])).pipe(
        Effect.map(({ stdout }) => Number(stdout.split(":")[2])),
        Effect.filterOrFail((gid) => Number.isInteger(gid) && gid >= 0, () => undefined),
        Effect.mapError(() =>
          new LayoutError({ message: `policy.staging.groups: group ${group} of program ${program} is not known on this host` })
        )
      )
      if (knownGroups.size >= maxKnownGroups) knownGroups.clear()
      knownGroups.set(group, { gid, until: now + groupTtlMillis })
      return gid
    })

/** One file to lay out: its copy in the store and where it goes in the request's folder. */
export interface Entry {
  /** The copy's key at the location. */
  readonly key: string
  /** The request folder it belongs in (`requestFolder`). */
  readonly folder: string
  readonly executedObsUnitId: string
  readonly relativePath: string
  /** The program's gid, when one is configured. */
  readonly gid: number | undefined
}

const io = <A>(what: string, f: () => Promise<A>) =>
  Effect.tryPromise({ try: f, catch: (cause) => new Error(`${what}: ${cause instanceof Error ? cause.message : String(cause)}`) })

/** Makes a folder (not its parents) with the mode and group, whatever the umask; an existing one is set again. */
const folder = (dir: string, mode: number, gid: number | undefined) =>
  Effect.gen(function* () {
    yield* io(`mkdir ${dir}`, () => fs.mkdir(dir).catch((e) => (e?.code === "EEXIST" ? undefined : Promise.reject(e))))
    if (gid !== undefined) yield* io(`chown ${dir}`, () => fs.chown(dir, -1, gid))
    yield* io(`chmod ${dir}`, () => fs.chmod(dir, mode))
  })

/**
 * Links the store's file into the request's folder (a copy where a link cannot cross devices);
 * false when the store's file is gone.
 */
const link = (from: string, to: string) =>
  io(`link ${to}`, async () => {
    const [a, b] = await Promise.all([
      fs.stat(from).catch((e) => (e?.code === "ENOENT" ? undefined : Promise.reject(e))),
      fs.stat(to).catch(() => undefined)
    ])
    if (a === undefined) return false
    if (b !== undefined && a.ino === b.ino && a.dev === b.dev) return true
    if (b !== undefined) await fs.rm(to)
    await fs.link(from, to).catch((e) => (e?.code === "EXDEV" ? fs.copyFile(from, to) : Promise.reject(e)))
    return true
  })

/**
 * Makes the request's folders with links to its staged copies, with the configured modes and
 * groups, and closes the store's top folders to everyone but the service. Idempotent: a retried
 * job finds what it made and sets it again. Answers the keys whose store file was gone.
 */
export const lay = Effect.fn("StagingLayout.lay")(
  function* (root: string, config: Topology.StagingLayoutConfig, entries: ReadonlyArray<Entry>) {
    const tops = new Set(entries.map((e) => e.key.split("/")[0]!))
    for (const top of tops) {
      yield* io(
        `chmod ${top}`,
        () => fs.chmod(path.join(root, top), 0o700).catch((e) => (e?.code === "ENOENT" ? undefined : Promise.reject(e)))
      )
    }
    const gone: Array<string> = []
    const made = new Set<string>()
    const ensure = (dir: string, gid: number | undefined) =>
      made.has(dir) ? Effect.void : Effect.zipRight(folder(dir, config.folderMode, gid), Effect.sync(() => made.add(dir)))
    for (const e of entries) {
      const [program] = e.folder.split("/")
      yield* ensure(path.join(root, program!), e.gid)
      const segments = [e.folder.split("/")[1]!, e.executedObsUnitId, ...e.relativePath.split("/").slice(0, -1)]
      let dir = path.join(root, program!)
      for (const s of segments) {
        dir = path.join(dir, s)
        yield* ensure(dir, e.gid)
      }
      const target = path.join(root, e.folder, e.executedObsUnitId, e.relativePath)
      if (!(yield* link(path.join(root, e.key), target))) {
        gone.push(e.key)
        continue
      }
      if (e.gid !== undefined) yield* io(`chown ${target}`, () => fs.chown(target, -1, e.gid!))
      yield* io(`chmod ${target}`, () => fs.chmod(target, config.fileMode))
    }
    return gone
  }
)

/**
 * The request's own folders at a PROCESSING location with a local folder, one per program whose
 * files it holds (`StagingLayout`), as `{ programId: folder }`; undefined where the location has
 * none (its files are handed out by key).
 */
export const layOut = (
  actor: string,
  requestId: string,
  location: Sites.Location,
  files: ReadonlyArray<{ readonly id: string; readonly relativePath: string }>,
  keys: ReadonlyMap<string, string>
) =>
  Effect.gen(function* () {
    const root = (yield* Storages).rootOf(location)
    if (root === undefined || files.length === 0) return undefined
    const sql = yield* SqlClient.SqlClient
    const config = (yield* LifecyclePolicy).staging
    const owners = yield* sql<{ id: string; executedObsUnitId: string; programId: string; programName: string }>`
      select f.id, f.executed_obs_unit_id, p.id as program_id, p.name as program_name
      from raw_data_file f join executed_obs_unit e on e.id = f.executed_obs_unit_id
      join obs_unit o on o.id = e.obs_unit_id join observing_program p on p.id = o.observing_program_id
      where f.id in ${sql.in(files.map((f) => f.id))}`
    const byFile = new Map(owners.map((o) => [o.id, o]))
    const gids = new Map<string, number | undefined>()
    const folders: Record<string, string> = {}
    for (const o of owners) {
      if (gids.has(o.programId)) continue
      const group = config.groups[o.programName]
      gids.set(o.programId, group === undefined ? undefined : yield* resolveGroup(o.programName, group))
      folders[o.programId] = requestFolder({ id: o.programId, name: o.programName }, requestId)
    }
    const entries = files.flatMap((f): Array<Entry> => {
      const owner = byFile.get(f.id)
      const key = keys.get(f.id)
      if (owner === undefined || key === undefined) return []
      return [{
        key,
        folder: folders[owner.programId]!,
        executedObsUnitId: owner.executedObsUnitId,
        relativePath: f.relativePath,
        gid: gids.get(owner.programId)
      }]
    })
    const gone = yield* lay(root, config, entries)
    if (gone.length > 0) {
      // A staged copy whose file vanished: recorded MISSING, so the retry stages it again.
      for (const key of gone) {
        const [copy] = yield* sql<{ id: string }>`
          select id from physical_copy where data_location_id = ${location.id} and path = ${key} and status = 'STAGED'`
        if (copy !== undefined) {
          yield* CopyFindings.mark(copy.id, "MISSING", {
            actor,
            by: "staging",
            detail: "its file was gone when staging linked it into a request's folder"
          })
        }
      }
      return yield* Effect.fail(
        new Error(
          `${gone.length} staged files were gone (${gone.slice(0, 3).join(", ")}${
            gone.length > 3 ? ", ..." : ""
          }); they are staged again on retry`
        )
      )
    }
    return folders
  })

/** Removes a request's folders (a folder already gone counts as removed); refuses anything not shaped like one. */
export const remove = Effect.fn("StagingLayout.remove")(function* (root: string, folders: ReadonlyArray<string>) {
  for (const f of folders) {
    if (!isRequestFolder(f)) return yield* Effect.fail(new LayoutError({ message: `${f} is not a request folder; not removing it` }))
    yield* io(`remove ${f}`, () => fs.rm(path.join(root, f), { recursive: true, force: true }))
  }
})
