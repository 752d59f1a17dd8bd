/**
 * `ccat packages list | show | repair`: RawDataPackages with their journey (WAITING, TRANSFERRING,
 * ARCHIVED, FAILED), one package with where its copies are, the bundles that carried it
 * and its history, and an operator's repair of its bad archive copies.
 */
import { EventLog, PackagesApi, Status, TransfersApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as History from "./History.js"
import { copiesOf, copiesTable, NamedCopy } from "./Copies.js"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

type PackageId = PackagesApi.PackageView["id"]

const Listed = Schema.Struct({ items: Schema.Array(PackagesApi.PackageView), more: Schema.Boolean })

const list = Command.make(
  "list",
  {
    ...Remote.options,
    observation: Options.text("observation").pipe(Options.withDescription("only packages of this observation (its id)"), Options.optional),
    status: Options.choice("status", Status.statuses).pipe(Options.withDescription("only packages in this status"), Options.optional),
    journey: Options.choice("journey", Status.PackageJourney.literals).pipe(
      Options.withDescription("only packages on this journey step"),
      Options.optional
    ),
    limit: Remote.limitOption
  },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const observationId = Option.isSome(o.observation)
        ? yield* Remote.requireUuid(o.json, "--observation", o.observation.value)
        : undefined
      const urlParams = {
        ...(observationId === undefined ? {} : { observationId: observationId as PackagesApi.PackageView["executedObsUnitId"] }),
        ...(Option.isSome(o.status) ? { status: o.status.value } : {}),
        ...(Option.isSome(o.journey) ? { journey: o.journey.value } : {})
      }
      const found = yield* Remote.withClient(
        o,
        (c) => Remote.collect(limit, (page) => c.packages.list({ urlParams: { ...urlParams, ...page } }))
      )
      if (o.json) return yield* Remote.printJson(Listed, found)
      if (found.items.length === 0) return yield* Console.log("no packages")
      yield* Console.log(Output.table(
        ["ID", "OBSERVATION", "SIZE", "STATUS", "JOURNEY", "UPDATED", "ERROR"],
        found.items.map((p) => [
          p.id,
          p.executedObsUnitId,
          Output.bytes(p.sizeBytes),
          p.status,
          p.journey,
          Output.instant(p.updatedAt),
          Output.cut(p.errorMessage, 60)
        ]),
        ""
      ))
      const more = Output.moreNote(found.more, found.items.length)
      if (more !== undefined) yield* Console.log(more)
    })
).pipe(Command.withDescription("list RawDataPackages in creation order, filtered by observation, status or journey"))

const Shown = Schema.Struct({
  package: PackagesApi.PackageView,
  /** Null when the account may not list copies. */
  copies: Schema.NullOr(Schema.Array(NamedCopy)),
  /** Null when the account may not list bundles (operators and admins only). */
  bundles: Schema.NullOr(Schema.Array(TransfersApi.BundleView)),
  history: Schema.Array(EventLog.EventLogEntry.json)
})

const show = Command.make(
  "show",
  { ...Remote.options, id: Args.text({ name: "id" }).pipe(Args.withDescription("the package's id")) },
  (o) =>
    Effect.gen(function* () {
      const id = (yield* Remote.requireUuid(o.json, "the package id", o.id)) as PackageId
      const shown = yield* Remote.withClient(o, (c) =>
        Effect.gen(function* () {
          const pkg = yield* c.packages.get({ path: { id } })
          const copies = yield* copiesOf(c, 1000, { packageId: id })
          const bundles = yield* Remote.collect(1000, (page) => c.transfers.listBundles({ urlParams: { packageId: id, ...page } })).pipe(
            Effect.map((r) => r.items),
            Effect.catchTag("Forbidden", () => Effect.succeed(null))
          )
          const history = yield* History.of(c, "RawDataPackage", id, 1000)
          return { package: pkg, copies: copies.copies, bundles, history }
        }))
      if (o.json) return yield* Remote.printJson(Shown, shown)
      const p = shown.package
      yield* Console.log(`package ${p.id}  ${p.status} (${p.journey})`)
      yield* Console.log(`  observation ${p.executedObsUnitId}  module ${p.instrumentModuleId}`)
      yield* Console.log(`  ${p.relativePath}  ${Output.bytes(p.sizeBytes)}  ${p.checksum ?? "checksum not yet known"}`)
      if (p.errorMessage !== null) yield* Console.log(`  error: ${p.errorMessage}`)
      yield* Console.log(shown.copies === null ? "\ncopies: listed for operators and admins only" : `\ncopies (${shown.copies.length})`)
      if (shown.copies !== null && shown.copies.length > 0) yield* Console.log(copiesTable(shown.copies))
      if (shown.bundles !== null) {
        yield* Console.log(`\nbundles (${shown.bundles.length})`)
        if (shown.bundles.length > 0) {
          yield* Console.log(Output.table(
            ["ID", "STATUS", "SIZE", "PACKAGES", "ERROR"],
            shown.bundles.map((b) => [
              b.id,
              b.status,
              Output.bytes(b.sizeBytes),
              String(b.packageIds.length),
              Output.cut(b.errorMessage, 60)
            ])
          ))
        }
      }
      yield* Console.log(`\nhistory (${shown.history.length})`)
      yield* Console.log(History.table(shown.history))
    })
).pipe(Command.withDescription("one package: its journey, copies, the bundles that carried it and its history"))

const repair = Command.make(
  "repair",
  { ...Remote.options, id: Args.text({ name: "id" }).pipe(Args.withDescription("the package's id")) },
  (o) =>
    Effect.gen(function* () {
      const id = (yield* Remote.requireUuid(o.json, "the package id", o.id)) as PackageId
      const requested = yield* Remote.withClient(o, (c) => c.packages.repair({ path: { id } }))
      if (o.json) return yield* Remote.printJson(PackagesApi.RepairRequested, requested)
      yield* Console.log(
        `package ${requested.packageId}: ${requested.badCopies.length} bad archive ${requested.badCopies.length === 1 ? "copy" : "copies"}`
      )
      yield* Console.log(
        Output.table(
          ["COPY", "STATUS", "SITE", "LOCATION", "PATH"],
          requested.badCopies.map((b) => [b.id, b.status, b.site, b.location, b.path])
        )
      )
      for (const s of requested.sites) {
        const sendsOn = s.sources.length === 1 && s.sources[0]!.startsWith("sent on from")
        yield* Console.log(
          sendsOn
            ? `${s.site} ${s.sources[0]} to the site in need: ${s.startedNow ? "started now" : "its planners take it up within seconds"}`
            : `repair at ${s.site} from ${s.sources.join(", ")}: ${s.startedNow ? "started now" : "its planner starts it within seconds"}`
        )
      }
      for (const site of requested.withoutSource) {
        yield* Console.log(
          `no good copy at ${site} to repair from: it is repaired once a copy sent on arrives, if any site above sends one`
        )
      }
    })
).pipe(
  Command.withDescription(
    "repair a package's CORRUPT or MISSING archive copies now from a good copy at the same site (operators and admins)"
  )
)

/** `ccat packages ...`. */
export const command = Command.make("packages").pipe(
  Command.withDescription("RawDataPackages on a running server"),
  Command.withSubcommands([list, show, repair])
)
