/**
 * How a configuration becomes a valid topology: the schemas decode each field, then the rules
 * that span several fields (unique names, roots that do not nest, routes between known sites
 * with buffers, archive targets the routes can reach, consistent policy figures) are checked,
 * and every problem is reported at once, each naming its field. Public through `Topology`.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import { minimumSweepAge } from "../StorageDriver.js"
import * as StorageDriverRegistry from "../StorageDriverRegistry.js"
import * as TransferAdapterRegistry from "../TransferAdapterRegistry.js"
import { auditJobHours, formatIssues, Topology } from "./TopologySchema.js"

/**
 * The drivers and adapters a configuration is checked against. Without them only the topology's
 * own rules are checked (what core can know); the server always passes the ones it runs with.
 */
export interface Registries {
  readonly drivers?: StorageDriverRegistry.Registry | undefined
  readonly adapters?: TransferAdapterRegistry.Registry | undefined
}

/** A root folder as written, without trailing, doubled or `.` separators, for comparing roots. */
const normalRoot = (root: string): string => {
  const absolute = root.startsWith("/")
  const parts = root.split("/").filter((p) => p !== "" && p !== ".")
  return (absolute ? "/" : "") + parts.join("/")
}

/**
 * Locations whose root folders are the same or one inside another. Each location's storage
 * owns its whole folder: the sweep of temporary files walks all of it, `list` and cleanup see
 * everything under it, so a BUFFER root around a SOURCE root would put the instruments' raw
 * files at the mercy of another location's housekeeping. Roots are compared as written; a
 * location's root is what its driver says (`Driver.root`), or its `driver.root` option when no
 * registry is given.
 */
const nestedRoots = (t: Topology, rootOf: (siteIndex: number, locationIndex: number) => string | undefined): Array<string> => {
  const roots: Array<{ readonly name: string; readonly root: string }> = []
  t.sites.forEach((site, i) =>
    site.locations.forEach((loc, j) => {
      const root = rootOf(i, j)
      if (root !== undefined) roots.push({ name: loc.name, root: normalRoot(root) })
    })
  )
  const below = (x: string, y: string) => x.startsWith(y === "/" ? "/" : `${y}/`)
  const out: Array<string> = []
  for (const [i, a] of roots.entries()) {
    for (const b of roots.slice(i + 1)) {
      if (a.root === b.root) {
        out.push(`locations ${a.name} and ${b.name}: both have the root folder ${a.root}; each location needs a folder of its own`)
        continue
      }
      const [inner, outer] = below(a.root, b.root) ? [a, b] : below(b.root, a.root) ? [b, a] : []
      if (inner !== undefined && outer !== undefined) {
        out.push(
          `location ${inner.name}: its root folder ${inner.root} is inside ${outer.name}'s (${outer.root}); each location needs a folder of its own, not one inside another's`
        )
      }
    }
  }
  return out
}

/**
 * Driver options that hold a secret. Driver options are stored in the ops-db (and its backups)
 * and shown by the API, so a configuration naming one is refused before anything is written;
 * credentials are named by environment variables instead (`accessKeyIdEnv`, `secretAccessKeyEnv`).
 */
export const secretDriverOptions: ReadonlyArray<string> = [
  "accessKeyId",
  "secretAccessKey",
  "sessionToken",
  "credentials",
  "password",
  "secret"
]

/**
 * S3 locations that would see each other's objects: the same bucket on the same server, where
 * one's key prefix begins the other's (the driver puts `prefix + key`, so "arch" lists
 * "archive/..." too). One object would count as a copy at both, and cleanup at one would delete
 * the other's copy.
 */
const overlappingBuckets = (t: Topology): Array<string> => {
  const text = (v: unknown) => (typeof v === "string" ? v : undefined)
  const stores: Array<{ readonly name: string; readonly server: string; readonly bucket: string; readonly prefix: string }> = []
  for (const site of t.sites) {
    for (const loc of site.locations) {
      const bucket = text(loc.driver.bucket)
      if (loc.technology !== "s3" || bucket === undefined) continue
      const server = (text(loc.driver.endpoint) ?? "the AWS default endpoint").toLowerCase().replace(/\/+$/, "")
      stores.push({ name: loc.name, server, bucket, prefix: text(loc.driver.prefix) ?? "" })
    }
  }
  const out: Array<string> = []
  for (const [i, a] of stores.entries()) {
    for (const b of stores.slice(i + 1)) {
      if (a.server !== b.server || a.bucket !== b.bucket) continue
      if (!a.prefix.startsWith(b.prefix) && !b.prefix.startsWith(a.prefix)) continue
      const shown = (x: typeof a) => (x.prefix === "" ? "the whole bucket" : `prefix "${x.prefix}"`)
      out.push(
        `locations ${a.name} and ${b.name}: both keep objects in bucket ${a.bucket} on ${a.server} (${shown(a)}, ${
          shown(b)
        }), so each would see the other's objects; give each location a prefix that does not begin the other's`
      )
    }
  }
  return out
}

/**
 * Archive targets the routes can never meet. Bundles leave a site only along routes towards a
 * site with a LONG_TERM_ARCHIVE, and a package archived at one site moves on to the next archive
 * site while it lacks copies or sites; so the archive sites a package filed at a SOURCE site can
 * reach are those its routes lead to, transitively. If they hold fewer archive locations than
 * `archiveCopies`, or are fewer than `archiveSites`, its packages would wait for ever.
 */
const unreachableArchiveTargets = (t: Topology): Array<string> => {
  const archivesAt = new Map(t.sites.map((s) => [s.name, s.locations.filter((l) => l.type === "LONG_TERM_ARCHIVE").length]))
  const onward = new Map<string, Set<string>>()
  for (const r of t.routes) {
    if ((archivesAt.get(r.to) ?? 0) === 0) continue
    for (const from of [r.from, ...r.via]) onward.set(from, (onward.get(from) ?? new Set()).add(r.to))
  }
  const out: Array<string> = []
  for (const site of t.sites) {
    if (!site.locations.some((l) => l.type === "SOURCE")) continue
    const reached = new Set<string>((archivesAt.get(site.name) ?? 0) > 0 ? [site.name] : [])
    const queue = [site.name]
    while (queue.length > 0) {
      for (const next of onward.get(queue.shift()!) ?? []) {
        if (!reached.has(next)) {
          reached.add(next)
          queue.push(next)
        }
      }
    }
    const locations = [...reached].reduce((n, name) => n + (archivesAt.get(name) ?? 0), 0)
    const names = [...reached].join(", ") || "none"
    if (reached.size === 0) {
      out.push(`routes: packages filed at site "${site.name}" can reach no site with a LONG_TERM_ARCHIVE location; add a route from it`)
    } else if (locations < t.policy.archiveCopies) {
      out.push(
        `policy.archiveCopies: packages filed at site "${site.name}" can reach ${locations} LONG_TERM_ARCHIVE locations along the routes (at ${names}), fewer than the ${t.policy.archiveCopies} copies required`
      )
    } else if (reached.size < t.policy.archiveSites) {
      out.push(
        `policy.archiveSites: packages filed at site "${site.name}" can reach archives at ${reached.size} sites along the routes (${names}), fewer than the ${t.policy.archiveSites} required; add a route onwards from an archive site`
      )
    }
  }
  return out
}

/**
 * Rules that span several fields, which a schema of one field cannot see, and each location's
 * and route's options decoded by its registered driver or adapter. Each problem names the field
 * it is about, as `sites[1].locations[0].name` or `routes[0].options.streams`.
 */
export const problems = (t: Topology, registries: Registries = {}): ReadonlyArray<string> => {
  const out: Array<string> = []
  const roots = new Map<string, string>()
  const siteNames = new Map<string, number>()
  const locationNames = new Map<string, string>()
  t.sites.forEach((site, i) => {
    if (siteNames.has(site.name)) out.push(`sites[${i}].name: "${site.name}" is already the name of sites[${siteNames.get(site.name)}]`)
    siteNames.set(site.name, i)
    site.locations.forEach((loc, j) => {
      const at = `sites[${i}].locations[${j}]`
      if (locationNames.has(loc.name)) out.push(`${at}.name: "${loc.name}" is already the name of ${locationNames.get(loc.name)}`)
      locationNames.set(loc.name, at)
      for (const key of secretDriverOptions.filter((k) => k in loc.driver)) {
        out.push(
          `${at}.driver.${key}: would store a secret in the ops-db, where driver options are kept and shown; name environment variables in driver.accessKeyIdEnv and driver.secretAccessKeyEnv instead`
        )
      }
      if (registries.drivers === undefined) {
        if (typeof loc.driver.root === "string") roots.set(`${i}/${j}`, loc.driver.root)
        return
      }
      // a secret was named just above; the driver's schema would only call it unexpected
      const options = Object.fromEntries(Object.entries(loc.driver).filter(([k]) => !secretDriverOptions.includes(k)))
      const decoded = StorageDriverRegistry.decode(registries.drivers, loc.technology, options)
      if (Either.isLeft(decoded)) {
        out.push(...decoded.left.map((p) => `${at}.${p}`))
        // the folders are still compared, so every problem is named at once
        if (typeof loc.driver.root === "string") roots.set(`${i}/${j}`, loc.driver.root)
        return
      }
      const { driver } = decoded.right
      const root = driver.root?.(decoded.right.options)
      if (root !== undefined) roots.set(`${i}/${j}`, root)
      if (driver.locationTypes !== undefined && !driver.locationTypes.includes(loc.type)) {
        out.push(
          `${at}.technology: a ${loc.type} location cannot be on ${loc.technology}; ${loc.technology} serves ${
            driver.locationTypes.join(", ")
          } locations`
        )
      }
    })
  })
  out.push(...nestedRoots(t, (i, j) => roots.get(`${i}/${j}`)))
  out.push(...overlappingBuckets(t))
  t.routes.forEach((route, i) => {
    if (registries.adapters !== undefined) {
      const decoded = TransferAdapterRegistry.decode(registries.adapters, route.adapter, route.options)
      if (Either.isLeft(decoded)) out.push(...decoded.left.map((p) => `routes[${i}].${p}`))
    }
    for (const [field, name] of [["from", route.from], ["to", route.to]] as const) {
      if (!siteNames.has(name)) out.push(`routes[${i}].${field}: no site is named "${name}"`)
    }
    route.via.forEach((name, k) => {
      if (!siteNames.has(name)) out.push(`routes[${i}].via[${k}]: no site is named "${name}"`)
    })
    if (route.via.length > 1) out.push(`routes[${i}].via: a route relays through at most one site; chain routes for longer paths`)
    if (route.from === route.to) out.push(`routes[${i}].to: a route must lead to another site than "${route.from}"`)
    const hops = [route.from, ...route.via, route.to]
    for (const name of hops) {
      const site = t.sites.find((s) => s.name === name)
      if (site && !site.locations.some((l) => l.type === "BUFFER")) {
        out.push(`routes[${i}]: site "${name}" has no BUFFER location, and transfers go buffer to buffer`)
      }
    }
  })
  const archives = t.sites.flatMap((s) => s.locations).filter((l) => l.type === "LONG_TERM_ARCHIVE").length
  if (archives > 0 && t.policy.archiveCopies > archives) {
    out.push(`policy.archiveCopies: ${t.policy.archiveCopies} copies are required but only ${archives} LONG_TERM_ARCHIVE locations exist`)
  } else if (archives > 0) {
    out.push(...unreachableArchiveTargets(t))
  }
  if (t.policy.archiveSites > t.policy.archiveCopies) {
    out.push(
      `policy.archiveSites: copies at ${t.policy.archiveSites} sites need at least as many copies, but policy.archiveCopies is ${t.policy.archiveCopies}`
    )
  }
  if (t.policy.bundleMinBytes > t.policy.bundleMaxBytes) {
    out.push(
      `policy.bundleMinBytes: ${t.policy.bundleMinBytes} bytes is more than policy.bundleMaxBytes (${t.policy.bundleMaxBytes} bytes)`
    )
  }
  if (t.policy.jobHeartbeat <= 0) out.push(`policy.jobHeartbeat: must be longer than zero`)
  else if (t.policy.jobLeaseTimeout < 3 * t.policy.jobHeartbeat) {
    // A live worker that misses a heartbeat or two (a stall, a busy database) must keep its jobs.
    out.push(`policy.jobLeaseTimeout: must be at least three times policy.jobHeartbeat (${t.policy.jobHeartbeat} ms)`)
  }
  const slowAudit = (bytesPerSecond: number | undefined) =>
    bytesPerSecond !== undefined && bytesPerSecond > 0 && bytesPerSecond * auditJobHours * 3600 < t.policy.maxPackageBytes
  const slowAuditWhy =
    `too small to read a package of policy.maxPackageBytes (${t.policy.maxPackageBytes} bytes) within one ${auditJobHours}-hour audit job; 0 switches audits off`
  if (slowAudit(t.policy.audit.bytesPerSecond)) out.push(`policy.audit.bytesPerSecond: ${slowAuditWhy}`)
  t.sites.forEach((site, i) =>
    site.locations.forEach((loc, j) => {
      if (slowAudit(loc.audit?.bytesPerSecond)) out.push(`sites[${i}].locations[${j}].audit.bytesPerSecond: ${slowAuditWhy}`)
    })
  )
  if (t.policy.sweepTemporaryAfter < Duration.toMillis(minimumSweepAge)) {
    // younger temporary files may belong to a write still running (a slow link's put)
    out.push(`policy.sweepTemporaryAfter: must be at least 1 hour, so a write still running keeps its temporary file`)
  }
  return out
}

/** Why a configuration is not a valid topology: every problem, each naming its field. */
export class TopologyError extends Schema.TaggedError<TopologyError>()("TopologyError", {
  problems: Schema.Array(Schema.String)
}) {
  override get message(): string {
    return `invalid configuration:\n${this.problems.map((p) => `  - ${p}`).join("\n")}`
  }
}

/**
 * Decodes and checks a topology from parsed YAML or JSON; with registries, every location's
 * technology and every route's adapter must be registered and their options must decode.
 */
export const decode = (input: unknown, registries: Registries = {}): Either.Either<Topology, TopologyError> => {
  const result = Schema.decodeUnknownEither(Topology, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isLeft(result)) return Either.left(new TopologyError({ problems: formatIssues(result.left) }))
  const found = problems(result.right, registries)
  return found.length > 0 ? Either.left(new TopologyError({ problems: found })) : Either.right(result.right)
}
