/**
 * `ccat copies list`: PhysicalCopies by location, package, observation or status ("what is still
 * waiting for deletion at the Chile buffer"), with the helpers the `show` commands share to say
 * where every copy of something is; `ccat copies release`: an operator gives up a SOURCE copy
 * found changed, so its path can be filed again.
 */
import type { CcatClient } from "@ccat/client"
import { type LocationsApi, OperationsApi, Storage } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Location from "./Location.js"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

/** A copy with its location's name, as the commands print it. */
export const NamedCopy = Schema.Struct({ ...Storage.PhysicalCopy.json.fields, location: Schema.String })
/** A copy with its location's name. */
export type NamedCopy = typeof NamedCopy.Type

type Filter = Omit<typeof LocationsApi.CopyFilter.Type, "limit" | "cursor">

/** The copies matching a filter with their location names; `copies` is null when the account may not list them. */
export const copiesOf = (c: CcatClient.Client, limit: number, filter: Filter) =>
  Effect.gen(function* () {
    const listed = yield* Remote.collect(limit, (page) => c.locations.listCopies({ urlParams: { ...filter, ...page } })).pipe(
      Effect.map(Option.some),
      Effect.catchTag("Forbidden", () => Effect.succeedNone)
    )
    if (Option.isNone(listed)) return { copies: null, more: false }
    const names = yield* Location.names(c)
    return {
      copies: listed.value.items.map((copy): NamedCopy => ({ ...copy, location: names.get(copy.dataLocationId) ?? copy.dataLocationId })),
      more: listed.value.more
    }
  })

/** What a copy is a copy of: `file ID`, `package ID` or `bundle ID`. */
export const subject = (copy: NamedCopy): string =>
  copy.rawDataFileId !== null
    ? `file ${copy.rawDataFileId}`
    : copy.rawDataPackageId !== null
    ? `package ${copy.rawDataPackageId}`
    : `bundle ${copy.dataTransferPackageId}`

/** The copies as a table: what each is a copy of (its path by default), where, status, size, verification. */
export const copiesTable = (copies: ReadonlyArray<NamedCopy>, label: (copy: NamedCopy) => string = (copy) => copy.path) =>
  Output.table(
    ["OF", "LOCATION", "STATUS", "SIZE", "VERIFIED"],
    copies.map((copy) => [
      label(copy),
      copy.location,
      copy.status,
      Output.bytes(copy.sizeBytes),
      Output.instant(copy.verifiedAt)
    ])
  )

const Listed = Schema.Struct({ items: Schema.Array(NamedCopy), more: Schema.Boolean })

const list = Command.make(
  "list",
  {
    ...Remote.options,
    location: Options.text("location").pipe(Options.withDescription("only copies at this location (short name or id)"), Options.optional),
    package: Options.text("package").pipe(Options.withDescription("only copies of this package (its id)"), Options.optional),
    observation: Options.text("observation").pipe(
      Options.withDescription("only copies of this observation's files, packages and bundles (its id)"),
      Options.optional
    ),
    status: Options.choice("status", Storage.PhysicalCopyStatus.literals).pipe(
      Options.withDescription("only copies in this status"),
      Options.optional
    ),
    limit: Remote.limitOption
  },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const packageId = Option.isSome(o.package) ? yield* Remote.requireUuid(o.json, "--package", o.package.value) : undefined
      const observationId = Option.isSome(o.observation)
        ? yield* Remote.requireUuid(o.json, "--observation", o.observation.value)
        : undefined
      const location = Option.isSome(o.location) ? yield* Location.resolve(o, o.location.value) : undefined
      const filter: Filter = {
        ...(location === undefined ? {} : { locationId: location.id }),
        ...(packageId === undefined ? {} : { packageId: packageId as NonNullable<Filter["packageId"]> }),
        ...(observationId === undefined ? {} : { observationId: observationId as NonNullable<Filter["observationId"]> }),
        ...(Option.isSome(o.status) ? { status: o.status.value } : {})
      }
      const found = yield* Remote.withClient(o, (c) => copiesOf(c, limit, filter))
      if (found.copies === null) {
        return yield* new Remote.CliError({
          exitCode: 3,
          kind: "Forbidden",
          json: o.json,
          message: "copies are listed for operators and admins only"
        })
      }
      if (o.json) return yield* Remote.printJson(Listed, { items: found.copies, more: found.more })
      if (found.copies.length === 0) return yield* Console.log("no copies")
      yield* Console.log(Output.table(
        ["ID", "OF", "LOCATION", "PATH", "STATUS", "SIZE", "VERIFIED"],
        found.copies.map((c) => [
          c.id,
          subject(c),
          c.location,
          c.path,
          c.status,
          Output.bytes(c.sizeBytes),
          Output.instant(c.verifiedAt)
        ]),
        ""
      ))
      const more = Output.moreNote(found.more, found.copies.length)
      if (more !== undefined) yield* Console.log(more)
    })
).pipe(Command.withDescription("list PhysicalCopies in creation order, filtered by location, package, observation or status"))

const release = Command.make(
  "release",
  {
    ...Remote.options,
    id: Args.text({ name: "copy-id" }).pipe(Args.withDescription("the SOURCE copy found changed (CORRUPT) or gone (MISSING)")),
    reason: Options.text("reason").pipe(Options.withDescription("what was done with the bytes now at the path; recorded in the event log"))
  },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the copy id", o.id)
      if (o.reason.length === 0 || o.reason.length > 500) return yield* Remote.usage(o.json, "--reason must be 1 to 500 characters")
      const released = yield* Remote.withClient(o, (c) => c.operations.releaseSourcePath({ path: { id }, payload: { reason: o.reason } }))
      if (o.json) return yield* Remote.printJson(OperationsApi.ReleasedSourcePath, released)
      yield* Console.log(
        `${released.location}/${released.path}: copy ${released.copyId} of file ${released.rawDataFileId} given up, the bytes left as they are; the path takes a new filing`
      )
    })
).pipe(
  Command.withDescription(
    "give up a SOURCE copy cleanup found changed or gone, once its package is ARCHIVED, so its path can be filed again (operators and admins)"
  )
)

/** `ccat copies ...`. */
export const command = Command.make("copies").pipe(
  Command.withDescription("physical copies on a running server"),
  Command.withSubcommands([list, release])
)
