/**
 * A CCAT Data Center server with a storage driver of its own: the reference server's assembly
 * from @ccat/server, with the example in-memory driver (examples/custom-driver) registered beside
 * the built-in disk, s3 and tape drivers. A location with `technology: memory` in the
 * configuration is served by it; everything else (API, workers, checks at start) is the
 * reference server's.
 *
 *   npx tsx examples/custom-server/server.ts examples/custom-server/ccat.yaml
 */
import { Main } from "@ccat/server"
import * as NodeRuntime from "@effect/platform-node/NodeRuntime"
import { pathToFileURL } from "node:url"
import * as MemoryDriver from "../custom-driver/MemoryDriver.js"

/** The drivers this server adds to the built-in ones. */
export const drivers = [MemoryDriver.driver]

/** The server for a configuration file, until interrupted. */
export const serve = (configFile: string) => Main.serve({ configFile, drivers, workers: "all" })

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  serve(process.argv[2] ?? "examples/custom-server/ccat.yaml").pipe(NodeRuntime.runMain)
}
