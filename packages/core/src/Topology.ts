/**
 * The topology an operator configures: sites, their data locations, the routes between sites,
 * and the policies of packaging, bundling and archiving. It is the typed form of the
 * configuration file; the ops-db's Site, DataLocation and Route rows are synchronised from it.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { minimumSweepAge } from "./StorageDriver.js"

const units: Record<string, number> = {
  B: 1,
  KB: 1e3,
  MB: 1e6,
  GB: 1e9,
  TB: 1e12,
  PB: 1e15,
  KIB: 1024,
  MIB: 1024 ** 2,
  GIB: 1024 ** 3,
  TIB: 1024 ** 4,
  PIB: 1024 ** 5
}

/** Parses "50 GB", "1.5TiB" or "1024" into bytes; undefined when it is not a size. */
export const parseBytes = (text: string): number | undefined => {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*$/.exec(text)
  if (m === null) return undefined
  const unit = units[(m[2] || "B").toUpperCase()]
  if (unit === undefined) return undefined
  const bytes = Math.round(Number(m[1]) * unit)
  return Number.isSafeInteger(bytes) ? bytes : undefined
}

/** A size in bytes, written as a whole number or as "50 GB" / "2 TiB". */
export const ByteSize = Schema.Union(
  Schema.NonNegativeInt,
  Schema.transformOrFail(Schema.String, Schema.NonNegativeInt, {
    strict: true,
    decode: (text, _, ast) => {
      const bytes = parseBytes(text)
      return bytes === undefined
        ? ParseResult.fail(new ParseResult.Type(ast, text, `"${text}" is not a size; write bytes or e.g. "50 GB", "2 TiB"`))
        : ParseResult.succeed(bytes)
    },
    encode: (bytes) => ParseResult.succeed(String(bytes))
  })
).annotations({ identifier: "ByteSize" })

/** A duration written as milliseconds or as "7 days", "30 minutes", "10 seconds". */
export const DurationText = Schema.Union(
  Schema.NonNegativeInt,
  Schema.transformOrFail(Schema.String, Schema.NonNegativeInt, {
    strict: true,
    decode: (text, _, ast) => {
      const m = /^\s*(\d+(?:\.\d+)?)\s*(millis|seconds|minutes|hours|days|weeks)\s*$/.exec(text)
      const d = m === null ? Option.none() : Duration.decodeUnknown(`${m[1]} ${m[2]}`)
      return Option.isNone(d)
        ? ParseResult.fail(
          new ParseResult.Type(ast, text, `"${text}" is not a duration; write e.g. "30 seconds", "6 hours", "7 days"`)
        )
        : ParseResult.succeed(Math.round(Duration.toMillis(d.value)))
    },
    encode: (ms) => ParseResult.succeed(`${ms} millis`)
  })
).annotations({ identifier: "Duration", description: "milliseconds" })

/** A lower-case name usable in paths, queue names and URLs. */
export const Slug = Schema.String.pipe(
  Schema.pattern(/^[a-z][a-z0-9-]{0,62}$/, {
    message: () => "a name must start with a letter and hold only a-z, 0-9 and -, at most 63 characters"
  })
)

/** What a location is for in the lifecycle (the seed's location types). */
export const LocationType = Schema.Literal("SOURCE", "BUFFER", "LONG_TERM_ARCHIVE", "PROCESSING")
/** What a location is for in the lifecycle. */
export type LocationType = typeof LocationType.Type

/** How a location stores bytes. */
export const StorageTechnology = Schema.Literal("disk", "s3", "tape")
/** How a location stores bytes. */
export type StorageTechnology = typeof StorageTechnology.Type

/** Which transfer adapter a route uses. */
export const AdapterName = Schema.Literal("local", "rsync", "bbcp")
/** Which transfer adapter a route uses. */
export type AdapterName = typeof AdapterName.Type

/** When copies at a location may be deleted, beyond invariant 1 (archived and verified). */
export class RetentionConfig extends Schema.Class<RetentionConfig>("RetentionConfig")({
  /** Keep a copy at least this long after its package was archived. */
  minAgeSinceArchived: Schema.optionalWith(DurationText, { default: () => 0 }),
  /** Above this fill level (percent of capacity) deletion may happen before the minimum age. */
  usageThresholdPercent: Schema.optionalWith(Schema.Number.pipe(Schema.between(0, 100)), { default: () => 80 }),
  /** Never delete here at all (for archives). */
  keepForever: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /**
   * Deletions cleanup runs at once at this location: many for a local disk or an object store,
   * few for a tape library or a slow network mount.
   */
  deleteConcurrency: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 256)), { default: () => 4 })
}) {}

/** A folder or device path in driver options. */
const PathText = Schema.String.pipe(Schema.minLength(1, { message: () => "must be a path, not empty" }))

/** A size in driver options that must hold something. */
const PositiveByteSize = ByteSize.pipe(Schema.filter((n) => n > 0 || "must be more than zero bytes"))

/**
 * Options of a tape location whose volumes are files in a folder (`<root>/library`): a library
 * for tests and demonstrations that has the mechanics of a real one (few drives, mount and seek
 * times, volumes that fill up), so recalls are scheduled as they would be.
 */
export const VirtualTapeDriver = Schema.Struct({
  /** Folder of the catalog, the disk cache and the library's volume files. */
  root: PathText,
  library: Schema.Literal("virtual"),
  /** Cartridges, labelled CCAT000, CCAT001, ... */
  volumes: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10_000)), { default: () => 4 }),
  /** Capacity of each cartridge. */
  volumeBytes: Schema.optionalWith(PositiveByteSize, { default: () => 1024 ** 3 }),
  drives: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 64)), { default: () => 1 }),
  /** Time to load a cartridge into a drive. */
  mountLatency: Schema.optionalWith(DurationText, { default: () => 0 }),
  /** Time to move over one tape file while positioning. */
  seekLatency: Schema.optionalWith(DurationText, { default: () => 0 }),
  /** Keep written and recalled objects in the disk cache; false makes every read a recall. */
  keepOnline: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
/** Options of a tape location on a virtual library, decoded. */
export type VirtualTapeDriver = typeof VirtualTapeDriver.Type

/** Options of a tape location on a real changer and drives, driven by `mtx` and `mt` (mt-st). */
export const MtxTapeDriver = Schema.Struct({
  /** Folder of the catalog and the disk cache. */
  root: PathText,
  library: Schema.Literal("mtx"),
  /** The changer's SCSI generic device, e.g. `/dev/sg3`. */
  changer: PathText,
  /** Non-rewinding drive devices in data-transfer-element order, e.g. `[/dev/nst0, /dev/nst1]`. */
  drives: Schema.Array(PathText).pipe(
    Schema.minItems(1, { message: () => "list at least one drive device" }),
    Schema.filter((ds) => new Set(ds).size === ds.length || "a drive device is listed twice")
  ),
  /** Only these cartridges are used (others may belong to other systems); all when omitted. */
  labels: Schema.optional(
    Schema.Array(Schema.String.pipe(Schema.pattern(/^\S+$/, { message: () => "a label is a barcode without spaces" }))).pipe(
      Schema.minItems(1, { message: () => "list at least one label, or leave labels out to use every cartridge" })
    )
  ),
  /** Native capacity of each cartridge; 12 TB (LTO-8) when omitted. */
  volumeBytes: Schema.optional(PositiveByteSize),
  /** Block size of device writes and reads; 256 KiB when omitted. */
  blockSize: Schema.optional(
    ByteSize.pipe(Schema.filter((n) => (n >= 512 && n <= 16 * 1024 ** 2) || "must be from 512 bytes to 16 MiB"))
  ),
  /** The `mt` and `mtx` programs, when they are not on the PATH under those names. */
  mt: Schema.optional(PathText),
  mtx: Schema.optional(PathText),
  /** Keep written and recalled objects in the disk cache; false makes every read a recall. */
  keepOnline: Schema.optionalWith(Schema.Boolean, { default: () => true })
})
/** Options of a tape location on a real library, decoded. */
export type MtxTapeDriver = typeof MtxTapeDriver.Type

/** Options of a tape location, by `library`. */
export type TapeDriver = VirtualTapeDriver | MtxTapeDriver

/**
 * Decodes a tape location's driver options. The same rules serve `ccat config check` (through
 * `problems`) and the server building the driver from what the ops-db holds, so an option the
 * check accepted is never refused at runtime. Each problem names its option, as `seekLatency: ...`.
 */
export const decodeTapeDriver = (driver: Readonly<Record<string, unknown>>): Either.Either<TapeDriver, ReadonlyArray<string>> => {
  const strict = { errors: "all", onExcessProperty: "error" } as const
  const result: Either.Either<TapeDriver, ParseResult.ParseError> | undefined = driver.library === "virtual"
    ? Schema.decodeUnknownEither(VirtualTapeDriver, strict)(driver)
    : driver.library === "mtx"
    ? Schema.decodeUnknownEither(MtxTapeDriver, strict)(driver)
    : undefined
  if (result === undefined) {
    const got = driver.library === undefined ? "nothing" : JSON.stringify(driver.library)
    return Either.left([`library: must be "virtual" (volumes as files in a folder) or "mtx" (a real changer and drives), got ${got}`])
  }
  return Either.mapLeft(result, formatIssues)
}

/** Read, write and delete availability, switched off for maintenance or by circuit breakers. */
export class Availability extends Schema.Class<Availability>("Availability")({
  read: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  write: Schema.optionalWith(Schema.Boolean, { default: () => true }),
  delete: Schema.optionalWith(Schema.Boolean, { default: () => true })
}) {}

/**
 * Fixity audits and inventory reconciliation (docs/integrity.md): how fast copies at rest
 * are re-read and how often each must be. `bytesPerSecond: 0` switches audits off, and
 * `inventoryEveryHours: 0` the inventory, at the locations it applies to.
 */
export class AuditConfig extends Schema.Class<AuditConfig>("AuditConfig")({
  /** Bytes per second an audit may read at one location, all its copies together. */
  bytesPerSecond: Schema.optionalWith(ByteSize, { default: () => 100e6 }),
  /** A copy is due for a new audit once its last verification is this many days old. */
  cycleDays: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" })), { default: () => 90 }),
  /** The same for nearline (tape) locations, where a read costs a mount and a recall. */
  tapeCycleDays: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" })), { default: () => 365 }),
  /** Hours between two inventory passes over a location's storage. */
  inventoryEveryHours: Schema.optionalWith(Schema.Number.pipe(Schema.nonNegative({ message: () => "must be zero (off) or more hours" })), { default: () => 24 })
}) {}

/** The longest an audit job may run; a budget must read the largest package within it. */
export const auditJobHours = 12

/** A location's own audit settings; what it leaves out comes from `policy.audit`. */
export class LocationAuditConfig extends Schema.Class<LocationAuditConfig>("LocationAuditConfig")({
  bytesPerSecond: Schema.optional(ByteSize),
  cycleDays: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" }))),
  tapeCycleDays: Schema.optional(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" }))),
  inventoryEveryHours: Schema.optional(Schema.Number.pipe(Schema.nonNegative({ message: () => "must be zero (off) or more hours" })))
}) {}

/** One storage system at a site. */
export class LocationConfig extends Schema.Class<LocationConfig>("LocationConfig")({
  name: Slug,
  type: LocationType,
  technology: StorageTechnology,
  /** The driver's own options (a disk root, an S3 bucket and endpoint, a tape library folder). */
  driver: Schema.optionalWith(Schema.Record({ key: Schema.String, value: Schema.Unknown }), { default: () => ({}) }),
  /** Lower is used first among locations of the same type at a site. */
  priority: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  availability: Schema.optionalWith(Availability, { default: () => new Availability({}) }),
  capacityBytes: Schema.optional(ByteSize),
  retention: Schema.optionalWith(RetentionConfig, { default: () => new RetentionConfig({}) }),
  /** Overrides of `policy.audit` for this location. */
  audit: Schema.optional(LocationAuditConfig)
}) {}

/** A physical place with data center infrastructure. */
export class SiteConfig extends Schema.Class<SiteConfig>("SiteConfig")({
  name: Slug,
  /** A short lower-case tag (`cl`, `col`), as the ops-db keeps it. */
  shortName: Slug,
  role: Schema.optionalWith(Schema.Literal("main", "secondary"), { default: () => "secondary" as const }),
  locations: Schema.Array(LocationConfig)
}) {}

/** How bundles move from one site's buffer to another's. */
export class RouteConfig extends Schema.Class<RouteConfig>("RouteConfig")({
  from: Slug,
  to: Slug,
  /** Sites to relay through, in order (Chile → Cologne → Cornell). */
  via: Schema.optionalWith(Schema.Array(Slug), { default: () => [] }),
  adapter: AdapterName,
  /**
   * The adapter's own options (ssh host and user, bbcp streams, ...). The route's limits are not
   * among them: they are fields of the route, and one setting in two places would let one
   * silently override the other.
   */
  options: Schema.optionalWith(
    Schema.Record({ key: Schema.String, value: Schema.Unknown }).pipe(
      Schema.filter((o) =>
        ["maxConcurrentTransfers", "bandwidthLimit"].some((k) => k in o)
          ? "maxConcurrentTransfers and bandwidthLimit are fields of the route itself, not adapter options"
          : undefined
      )
    ),
    { default: () => ({}) }
  ),
  priority: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  maxConcurrentTransfers: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 64)), { default: () => 2 }),
  /** Bytes per second for all transfers of the route together; unlimited when omitted. */
  bandwidthLimit: Schema.optional(ByteSize)
}) {}

/** Sizes and waits of packaging, bundling and archiving. */
export class PolicyConfig extends Schema.Class<PolicyConfig>("PolicyConfig")({
  /** Largest RawDataPackage; a single larger file gets a package of its own. */
  maxPackageBytes: Schema.optionalWith(ByteSize, { default: () => 50e9 }),
  /** Size a DataTransferPackage is filled up to before it is sent. */
  bundleTargetBytes: Schema.optionalWith(ByteSize, { default: () => 500e9 }),
  /** A partial bundle is sent after its oldest package waited this long. */
  bundleMaxWait: Schema.optionalWith(DurationText, { default: () => 6 * 3600_000 }),
  /** Verified copies required at LONG_TERM_ARCHIVE locations before anything is deleted. */
  archiveCopies: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 16)), { default: () => 1 }),
  /**
   * Distinct sites those copies must be at (geographic redundancy). A package archived at one
   * site moves on along the routes to the next archive site until both counts are met.
   */
  archiveSites: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 16)), { default: () => 1 }),
  /** How long staged data stays at a PROCESSING location. */
  stagingLifetime: Schema.optionalWith(DurationText, { default: () => 7 * 24 * 3600_000 }),
  /** How often a worker process renews the leases of the jobs it runs (crash safety, docs/lifecycle.md). */
  jobHeartbeat: Schema.optionalWith(DurationText, { default: () => 10_000 }),
  /** A job whose lease was not renewed this long belongs to a dead worker and runs again elsewhere. */
  jobLeaseTimeout: Schema.optionalWith(DurationText, { default: () => 60_000 }),
  /**
   * Temporary files killed writers left at a site's locations are removed once untouched this
   * long (at least an hour: a live write touches its file with every write).
   */
  sweepTemporaryAfter: Schema.optionalWith(DurationText, { default: () => 24 * 3600_000 }),
  /** Fixity audits and inventory of copies at rest, for every location unless it overrides them. */
  audit: Schema.optionalWith(AuditConfig, { default: () => new AuditConfig({}) })
}) {}

/** The whole topology. */
export class Topology extends Schema.Class<Topology>("Topology")({
  sites: Schema.Array(SiteConfig),
  routes: Schema.optionalWith(Schema.Array(RouteConfig), { default: () => [] }),
  policy: Schema.optionalWith(PolicyConfig, { default: () => new PolicyConfig({}) })
}) {}

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
 * files at the mercy of another location's housekeeping. Roots are compared as written.
 */
const nestedRoots = (t: Topology): Array<string> => {
  const roots: Array<{ readonly name: string; readonly root: string }> = []
  for (const site of t.sites) {
    for (const loc of site.locations) {
      if ((loc.technology === "disk" || loc.technology === "tape") && typeof loc.driver.root === "string") {
        roots.push({ name: loc.name, root: normalRoot(loc.driver.root) })
      }
    }
  }
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
        out.push(`location ${inner.name}: its root folder ${inner.root} is inside ${outer.name}'s (${outer.root}); each location needs a folder of its own, not one inside another's`)
      }
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
      out.push(`policy.archiveCopies: packages filed at site "${site.name}" can reach ${locations} LONG_TERM_ARCHIVE locations along the routes (at ${names}), fewer than the ${t.policy.archiveCopies} copies required`)
    } else if (reached.size < t.policy.archiveSites) {
      out.push(`policy.archiveSites: packages filed at site "${site.name}" can reach archives at ${reached.size} sites along the routes (${names}), fewer than the ${t.policy.archiveSites} required; add a route onwards from an archive site`)
    }
  }
  return out
}

/**
 * Rules that span several fields, which a schema of one field cannot see. Each problem names
 * the field it is about, as `sites[1].locations[0].name`.
 */
export const problems = (t: Topology): ReadonlyArray<string> => {
  const out: Array<string> = []
  const siteNames = new Map<string, number>()
  const locationNames = new Map<string, string>()
  t.sites.forEach((site, i) => {
    if (siteNames.has(site.name)) out.push(`sites[${i}].name: "${site.name}" is already the name of sites[${siteNames.get(site.name)}]`)
    siteNames.set(site.name, i)
    site.locations.forEach((loc, j) => {
      const at = `sites[${i}].locations[${j}]`
      if (locationNames.has(loc.name)) out.push(`${at}.name: "${loc.name}" is already the name of ${locationNames.get(loc.name)}`)
      locationNames.set(loc.name, at)
      if (loc.technology === "s3" && typeof loc.driver.bucket !== "string") {
        out.push(`${at}.driver.bucket: an s3 location needs a bucket`)
      }
      const noRoot = typeof loc.driver.root !== "string"
      if ((loc.technology === "disk" || loc.technology === "tape") && noRoot) {
        out.push(`${at}.driver.root: a ${loc.technology} location needs a root folder`)
      }
      if (loc.technology === "tape") {
        const tape = decodeTapeDriver(loc.driver)
        if (Either.isLeft(tape)) {
          // a missing root was named just above, in the words every location uses
          for (const p of tape.left) if (!(noRoot && p.startsWith("root:"))) out.push(`${at}.driver.${p}`)
        }
      }
      if (loc.technology === "disk" && "directIo" in loc.driver && typeof loc.driver.directIo !== "boolean") {
        out.push(`${at}.driver.directIo: must be true or false (default true: large durable writes go past the page cache)`)
      }
      if (loc.technology === "tape" && loc.type !== "LONG_TERM_ARCHIVE") {
        // tape is nearline and its driver has no folder the transfer adapters or staging can use
        out.push(`${at}.technology: a ${loc.type} location cannot be on tape; tape is for LONG_TERM_ARCHIVE locations`)
      }
    })
  })
  out.push(...nestedRoots(t))
  t.routes.forEach((route, i) => {
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
    out.push(`policy.archiveSites: copies at ${t.policy.archiveSites} sites need at least as many copies, but policy.archiveCopies is ${t.policy.archiveCopies}`)
  }
  if (t.policy.jobHeartbeat <= 0) out.push(`policy.jobHeartbeat: must be longer than zero`)
  else if (t.policy.jobLeaseTimeout < 3 * t.policy.jobHeartbeat) {
    // A live worker that misses a heartbeat or two (a stall, a busy database) must keep its jobs.
    out.push(`policy.jobLeaseTimeout: must be at least three times policy.jobHeartbeat (${t.policy.jobHeartbeat} ms)`)
  }
  const slowAudit = (bytesPerSecond: number | undefined) =>
    bytesPerSecond !== undefined && bytesPerSecond > 0 && bytesPerSecond * auditJobHours * 3600 < t.policy.maxPackageBytes
  const slowAuditWhy = `too small to read a package of policy.maxPackageBytes (${t.policy.maxPackageBytes} bytes) within one ${auditJobHours}-hour audit job; 0 switches audits off`
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
 * A decoding error as one line per field, `path: problem`, the form every configuration problem
 * takes (adapters' and drivers' option schemas use it too, so their problems read the same).
 */
export const formatIssues = (error: ParseResult.ParseError): ReadonlyArray<string> => {
  // A union reports one issue per member ("Expected A", "Expected B", ...) at the same path;
  // they are merged into one line naming every allowed value.
  const byPath = new Map<string, Array<string>>()
  for (const issue of ParseResult.ArrayFormatter.formatErrorSync(error)) {
    const path = issue.path
      .map((k, i) => (typeof k === "number" ? `[${k}]` : i === 0 ? String(k) : `.${String(k)}`))
      .join("") || "(top level)"
    byPath.set(path, [...(byPath.get(path) ?? []), issue.message])
  }
  return [...byPath].map(([path, messages]) => {
    const expected = messages.map((m) => /^Expected (.+), actual (.+)$/s.exec(m))
    if (messages.length > 1 && expected.every((m) => m !== null)) {
      return `${path}: expected ${expected.map((m) => m![1]).join(" | ")}, got ${expected[0]![2]}`
    }
    return `${path}: ${[...new Set(messages)].join("; ")}`
  })
}

/** Decodes and checks a topology from parsed YAML or JSON. */
export const decode = (input: unknown): Either.Either<Topology, TopologyError> => {
  const result = Schema.decodeUnknownEither(Topology, { errors: "all", onExcessProperty: "error" })(input)
  if (Either.isLeft(result)) return Either.left(new TopologyError({ problems: formatIssues(result.left) }))
  const found = problems(result.right)
  return found.length > 0 ? Either.left(new TopologyError({ problems: found })) : Either.right(result.right)
}

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
