/**
 * Digests of whole buffers (an S3 part's Content-MD5) on worker threads. MD5 runs at about
 * 700 MiB/s per core here: on the calling thread it took about 2.9 s of a 2 GiB upload's main
 * thread, in turn with sending the parts. A buffer the caller owns is transferred to a worker
 * (no copy), digested there and transferred back with its digest, so the caller sends the very
 * same bytes afterwards; parts being digested at once go to different workers.
 *
 * The workers start on first use and are unref'd (ref'd only while a digest is awaited, so a
 * process can always exit). A pool that cannot start digests on the calling thread instead:
 * slower, never wrong. A worker that dies takes the buffers it holds with it: their digests
 * fail (the S3 put fails Unavailable and is retried by its caller), and the next digest starts
 * a new worker.
 */
import { createHash } from "node:crypto"
import { Worker } from "node:worker_threads"

/** Buffers smaller than this are digested on the calling thread: a round trip costs more. */
export const offloadBytes = 1024 * 1024

/** Workers in the pool: the second core is also busy with the object's SHA-256 and the network. */
const poolSize = 2

const workerSource = `
const { parentPort } = require("node:worker_threads")
const { createHash } = require("node:crypto")
parentPort.on("message", ({ id, algorithm, buffer, offset, length }) => {
  const digest = createHash(algorithm).update(new Uint8Array(buffer, offset, length)).digest("base64")
  parentPort.postMessage({ id, digest, buffer, offset, length }, [buffer])
})
`

interface Pending {
  readonly resolve: (result: Digested) => void
  readonly reject: (error: unknown) => void
}

interface Member {
  readonly worker: Worker
  readonly pending: Map<number, Pending>
  failure: Error | undefined
}

/** A digest and the bytes it was computed over (the caller's buffer, handed back). */
export interface Digested {
  /** Base64, as Content-MD5 wants it. */
  readonly digest: string
  readonly bytes: Uint8Array
}

let members: Array<Member> | undefined
let nextId = 0

const startMember = (): Member | undefined => {
  try {
    const worker = new Worker(workerSource, { eval: true })
    worker.unref()
    const member: Member = { worker, pending: new Map(), failure: undefined }
    const gone = (failure: Error) => {
      member.failure ??= failure
      for (const p of member.pending.values()) p.reject(failure)
      member.pending.clear()
    }
    worker.on("error", gone)
    worker.on("exit", (code) => gone(new Error(`the digest worker exited with code ${code}`)))
    worker.on("message", (m: { id: number; digest: string; buffer: ArrayBuffer; offset: number; length: number }) => {
      const p = member.pending.get(m.id)
      if (p === undefined) return
      member.pending.delete(m.id)
      if (member.pending.size === 0) worker.unref()
      p.resolve({ digest: m.digest, bytes: Buffer.from(m.buffer, m.offset, m.length) })
    })
    return member
  } catch {
    return undefined
  }
}

const inline = (algorithm: string, bytes: Uint8Array): Digested => ({
  digest: createHash(algorithm).update(bytes).digest("base64"),
  bytes
})

/**
 * The base64 digest of `bytes`, and the bytes. A view of at least `offloadBytes` that covers its
 * whole ArrayBuffer (so no other live view can share that memory) is moved to a worker and back:
 * the caller must use the returned `bytes`, not the view it passed, which is detached meanwhile.
 * Any other view is digested on the calling thread and returned as it is.
 */
export const digest = (algorithm: string, bytes: Uint8Array): Promise<Digested> => {
  const whole = !(bytes.buffer instanceof SharedArrayBuffer) && bytes.byteOffset === 0 && bytes.buffer.byteLength === bytes.length
  if (bytes.length < offloadBytes || !whole) {
    return Promise.resolve(inline(algorithm, bytes))
  }
  if (members === undefined || members.some((m) => m.failure !== undefined)) {
    members = members?.filter((m) => m.failure === undefined) ?? []
    while (members.length < poolSize) {
      const m = startMember()
      if (m === undefined) break
      members.push(m)
    }
  }
  const member = members.reduce<Member | undefined>(
    (best, m) => best === undefined || m.pending.size < best.pending.size ? m : best,
    undefined
  )
  if (member === undefined) return Promise.resolve(inline(algorithm, bytes))
  const id = nextId++
  return new Promise<Digested>((resolve, reject) => {
    member.pending.set(id, { resolve, reject })
    if (member.pending.size === 1) member.worker.ref()
    const buffer = bytes.buffer as ArrayBuffer
    member.worker.postMessage({ id, algorithm, buffer, offset: bytes.byteOffset, length: bytes.length }, [buffer])
  })
}
