/**
 * The `notifications:` section of ccat.yaml: how often the built-in notifier evaluates its
 * conditions, their thresholds, and the sinks it tells (Alertmanager, a webhook, e-mail), each
 * with its own rate limit. Secrets (an SMTP password, a webhook's bearer token) are never written
 * in the file: it names an environment variable or a file holding them, and both are read when
 * the configuration loads, so a missing secret stops the start instead of the first page.
 */
import { Topology } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs/promises"
import * as path from "node:path"

const Duration = Topology.DurationText
const PositiveDuration = Duration.pipe(Schema.filter((ms) => ms > 0 || "must be longer than zero"))

const HttpUrl = Schema.String.pipe(
  Schema.filter((text) => {
    let url: URL
    try {
      url = new URL(text)
    } catch {
      return `"${text}" is not a URL`
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") return "must be an http:// or https:// URL"
    if (url.username !== "" || url.password !== "") return "must not carry credentials; name a secret instead (bearerToken: { env: NAME })"
    return undefined
  })
)

const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "must be the name of an environment variable" })
)

/** Where a secret is: an environment variable or a file (its content, trailing newline removed). */
const SecretRef = Schema.Struct({
  env: Schema.optional(EnvName),
  file: Schema.optional(Schema.String.pipe(Schema.minLength(1, { message: () => "must be a file path" })))
}).pipe(Schema.filter((s) => (s.env === undefined) !== (s.file === undefined) || "name exactly one of env (a variable) or file (a path)"))

const Email = Schema.String.pipe(Schema.pattern(/^[^@\s<>]+@[^@\s<>]+$/, { message: () => "must be an e-mail address" }))

/** At most `messages` messages to a sink per `per`; what is due beyond that waits and goes out together. */
const RateLimit = Schema.Struct({
  messages: Schema.Int.pipe(Schema.between(1, 100_000, { message: () => "must be a whole number from 1 to 100000" })),
  per: PositiveDuration
})

const defaultRateLimit = { messages: 20, per: 3600_000 }

const common = {
  name: Topology.Slug,
  rateLimit: Schema.optionalWith(RateLimit, { default: () => defaultRateLimit }),
  /** How long one send may take before it counts as failed. */
  timeout: Schema.optionalWith(PositiveDuration, { default: () => 10_000 })
}

const AlertmanagerSink = Schema.Struct({ ...common, type: Schema.Literal("alertmanager"), url: HttpUrl })
const WebhookSink = Schema.Struct({ ...common, type: Schema.Literal("webhook"), url: HttpUrl, bearerToken: Schema.optional(SecretRef) })
const EmailSink = Schema.Struct({
  ...common,
  type: Schema.Literal("email"),
  host: Schema.String.pipe(Schema.minLength(1, { message: () => "must be a host name" })),
  port: Schema.optionalWith(Schema.Int.pipe(Schema.between(1, 65535, { message: () => "must be a port from 1 to 65535" })), {
    default: () => 25
  }),
  /** TLS from the first byte (port 465); otherwise STARTTLS is used when the server offers it. */
  secure: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  /** Refuse to send unless the connection is encrypted (STARTTLS required). */
  requireTls: Schema.optionalWith(Schema.Boolean, { default: () => false }),
  username: Schema.optional(Schema.String.pipe(Schema.minLength(1))),
  password: Schema.optional(SecretRef),
  from: Email,
  to: Schema.Array(Email).pipe(Schema.minItems(1, { message: () => "list at least one recipient" }))
})

const Sink = Schema.Union(AlertmanagerSink, WebhookSink, EmailSink)

/** How long a condition must hold before it is told (the shipped rules' `for:`), per alert name. */
const HoldFor = Schema.Struct({
  CcatPackageFailed: Schema.optionalWith(Duration, { default: () => 10 * 60_000 }),
  CcatBundleFailed: Schema.optionalWith(Duration, { default: () => 10 * 60_000 }),
  CcatStagingRequestFailed: Schema.optionalWith(Duration, { default: () => 10 * 60_000 }),
  CcatCircuitOpen: Schema.optionalWith(Duration, { default: () => 5 * 60_000 }),
  CcatLocationFull: Schema.optionalWith(Duration, { default: () => 30 * 60_000 }),
  CcatStageBacklogOld: Schema.optionalWith(Duration, { default: () => 15 * 60_000 }),
  CcatAuditFindings: Schema.optionalWith(Duration, { default: () => 3600_000 })
})

/** A stage's allowed wait, overriding the one the policy gives (docs/alerts.md). */
const StageMaxWait = Schema.Struct({
  package: Schema.optional(PositiveDuration),
  bundle: Schema.optional(PositiveDuration),
  transfer: Schema.optional(PositiveDuration),
  archive: Schema.optional(PositiveDuration),
  staging: Schema.optional(PositiveDuration)
})

const Thresholds = Schema.Struct({
  for: Schema.optionalWith(HoldFor, { default: () => Schema.decodeSync(HoldFor)({}) }),
  /** A circuit alerts once it has been open this long (and then held for its `for`). */
  circuitOpenFor: Schema.optionalWith(Duration, { default: () => 3600_000 }),
  /** One fill threshold for every location; without it, each location's retention threshold (as the rule). */
  locationFullPercent: Schema.optional(Schema.Number.pipe(Schema.between(1, 100, { message: () => "must be a percentage from 1 to 100" }))),
  stageMaxWait: Schema.optionalWith(StageMaxWait, { default: () => ({}) }),
  /** How far past its audit cycle a location's oldest verification may be. */
  auditLagGrace: Schema.optionalWith(Duration, { default: () => 24 * 3600_000 })
})

const Section = Schema.Struct({
  /** How often conditions are evaluated and due deliveries tried. */
  interval: Schema.optionalWith(PositiveDuration, { default: () => 30_000 }),
  /** Backoff of a failed delivery: first wait, doubled per failure up to the cap. */
  retry: Schema.optionalWith(Schema.Struct({ initial: PositiveDuration, max: PositiveDuration }), {
    default: () => ({ initial: 10_000, max: 15 * 60_000 })
  }),
  conditions: Schema.optionalWith(Thresholds, { default: () => Schema.decodeSync(Thresholds)({}) }),
  sinks: Schema.Array(Sink).pipe(Schema.minItems(1, { message: () => "list at least one sink (alertmanager, webhook or email)" }))
})

type Section = typeof Section.Type

/** A sink with its secrets read. */
export type SinkConfig =
  | (typeof AlertmanagerSink.Type)
  | (Omit<typeof WebhookSink.Type, "bearerToken"> & { readonly bearerToken: Redacted.Redacted<string> | undefined })
  | (Omit<typeof EmailSink.Type, "password"> & { readonly password: Redacted.Redacted<string> | undefined })

/** The notifier's resolved configuration. */
export interface NotifierConfig extends Omit<Section, "sinks"> {
  readonly sinks: ReadonlyArray<SinkConfig>
}

/** Keys under which a sink holds a secret; a plain value there would put it in the file. */
const secretKeys = ["password", "bearerToken"] as const

const inlineSecrets = (raw: unknown): ReadonlyArray<string> => {
  if (typeof raw !== "object" || raw === null || !Array.isArray((raw as { sinks?: unknown }).sinks)) return []
  return (raw as { sinks: ReadonlyArray<unknown> }).sinks.flatMap((s, i) =>
    typeof s !== "object" || s === null
      ? []
      : secretKeys
        .filter((k) => typeof (s as Record<string, unknown>)[k] === "string")
        .map((k) => `sinks[${i}].${k}: a secret is never written in the configuration; write { env: VARIABLE } or { file: PATH }`)
  )
}

const readSecret = (ref: typeof SecretRef.Type, where: string, baseDir: string, env: NodeJS.ProcessEnv) =>
  Effect.gen(function* () {
    if (ref.env !== undefined) {
      const value = env[ref.env]
      if (value === undefined || value === "") return Either.left(`${where}: the environment variable ${ref.env} is not set`)
      return Either.right(Redacted.make(value))
    }
    const file = path.resolve(baseDir, ref.file!)
    return yield* Effect.promise(() =>
      fs.readFile(file, "utf8").then(
        (text) =>
          text.replace(/\r?\n$/, "") === ""
            ? Either.left(`${where}: the file ${file} is empty`)
            : Either.right(Redacted.make(text.replace(/\r?\n$/, ""))),
        (e: Error) => Either.left(`${where}: the file ${file} cannot be read: ${e.message}`)
      )
    )
  })

/**
 * Decodes the section (`raw`, as the file holds it) and reads its secrets; relative secret files
 * are found from `baseDir` (the configuration file's folder). Every problem names its field under
 * `notifications.`.
 */
export const decode = (
  raw: unknown,
  baseDir: string,
  env: NodeJS.ProcessEnv = process.env
): Effect.Effect<Either.Either<NotifierConfig, ReadonlyArray<string>>> =>
  Effect.gen(function* () {
    const prefix = (p: string) => `notifications.${p}`
    const inline = inlineSecrets(raw)
    if (inline.length > 0) return Either.left(inline.map(prefix))
    const decoded = Schema.decodeUnknownEither(Section, { errors: "all", onExcessProperty: "error" })(raw)
    if (Either.isLeft(decoded)) {
      return Either.left(Topology.formatIssues(decoded.left).map((p) => prefix(p.replace(/^\(top level\)/, "(section)"))))
    }
    const section = decoded.right
    const problems: Array<string> = []
    const seen = new Set<string>()
    section.sinks.forEach((s, i) => {
      if (seen.has(s.name)) problems.push(prefix(`sinks[${i}].name: "${s.name}" names two sinks; each needs its own name`))
      seen.add(s.name)
    })
    if (section.retry.initial > section.retry.max) problems.push(prefix("retry.initial: must not be longer than retry.max"))
    const sinks: Array<SinkConfig> = []
    for (const [i, s] of section.sinks.entries()) {
      if (s.type === "webhook") {
        const token = s.bearerToken === undefined
          ? Either.right(undefined)
          : yield* readSecret(s.bearerToken, prefix(`sinks[${i}].bearerToken`), baseDir, env)
        if (Either.isLeft(token)) problems.push(token.left)
        else sinks.push({ ...s, bearerToken: token.right })
      } else if (s.type === "email") {
        if ((s.username === undefined) !== (s.password === undefined)) {
          problems.push(prefix(`sinks[${i}]: username and password go together`))
        }
        const password = s.password === undefined
          ? Either.right(undefined)
          : yield* readSecret(s.password, prefix(`sinks[${i}].password`), baseDir, env)
        if (Either.isLeft(password)) problems.push(password.left)
        else sinks.push({ ...s, password: password.right })
      } else {
        sinks.push(s)
      }
    }
    if (problems.length > 0) return Either.left(problems)
    return Either.right({ ...section, sinks })
  })
