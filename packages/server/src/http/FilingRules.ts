/**
 * The rules a filing is checked by, in memory and shared: the main's careful and bulk paths and
 * the relay check requests by these same functions, so a request refused at one is refused at
 * the others with the same field and message.
 */
import { ApiErrors, type ApiSecurity, type Ids, type ObservationsApi, type Observational, PackageManifest } from "@ccat/core"
import * as DateTime from "effect/DateTime"
import * as Effect from "effect/Effect"

/** A 422 naming the field to fix. */
export const unprocessable = (reason: ApiErrors.Unprocessable["reason"], field: string, message: string) =>
  new ApiErrors.Unprocessable({ reason, field, message })

/** A 409 naming the entity and the fields that differ. */
export const conflict = (
  reason: ApiErrors.Conflict["reason"],
  entity: string,
  id: string,
  fields: ReadonlyArray<string>,
  message: string
) => new ApiErrors.Conflict({ reason, entity, id, fields, message })

/** JSON with sorted keys, so two equal objects compare equal whatever their key order. */
const canonical = (value: unknown): string =>
  JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v)

/** Whether a stored instant and a requested one are the same (both absent counts as the same). */
export const sameInstant = (a: DateTime.Utc | null, b: Date | null | undefined) =>
  a === null || b === null || b === undefined ? a === null && (b === null || b === undefined) : DateTime.toEpochMillis(a) === b.getTime()

/**
 * The fields in which a re-filed observation differs from the stored one. Fields the request
 * leaves out are not compared: a repeat may state less, never other.
 */
export const observationDifferences = (s: Observational.ExecutedObsUnit, req: ObservationsApi.FileObservation): Array<string> =>
  [
    s.obsUnitId !== req.obsUnitId ? "obsUnitId" : undefined,
    !sameInstant(s.startAt, req.startAt) ? "startAt" : undefined,
    req.endAt != null && !sameInstant(s.endAt, req.endAt) ? "endAt" : undefined,
    req.status !== undefined && s.status !== req.status ? "status" : undefined,
    req.quality !== undefined && s.quality !== req.quality ? "quality" : undefined,
    req.conditions !== undefined && canonical(s.conditions) !== canonical(req.conditions) ? "conditions" : undefined,
    req.metadata !== undefined && canonical(s.metadata) !== canonical(req.metadata) ? "metadata" : undefined
  ].filter((x): x is string => x !== undefined)

/** Refuses an instrument account that files for an instrument it was not granted. */
export const authorizeInstrument = (p: ApiSecurity.Principal, instrumentId: string) =>
  p.role === "admin" || p.instrumentIds.includes(instrumentId as Ids.InstrumentId)
    ? Effect.void
    : Effect.fail(
      new ApiErrors.Forbidden({
        reason: "Instrument",
        message:
          `the account ${p.name} may not file for instrument ${instrumentId}; an admin grants it with \`ccat token create --instrument\``
      })
    )

/** Every folder of a path: `a/b/c` has `a` and `a/b`. */
const foldersOf = (p: string): Array<string> => {
  const out: Array<string> = []
  for (let i = p.indexOf("/"); i !== -1; i = p.indexOf("/", i + 1)) out.push(p.slice(0, i))
  return out
}

/**
 * The folders of the request's paths, each with the first file under it; fails with the first name
 * the packager cannot write within the request itself (the manifest's name, a path that is also
 * another file's folder). The main and the relay check requests by this one rule.
 */
export const requestFolders = (paths: ReadonlyArray<string>) =>
  Effect.gen(function* () {
    const index = new Map(paths.map((p, i) => [p, i]))
    const folders = new Map<string, number>()
    for (const [i, p] of paths.entries()) {
      if (p === PackageManifest.manifestName) {
        return yield* unprocessable(
          "Invalid",
          `files[${i}].relativePath`,
          `${PackageManifest.manifestName} is reserved for the package manifest; file it under another name`
        )
      }
      for (const folder of foldersOf(p)) if (!folders.has(folder)) folders.set(folder, i)
    }
    for (const [folder, i] of folders) {
      const j = index.get(folder)
      if (j !== undefined) {
        return yield* unprocessable(
          "Invalid",
          `files[${j}].relativePath`,
          `${folder} is also the folder of files[${i}] (${paths[i]}); a path cannot be both a file and a folder`
        )
      }
    }
    return folders
  })

/**
 * The request's files checked against their SOURCE location (undefined: none by that name) and
 * the observation's instrument's modules by name: each file with its module's id, or the first
 * problem, named by its field. The main and the relay check requests by this one rule.
 */
export const checkFileSpecs = (
  sourceLocation: string,
  location: { readonly type: string } | undefined,
  modules: ReadonlyMap<string, string>,
  files: ReadonlyArray<ObservationsApi.FileSpec>
) =>
  Effect.gen(function* () {
    if (location === undefined) {
      return yield* unprocessable("UnknownReference", "sourceLocation", `there is no data location named ${sourceLocation}`)
    }
    if (location.type !== "SOURCE") {
      return yield* unprocessable(
        "WrongLocationType",
        "sourceLocation",
        `${sourceLocation} is a ${location.type} location; files are filed at a SOURCE location`
      )
    }
    const ids = new Map<string, number>()
    const paths = new Map<string, number>()
    const checked: Array<{ readonly spec: ObservationsApi.FileSpec; readonly moduleId: string }> = []
    for (const [i, f] of files.entries()) {
      const moduleId = modules.get(f.module)
      if (moduleId === undefined) {
        return yield* unprocessable(
          "UnknownReference",
          `files[${i}].module`,
          `the observation's instrument has no module named ${f.module} (it has ${[...modules.keys()].join(", ") || "none"})`
        )
      }
      if (ids.has(f.id)) {
        return yield* unprocessable(
          "Invalid",
          `files[${i}].id`,
          `file id ${f.id} appears twice in the request (also files[${ids.get(f.id)}])`
        )
      }
      if (paths.has(f.relativePath)) {
        return yield* unprocessable(
          "Invalid",
          `files[${i}].relativePath`,
          `${f.relativePath} appears twice in the request (also files[${paths.get(f.relativePath)}])`
        )
      }
      ids.set(f.id, i)
      paths.set(f.relativePath, i)
      checked.push({ spec: f, moduleId })
    }
    return checked
  })
