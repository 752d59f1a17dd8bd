/**
 * Writes a route's measured settings into the configuration file (`ccat route bench --write`)
 * and nothing else: a YAML file is edited through the `yaml` library's Document, so its other
 * keys, its comments and its layout stay as they were; a JSON file is rewritten with the same
 * content plus the changes. The new file is checked by the rules `ccat serve` starts with before
 * it replaces the old one (renamed over it), so a refused result leaves the file untouched.
 */
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as YAML from "yaml"
import { RouteBenchError } from "../lifecycle/RouteTarget.js"
import { load } from "../ServerConfig.js"

/** What to set on one route: its own fields, and its adapter options (undefined removes one). */
export interface RouteChanges {
  readonly fields: Readonly<Record<string, unknown>>
  readonly options: Readonly<Record<string, unknown>>
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** The file's text with the changes made to `routes[index]`. */
export const edit = (file: string, text: string, index: number, changes: RouteChanges): string => {
  if (file.endsWith(".json")) {
    const value: unknown = JSON.parse(text)
    const route = isRecord(value) && Array.isArray(value.routes) ? (value.routes[index] as unknown) : undefined
    if (!isRecord(route)) throw new Error(`routes[${index}] is not a mapping in the file`)
    Object.assign(route, changes.fields)
    const options: Record<string, unknown> = isRecord(route.options) ? route.options : {}
    for (const [k, v] of Object.entries(changes.options)) {
      if (v === undefined) delete options[k]
      else options[k] = v
    }
    if (Object.keys(options).length > 0 || isRecord(route.options)) route.options = options
    return `${JSON.stringify(value, null, 2)}\n`
  }
  const doc = YAML.parseDocument(text)
  if (doc.errors.length > 0) throw new Error(doc.errors[0]!.message)
  if (!YAML.isMap(doc.getIn(["routes", index]))) throw new Error(`routes[${index}] is not a mapping in the file`)
  for (const [k, v] of Object.entries(changes.fields)) doc.setIn(["routes", index, k], v)
  for (const [k, v] of Object.entries(changes.options)) {
    if (v === undefined) {
      if (doc.hasIn(["routes", index, "options", k])) doc.deleteIn(["routes", index, "options", k])
    } else {
      doc.setIn(["routes", index, "options", k], v)
    }
  }
  // no folding: long flow mappings (a location on one line) stay on their line
  return doc.toString({ lineWidth: 0 })
}

/**
 * Makes the changes to `routes[index]` of `file`, checked by `ccat serve`'s own rules before the
 * file is replaced; fails with `WriteFailed` naming each problem, the file untouched.
 */
export const writeRoute = (file: string, index: number, changes: RouteChanges) =>
  Effect.gen(function* () {
    const failed = (why: string) => new RouteBenchError({ reason: "WriteFailed", detail: `${file} is left as it was: ${why}` })
    const text = yield* Effect.tryPromise({
      try: () => fs.readFile(file, "utf8"),
      catch: (e) => failed(`cannot be read: ${(e as Error).message}`)
    })
    const mode = yield* Effect.tryPromise({ try: () => fs.stat(file), catch: (e) => failed((e as Error).message) }).pipe(
      Effect.map((s) => s.mode & 0o7777)
    )
    const next = yield* Effect.try({ try: () => edit(file, text, index, changes), catch: (e) => failed((e as Error).message) })
    // beside the file, with its extension, so it is parsed alike and the rename stays on one file system
    const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${randomBytes(4).toString("hex")}${path.extname(file)}`)
    yield* Effect.acquireUseRelease(
      Effect.tryPromise({
        try: () => fs.writeFile(temporary, next, { mode, flag: "wx" }),
        catch: (e) => failed(`cannot write beside it: ${(e as Error).message}`)
      }),
      () =>
        Effect.gen(function* () {
          yield* load({ configFile: temporary }).pipe(
            Effect.mapError((e) => failed(`the result would not be valid:\n${e.problems.map((p) => `  - ${p}`).join("\n")}`))
          )
          yield* Effect.tryPromise({
            try: () => fs.rename(temporary, file),
            catch: (e) => failed(`cannot replace it: ${(e as Error).message}`)
          })
        }),
      () => Effect.promise(() => fs.rm(temporary, { force: true }))
    )
  })
