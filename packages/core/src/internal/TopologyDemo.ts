/**
 * The topology the server runs with when it is given none, so the whole lifecycle can be tried
 * on one machine. Public through `Topology.demo`.
 */
import * as Either from "effect/Either"
import { decode } from "./TopologyChecks.js"
import type { Topology } from "./TopologySchema.js"

/**
 * The embedded default: site `chile` (SOURCE, BUFFER) and site `cologne` (BUFFER,
 * LONG_TERM_ARCHIVE, PROCESSING) on local folders under one data directory, joined by a local
 * route, so the whole lifecycle runs on one machine with no configuration.
 */
export const demo = (dataDir: string): Topology => {
  const folder = (name: string) => `${dataDir.replace(/\/+$/, "")}/locations/${name}`
  const decoded = decode({
    sites: [
      {
        name: "chile",
        shortName: "cl",
        role: "secondary",
        locations: [
          { name: "chile-source", type: "SOURCE", technology: "disk", driver: { root: folder("chile-source") } },
          { name: "chile-buffer", type: "BUFFER", technology: "disk", driver: { root: folder("chile-buffer") } }
        ]
      },
      {
        name: "cologne",
        shortName: "col",
        role: "main",
        locations: [
          { name: "cologne-buffer", type: "BUFFER", technology: "disk", driver: { root: folder("cologne-buffer") } },
          {
            name: "cologne-archive",
            type: "LONG_TERM_ARCHIVE",
            technology: "disk",
            driver: { root: folder("cologne-archive") },
            retention: { keepForever: true }
          },
          { name: "cologne-processing", type: "PROCESSING", technology: "disk", driver: { root: folder("cologne-processing") } }
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "local" }],
    policy: { maxPackageBytes: "1 GB", bundleTargetBytes: "2 GB", bundleMaxWait: "30 seconds", stagingLifetime: "1 days" }
  })
  if (Either.isLeft(decoded)) throw new Error(`the demo topology is invalid: ${decoded.left.message}`)
  return decoded.right
}
