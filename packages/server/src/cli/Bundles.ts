/**
 * `ccat bundles list | show`: DataTransferPackages, the units that move between sites, and one
 * bundle with its member packages, every transfer attempt (route, adapter, bytes, speed, error)
 * and its history: what an operator reads when a link misbehaves.
 */
import { EventLog, RawData, Status, TransfersApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { copiesOf, copiesTable, NamedCopy } from "./Copies.js"
import * as History from "./History.js"
import * as Location from "./Location.js"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

type PackageId = (typeof TransfersApi.BundleFilter.Type)["packageId"]

const Listed = Schema.Struct({ items: Schema.Array(TransfersApi.BundleView), more: Schema.Boolean })

const list = Command.make(
  "list",
  {
    ...Remote.options,
    status: Options.choice("status", Status.statuses).pipe(Options.withDescription("only bundles in this status"), Options.optional),
    package: Options.text("package").pipe(Options.withDescription("only bundles holding this package (its id)"), Options.optional),
    limit: Remote.limitOption
  },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const packageId = Option.isSome(o.package) ? yield* Remote.requireUuid(o.json, "--package", o.package.value) : undefined
      const urlParams = {
        ...(packageId === undefined ? {} : { packageId: packageId as NonNullable<PackageId> }),
        ...(Option.isSome(o.status) ? { status: o.status.value } : {})
      }
      const found = yield* Remote.withClient(
        o,
        (c) => Remote.collect(limit, (page) => c.transfers.listBundles({ urlParams: { ...urlParams, ...page } }))
      )
      if (o.json) return yield* Remote.printJson(Listed, found)
      if (found.items.length === 0) return yield* Console.log("no bundles")
      yield* Console.log(Output.table(
        ["ID", "STATUS", "SIZE", "PACKAGES", "UPDATED", "ERROR"],
        found.items.map((b) => [
          b.id,
          b.status,
          Output.bytes(b.sizeBytes),
          String(b.packageIds.length),
          Output.instant(b.updatedAt),
          Output.cut(b.errorMessage, 60)
        ]),
        ""
      ))
      const more = Output.moreNote(found.more, found.items.length)
      if (more !== undefined) yield* Console.log(more)
    })
).pipe(Command.withDescription("list bundles (DataTransferPackages) in creation order, filtered by status or member package"))

/** An attempt with the names of its two ends. */
const NamedAttempt = Schema.Struct({ ...RawData.DataTransfer.json.fields, from: Schema.String, to: Schema.String })

const Shown = Schema.Struct({
  bundle: TransfersApi.BundleView,
  attempts: Schema.Array(NamedAttempt),
  copies: Schema.NullOr(Schema.Array(NamedCopy)),
  history: Schema.Array(EventLog.EventLogEntry.json)
})

const show = Command.make(
  "show",
  { ...Remote.options, id: Args.text({ name: "id" }).pipe(Args.withDescription("the bundle's id")) },
  (o) =>
    Effect.gen(function* () {
      const id = (yield* Remote.requireUuid(o.json, "the bundle id", o.id)) as (typeof TransfersApi.BundleView.Type)["id"]
      const shown = yield* Remote.withClient(o, (c) =>
        Effect.gen(function* () {
          const bundle = yield* c.transfers.getBundle({ path: { id } })
          const names = yield* Location.names(c)
          const attempts = yield* Remote.collect(1000, (page) => c.transfers.listAttempts({ urlParams: { bundleId: id, ...page } }))
          const copies = yield* copiesOf(c, 1000, { bundleId: id })
          const history = yield* History.of(c, "DataTransferPackage", id, 1000)
          return {
            bundle,
            attempts: attempts.items.map((a) => ({
              ...a,
              from: names.get(a.fromLocationId) ?? a.fromLocationId,
              to: names.get(a.toLocationId) ?? a.toLocationId
            })),
            copies: copies.copies,
            history
          }
        }))
      if (o.json) return yield* Remote.printJson(Shown, shown)
      const b = shown.bundle
      yield* Console.log(`bundle ${b.id}  ${b.status}  ${Output.bytes(b.sizeBytes)}  ${b.relativePath}`)
      if (b.errorMessage !== null) yield* Console.log(`  error: ${b.errorMessage}`)
      yield* Console.log(`  packages: ${b.packageIds.join(", ") || "none"}`)
      yield* Console.log(`\nattempts (${shown.attempts.length})`)
      if (shown.attempts.length > 0) {
        yield* Console.log(
          Output.table(
            ["#", "ID", "FROM", "TO", "ADAPTER", "STATUS", "BYTES", "SPEED", "TOOK", "FINISHED", "ERROR"],
            shown.attempts.map((a) => [
              String(a.attempt),
              a.id,
              a.from,
              a.to,
              a.adapter,
              a.status,
              Output.bytes(a.bytesTransferred),
              Output.rate(a.throughputBytesPerSecond),
              Output.duration(a.durationMs),
              Output.instant(a.finishedAt),
              Output.cut(a.errorMessage, 60)
            ])
          )
        )
      }
      yield* Console.log(shown.copies === null ? "\ncopies: listed for operators and admins only" : `\ncopies (${shown.copies.length})`)
      if (shown.copies !== null && shown.copies.length > 0) yield* Console.log(copiesTable(shown.copies))
      yield* Console.log(`\nhistory (${shown.history.length})`)
      yield* Console.log(History.table(shown.history))
    })
).pipe(Command.withDescription("one bundle: its packages, every transfer attempt with bytes, speed and error, its copies and history"))

/** `ccat bundles ...`. */
export const command = Command.make("bundles").pipe(
  Command.withDescription("bundles (DataTransferPackages) on a running server; operators and admins"),
  Command.withSubcommands([list, show])
)
