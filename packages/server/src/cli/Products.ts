/**
 * `ccat products [filters]` and `ccat products show ID`: the processed DataProducts a caller may
 * see, in filing order, and one product with its provenance (its inputs and every observation
 * it derives from), its files and its packages on their way to the archive.
 */
import { DataProductsApi, Status } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

type Filter = typeof DataProductsApi.DataProductFilter.Type

const Listed = Schema.Struct({ items: Schema.Array(DataProductsApi.DataProductSummary), more: Schema.Boolean })

const filters = {
  program: Options.text("program").pipe(Options.withDescription("only products of this observing program (its id)"), Options.optional),
  pipeline: Options.text("pipeline").pipe(Options.withDescription("only products of this pipeline (its name as filed)"), Options.optional),
  calibLevel: Options.choice("calib-level", ["2", "3"] as const).pipe(
    Options.withDescription("only products at this calibration level"),
    Options.optional
  ),
  observation: Options.text("observation").pipe(
    Options.withDescription("only products derived from this observation (its id), directly or through other products"),
    Options.optional
  ),
  journey: Options.choice("journey", Status.PackageJourney.literals).pipe(
    Options.withDescription("only products on this journey step"),
    Options.optional
  ),
  archived: Options.boolean("archived").pipe(Options.withDescription("only ARCHIVED products")),
  notArchived: Options.boolean("not-archived").pipe(Options.withDescription("only products not ARCHIVED yet"))
}

/** The parsed filter options. */
interface FilterOptions {
  readonly json: boolean
  readonly program: Option.Option<string>
  readonly pipeline: Option.Option<string>
  readonly calibLevel: Option.Option<"2" | "3">
  readonly observation: Option.Option<string>
  readonly journey: Option.Option<Status.PackageJourney>
  readonly archived: boolean
  readonly notArchived: boolean
}

/** The list's filters from the options, refusing a malformed id or two that contradict each other before anything is sent. */
const filterOf = (o: FilterOptions) =>
  Effect.gen(function* () {
    if (o.archived && o.notArchived) return yield* Remote.usage(o.json, "--archived and --not-archived exclude each other: give one")
    const id = (flag: string, value: Option.Option<string>) =>
      Option.isSome(value) ? Effect.map(Remote.requireUuid(o.json, flag, value.value), (v) => v) : Effect.succeed(undefined)
    const programId = yield* id("--program", o.program)
    const observationId = yield* id("--observation", o.observation)
    const filter: Filter = {
      ...(programId === undefined ? {} : { programId: programId as NonNullable<Filter["programId"]> }),
      ...(observationId === undefined ? {} : { observationId: observationId as NonNullable<Filter["observationId"]> }),
      ...(Option.isSome(o.pipeline) ? { pipeline: o.pipeline.value } : {}),
      ...(Option.isSome(o.calibLevel) ? { calibLevel: o.calibLevel.value === "2" ? 2 as const : 3 as const } : {}),
      ...(Option.isSome(o.journey) ? { journey: o.journey.value } : {}),
      ...(o.archived ? { archived: "true" as const } : o.notArchived ? { archived: "false" as const } : {})
    }
    return filter
  })

const show = Command.make(
  "show",
  { ...Remote.options, id: Args.text({ name: "id" }).pipe(Args.withDescription("the product's id")) },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the product id", o.id)
      const p = yield* Remote.withClient(o, (c) => c.dataProducts.get({ path: { id } }))
      if (o.json) return yield* Remote.printJson(DataProductsApi.DataProduct, p)
      yield* Console.log(`product ${p.id}  ${p.name}  (${p.journey})`)
      yield* Console.log(`  ${p.pipeline} ${p.pipelineVersion}  calib_level ${p.calibLevel}  ${p.dataproductType}`)
      yield* Console.log(`  program ${p.programId}  filed by ${p.filedBy} at ${Output.instant(p.createdAt)} from ${p.location}`)
      yield* Console.log(`  ${p.publisherDid}`)
      if (Object.keys(p.parameters).length > 0) yield* Console.log(`  parameters ${JSON.stringify(p.parameters)}`)
      yield* Console.log(`\ninputs (${p.inputs.length})`)
      yield* Console.log(
        Output.table(
          ["KIND", "ID"],
          p.inputs.map((i) =>
            "observationId" in i ? ["observation", i.observationId] : "packageId" in i ? ["package", i.packageId] : ["product", i.productId]
          )
        )
      )
      yield* Console.log(`\nderived from observations (${p.observationIds.length})`)
      for (const eou of p.observationIds) yield* Console.log(`  ${eou}`)
      yield* Console.log(`\nfiles (${p.files.length})`)
      yield* Console.log(
        Output.table(
          ["ID", "PATH", "SIZE", "STATE", "PACKAGE"],
          p.files.map((f) => [f.id, f.relativePath, Output.bytes(f.sizeBytes), f.state, f.packageId ?? "-"])
        )
      )
      yield* Console.log(`\npackages (${p.packages.length})`)
      if (p.packages.length > 0) {
        yield* Console.log(Output.table(["ID", "STATUS", "JOURNEY"], p.packages.map((k) => [k.id, k.status, k.journey])))
      }
    })
).pipe(Command.withDescription("one product: its pipeline, provenance (inputs and the observations it derives from), files and packages"))

/** `ccat products ...`: the list, and `show` for one product. */
export const command = Command.make(
  "products",
  { ...Remote.options, ...filters, limit: Remote.limitOption },
  (o) =>
    Effect.gen(function* () {
      const limit = yield* Remote.requireLimit(o.json, o.limit)
      const filter = yield* filterOf(o)
      const found = yield* Remote.withClient(
        o,
        (c) => Remote.collect(limit, (page) => c.dataProducts.list({ urlParams: { ...filter, ...page } }))
      )
      if (o.json) return yield* Remote.printJson(Listed, found)
      if (found.items.length === 0) return yield* Console.log("no products")
      yield* Console.log(Output.table(
        ["ID", "NAME", "PIPELINE", "LEVEL", "TYPE", "JOURNEY", "FILED"],
        found.items.map((p) => [
          p.id,
          Output.cut(p.name, 40),
          `${p.pipeline} ${p.pipelineVersion}`,
          String(p.calibLevel),
          p.dataproductType,
          p.journey,
          Output.instant(p.createdAt)
        ]),
        ""
      ))
      const more = Output.moreNote(found.more, found.items.length)
      if (more !== undefined) yield* Console.log(more)
    })
).pipe(
  Command.withDescription(
    "processed DataProducts in filing order, filtered by program, pipeline, calib level, observation or journey; `show ID` for one"
  ),
  Command.withSubcommands([show])
)
