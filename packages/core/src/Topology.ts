/**
 * The topology an operator configures: sites, their data locations, the routes between sites,
 * and the policies of packaging, bundling and archiving. It is the typed form of the
 * configuration file; the ops-db's Site, DataLocation and Route rows are synchronised from it.
 *
 * This module is the public face; the parts live in internal modules, each holding one thing:
 * the schemas (`TopologySchema`), decoding with the cross-field checks (`TopologyChecks`) and the
 * demo topology (`TopologyDemo`). A location's driver options and a route's adapter options are
 * decoded by the registered driver's and adapter's own schemas (`StorageDriverRegistry`,
 * `TransferAdapterRegistry`) when `decode` is given the registries. They depend on each other in that order and never on this
 * module, so no import cycle forms.
 */
export * from "./internal/TopologySchema.js"
export { decode, problems, type Registries, secretDriverOptions, TopologyError } from "./internal/TopologyChecks.js"
export { demo } from "./internal/TopologyDemo.js"
