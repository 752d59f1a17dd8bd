/**
 * @ccat/server as a library: the reference server's assembly, so an integrator builds a server
 * with storage drivers and transfer adapters of its own in a few lines (examples/custom-server):
 *
 *   Main.serve({ configFile: "ccat.yaml", drivers: [MyDriver.driver] }).pipe(NodeRuntime.runMain)
 *
 * The drivers and adapters are added to the built-in ones; the configuration is checked against
 * them at start and the workers build storages and adapters from them.
 */
export * as Main from "./Assembly.js"
export * as Plugins from "./Plugins.js"
export * as ServerConfig from "./ServerConfig.js"
export * as Storages from "./lifecycle/Storages.js"
