/**
 * The options every local `ccat` command shares (the configuration file, the data folder, the
 * port, JSON output), defined once so that their names, defaults and help read the same in
 * `serve`, `worker`, `token` and `db`.
 */
import * as Options from "@effect/cli/Options"
import * as Option from "effect/Option"
import type { LoadOptions } from "../ServerConfig.js"

/** `--config FILE` (`-c`). */
export const configOption = Options.file("config").pipe(
  Options.withAlias("c"),
  Options.withDescription("YAML or JSON configuration file (default: $CCAT_CONFIG, else the embedded demo topology)"),
  Options.optional
)

/** `--port N` (`-p`). */
export const portOption = Options.integer("port").pipe(
  Options.withAlias("p"),
  Options.withDescription("port to listen on (default: $CCAT_PORT, the file's server.port, else 8080)"),
  Options.optional
)

/** `--data-dir DIR`. */
export const dataDirOption = Options.directory("data-dir").pipe(
  Options.withDescription("folder of local state (default: $CCAT_DATA_DIR, the file's dataDir, else ./.ccat)"),
  Options.optional
)

/** `--json`. */
export const jsonOption = Options.boolean("json").pipe(Options.withDescription("print JSON for scripts"))

/** What the shared options say, as the configuration loader takes it. */
export const loadOptions = (
  o: { config: Option.Option<string>; port?: Option.Option<number>; dataDir: Option.Option<string> }
): LoadOptions => ({
  configFile: Option.getOrUndefined(o.config),
  port: o.port === undefined ? undefined : Option.getOrUndefined(o.port),
  dataDir: Option.getOrUndefined(o.dataDir)
})
