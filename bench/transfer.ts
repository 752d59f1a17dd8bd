/**
 * Benchmark: the rsync transfer adapter against running rsync directly, on the same data in the
 * same run, over a real ssh connection (a throwaway sshd on loopback, as in the tests).
 *
 *   npx tsx bench/transfer.ts            # 2 GiB, 3 rounds
 *   BENCH_BYTES=536870912 BENCH_ROUNDS=1 npx tsx bench/transfer.ts
 *
 * Each round runs, in rotating order, with the destination removed before each run:
 *   rsync         the exact argv the adapter runs, spawned directly
 *   adapter       RsyncTransfer with verify: false (same work as rsync: wrapper overhead only)
 *   rsync+sha256  rsync, then `openssl dgst -sha256` of source and destination in parallel
 *   adapter+verify the full service: copy, then our SHA-256 of both ends (like-for-like with the line above)
 * and prints median times, ratios (target: adapter within 5% of rsync) and the progress stream
 * of one long transfer.
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { RsyncTransfer } from "@ccat/transfer-rsync"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import { spawn } from "node:child_process"
import { randomBytes } from "node:crypto"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as Sshd from "../scripts/sshd.js"

const bytes = Number(process.env.BENCH_BYTES ?? 2 * 1024 * 1024 * 1024)
const rounds = Number(process.env.BENCH_ROUNDS ?? 3)

const sh = (cmd: string, args: ReadonlyArray<string>) =>
  new Promise<void>((resolve, reject) => {
    const p = spawn(cmd, [...args], { stdio: ["ignore", "ignore", "inherit"] })
    p.on("error", reject)
    p.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}`))))
  })

/** Incompressible data, written fast: a random block stamped per block (the test kit does the same). */
const writeRandomFile = async (file: string, size: number) => {
  const block = randomBytes(4 * 1024 * 1024)
  const handle = await fs.open(file, "w")
  try {
    for (let off = 0, i = 0; off < size; off += block.length, i++) {
      block.writeUInt32LE(i, 0)
      block.writeUInt32LE(Math.floor(Math.random() * 0xffffffff), 4)
      await handle.write(block.subarray(0, Math.min(block.length, size - off)))
    }
  } finally {
    await handle.close()
  }
}

const timed = async (f: () => Promise<unknown>) => {
  const t = process.hrtime.bigint()
  await f()
  return Number(process.hrtime.bigint() - t) / 1e6
}

const median = (xs: ReadonlyArray<number>) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}

const main = async () => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-bench-transfer-"))
  const sshd = await Sshd.start()
  try {
    const src = path.join(dir, "src.bin")
    const dst = path.join(dir, "dst", "dst.bin")
    console.log(`writing ${bytes} bytes of random data to ${src} ...`)
    await writeRandomFile(src, bytes)
    const request: TransferAdapter.Request = {
      source: TransferEndpoint.local(src),
      destination: TransferEndpoint.ssh({
        host: sshd.host,
        port: sshd.port,
        user: sshd.user,
        identityFile: sshd.identityFile,
        sshOptions: sshd.sshOptions,
        path: dst
      }),
      kind: "file"
    }
    const argv = RsyncTransfer.command(request)
    const plain = RsyncTransfer.make({ verify: false, retry: TransferAdapter.noRetry })
    const full = RsyncTransfer.make({ retry: TransferAdapter.noRetry })
    console.log(`rsync command (also what the adapter runs):\n  ${argv.map((a) => (/[\s']/.test(a) ? `'${a}'` : a)).join(" ")}\n`)

    const variants: Record<string, () => Promise<unknown>> = {
      rsync: () => sh(argv[0]!, argv.slice(1)),
      adapter: () => Effect.runPromise(plain.transfer(request)),
      "rsync+sha256": async () => {
        await sh(argv[0]!, argv.slice(1))
        await Promise.all([sh("openssl", ["dgst", "-sha256", "-r", src]), sh("openssl", ["dgst", "-sha256", "-r", dst])])
      },
      "adapter+verify": () => Effect.runPromise(full.transfer(request))
    }
    const names = Object.keys(variants)
    const times: Record<string, Array<number>> = Object.fromEntries(names.map((n) => [n, []]))
    // warm-up: page cache, ssh, sshd
    await variants.rsync!()
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < names.length; i++) {
        const n = names[(i + r) % names.length]!
        await fs.rm(path.dirname(dst), { recursive: true, force: true })
        const ms = await timed(variants[n]!)
        times[n]!.push(ms)
        console.log(
          `round ${r + 1} ${n.padEnd(15)} ${(ms / 1000).toFixed(2)} s  ${((bytes / ms) * 1000 / 1e6).toFixed(0)} MB/s  (load ${
            os.loadavg()[0]!.toFixed(1)
          })`
        )
      }
    }
    const m = Object.fromEntries(names.map((n) => [n, median(times[n]!)])) as Record<string, number>
    console.log(`\n== rsync adapter vs rsync, ${(bytes / 2 ** 30).toFixed(2)} GiB over ssh on loopback, median of ${rounds} ==`)
    for (const n of names) console.log(`${n.padEnd(15)} ${(m[n]! / 1000).toFixed(2)} s  ${((bytes / m[n]!) * 1000 / 1e6).toFixed(0)} MB/s`)
    const ratio = m.adapter! / m.rsync!
    const ratioVerified = m["adapter+verify"]! / m["rsync+sha256"]!
    console.log(
      `load average at the end: ${
        os.loadavg().map((l) => l.toFixed(1)).join(" ")
      } on ${os.cpus().length} cores (other work on the machine widens the spread)`
    )
    console.log(`ratio adapter / rsync                 ${ratio.toFixed(3)}  (${ratio <= 1.05 ? "within" : "NOT within"} the 5% target)`)
    console.log(`ratio adapter+verify / rsync+sha256   ${ratioVerified.toFixed(3)}`)
    console.log(`cost of our verification               ${((m["adapter+verify"]! / m.adapter! - 1) * 100).toFixed(1)}% on top of the copy`)

    console.log(`\n== progress stream of a long transfer (bandwidth capped at 200 MB/s) ==`)
    await fs.rm(path.dirname(dst), { recursive: true, force: true })
    await Effect.runPromise(
      full.stream({ ...request, bandwidthLimit: 200_000_000 }).pipe(
        Stream.runForEach((e) =>
          Effect.sync(() => {
            if (e._tag === "Progress") {
              console.log(
                `progress  ${(e.bytes / 1e6).toFixed(0).padStart(6)} MB  ${(e.percent ?? 0).toFixed(1).padStart(5)}%  ${
                  (e.rate / 1e6).toFixed(1)
                } MB/s`
              )
            } else if (e._tag === "Completed") {
              const r = e.result
              console.log(
                `completed ${r.bytes} bytes in ${(r.durationMs / 1000).toFixed(2)} s, ${
                  (r.throughput / 1e6).toFixed(1)
                } MB/s, verified ${r.verified} (${r.checksum})`
              )
            } else console.log(e._tag.toLowerCase())
          })
        )
      )
    )
  } finally {
    await sshd.stop()
    await fs.rm(dir, { recursive: true, force: true })
  }
}

await main()
