/**
 * The reference server's configuration: a YAML or JSON file (the topology, plus where to
 * listen and where to keep data) with environment overrides. With no file it is the embedded
 * default. A configuration that is not valid stops the start with every problem named by field.
 */
import { Topology } from "@ccat/core"
import * as Config from "effect/Config"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as YAML from "yaml"
import * as NotifierConfig from "./alerts/NotifierConfig.js"
import * as Plugins from "./Plugins.js"

/** The resolved configuration the server runs with. */
export interface ServerConfigShape {
  /** Where the file came from, or undefined for the embedded default. */
  readonly configFile: string | undefined
  readonly host: string
  readonly port: number
  /** Folder of local state: the embedded PostgreSQL, the demo's locations, the outbox. */
  readonly dataDir: string
  /** A real PostgreSQL; undefined means the embedded one. */
  readonly databaseUrl: Redacted.Redacted<string> | undefined
  readonly topology: Topology.Topology
  /** The built-in notifier's sinks and thresholds (`notifications:`); absent, no notifier runs. */
  readonly notifications?: NotifierConfig.NotifierConfig | undefined
}

/** The server's configuration, as a service. */
export class ServerConfig extends Context.Tag("@ccat/server/ServerConfig")<ServerConfig, ServerConfigShape>() {}

/** Why the configuration could not be loaded. */
export class ConfigLoadError extends Data.TaggedError("ConfigLoadError")<{
  readonly file: string | undefined
  readonly problems: ReadonlyArray<string>
}> {
  override get message(): string {
    const where = this.file === undefined ? "the configuration" : `the configuration in ${this.file}`
    return `${where} is not valid:\n${this.problems.map((p) => `  - ${p}`).join("\n")}`
  }
}

/** Top-level keys of the file that are not part of the topology. */
const serverKeys = ["server", "dataDir", "database", "notifications"] as const

const parseFile = (file: string, text: string): Either.Either<unknown, ConfigLoadError> => {
  try {
    return Either.right(file.endsWith(".json") ? JSON.parse(text) : YAML.parse(text, { prettyErrors: true }))
  } catch (e) {
    return Either.left(new ConfigLoadError({ file, problems: [`cannot be parsed: ${e instanceof Error ? e.message : String(e)}`] }))
  }
}

const isRecord = (u: unknown): u is Record<string, unknown> => typeof u === "object" && u !== null && !Array.isArray(u)

/** Values the environment can override, read through Effect Config. */
const environment = Config.all({
  configFile: Config.option(Config.string("CCAT_CONFIG")),
  databaseUrl: Config.option(Config.redacted("DATABASE_URL")),
  dataDir: Config.option(Config.string("CCAT_DATA_DIR")),
  host: Config.option(Config.string("CCAT_HOST")),
  port: Config.option(
    Config.integer("CCAT_PORT").pipe(
      Config.validate({ message: "CCAT_PORT must be a port from 0 to 65535", validation: (n) => n >= 0 && n <= 65535 })
    )
  )
})

/** Options given on the command line, which win over the environment. */
export interface LoadOptions {
  readonly configFile?: string | undefined
  readonly port?: number | undefined
  readonly dataDir?: string | undefined
  /** The drivers and adapters the topology is checked against (default: the built-in ones). */
  readonly registries?: Topology.Registries | undefined
}

/**
 * Loads the configuration: the file named by the option or `CCAT_CONFIG` (YAML or JSON),
 * else the embedded default; then `DATABASE_URL`, `CCAT_DATA_DIR`, `CCAT_HOST`, `CCAT_PORT`.
 */
export const load = (options: LoadOptions = {}): Effect.Effect<ServerConfigShape, ConfigLoadError> =>
  Effect.gen(function* () {
    const env = yield* environment.pipe(
      Effect.mapError((e) =>
        new ConfigLoadError({ file: undefined, problems: [String(e).replace(/^\(?Missing data at|^/, "environment: ")] })
      )
    )
    const configFile = options.configFile ?? Option.getOrUndefined(env.configFile)
    let fileValue: Record<string, unknown> = {}
    if (configFile !== undefined) {
      const text = yield* Effect.tryPromise({
        try: () => fs.readFile(configFile, "utf8"),
        catch: (e) => new ConfigLoadError({ file: configFile, problems: [`cannot be read: ${(e as Error).message}`] })
      })
      const parsed = yield* parseFile(configFile, text)
      if (!isRecord(parsed)) {
        return yield* new ConfigLoadError({ file: configFile, problems: ["(top level): must be a mapping of keys to values"] })
      }
      fileValue = parsed
    }
    const problems: Array<string> = []
    const server = fileValue.server === undefined ? {} : fileValue.server
    if (!isRecord(server)) problems.push("server: must be a mapping with host and port")
    const s = isRecord(server) ? server : {}
    for (const key of Object.keys(s)) {
      if (key !== "host" && key !== "port") problems.push(`server.${key}: is unexpected; server takes host and port`)
    }
    if (s.host !== undefined && typeof s.host !== "string") problems.push("server.host: must be a string")
    if (s.port !== undefined && !(Number.isInteger(s.port) && (s.port as number) >= 0 && (s.port as number) <= 65535)) {
      problems.push("server.port: must be a port from 0 to 65535")
    }
    if (fileValue.dataDir !== undefined && typeof fileValue.dataDir !== "string") problems.push("dataDir: must be a folder path")
    const database = fileValue.database
    if (database !== undefined && !(isRecord(database) && typeof database.url === "string" && Object.keys(database).length === 1)) {
      problems.push("database: must be a mapping with one key, url")
    }
    const base = configFile === undefined ? process.cwd() : path.dirname(path.resolve(configFile))
    const dataDir = path.resolve(
      base,
      options.dataDir ?? Option.getOrUndefined(env.dataDir) ?? (fileValue.dataDir as string | undefined) ?? ".ccat"
    )
    let topology: Topology.Topology | undefined
    if (configFile === undefined) {
      topology = Topology.demo(dataDir)
    } else {
      const rest = Object.fromEntries(Object.entries(fileValue).filter(([k]) => !(serverKeys as ReadonlyArray<string>).includes(k)))
      // technologies, adapters and their options, by the registries the workers build them with
      const decoded = Topology.decode(rest, options.registries ?? Plugins.builtIn)
      if (Either.isLeft(decoded)) problems.push(...decoded.left.problems)
      else topology = decoded.right
    }
    let notifications: NotifierConfig.NotifierConfig | undefined
    if (fileValue.notifications !== undefined) {
      const decoded = yield* NotifierConfig.decode(fileValue.notifications, base)
      if (Either.isLeft(decoded)) problems.push(...decoded.left)
      else notifications = decoded.right
    }
    if (problems.length > 0 || topology === undefined) return yield* new ConfigLoadError({ file: configFile, problems })
    const fileDatabaseUrl = isRecord(database) && typeof database.url === "string" ? Redacted.make(database.url) : undefined
    return {
      configFile,
      host: Option.getOrUndefined(env.host) ?? (s.host as string | undefined) ?? "127.0.0.1",
      port: options.port ?? Option.getOrUndefined(env.port) ?? (s.port as number | undefined) ?? 8080,
      dataDir,
      // An empty DATABASE_URL means "none", as shells and CI files often leave it.
      databaseUrl: Option.getOrUndefined(Option.filter(env.databaseUrl, (u) => Redacted.value(u).trim() !== "")) ?? fileDatabaseUrl,
      topology,
      notifications
    }
  })
