/**
 * The publisher row of `ivoa.obscore` (see `ObsCore.Publisher`): the IVOA authority that starts
 * every `obs_publisher_did`, the public base URL every `access_url` starts with, and the
 * collection name. The server writes what its environment says at start (`CCAT_PUBLIC_URL`,
 * `CCAT_IVOA_AUTHORITY`, `CCAT_OBS_COLLECTION`), and admins can change it through the API; a
 * value the ObsCore rules refuse stops the start (or the request) with the rule, writing nothing.
 */
import { ObsCore } from "@ccat/core"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/** A publisher setting the ObsCore rules refuse. */
export class PublisherError extends Data.TaggedError("PublisherError")<{ readonly setting: string; readonly problem: string }> {
  override get message(): string {
    return `ObsCore publisher: ${this.setting} ${this.problem}`
  }
}

/** The publisher row as stored. */
export const read = Effect.gen(function* () {
  const sql = yield* SqlClient.SqlClient
  const rows = yield* sql<ObsCore.Publisher>`select authority, base_url, collection from ivoa.publisher`
  return rows[0]!
}).pipe(Effect.orDie)

/** Changes the given settings (a base URL loses its trailing slashes) and answers the row as stored. */
export const write = (changes: Partial<ObsCore.Publisher>) =>
  Effect.gen(function* () {
    const current = yield* read
    const wanted = { ...current, ...changes, ...(changes.baseUrl === undefined ? {} : { baseUrl: changes.baseUrl.replace(/\/+$/, "") }) }
    const checked = yield* Schema.decodeUnknown(ObsCore.Publisher)(wanted).pipe(
      Effect.mapError((e) => {
        const issue = ParseResult.ArrayFormatter.formatErrorSync(e)[0]
        return new PublisherError({ setting: String(issue?.path[0] ?? "value"), problem: `must be ${issue?.message ?? "valid"}` })
      })
    )
    const sql = yield* SqlClient.SqlClient
    yield* sql`update ivoa.publisher set authority = ${checked.authority}, base_url = ${checked.baseUrl}, collection = ${checked.collection}, updated_at = now()`
      .pipe(Effect.orDie)
    return checked
  })

/** The settings the environment gives, if any. */
export const environment = Config.all({
  baseUrl: Config.option(Config.string("CCAT_PUBLIC_URL")),
  authority: Config.option(Config.string("CCAT_IVOA_AUTHORITY")),
  collection: Config.option(Config.string("CCAT_OBS_COLLECTION"))
})

/** Writes the environment's settings at start; with none set the stored row stays as it is. */
export const fromEnvironment = Effect.gen(function* () {
  const env = yield* environment.pipe(Effect.orDie)
  const changes = Object.fromEntries(Object.entries(env).flatMap(([k, v]) => (Option.isSome(v) ? [[k, v.value]] : []))) as Partial<
    ObsCore.Publisher
  >
  if (Object.keys(changes).length === 0) return
  const stored = yield* write(changes)
  yield* Effect.logInfo(`ObsCore publisher: ${stored.authority}, links under ${stored.baseUrl}, collection ${stored.collection}`)
})
