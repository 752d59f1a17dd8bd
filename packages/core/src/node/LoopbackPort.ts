/**
 * Free TCP ports on loopback for servers that another process binds later (the embedded
 * PostgreSQL, test peers). A port the kernel hands out for `listen(0)` comes from the ephemeral
 * range, the same range every outgoing connection on the machine draws its local port from: in
 * the seconds between choosing such a port and the other process binding it, any client may take
 * it. Ports are therefore chosen below the ephemeral range, where only a listener can take them,
 * and a start that still finds its port taken tries another one.
 */
import * as fs from "node:fs"
import * as net from "node:net"

/** The kernel's ephemeral port range, `[low, high]`; Linux's default when it cannot be read. */
export const ephemeralRange = (): readonly [number, number] => {
  try {
    const [low, high] = fs.readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number)
    if (Number.isInteger(low) && Number.isInteger(high) && low! > 0 && high! >= low!) return [low!, high!]
  } catch {
    // Not Linux, or no /proc: the default below.
  }
  return [32768, 60999]
}

/** Lowest port chosen: above the well-known and most registered service ports. */
const lowestChosen = 10_000

/** Whether `port` can be bound on 127.0.0.1 now (and is released again at once). */
export const bindable = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const server = net.createServer()
    server.once("error", () => resolve(false))
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () => server.close(() => resolve(true)))
  })

/** A port the kernel picks (ephemeral): only when no range outside the ephemeral one is left. */
const kernelPort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const address = server.address()
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port"))))
    })
  })

/**
 * A TCP port free on 127.0.0.1 now, outside the ephemeral range. Chosen at random so that several
 * processes choosing at once rarely meet; the caller still binds it later, so a start that finds
 * it taken should choose again ({@link onFreePort}).
 */
export const freePort = async (): Promise<number> => {
  const [low, high] = ephemeralRange()
  const spans: Array<readonly [number, number]> = []
  if (low > lowestChosen) spans.push([lowestChosen, low - 1])
  if (high < 65535) spans.push([Math.max(high + 1, lowestChosen), 65535])
  const size = spans.reduce((n, [a, b]) => n + (b - a + 1), 0)
  if (size < 1_000) return kernelPort()
  for (let tries = 0; tries < 64; tries++) {
    let pick = Math.floor(Math.random() * size)
    for (const [a, b] of spans) {
      if (pick <= b - a) {
        pick += a
        break
      }
      pick -= b - a + 1
    }
    if (await bindable(pick)) return pick
  }
  return kernelPort()
}

/**
 * Runs `start` on a free port, choosing another one when `taken` says the start failed because the
 * port was taken in the meantime; other failures, and the last attempt's, are the caller's.
 */
export const onFreePort = async <A>(
  start: (port: number) => Promise<A>,
  taken: (error: unknown) => boolean,
  options: { readonly attempts?: number; readonly choose?: () => Promise<number> } = {}
): Promise<A> => {
  const attempts = options.attempts ?? 5
  const choose = options.choose ?? freePort
  for (let attempt = 1;; attempt++) {
    const port = await choose()
    try {
      return await start(port)
    } catch (error) {
      if (attempt >= attempts || !taken(error)) throw error
    }
  }
}
