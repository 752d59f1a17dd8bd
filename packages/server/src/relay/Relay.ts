/**
 * `ccat relay`: the telescope-side relay, assembled. It opens its own store (an embedded
 * PostgreSQL under its data folder, database `ccat_relay`, or `CCAT_RELAY_DATABASE_URL`; schema
 * `relay`), takes its reference data from the store or, on a first start, from the main (waiting
 * for the link), and then serves filings, forwards its backlog and re-syncs the reference data,
 * until interrupted. A relay killed at any instant loses no filing it acknowledged and resumes
 * forwarding where it stopped.
 */
import { OpsDb } from "@ccat/core/node"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as Config from "effect/Config"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Ref from "effect/Ref"
import * as path from "node:path"
import { RetryPolicy } from "@ccat/client"
import { createAnsweringServer, maxBodyBytes } from "../HttpServer.js"
import * as Idempotency from "../http/Idempotency.js"
import * as Logging from "../observability/Logging.js"
import { version } from "../Version.js"
import * as Forwarder from "./Forwarder.js"
import * as RelayAuth from "./RelayAuth.js"
import * as RelayHttp from "./RelayHttp.js"
import * as RelayStore from "./RelayStore.js"

/** Why the relay cannot start: its configuration is missing or wrong. */
export class RelayError extends Data.TaggedError("RelayError")<{ readonly message: string }> {}

/** Options given on the command line, which win over the environment. */
export interface RunOptions {
  readonly mainUrl?: string | undefined
  readonly port?: number | undefined
  readonly dataDir?: string | undefined
}

/** A duration setting that must be above zero (zero would mean "never wait" or "no limit", neither of which works). */
const positive = (name: string, fallback: Duration.Duration) =>
  Config.duration(name).pipe(
    Config.withDefault(fallback),
    Config.validate({
      message: `${name} must be a duration above zero, e.g. "10 seconds"`,
      validation: (d) => Duration.greaterThan(d, Duration.zero)
    })
  )

/** The relay's configuration from the environment (see docs/relay.md). */
export const config = Config.all({
  mainUrl: Config.option(Config.nonEmptyString("CCAT_RELAY_MAIN_URL")),
  token: Config.redacted("CCAT_RELAY_TOKEN"),
  host: Config.string("CCAT_RELAY_HOST").pipe(Config.withDefault("127.0.0.1")),
  port: Config.integer("CCAT_RELAY_PORT").pipe(Config.withDefault(8081)),
  dataDir: Config.string("CCAT_DATA_DIR").pipe(Config.withDefault(".ccat-relay")),
  databaseUrl: Config.option(Config.redacted("CCAT_RELAY_DATABASE_URL")),
  syncInterval: positive("CCAT_RELAY_SYNC_INTERVAL", Duration.seconds(60)),
  maxBackoff: positive("CCAT_RELAY_MAX_BACKOFF", Duration.seconds(30)),
  requestTimeout: positive("CCAT_RELAY_REQUEST_TIMEOUT", Duration.seconds(60)),
  connectTimeout: positive("CCAT_RELAY_CONNECT_TIMEOUT", Duration.seconds(10)),
  retention: Config.duration("CCAT_IDEMPOTENCY_RETENTION").pipe(Config.withDefault(Duration.days(7)))
})

/** The line logged once the relay serves; scripts and tests wait for it. */
export const readyLine = "CCAT relay listening on"

/** The reference data: the stored copy, else the first pull from the main, retried until the link answers. */
const initialReference = (options: Forwarder.Options) =>
  Effect.gen(function* () {
    const stored = yield* RelayStore.loadReference
    if (stored !== undefined) return { reference: stored.reference, pulledAt: undefined as Date | undefined }
    yield* Effect.logInfo(`no reference data yet: pulling it from ${options.mainUrl} before taking filings`)
    const reference = yield* Forwarder.pullOnce(options, undefined).pipe(
      Effect.tapError((e) => Effect.logWarning(`the first pull of reference data failed, trying again: ${Forwarder.describe(e)}`)),
      Effect.retry(RetryPolicy.schedule({ cap: options.maxBackoff })),
      Effect.orDie
    )
    return { reference, pulledAt: new Date() as Date | undefined }
  })

/** Runs the relay until interrupted (Ctrl-C, SIGTERM). */
export const run = (options: RunOptions) =>
  Effect.gen(function* () {
    const c = yield* config.pipe(Effect.mapError((e) => new RelayError({ message: `relay configuration: ${String(e)}` })))
    const mainUrl = (options.mainUrl ?? Option.getOrUndefined(c.mainUrl))?.replace(/\/+$/, "")
    if (mainUrl === undefined) {
      return yield* new RelayError({ message: "the relay needs the main's URL: --main URL or CCAT_RELAY_MAIN_URL" })
    }
    if (!/^https?:\/\/[^/]+/.test(mainUrl)) {
      return yield* new RelayError({ message: `the main's URL must be http(s)://host[:port], not ${mainUrl}` })
    }
    const forwarding: Forwarder.Options = {
      mainUrl,
      token: Redacted.value(c.token),
      requestTimeout: c.requestTimeout,
      connectTimeout: c.connectTimeout,
      maxBackoff: c.maxBackoff,
      syncInterval: c.syncInterval
    }
    const dataDir = path.resolve(options.dataDir ?? c.dataDir)
    // An empty CCAT_RELAY_DATABASE_URL means "none", as shells and unit files often leave it.
    const databaseUrl = Option.getOrUndefined(Option.filter(c.databaseUrl, (u) => Redacted.value(u).trim() !== ""))
    const store = OpsDb.layer({ databaseUrl, dataDir, migrate: false, database: "ccat_relay" })
    const port = options.port ?? c.port
    const app = Layer.scopedDiscard(
      Effect.gen(function* () {
        yield* RelayStore.ensureSchema
        const initial = yield* initialReference(forwarding)
        const current = yield* Ref.make(initial.reference)
        const sync = yield* Ref.make<Forwarder.SyncState>({ pulledAt: initial.pulledAt, lastError: undefined })
        const http = RelayHttp.layer({ maxBodyBytes, retention: c.retention }).pipe(
          Layer.provide(NodeHttpServer.layer(createAnsweringServer, { host: c.host, port })),
          Layer.provide(Layer.succeed(RelayAuth.CurrentReference, current)),
          Layer.provide(Layer.succeed(RelayHttp.RelayState, { mainUrl, sync }))
        )
        yield* Layer.buildWithScope(http, yield* Effect.scope)
        // A store that fails under the forwarder (a lost connection) must not stop forwarding for good.
        yield* Effect.forkScoped(
          Forwarder.forwardLoop(forwarding).pipe(
            Effect.catchAllDefect((defect) => Effect.fail(defect)),
            Effect.tapErrorCause((cause) => Effect.logError("forwarding stopped; starting it again after a backoff", cause)),
            Effect.retry(RetryPolicy.schedule({ cap: c.maxBackoff }))
          )
        )
        yield* Effect.forkScoped(
          Effect.delay(Forwarder.syncLoop(forwarding, current, sync), initial.pulledAt === undefined ? Duration.zero : c.syncInterval)
        )
        yield* Idempotency.purgeEvery(RelayStore.idempotencyTable, Duration.minutes(10))
        const backlog = yield* RelayStore.backlog
        yield* Effect.logInfo(
          `${readyLine} ${c.host}:${port} (relay ${version}); main: ${mainUrl}; store: ${
            databaseUrl !== undefined ? "CCAT_RELAY_DATABASE_URL" : `embedded PostgreSQL in ${dataDir}`
          }; ` +
            `backlog: ${backlog.pending} pending, ${backlog.refused} refused`
        )
      })
    ).pipe(Layer.provide(store))
    return yield* Layer.launch(app)
  }).pipe(Effect.provide(Logging.layerConfig))
