/**
 * The S3 driver as a location's `driver:` options name it, registered under technology `s3`.
 * Driver options are stored in the ops-db and shown by the API, so credentials are never among
 * them: `accessKeyIdEnv` and `secretAccessKeyEnv` name the environment variables that hold them,
 * else the AWS SDK's default chain applies (AWS_ACCESS_KEY_ID, profiles, instance roles).
 */
import { StorageDriver, StorageDriverRegistry, StorageError, Topology } from "@ccat/core"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import type * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as S3 from "./S3.js"

const MiB = 1024 ** 2
const Text = Schema.String.pipe(Schema.minLength(1, { message: () => "must not be empty" }))
const EnvName = Schema.String.pipe(
  Schema.pattern(/^[A-Za-z_][A-Za-z0-9_]*$/, { message: () => "must be the name of an environment variable" })
)

/** An S3 location's options. */
export const Options = Schema.Struct({
  bucket: Schema.propertySignature(Text).annotations({ missingMessage: () => "an s3 location needs a bucket" }),
  /** Prepended to every key, so several locations can share a bucket (`archive/`). */
  prefix: Schema.optionalWith(Schema.String, { exact: true }),
  /** The server, for S3-compatible stores (`https://s3.example.org`); AWS when omitted. */
  endpoint: Schema.optionalWith(Text, { exact: true }),
  region: Schema.optionalWith(Text, { exact: true }),
  /** Path-style URLs (`endpoint/bucket/key`); default on with an `endpoint`. */
  forcePathStyle: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** Multipart part size, 5 MiB to 5 GiB (S3's limits); default 16 MiB. */
  partSize: Schema.optionalWith(
    Topology.ByteSize.pipe(Schema.filter((n) => (n >= 5 * MiB && n <= 5 * 1024 * MiB) || `S3 parts are 5 MiB to 5 GiB, got ${n} bytes`)),
    { exact: true }
  ),
  /** Parts uploaded at once, 1 to 64; default 4. */
  concurrency: Schema.optionalWith(Schema.Int.pipe(Schema.filter((n) => (n >= 1 && n <= 64) || `must be 1 to 64, got ${n}`)), {
    exact: true
  }),
  /** Send Content-MD5 with every upload request, so the server checks each part; default true. */
  contentMd5: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** Create the bucket if it does not exist; default false. */
  createBucket: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** Keep the checksum as an object tag when an upload began without it; off for servers without tagging. */
  tagChecksums: Schema.optionalWith(Schema.Boolean, { exact: true }),
  /** The environment variables holding the access key id and the secret key, together or not at all. */
  accessKeyIdEnv: Schema.optionalWith(EnvName, { exact: true }),
  secretAccessKeyEnv: Schema.optionalWith(EnvName, { exact: true })
}).pipe(
  Schema.filter((o) =>
    (o.accessKeyIdEnv === undefined) === (o.secretAccessKeyEnv === undefined) ||
    {
      path: [o.accessKeyIdEnv === undefined ? "accessKeyIdEnv" : "secretAccessKeyEnv"],
      message: "accessKeyIdEnv and secretAccessKeyEnv go together"
    }
  )
)
/** An S3 location's options, decoded. */
export type Options = typeof Options.Type

const unusable = (name: string, description: string) =>
  new StorageError.StorageError({ reason: "Unsupported", driver: "s3", method: "make", description: `${name}: ${description}` })

/**
 * The driver's options from a location's decoded ones; the credentials are read from the named
 * environment variables now, and a variable that is not set is an error naming it.
 */
export const toOptions = (o: Options, name: string): Effect.Effect<S3.Options, StorageError.StorageError> =>
  Effect.suspend(() => {
    let credentials: S3.Options["credentials"]
    if (o.accessKeyIdEnv !== undefined && o.secretAccessKeyEnv !== undefined) {
      const accessKeyId = process.env[o.accessKeyIdEnv]
      const secretAccessKey = process.env[o.secretAccessKeyEnv]
      if (accessKeyId === undefined || secretAccessKey === undefined) {
        return Effect.fail(
          unusable(name, `the environment variables ${o.accessKeyIdEnv} and ${o.secretAccessKeyEnv} must hold the S3 credentials`)
        )
      }
      credentials = { accessKeyId, secretAccessKey }
    }
    return Effect.succeed({
      bucket: o.bucket,
      name,
      prefix: o.prefix,
      endpoint: o.endpoint,
      region: o.region,
      credentials,
      forcePathStyle: o.forcePathStyle,
      partSize: o.partSize,
      concurrency: o.concurrency,
      contentMd5: o.contentMd5,
      createBucket: o.createBucket,
      tagChecksums: o.tagChecksums
    })
  })

/** The S3 driver, registered as technology `s3`. */
export const driver: StorageDriverRegistry.Driver = StorageDriverRegistry.define({
  technology: "s3",
  options: Options,
  make: (o, location) => Effect.flatMap(toOptions(o, `s3:${location.name}`), S3.make)
})

/** An S3 storage from options written as a location's (a YAML or JSON value), decoded by `Options`. */
export const layer = (input: unknown): Layer.Layer<StorageDriver.StorageDriver, StorageError.StorageError | ParseResult.ParseError> =>
  Layer.scoped(
    StorageDriver.StorageDriver,
    Schema.decodeUnknown(Options, { onExcessProperty: "error" })(input).pipe(
      Effect.flatMap((o) => toOptions(o, "s3")),
      Effect.flatMap(S3.make)
    )
  )
