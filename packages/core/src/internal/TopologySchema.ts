/**
 * The schemas of the topology an operator configures: sizes and durations as people write them,
 * sites and their data locations, routes, and the policies of packaging, bundling, archiving and
 * audits. Each schema checks its own fields; a location's driver options and a route's adapter
 * options are the registered driver's and adapter's own schemas' to check, and rules that span
 * several fields are in `TopologyChecks`. Public through `Topology`.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

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

/**
 * How a location stores bytes: the name of a registered storage driver (`disk`, `s3`, `tape`, or
 * an integrator's). Whether a driver is registered under it is checked against the registry.
 */
export const StorageTechnology = Slug.annotations({ identifier: "StorageTechnology" })
/** How a location stores bytes. */
export type StorageTechnology = typeof StorageTechnology.Type

/**
 * Which transfer adapter a route uses: the name of a registered adapter (`local`, `rsync`,
 * `bbcp`, or an integrator's), checked against the registry.
 */
export const AdapterName = Slug.annotations({ identifier: "AdapterName" })
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
  cycleDays: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" })), {
    default: () => 90
  }),
  /** The same for nearline (tape) locations, where a read costs a mount and a recall. */
  tapeCycleDays: Schema.optionalWith(Schema.Number.pipe(Schema.greaterThan(0, { message: () => "must be more than zero days" })), {
    default: () => 365
  }),
  /** Hours between two inventory passes over a location's storage. */
  inventoryEveryHours: Schema.optionalWith(Schema.Number.pipe(Schema.nonNegative({ message: () => "must be zero (off) or more hours" })), {
    default: () => 24
  })
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
  /** The driver's own options (a disk root, an S3 bucket and endpoint, a tape library folder), decoded by the driver's schema. */
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

/** Keys that are fields of a route, never adapter options (a setting in two places would let one override the other). */
export const routeFields: ReadonlyArray<string> = ["maxConcurrentTransfers", "bandwidthLimit", "measuredBandwidth", "bundleTransferTime"]

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
      Schema.filter((o) => {
        const misplaced = routeFields.filter((k) => k in o)
        return misplaced.length > 0 ? `${misplaced.join(", ")}: fields of the route itself, not adapter options` : undefined
      })
    ),
    { default: () => ({}) }
  ),
  priority: Schema.optionalWith(Schema.Int, { default: () => 0 }),
  maxConcurrentTransfers: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 64)), { default: () => 2 }),
  /** Bytes per second for all transfers of the route together; unlimited when omitted. */
  bandwidthLimit: Schema.optional(ByteSize),
  /**
   * Bytes per second one transfer of the route reached when measured (`ccat route bench
   * --write` records it). With `bundleTransferTime` it sizes the bundles sent along the route.
   */
  measuredBandwidth: Schema.optional(ByteSize.pipe(Schema.filter((n) => n > 0 || "must be more than zero bytes per second"))),
  /**
   * How long sending one bundle along the route may take. With `measuredBandwidth` the bundle
   * size target at the sending site is the bytes one transfer moves in that time, within
   * `policy.bundleMinBytes` and `policy.bundleMaxBytes`; without both, `policy.bundleTargetBytes`.
   */
  bundleTransferTime: Schema.optional(DurationText.pipe(Schema.filter((n) => n > 0 || "must be longer than zero")))
}) {}

const dayMs = 24 * 3600_000

/**
 * How long a history is kept: "forever", or a duration of at least 30 days, in milliseconds or
 * written as "400 days", "52 weeks" or "7 years" (a year is 365 days).
 */
export const HistoryRetention = Schema.transformOrFail(
  Schema.Union(Schema.String, Schema.Number),
  Schema.Union(Schema.Literal("forever"), Schema.NonNegativeInt),
  {
    strict: true,
    decode: (input, _, ast) => {
      if (input === "forever") return ParseResult.succeed("forever" as const)
      const years = typeof input === "string" ? /^\s*(\d+(?:\.\d+)?)\s*years?\s*$/.exec(input) : null
      const ms = years !== null
        ? Math.round(Number(years[1]) * 365 * dayMs)
        : Option.getOrUndefined(Either.getRight(Schema.decodeUnknownEither(DurationText)(input)))
      return ms !== undefined && ms >= 30 * dayMs
        ? ParseResult.succeed(ms)
        : ParseResult.fail(
          new ParseResult.Type(
            ast,
            input,
            `${JSON.stringify(input)}: must be "forever" or a duration of at least 30 days, e.g. "400 days", "7 years"`
          )
        )
    },
    encode: (kept) => ParseResult.succeed(kept)
  }
).annotations({ identifier: "HistoryRetention" })

/**
 * How long the ops-db keeps its history (docs/ops-db.md): the event log, partitioned by year,
 * loses a whole year once all of it is older than `events`; finished transfer attempts of
 * completed bundles and packages are deleted once older than `transferAttempts`. Totals that
 * count them (transfers, repairs) keep counting what was taken away.
 */
export class HistoryConfig extends Schema.Class<HistoryConfig>("HistoryConfig")({
  /** How long events are kept (whole years go, once all of a year is older). */
  events: Schema.optionalWith(HistoryRetention, { default: () => "forever" as const }),
  /** How long finished transfer attempts of completed bundles and packages are kept. */
  transferAttempts: Schema.optionalWith(HistoryRetention, { default: () => "forever" as const }),
  /** Years of the event log partitioned ahead of the current one. */
  yearsAhead: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 10)), { default: () => 1 })
}) {}

/**
 * A permission mode written as octal text ("0750"). It must give other users nothing (the last
 * digit 0): on a shared PROCESSING host they are other programs' users; and the group may not
 * write, since staged files are shared between requests and the service sets modes inside.
 */
const PrivateMode = (what: string) =>
  Schema.transformOrFail(Schema.String, Schema.Int, {
    strict: true,
    decode: (text, _, ast) => {
      if (!/^0?[0-7]{3}$/.test(text.trim())) {
        return ParseResult.fail(new ParseResult.Type(ast, text, `"${text}" is not a mode; write octal text such as "0750"`))
      }
      const mode = Number.parseInt(text.trim(), 8)
      if ((mode & 0o007) !== 0) {
        return ParseResult.fail(
          new ParseResult.Type(
            ast,
            text,
            `"${text}" gives other users access to staged ${what}; other programs' users would read them (end the mode in 0)`
          )
        )
      }
      if ((mode & 0o400) === 0) {
        return ParseResult.fail(new ParseResult.Type(ast, text, `"${text}" leaves the owner unable to read staged ${what}`))
      }
      if ((mode & 0o020) !== 0) {
        return ParseResult.fail(
          new ParseResult.Type(
            ast,
            text,
            `"${text}" lets the group write staged ${what}; a scientist could change bytes other requests share, or plant links the service would follow (the group digit must not include 2)`
          )
        )
      }
      return ParseResult.succeed(mode)
    },
    encode: (mode) => ParseResult.succeed(`0${mode.toString(8)}`)
  })

/** A group as the PROCESSING host knows it: a numeric gid or a group name. */
export const GroupRef = Schema.Union(
  Schema.NonNegativeInt,
  Schema.String.pipe(Schema.pattern(/^[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?$/, { message: () => "must be a numeric gid or a group name" }))
)

/**
 * How staged data is laid out for the programs on a PROCESSING host (docs/lifecycle.md,
 * "Staging"): each request's files under `<root>/<program>/<request id>/`, folders and files
 * with these modes and, where a program has one here, owned by its group.
 */
export class StagingLayoutConfig extends Schema.Class<StagingLayoutConfig>("StagingLayoutConfig")({
  /** Mode of the program and request folders (owner: the service; no access for other users). */
  folderMode: Schema.optionalWith(PrivateMode("folders"), { default: () => 0o750 }),
  /** Mode of the staged files: the program's group reads them, only the service writes them. */
  fileMode: Schema.optionalWith(PrivateMode("files"), { default: () => 0o640 }),
  /** The group that owns each program's folders and files, by program name; unnamed programs keep the service's group. */
  groups: Schema.optionalWith(Schema.Record({ key: Schema.String, value: GroupRef }), { default: () => ({}) })
}) {}

/** Sizes and waits of packaging, bundling and archiving. */
export class PolicyConfig extends Schema.Class<PolicyConfig>("PolicyConfig")({
  /** Largest RawDataPackage; a single larger file gets a package of its own. */
  maxPackageBytes: Schema.optionalWith(ByteSize, { default: () => 50e9 }),
  /** Size a DataTransferPackage is filled up to before it is sent. */
  bundleTargetBytes: Schema.optionalWith(ByteSize, { default: () => 500e9 }),
  /** Smallest bundle size target a route's measured bandwidth gives (`bundleTransferTime` on a route). */
  bundleMinBytes: Schema.optionalWith(ByteSize, { default: () => 1e9 }),
  /** Largest bundle size target a route's measured bandwidth gives. */
  bundleMaxBytes: Schema.optionalWith(ByteSize, { default: () => 2e12 }),
  /** A partial bundle is sent after its oldest package waited this long. */
  bundleMaxWait: Schema.optionalWith(DurationText, { default: () => 6 * 3600_000 }),
  /** Verified copies required at LONG_TERM_ARCHIVE locations before anything is deleted. */
  archiveCopies: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 16)), { default: () => 1 }),
  /**
   * Distinct sites those copies must be at (geographic redundancy). A package archived at one
   * site moves on along the routes to the next archive site until both counts are met.
   */
  archiveSites: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 16)), { default: () => 1 }),
  /** How long an API token works when it is created without an expiry of its own. */
  tokenLifetime: Schema.optionalWith(
    DurationText.pipe(
      Schema.filter((ms) => ms > 0 || "must be longer than zero; a service token that must never expire is created with --never-expires")
    ),
    { default: () => 365 * 24 * 3600_000 }
  ),
  /** How long staged data stays at a PROCESSING location unless its request is released sooner. */
  stagingLifetime: Schema.optionalWith(DurationText, { default: () => 7 * 24 * 3600_000 }),
  /** Per-program folders, modes and groups of staged data on PROCESSING hosts. */
  staging: Schema.optionalWith(StagingLayoutConfig, { default: () => new StagingLayoutConfig({}) }),
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
  audit: Schema.optionalWith(AuditConfig, { default: () => new AuditConfig({}) }),
  /** How long events and finished transfer attempts are kept (default: forever). */
  history: Schema.optionalWith(HistoryConfig, { default: () => new HistoryConfig({}) })
}) {}

/** The whole topology. */
export class Topology extends Schema.Class<Topology>("Topology")({
  sites: Schema.Array(SiteConfig),
  routes: Schema.optionalWith(Schema.Array(RouteConfig), { default: () => [] }),
  policy: Schema.optionalWith(PolicyConfig, { default: () => new PolicyConfig({}) })
}) {}

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
