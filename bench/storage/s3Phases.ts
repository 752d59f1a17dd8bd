/**
 * The storage benchmark's S3 phases: `S3.put` (with and without Content-MD5) and `S3.get` of one
 * large object beside the SDK's own `Upload` and `GetObject`, and a small object's put for memory,
 * against a throwaway radosgw or the endpoint `CCAT_S3_ENDPOINT` names.
 */
import { GetObjectCommand, S3Client } from "@aws-sdk/client-s3"
import { Upload } from "@aws-sdk/lib-storage"
import type { StorageDriver } from "@ccat/core"
import { S3 } from "@ccat/storage-drivers"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Scope from "effect/Scope"
import * as Stream from "effect/Stream"
import * as fs from "node:fs"
import type { Readable } from "node:stream"
import * as Radosgw from "../../scripts/radosgw.js"
import { drain, fileStream, firstPuts, run, warm } from "./io.js"
import { type BenchContext, inNode, measure, type Phase, ratio, report } from "./measure.js"
import { MiB, size, small } from "./settings.js"

/** The S3 phases, with drivers and an SDK client made in this process; `close` releases them. */
export const s3Phases = async (context: BenchContext) => {
  const { source, smallSource } = context
  const target = context.s3!
  const client = new S3Client({ ...target, forcePathStyle: true })
  const options: S3.Options = { ...target, bucket: "ccat-bench", createBucket: true, partSize: 16 * MiB, concurrency: 4 }
  const scope = await run(Scope.make())
  const driver: StorageDriver.Service = await run(Scope.extend(S3.make(options), scope))
  const fast: StorageDriver.Service = await run(Scope.extend(S3.make({ ...options, contentMd5: false }), scope))
  const firstPut = (d: StorageDriver.Service) => firstPuts(d, smallSource)
  const own = (what: string, bytes: number, f: () => Promise<unknown>, warmUp?: () => Promise<unknown>): Phase =>
    inNode(what, bytes, f, () => warm(source), warmUp)
  const phases: ReadonlyArray<Phase> = [
    own("s3 write: SDK Upload (lib-storage)", size, () =>
      new Upload({
        client,
        params: { Bucket: "ccat-bench", Key: "sdk.bin", Body: fs.createReadStream(source) },
        queueSize: 4,
        partSize: 16 * MiB
      }).done()),
    own(
      "s3 write: S3.put (sha256 + Content-MD5)",
      size,
      () => run(driver.put("ours.bin", fileStream(source), { overwrite: true })),
      firstPut(driver)
    ),
    own(
      "s3 write: S3.put (sha256, no Content-MD5)",
      size,
      () => run(fast.put("ours-fast.bin", fileStream(source), { overwrite: true })),
      firstPut(fast)
    ),
    own("s3 read: SDK GetObject", size, async () => {
      const res = await client.send(new GetObjectCommand({ Bucket: "ccat-bench", Key: "sdk.bin" }))
      await drain(res.Body as Readable)
    }),
    own("s3 read: S3.get", size, () => run(Stream.runDrain(driver.get("ours.bin")))),
    own(
      `s3 write: S3.put of ${small / MiB} MiB`,
      small,
      () => run(driver.put("small.bin", fileStream(smallSource), { overwrite: true })),
      firstPut(driver)
    )
  ]
  const close = async () => {
    client.destroy()
    await run(Scope.close(scope, Exit.void))
  }
  return { driver, phases, close }
}

/** Starts a throwaway radosgw unless `CCAT_S3_ENDPOINT` names one, then runs and reports the S3 phases. */
export const benchS3 = async (context: BenchContext) => {
  let gw: Radosgw.Radosgw | undefined
  const endpoint = process.env.CCAT_S3_ENDPOINT
  const creds = endpoint === undefined
    ? undefined
    : { accessKeyId: process.env.CCAT_S3_ACCESS_KEY_ID ?? "", secretAccessKey: process.env.CCAT_S3_SECRET_ACCESS_KEY ?? "" }
  if (endpoint === undefined) {
    process.stdout.write("\nstarting a throwaway radosgw ... ")
    gw = await Radosgw.start({ memoryBytes: 4 * size + 2 * 1024 * MiB })
    // everything the OSD holds is in this machine's memory: keep at most three objects at once
    console.log(`${gw.server} at ${gw.endpoint}`)
  }
  try {
    const s3 = {
      endpoint: endpoint ?? gw!.endpoint,
      region: "us-east-1",
      credentials: creds ?? { accessKeyId: gw!.accessKeyId, secretAccessKey: gw!.secretAccessKey }
    }
    console.log(`s3: ${size} bytes to ${s3.endpoint}, 16 MiB parts, 4 in parallel on both sides`)
    const withS3 = { ...context, s3 }
    const { driver, phases, close } = await s3Phases(withS3)
    const objects = ["sdk.bin", "ours.bin", "ours-fast.bin", "small.bin", "warm-up.bin"]
    // free the memory-backed OSD between rounds
    await measure(phases, withS3, () => run(Effect.forEach(objects, (k) => driver.delete(k))))
    report("s3")
    await run(Effect.forEach(objects, (k) => driver.delete(k)))
    await close()
    ratio("s3 write: S3.put (sha256 + Content-MD5)", "s3 write: SDK Upload (lib-storage)")
    ratio("s3 write: S3.put (sha256, no Content-MD5)", "s3 write: SDK Upload (lib-storage)")
    ratio("s3 read: S3.get", "s3 read: SDK GetObject")
  } finally {
    if (gw !== undefined) await Radosgw.stop(gw.dir)
  }
}
