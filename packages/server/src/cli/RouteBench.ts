/**
 * `ccat route bench ROUTE`: measures a configured route with probe transfers through its real
 * adapter and recommends its settings and bundle size (RouteBenchRun.ts does the work, loaded
 * only when the command runs: the adapters and drivers are no cost to `ccat`'s other commands).
 */
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Effect from "effect/Effect"
import type * as Option from "effect/Option"
import { configOption, jsonOption } from "./CommonOptions.js"

/** The acceptable time to send one bundle when neither the option nor the route says one. */
export const defaultTransferTime = "1 hours"

/** The command's parsed options. */
export interface BenchOptions {
  readonly config: Option.Option<string>
  readonly json: boolean
  readonly route: string
  readonly probeSize: string
  readonly transferTime: Option.Option<string>
  readonly rounds: number
  readonly probeTimeout: string
  readonly write: boolean
}

const command = Command.make(
  "bench",
  {
    config: configOption,
    json: jsonOption,
    route: Args.text({ name: "route" }).pipe(
      Args.withDescription("the route: FROM->TO, FROM->VIA->TO, or its index in the configuration's routes")
    ),
    probeSize: Options.text("probe-size").pipe(
      Options.withDefault("256 MB"),
      Options.withDescription("bytes of the large probe each transfer sends (1 MB to 100 GB)")
    ),
    transferTime: Options.text("transfer-time").pipe(
      Options.optional,
      Options.withDescription(`how long sending one bundle may take (default: the route's bundleTransferTime, else ${defaultTransferTime})`)
    ),
    rounds: Options.integer("rounds").pipe(
      Options.withDefault(2),
      Options.withDescription("times each setting is probed, 1 to 5; the fastest round counts")
    ),
    probeTimeout: Options.text("probe-timeout").pipe(
      Options.withDefault("10 minutes"),
      Options.withDescription("longest one probe transfer may take before its setting counts as failed")
    ),
    write: Options.boolean("write").pipe(
      Options.withDescription("write the recommended settings and the measured bandwidth into the route's configuration")
    )
  },
  (o) => Effect.flatMap(Effect.promise(() => import("./RouteBenchRun.js")), (bench) => bench.run(o))
).pipe(
  Command.withDescription(
    "measure a configured route with probe transfers and recommend its settings and bundle size (--write records them)"
  )
)

/** `ccat route ...`. */
export const routeCommand = Command.make("route").pipe(
  Command.withDescription("commands about a configured route"),
  Command.withSubcommands([command])
)
