/**
 * The S3 driver's options as a program passes them (a location's configuration is decoded into
 * these by `S3Location`): where the bucket is, how uploads are cut, and the injected client.
 */
import type { S3Client } from "@aws-sdk/client-s3"
import type { StorageDriver } from "@ccat/core"

/** Where the bucket is and how uploads are cut. */
export interface Options {
  readonly bucket: string
  /** Prepended to every key, so several locations can share a bucket (`"chile-buffer/"`). */
  readonly prefix?: string | undefined
  /** An S3Client configured by the caller; when given, endpoint/region/credentials are ignored. */
  readonly client?: S3Client | undefined
  readonly endpoint?: string | undefined
  readonly region?: string | undefined
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string } | undefined
  /** Path-style URLs (`endpoint/bucket/key`). Default: true when an endpoint is given. */
  readonly forcePathStyle?: boolean | undefined
  /** Multipart part size in bytes (min 5 MiB). Default 16 MiB; raised for huge objects to stay under 10,000 parts. */
  readonly partSize?: number | undefined
  /** Parts uploaded at once. Default 4. */
  readonly concurrency?: number | undefined
  /** Send Content-MD5 with every upload request so the server checks each part. Default true. */
  readonly contentMd5?: boolean | undefined
  /**
   * Keep our checksum as an object tag when a multipart upload began without it (metadata is
   * fixed when an upload starts). Default true. Turn off for servers without object tagging:
   * some emulators treat `PUT ?tagging` as a PutObject and would overwrite the object (the driver
   * detects that and fails with Corrupt, but the object is gone by then).
   */
  readonly tagChecksums?: boolean | undefined
  /** Create the bucket if it does not exist. Default false. */
  readonly createBucket?: boolean | undefined
  /** Driver name in errors and spans. Default "s3". */
  readonly name?: string | undefined
  readonly retry?: StorageDriver.RetryPolicy | undefined
}
