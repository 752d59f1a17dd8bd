/**
 * `ccat observations list | show`: the observations a running server holds, filtered the way
 * operators ask ("what did Prime-Cam take last night"), and one observation with its files,
 * packages and where every copy of them is.
 */
import { Observational, PackagesApi, RawData, Status } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import { copiesOf, copiesTable, NamedCopy } from "./Copies.js"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

const Listed = Schema.Struct({ items: Schema.Array(Observational.ExecutedObsUnit.json), more: Schema.Boolean })

/** Resolves `--instrument` given as an id or a name. */
const instrumentId = (o: Remote.Remote, value: string) =>
  Effect.gen(function* () {
    const all = yield* Remote.withClient(o, (c) => c.admin.listInstruments())
    const found = all.find((i) => i.id === value || i.name === value)
    if (found === undefined) {
      return yield* Remote.usage(o.json, `no instrument ${JSON.stringify(value)}; known: ${all.map((i) => i.name).join(", ") || "none"}`)
    }
    return found.id
  })

const dateOption = (name: string, description: string) => Options.date(name).pipe(Options.withDescription(description), Options.optional)

const list = Command.make(
  "list",
  {
    ...Remote.options,
    program: Options.text("program").pipe(Options.withDescription("only this observing program (its id)"), Options.optional),
    instrument: Options.text("instrument").pipe(Options.withDescription("only this instrument (its id or name)"), Options.optional),
    since: dateOption("since", "only observations that started at or after this instant (ISO 8601)"),
    until: dateOption("until", "only observations that started before this instant (ISO 8601)"),
    state: Options.choice("state", Status.statuses).pipe(Options.withDescription("only observations in this status"), Options.optional),
    limit: Remote.limitOption
  },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const programId = Option.isSome(o.program) ? yield* Remote.requireUuid(o.json, "--program", o.program.value) : undefined
      const instrument = Option.isSome(o.instrument) ? yield* instrumentId(o, o.instrument.value) : undefined
      const urlParams = {
        ...(programId === undefined ? {} : { programId: programId as Observational.ObsUnit["observingProgramId"] }),
        ...(instrument === undefined ? {} : { instrumentId: instrument }),
        ...(Option.isSome(o.since) ? { startFrom: o.since.value } : {}),
        ...(Option.isSome(o.until) ? { startTo: o.until.value } : {}),
        ...(Option.isSome(o.state) ? { status: o.state.value } : {})
      }
      const found = yield* Remote.withClient(
        o,
        (c) => Remote.collect(limit, (page) => c.observations.list({ urlParams: { ...urlParams, ...page } }))
      )
      if (o.json) return yield* Remote.printJson(Listed, found)
      if (found.items.length === 0) return yield* Console.log("no observations")
      yield* Console.log(Output.table(
        ["ID", "START", "END", "STATUS", "QUALITY"],
        found.items.map((e) => [
          e.id,
          Output.instant(e.startAt),
          Output.instant(e.endAt),
          e.status,
          e.quality
        ]),
        ""
      ))
      const more = Output.moreNote(found.more, found.items.length)
      if (more !== undefined) yield* Console.log(more)
    })
).pipe(Command.withDescription("list observations in order of start time, filtered by program, instrument, start time or status"))

const Shown = Schema.Struct({
  observation: Observational.ExecutedObsUnit.json,
  files: Schema.Array(RawData.RawDataFile.json),
  packages: Schema.Array(PackagesApi.PackageView),
  /** Null when the account may not list copies (scientists, instrument accounts). */
  copies: Schema.NullOr(Schema.Array(NamedCopy)),
  more: Schema.Boolean
})

const show = Command.make(
  "show",
  {
    ...Remote.options,
    id: Args.text({ name: "id" }).pipe(Args.withDescription("the observation's id")),
    limit: Options.integer("limit").pipe(
      Options.withDefault(1000),
      Options.withDescription("print at most this many files, packages and copies each (default 1000)")
    )
  },
  (o) =>
    Effect.gen(function* () {
      const id = (yield* Remote.requireUuid(o.json, "the observation id", o.id)) as Observational.ExecutedObsUnit["id"]
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const shown = yield* Remote.withClient(o, (c) =>
        Effect.gen(function* () {
          const observation = yield* c.observations.get({ path: { id } })
          const files = yield* Remote.collect(limit, (page) => c.files.list({ urlParams: { observationId: id, ...page } }))
          const packages = yield* Remote.collect(limit, (page) => c.packages.list({ urlParams: { observationId: id, ...page } }))
          const copies = yield* copiesOf(c, limit, { observationId: id })
          return {
            observation,
            files: files.items,
            packages: packages.items,
            copies: copies.copies,
            more: files.more || packages.more || copies.more
          }
        }))
      if (o.json) return yield* Remote.printJson(Shown, shown)
      const e = shown.observation
      yield* Console.log(`observation ${e.id}`)
      yield* Console.log(
        `  obs unit ${e.obsUnitId}  ${e.status}  quality ${e.quality}  ${Output.instant(e.startAt)} .. ${Output.instant(e.endAt)}`
      )
      yield* Console.log(`\nfiles (${shown.files.length}, ${Output.bytes(shown.files.reduce((a, f) => a + f.sizeBytes, 0))})`)
      if (shown.files.length > 0) {
        yield* Console.log(
          Output.table(
            ["PATH", "SIZE", "STATE", "PACKAGE"],
            shown.files.map((f) => [f.relativePath, Output.bytes(f.sizeBytes), f.state, f.rawDataPackageId ?? "-"])
          )
        )
      }
      yield* Console.log(`\npackages (${shown.packages.length})`)
      if (shown.packages.length > 0) {
        yield* Console.log(Output.table(
          ["ID", "PATH", "SIZE", "STATUS", "JOURNEY", "ERROR"],
          shown.packages.map((p) => [
            p.id,
            p.relativePath,
            Output.bytes(p.sizeBytes),
            p.status,
            p.journey,
            Output.cut(p.errorMessage, 60)
          ])
        ))
      }
      if (shown.copies === null) {
        yield* Console.log("\ncopies: listed for operators and admins only")
      } else {
        yield* Console.log(`\ncopies (${shown.copies.length})`)
        if (shown.copies.length > 0) yield* Console.log(copiesTable(shown.copies))
      }
      if (shown.more) yield* Console.log(`\n… lists cut at ${limit}; raise --limit to see everything`)
    })
).pipe(Command.withDescription("one observation with its files, packages and where every copy is"))

/** `ccat observations ...`. */
export const command = Command.make("observations").pipe(
  Command.withDescription("observations on a running server"),
  Command.withSubcommands([list, show])
)
