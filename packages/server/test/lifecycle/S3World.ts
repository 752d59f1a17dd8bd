/**
 * A real S3 server for lifecycle tests (a throwaway radosgw, scripts/radosgw.ts), its credentials
 * in the environment variables a location's driver options name, a plain SDK client beside the
 * platform's driver, and bytes rotted in a bucket behind the platform's back.
 */
import { GetObjectCommand, HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3"
import * as Effect from "effect/Effect"
import * as Radosgw from "../../../../scripts/radosgw.js"

/** Which environment variables hold the S3 credentials, as a location's `driver` names them. */
export interface CredentialEnv {
  readonly accessKeyIdEnv: string
  readonly secretAccessKeyEnv: string
}

/** A radosgw for the scope, its credentials exported under `env`'s names. */
export const radosgw = (env: CredentialEnv) =>
  Effect.acquireRelease(
    Effect.promise(async () => {
      if (!Radosgw.isInstalled()) {
        throw new Error("radosgw is not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd (see .ci/run)")
      }
      const s3 = await Radosgw.start({ memoryBytes: 1024 ** 3 })
      process.env[env.accessKeyIdEnv] = s3.accessKeyId
      process.env[env.secretAccessKeyEnv] = s3.secretAccessKey
      return s3
    }),
    (s3) => Effect.promise(() => Radosgw.stop(s3.dir))
  )

/** A plain SDK client of the server, for the scope. */
export const clientOf = (s3: Radosgw.Radosgw) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint: s3.endpoint,
        region: s3.region,
        forcePathStyle: true,
        credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey }
      })
    ),
    (c) => Effect.sync(() => c.destroy())
  )

/**
 * Flips one byte of an object (at `fraction` of its length) and writes it back with its metadata
 * kept, so the checksum stored with it still claims the old bytes: only reading them tells.
 */
export const rotInBucket = (client: S3Client, bucket: string, key: string, fraction = 0.5) =>
  Effect.promise(async () => {
    const head = await client.send(new HeadObjectCommand({ Bucket: bucket, Key: key }))
    const bytes = await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body!.transformToByteArray()
    bytes[Math.floor(bytes.length * fraction)] ^= 0xff
    await client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes, Metadata: head.Metadata }))
  })
