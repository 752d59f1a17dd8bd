/**
 * The whole lifecycle on real remote components (issue 6, "Done when"): real PostgreSQL, real
 * disks, rsync over a real sshd on loopback from Chile's buffer to Cologne's, and two archive
 * copies in a real S3 server (Ceph radosgw). Files go from filing to ARCHIVED to STAGED to
 * cleaned, every staged file byte-identical to what the instrument filed; a byte flipped in
 * transit is caught, the bundle sent again, and the bad bytes never reach an archive.
 */
import { Topology, TransferAdapter } from "@ccat/core"
import { RsyncRouteOptions, RsyncTransfer } from "@ccat/transfer-rsync"
import { afterAll, assert, beforeAll, describe, it } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { parse as parseYaml } from "yaml"
import * as Adapters from "../../src/lifecycle/Adapters.js"
import * as Routes from "../../src/lifecycle/Routes.js"
import * as Stages from "../../src/lifecycle/Stages.js"
import * as Staging from "../../src/lifecycle/Staging.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import {
  download,
  freshBuckets,
  remoteTopology,
  rsyncOptions,
  type Services,
  startServices,
  stopServices,
  storedChecksum
} from "./EndToEndRemoteWorld.js"
import { fileObservation, layer, observatory, policyLayer, requestStaging, runUntil, syncTopology, tempDir } from "./LifecycleWorld.js"
import { gnuTar, sha256File } from "./support.js"

const count = (query: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<{ n: number }>(query)).pipe(Effect.map((r) => r[0].n))

/** Both sites run every stage, as a worker per site does in production. */
const everySite = [["chile", Stages.all], ["cologne", Stages.all]] as const

/** Every package completed (ARCHIVED), and there is at least one. */
const allArchived = Effect.zipWith(
  count(`select count(*)::int as n from raw_data_package where status <> 'completed'`),
  count(`select count(*)::int as n from raw_data_package`),
  (open, all) => open === 0 && all > 0
)

/** Archive copies: where, which bucket (from the location's driver options), key and checksums. */
const archiveCopies = Effect.flatMap(
  SqlClient.SqlClient,
  (sql) => sql<{ location: string; bucket: string; path: string; checksum: string; packageChecksum: string; sizeBytes: number }>`
    select l.name as location, l.driver_config->>'bucket' as bucket, c.path, c.checksum, p.checksum as package_checksum, c.size_bytes
    from physical_copy c join data_location l on l.id = c.data_location_id join raw_data_package p on p.id = c.raw_data_package_id
    where l.type = 'LONG_TERM_ARCHIVE' and c.status = 'PRESENT' and c.verified_at is not null
    order by c.path, l.name`
)

/** Short waits so retries happen within the test; production defaults are minutes. */
const quickRetries = Layer.succeed(Routes.TransferPolicy, {
  backoffBaseMs: 300,
  backoffCapMs: 1_000,
  breakerCoolDownMs: 2_000,
  maxAttempts: 6
})

let services: Services | undefined
beforeAll(async () => {
  services = await startServices()
}, 240_000)
afterAll(() => stopServices(services), 120_000)

// Each case has its own ops-db, folders and buckets on the shared sshd and radosgw, and spends
// most of its time waiting on the workers, so the cases run side by side.
describe.concurrent("the whole lifecycle over rsync on real ssh into a real S3 archive", () => {
  it.scopedLive(
    "files → packaged → bundled → rsync over ssh → verified → two S3 archive copies (ARCHIVED) → STAGED (byte-identical) → cleaned",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const buckets = freshBuckets()
        const topology = remoteTopology(dir, services!, buckets, { stagingLifetime: "3 seconds" })
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        // The route row carries the configured limit, so workers (and the API) read it from the ops-db.
        const [routeRow] = yield* sql<{ options: Record<string, unknown> }>`select options from route`
        assert.strictEqual(routeRow.options.maxConcurrentTransfers, 3)
        assert.strictEqual((yield* Routes.leaving("chile"))[0].maxConcurrentTransfers, 3)
        const obs = yield* observatory
        const first = yield* fileObservation(topology, obs, [
          { path: "det/a.fits", bytes: 400_000 },
          { path: "det/b.fits", bytes: 700_000 },
          { path: "hk/house.dat", bytes: 3_000, module: 1 }
        ])
        const second = yield* fileObservation(topology, obs, [{ path: "scan/big.raw", bytes: 1_300_000 }])
        const filed = [...first.files, ...second.files]
        const env = Layer.merge(policyLayer(topology), quickRetries)

        yield* runUntil(everySite, allArchived, 180_000).pipe(Effect.provide(env))

        // Every bundle went over rsync through the sshd, verified at the destination.
        const attempts = yield* sql<{ adapter: string; status: string; bytesTransferred: number; sizeBytes: number }>`
        select t.adapter, t.status::text as status, t.bytes_transferred, d.size_bytes
        from data_transfer t join data_transfer_package d on d.id = t.data_transfer_package_id`
        assert.isAtLeast(attempts.length, 1)
        for (const a of attempts) {
          assert.strictEqual(a.adapter, "rsync")
          assert.strictEqual(a.status, "completed")
          assert.strictEqual(Number(a.bytesTransferred), Number(a.sizeBytes))
        }

        // Each package has two verified copies, one per bucket, and radosgw keeps our checksum with each object.
        const packages = yield* count(`select count(*)::int as n from raw_data_package`)
        const archived = yield* archiveCopies
        assert.strictEqual(archived.length, 2 * packages)
        for (const a of archived) {
          assert.strictEqual(a.checksum, a.packageChecksum)
          assert.include([buckets.a, buckets.b], a.bucket)
          const stored = yield* storedChecksum(services!, a.bucket, a.path)
          assert.strictEqual(stored.checksum, a.packageChecksum, `${a.location}/${a.path} carries ccat-checksum`)
          assert.strictEqual(stored.size, Number(a.sizeBytes))
        }
        assert.deepStrictEqual(new Set(archived.map((a) => a.bucket)), new Set([buckets.a, buckets.b]))

        // A scientist stages both observations from the S3 archives: every file has the instrument's checksum.
        const req = yield* requestStaging("sci-remote", [first.eou.id, second.eou.id])
        yield* runUntil(everySite, req.completed, 90_000).pipe(Effect.provide(env))
        const paths = yield* Staging.stagedPaths(req.id)
        assert.strictEqual(paths.length, filed.length)
        for (const f of filed) {
          const staged = paths.find((p) => p.endsWith(f.relativePath))
          assert.isDefined(staged, `${f.relativePath} is staged`)
          assert.strictEqual(yield* Effect.promise(() => sha256File(staged!)), f.checksum, `${f.relativePath} staged byte-identical`)
        }

        // Cleanup: SOURCE files, both buffers and the expired staged files go; both archives keep everything.
        const leftovers = count(`
        select count(*)::int as n from physical_copy c join data_location l on l.id = c.data_location_id
        where l.type in ('SOURCE', 'BUFFER', 'PROCESSING') and c.status <> 'DELETED'`)
        yield* runUntil(everySite, Effect.map(leftovers, (n) => n === 0), 120_000).pipe(Effect.provide(env))
        for (const f of filed) {
          const gone = yield* Effect.promise(() => fs.stat(f.absolutePath).then(() => false, () => true))
          assert.isTrue(gone, `${f.relativePath} was deleted from SOURCE`)
        }
        assert.deepStrictEqual(yield* archiveCopies, archived)
        for (const a of archived) assert.strictEqual((yield* storedChecksum(services!, a.bucket, a.path)).checksum, a.packageChecksum)
        // No copy was deleted before its package was ARCHIVED (invariant 1), as the event log shows.
        const early = yield* count(`
        select count(*)::int as n from event_log d
        join physical_copy c on c.id = d.entity_id and d.entity_kind = 'PhysicalCopy' and d.to_state = 'DELETION_IN_PROGRESS'
        join raw_data_package p on p.id = c.raw_data_package_id
        where not exists (select 1 from event_log a where a.entity_kind = 'RawDataPackage' and a.entity_id = p.id
                          and a.to_state = 'completed' and a.id < d.id)`)
        assert.strictEqual(early, 0)
        const deletions = yield* count(
          `select count(*)::int as n from event_log where entity_kind = 'PhysicalCopy' and to_state = 'DELETION_IN_PROGRESS'`
        )
        assert.isAbove(deletions, 0)
      }).pipe(Effect.provide(layer)),
    420_000
  )

  it.scopedLive(
    "a byte flipped in transit over rsync is caught (by the adapter, then at arrival), the bundle sent again, never archived",
    () =>
      Effect.gen(function* () {
        const dir = yield* tempDir
        const buckets = freshBuckets()
        const topology = remoteTopology(dir, services!, buckets)
        yield* syncTopology(topology)
        const sql = yield* SqlClient.SqlClient
        const obs = yield* observatory
        // One package, so one bundle and one line of attempts.
        const { files } = yield* fileObservation(topology, obs, [{ path: "det/a.fits", bytes: 300_000 }])
        // Real rsync over the real sshd; the fault is injected where the wire would do it, in the
        // bytes that land at the destination. Delivery 1: flipped before the adapter's own check.
        // Delivery 2: flipped after it (as a disk or a relay would), so only arrival can see it.
        let delivery = 0
        const flip = (file: string) =>
          Effect.promise(async () => {
            const bytes = await fs.readFile(file)
            bytes[Math.floor(bytes.length / 2)] ^= 0x10
            await fs.writeFile(file, bytes)
          })
        const destinationPath = (request: TransferAdapter.Request) => request.destination.path
        const faulty = (): TransferAdapter.Service => {
          const real = RsyncTransfer.minimal()
          const service = TransferAdapter.make(
            {
              ...real,
              copy: (request, report) =>
                real.copy(request, report).pipe(Effect.tap(() => (delivery === 0 ? flip(destinationPath(request)) : Effect.void)))
            },
            { retry: TransferAdapter.noRetry }
          )
          return {
            ...service,
            transfer: (request, call) =>
              service.transfer(request, call).pipe(
                Effect.tap(() => {
                  delivery++
                  return delivery === 2 ? flip(destinationPath(request)) : Effect.void
                }),
                Effect.tapError(() => Effect.sync(() => delivery++))
              )
          }
        }
        const env = Layer.mergeAll(
          policyLayer(topology),
          quickRetries,
          Adapters.layerWith([{ ...RsyncRouteOptions.adapter, make: faulty }])
        )
        yield* runUntil(everySite, allArchived, 180_000).pipe(Effect.provide(env))

        const attempts = yield* sql<{ attempt: number; status: string; errorReason: string | null; retryable: boolean | null }>`
        select attempt, status::text as status, error_reason, retryable from data_transfer order by attempt`
        assert.deepStrictEqual(
          attempts.map((a) => [a.attempt, a.status, a.errorReason]),
          [[1, "failed", "ChecksumMismatch"], [2, "completed", null], [3, "completed", null]]
        )
        assert.isTrue(attempts[0].retryable)
        // The second delivery was found corrupt at arrival: its copy recorded CORRUPT by the unpack and deleted, nothing unpacked from it.
        const corrupt = yield* sql<{ id: string }>`
        select entity_id as id from event_log where entity_kind = 'PhysicalCopy' and to_state = 'CORRUPT' and details->>'by' = 'unpack'`
        assert.strictEqual(corrupt.length, 1)
        const [after] = yield* sql<{ status: string }>`select status::text as status from physical_copy where id = ${corrupt[0].id}`
        assert.strictEqual(after.status, "DELETED")
        const [bundle] = yield* sql<{ status: string }>`select status::text as status from data_transfer_package`
        assert.strictEqual(bundle.status, "completed")
        // Only the good bytes were archived: every archive object has the package's checksum, read back from radosgw.
        const archived = yield* archiveCopies
        const packages = yield* count(`select count(*)::int as n from raw_data_package`)
        assert.strictEqual(archived.length, 2 * packages)
        for (const a of archived) {
          assert.strictEqual(a.checksum, a.packageChecksum)
          assert.strictEqual((yield* storedChecksum(services!, a.bucket, a.path)).checksum, a.packageChecksum)
        }
        const bad = yield* count(`
        select count(*)::int as n from physical_copy c join raw_data_package p on p.id = c.raw_data_package_id
        where c.checksum <> p.checksum`)
        assert.strictEqual(bad, 0)
        // Each archived object, fetched from radosgw and unpacked with GNU tar, holds the instrument's bytes.
        assert.strictEqual(packages, 1)
        for (const [i, a] of archived.entries()) {
          const tarFile = path.join(dir, `archived-${i}.tar`)
          const out = path.join(dir, `unpacked-${i}`)
          yield* download(services!, a.bucket, a.path, tarFile)
          assert.strictEqual(yield* Effect.promise(() => sha256File(tarFile)), a.packageChecksum)
          yield* Effect.promise(() => fs.mkdir(out).then(() => gnuTar(["-xf", tarFile, "-C", out])))
          assert.strictEqual(yield* Effect.promise(() => sha256File(path.join(out, files[0].relativePath))), files[0].checksum)
        }
      }).pipe(Effect.provide(layer)),
    300_000
  )

  it.scoped("the operator guide's example (docs/lifecycle.md) is a valid topology with the fields this test runs with, and its S3 archives open", () =>
    Effect.gen(function* () {
      const doc = yield* Effect.promise(() => fs.readFile(new URL("../../../../docs/lifecycle.md", import.meta.url), "utf8"))
      const section = doc.slice(doc.indexOf("## Running with rsync over ssh and S3 archives"))
      const block = /```yaml\n([\s\S]*?)```/.exec(section)
      assert.isNotNull(block, "the section has a yaml example")
      const decoded = Topology.decode(parseYaml(block![1]))
      assert.strictEqual(decoded._tag, "Right", decoded._tag === "Left" ? decoded.left.message : "")
      if (decoded._tag === "Left") return
      const topology = decoded.right
      const tested = remoteTopology("/tmp", services!, freshBuckets())
      const [route] = topology.routes
      assert.strictEqual(route.adapter, "rsync")
      assert.deepStrictEqual(Object.keys(route.options).sort(), Object.keys(rsyncOptions(services!)).sort())
      assert.strictEqual(topology.policy.archiveCopies, tested.policy.archiveCopies)
      const archives = topology.sites.flatMap((site) => site.locations).filter((l) => l.type === "LONG_TERM_ARCHIVE")
      const testedArchive = tested.sites.flatMap((site) => site.locations).find((l) => l.type === "LONG_TERM_ARCHIVE")!
      assert.strictEqual(archives.length, 2)
      // The test's own driver options, less createBucket (an operator creates buckets with their own tools).
      const testedKeys = Object.keys(testedArchive.driver).filter((k) => k !== "createBucket").sort()
      for (const a of archives) {
        assert.strictEqual(a.technology, "s3")
        assert.deepStrictEqual(Object.keys(a.driver).sort(), testedKeys)
      }
      // The storages open the example's archives once the named variables hold credentials, and
      // refuse a secret written into the driver options, which the ops-db would store.
      const env = archives[0].driver as Record<string, string>
      process.env[env.accessKeyIdEnv] = "AKIAEXAMPLE"
      process.env[env.secretAccessKeyEnv] = "example-secret"
      const storages = yield* Storages.make()
      for (const a of archives) {
        const storage = yield* storages.of({ id: a.name, name: a.name, technology: a.technology, driverConfig: a.driver })
        assert.strictEqual(storage.name, `s3:${a.name}`)
      }
      const refused = yield* storages
        .of({ id: "leaky", name: "leaky", technology: "s3", driverConfig: { bucket: "b", accessKeyId: "AKIA", secretAccessKey: "s" } })
        .pipe(Effect.flip)
      assert.strictEqual(refused.reason, "Unsupported")
      assert.include(refused.message, "would store a secret in the ops-db")
      const unset = yield* storages
        .of({
          id: "unset",
          name: "unset",
          technology: "s3",
          driverConfig: { bucket: "b", accessKeyIdEnv: "CCAT_UNSET_ID", secretAccessKeyEnv: "CCAT_UNSET_SECRET" }
        })
        .pipe(Effect.flip)
      assert.include(unset.message, "CCAT_UNSET_ID and CCAT_UNSET_SECRET must hold the S3 credentials")
    }))
})
