#!/usr/bin/env -S node --no-allocation-site-pretenuring
/**
 * `ccat`: the reference server's command line. `ccat serve` runs the API (and, with no
 * configuration, the embedded default); `ccat migrate` applies migrations (`--check`: says what
 * it would do); `ccat config check`
 * validates a configuration file without starting anything; `ccat token` hands out API tokens
 * and `ccat account` takes access back.
 * The operator commands (`status`, `integrity`, `observations`, `packages`, `products`, `bundles`, `copies`, `files`, `events`, `retry`,
 * `location`, `staging`; modules in `cli/`) talk to a running server over HTTP with
 * `@ccat/client`; their exit codes are documented in `cli/Remote.ts` and docs/cli.md.
 */
// first: tunes V8 for streaming large objects before the command's work starts (the built
// command also carries the flag on its `#!` line, so Node starts with it; this covers `tsx`)
import "./StreamingTuning.js"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as ValidationError from "@effect/cli/ValidationError"
import * as NodeContext from "@effect/platform-node/NodeContext"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import { account } from "./auth/AccountCommands.js"
import { token } from "./auth/TokenCommands.js"
import * as Bundles from "./cli/Bundles.js"
import * as Copies from "./cli/Copies.js"
import * as Files from "./cli/Files.js"
import * as Integrity from "./cli/Integrity.js"
import * as Location from "./cli/Location.js"
import * as Observations from "./cli/Observations.js"
import * as Packages from "./cli/Packages.js"
import * as Products from "./cli/Products.js"
import * as RelayCommand from "./cli/RelayCommand.js"
import * as Remote from "./cli/Remote.js"
import * as History from "./cli/History.js"
import * as Retry from "./cli/Retry.js"
import * as RouteBench from "./cli/RouteBench.js"
import * as Staging from "./cli/Staging.js"
import * as Status from "./cli/Status.js"
import { db } from "./cli/DbCommand.js"
import * as RegistryFailures from "./cli/RegistryFailures.js"
import { configOption, dataDirOption, jsonOption, loadOptions, portOption } from "./cli/CommonOptions.js"
import { version } from "./Version.js"

// The server, the lifecycle and the drivers load only for the commands that run them: an
// operator command that talks to a server over HTTP never pays for their import.
const Main = Effect.promise(() => import("./Main.js"))
const Demo = Effect.promise(() => import("./Demo.js"))
const ServerConfig = Effect.promise(() => import("./ServerConfig.js"))
const MigrateCheck = Effect.promise(() => import("./cli/MigrateCheck.js"))

const workersOption = Options.text("workers").pipe(
  Options.withDescription(
    "which sites' lifecycle workers run in this process: all, none, or a comma-separated list " +
      "(default: all on the embedded default, none with DATABASE_URL)"
  ),
  Options.optional
)

const serve = Command.make(
  "serve",
  { config: configOption, port: portOption, dataDir: dataDirOption, workers: workersOption },
  (o) =>
    Effect.flatMap(Main, (Main) =>
      Main.serve({
        ...loadOptions(o),
        workers: Option.match(o.workers, {
          onNone: () => undefined,
          onSome: (w) => (w === "all" || w === "none" ? w : w.split(",").map((s) => s.trim()).filter((s) => s !== ""))
        })
      }))
).pipe(Command.withDescription("run the reference server (API and lifecycle workers) until Ctrl-C or SIGTERM"))

const siteOption = Options.text("site").pipe(Options.withDescription("the site whose queues this worker takes"))

const worker = Command.make(
  "worker",
  { config: configOption, dataDir: dataDirOption, site: siteOption },
  (o) => Effect.flatMap(Main, (Main) => Main.worker({ ...loadOptions(o), site: o.site }))
).pipe(Command.withDescription("run one site's lifecycle workers (packaging, transfer, archive, ...) until Ctrl-C"))

const migrate = Command.make("migrate", {
  config: configOption,
  dataDir: dataDirOption,
  json: jsonOption,
  check: Options.boolean("check").pipe(
    Options.withDescription("say what would be applied (expand or contract, statements, locks) and change nothing")
  ),
  sql: Options.boolean("sql").pipe(Options.withDescription("--check, printing each statement's SQL (never applies anything)")),
  previousReleaseStopped: Options.boolean("previous-release-stopped").pipe(
    Options.withDescription(
      "confirm that no process of the previous release runs any more, so contract steps (drops, renames) may be applied; without it they are refused"
    )
  )
}, (o) =>
  Effect.gen(function* () {
    // --sql alone means a look, not an upgrade: a read-only flag never leads to a write
    if (o.check || o.sql) return yield* Effect.flatMap(MigrateCheck, (m) => m.run({ ...loadOptions(o), json: o.json, sql: o.sql }))
    const applied = yield* Effect.flatMap(
      Main,
      (Main) => Main.migrate({ ...loadOptions(o), previousReleaseStopped: o.previousReleaseStopped })
    )
    if (o.json) return yield* Console.log(JSON.stringify({ applied: applied.map(([id, name]) => ({ id, name })) }))
    yield* Console.log(applied.length === 0 ? "the ops-db is up to date" : applied.map(([id, name]) => `applied ${id}_${name}`).join("\n"))
  })).pipe(
    Command.withDescription(
      "apply pending ops-db migrations; contract steps only with --previous-release-stopped (--check: say what would be applied, expand or contract, and change nothing)"
    )
  )

const check = Command.make("check", { config: configOption, dataDir: dataDirOption, json: jsonOption }, (o) =>
  Effect.gen(function* () {
    const config = yield* Effect.flatMap(ServerConfig, (c) => c.load(loadOptions(o)))
    const t = config.topology
    if (o.json) return yield* Console.log(JSON.stringify({ valid: true, sites: t.sites.length, routes: t.routes.length }))
    yield* Console.log(`${config.configFile ?? "embedded default"}: valid`)
    for (const s of t.sites) {
      yield* Console.log(
        `  site ${s.name} (${s.shortName}, ${s.role}): ${s.locations.map((l) => `${l.name} ${l.type}/${l.technology}`).join(", ")}`
      )
    }
    for (const r of t.routes) yield* Console.log(`  route ${[r.from, ...r.via, r.to].join(" -> ")} by ${r.adapter}`)
  })).pipe(Command.withDescription("validate a configuration without starting anything"))

const config = Command.make("config").pipe(
  Command.withDescription("configuration commands"),
  Command.withSubcommands([check])
)

const demo = Command.make(
  "demo",
  {
    config: configOption,
    port: portOption,
    dataDir: dataDirOption,
    observations: Options.integer("observations").pipe(Options.withDefault(6), Options.withDescription("observations to file")),
    smallFiles: Options.integer("small-files").pipe(
      Options.withDefault(60),
      Options.withDescription("small files per observation (1-64 KiB)")
    ),
    largeFiles: Options.integer("large-files").pipe(Options.withDefault(3), Options.withDescription("large files in all")),
    largeMb: Options.integer("large-mb").pipe(Options.withDefault(64), Options.withDescription("MB per large file")),
    keepRunning: Options.boolean("keep-running").pipe(Options.withDescription("keep serving after the demo")),
    stagingLifetime: Options.integer("staging-lifetime").pipe(
      Options.withDefault(20),
      Options.withDescription("seconds the demo's staged data is kept before cleanup removes it")
    )
  },
  (o) =>
    Effect.flatMap(Demo, (Demo) => Demo.demo({
      ...loadOptions(o),
      observations: o.observations,
      smallFiles: o.smallFiles,
      largeFiles: o.largeFiles,
      largeBytes: o.largeMb * 1_000_000,
      keepRunning: o.keepRunning,
      stagingLifetimeMs: o.stagingLifetime * 1000
    }))
).pipe(Command.withDescription("file synthetic observations and watch them flow to the archive, staged and cleaned"))

const ccat = Command.make("ccat").pipe(
  Command.withDescription("the CCAT Data Center reference server"),
  Command.withSubcommands([
    serve,
    worker,
    demo,
    migrate,
    config,
    token,
    account,
    db,
    RelayCommand.command,
    Status.command,
    Integrity.command,
    Observations.command,
    Packages.command,
    Products.command,
    Bundles.command,
    Copies.command,
    Files.command,
    Retry.command,
    Location.command,
    Staging.command,
    History.command,
    RouteBench.routeCommand
  ])
)

const cli = Command.run(ccat, { name: "ccat", version })

/** Errors end the process with a message and exit code 1, never a stack trace for bad input. */
const fail = (message: string) => Effect.zipRight(Console.error(`ccat: ${message}`), Effect.sync(() => (process.exitCode = 1)))

cli(process.argv).pipe(
  RegistryFailures.report,
  Effect.catchTags({
    ConfigLoadError: (e) => fail(e.message),
    UnknownSite: (e) => fail(e.message),
    JobQueueError: (e) => fail(e.message),
    DemoError: (e) => fail(e.message),
    RelayError: (e) => fail(e.message),
    RouteBenchError: (e) => fail(e.message),
    EmbeddedDatabaseError: (e) => fail(e.message),
    // PostgreSQL's own words (a deadlock, a lock timeout, a lost connection) are what an operator acts on.
    SqlError: (e) => fail(`database: ${e.message}${e.cause instanceof Error ? `: ${e.cause.message}` : ""}`),
    MigrationError: (e) => fail(`migration: ${e.message}`),
    MigrationPlanError: (e) => fail(e.message),
    ContractStepsPending: (e) => fail(e.message),
    ServeError: (e) => fail(`cannot listen: ${String(e.cause)}`),
    AccountError: (e) => fail(e.message),
    ConstraintError: (e) => fail(e.message),
    // A published package without its ui/ folder: say which folder, not a stack trace.
    WebUiError: (e) => fail(e.message),
    CliError: Remote.report
  }),
  // @effect/cli has printed the usage problem already; exit 2 as command-line tools do.
  Effect.catchIf(ValidationError.isValidationError, () => Effect.sync(() => (process.exitCode = 2))),
  Effect.provide(NodeContext.layer),
  NodeRuntime.runMain
)
