/**
 * The remote topology of the end-to-end tests: Chile's buffer sends over rsync through a real
 * sshd on loopback (checked host key, the client key the sshd authorises), Cologne keeps two
 * LONG_TERM_ARCHIVE copies in two buckets of a real radosgw. The services are started once per
 * test file and stopped at its end; the topology is what an operator would write in the config.
 */
import { Topology } from "@ccat/core"
import { GetObjectCommand, HeadObjectCommand, S3Client } from "@aws-sdk/client-s3"
import * as Effect from "effect/Effect"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Radosgw from "../../../../scripts/radosgw.js"
import * as Sshd from "../../../../scripts/sshd.js"

/** The environment variables the archives' driver options name for their credentials. */
export const credentialEnv = { accessKeyIdEnv: "CCAT_TEST_S3_ACCESS_KEY_ID", secretAccessKeyEnv: "CCAT_TEST_S3_SECRET_ACCESS_KEY" } as const

/** The real services of the remote topology. */
export interface Services {
  readonly sshd: Sshd.Sshd
  /** A known_hosts file holding the sshd's host key, so ssh checks it as in production. */
  readonly knownHosts: string
  readonly s3: Radosgw.Radosgw
}

/** Starts sshd and radosgw (radosgw must be installed: the test is about a real S3 server). */
export const startServices = async (): Promise<Services> => {
  if (!Radosgw.isInstalled()) {
    throw new Error("radosgw is not installed: apt-get install -y --no-install-recommends radosgw ceph-mon ceph-osd (see .ci/run)")
  }
  const started = Date.now()
  const [sshd, s3] = await Promise.all([Sshd.start(), Radosgw.start()])
  const hostKey = (await fs.readFile(path.join(sshd.dir, "host_ed25519.pub"), "utf8")).trim().split(/\s+/).slice(0, 2).join(" ")
  const knownHosts = path.join(sshd.dir, "known_hosts")
  await fs.writeFile(knownHosts, `[${sshd.host}]:${sshd.port} ${hostKey}\n`)
  process.env[credentialEnv.accessKeyIdEnv] = s3.accessKeyId
  process.env[credentialEnv.secretAccessKeyEnv] = s3.secretAccessKey
  console.log(
    `[end-to-end remote] S3 server: ${s3.server} at ${s3.endpoint}; sshd ${sshd.host}:${sshd.port}; started in ${
      ((Date.now() - started) / 1000).toFixed(1)
    } s`
  )
  return { sshd, knownHosts, s3 }
}

/** Stops what `startServices` started. */
export const stopServices = async (services: Services | undefined): Promise<void> => {
  if (services === undefined) return
  await Promise.all([services.sshd.stop(), Radosgw.stop(services.s3.dir)])
}

/** The route's rsync options: the test sshd's port, user, key and known_hosts, host keys checked. */
export const rsyncOptions = (services: Services) => ({
  host: services.sshd.host,
  port: services.sshd.port,
  user: services.sshd.user,
  identityFile: services.sshd.identityFile,
  sshOptions: ["StrictHostKeyChecking=yes", `UserKnownHostsFile=${services.knownHosts}`, "LogLevel=ERROR"],
  ioTimeoutSeconds: 30
})

/** The two archives' buckets, fresh per test so tests never see each other's objects. */
export interface Buckets {
  readonly a: string
  readonly b: string
}

/** Fresh bucket names. */
export const freshBuckets = (): Buckets => {
  const s = randomBytes(4).toString("hex")
  return { a: `ccat-archive-a-${s}`, b: `ccat-archive-b-${s}` }
}

/** The key prefix both archives use inside their bucket. */
export const archivePrefix = "raw/"

/**
 * Chile (SOURCE, BUFFER on disk) → rsync over ssh → Cologne (BUFFER and PROCESSING on disk, two
 * S3 archives on radosgw, two archive copies required), as a configuration file would say it.
 */
export const remoteTopology = (
  dir: string,
  services: Services,
  buckets: Buckets,
  policy: Record<string, unknown> = {}
): Topology.Topology => {
  const folder = (name: string) => path.join(dir, "locations", name)
  const archive = (name: string, bucket: string, priority: number) => ({
    name,
    type: "LONG_TERM_ARCHIVE",
    technology: "s3",
    priority,
    driver: {
      bucket,
      prefix: archivePrefix,
      endpoint: services.s3.endpoint,
      region: services.s3.region,
      createBucket: true,
      ...credentialEnv
    },
    retention: { keepForever: true }
  })
  const decoded = Topology.decode({
    sites: [
      {
        name: "chile",
        shortName: "cl",
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
          archive("cologne-s3-a", buckets.a, 0),
          archive("cologne-s3-b", buckets.b, 1),
          { name: "cologne-processing", type: "PROCESSING", technology: "disk", driver: { root: folder("cologne-processing") } }
        ]
      }
    ],
    routes: [{ from: "chile", to: "cologne", adapter: "rsync", options: rsyncOptions(services), maxConcurrentTransfers: 3 }],
    policy: { maxPackageBytes: "1 MB", bundleTargetBytes: "4 MB", bundleMaxWait: "1 seconds", archiveCopies: 2, ...policy }
  })
  if (decoded._tag === "Left") throw new Error(decoded.left.message)
  return decoded.right
}

const client = (services: Services) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      new S3Client({
        endpoint: services.s3.endpoint,
        region: services.s3.region,
        forcePathStyle: true,
        credentials: { accessKeyId: services.s3.accessKeyId, secretAccessKey: services.s3.secretAccessKey }
      })
    ),
    (c) => Effect.sync(() => c.destroy())
  )

/** Downloads an archive object to a file with a plain S3 client, to check its bytes apart from our driver. */
export const download = (services: Services, bucket: string, key: string, file: string) =>
  Effect.scoped(
    Effect.flatMap(client(services), (c) =>
      Effect.promise(async () => {
        const res = await c.send(new GetObjectCommand({ Bucket: bucket, Key: `${archivePrefix}${key}` }))
        await fs.writeFile(file, await res.Body!.transformToByteArray())
      }))
  )

/** Our checksum as radosgw keeps it with an object (metadata `ccat-checksum`), read with a plain S3 client. */
export const storedChecksum = (services: Services, bucket: string, key: string) =>
  Effect.scoped(
    Effect.flatMap(
      client(services),
      (c) =>
        Effect.promise(() => c.send(new HeadObjectCommand({ Bucket: bucket, Key: `${archivePrefix}${key}` }))).pipe(
          Effect.map((head) => ({ checksum: head.Metadata?.["ccat-checksum"], size: head.ContentLength }))
        )
    )
  )
