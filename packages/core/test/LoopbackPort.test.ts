import { describe, expect, it } from "vitest"
import * as net from "node:net"
import { bindable, ephemeralRange, freePort, onFreePort } from "../src/node/LoopbackPort.js"

/** A real listener on `port` (0: the kernel's choice), closed by the returned function. */
const listen = (port: number): Promise<{ readonly port: number; readonly close: () => Promise<void> }> =>
  new Promise((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen({ port, host: "127.0.0.1", exclusive: true }, () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () => new Promise<void>((done) => server.close(() => done()))
      }))
  })

const addressInUse = (e: unknown) => (e as NodeJS.ErrnoException).code === "EADDRINUSE"

describe("free loopback ports", () => {
  it("are chosen outside the range outgoing connections draw their local ports from, and can be bound", async () => {
    const [low, high] = ephemeralRange()
    const ports = await Promise.all(Array.from({ length: 20 }, () => freePort()))
    // A host whose ephemeral range leaves (almost) nothing outside it gets the kernel's choice.
    const outside = Math.max(0, low - 10_000) + Math.max(0, 65535 - Math.max(high, 9_999))
    for (const port of ports) {
      if (outside < 1_000) continue
      expect(port < low || port > high, `${port} is in the ephemeral range ${low}-${high}`).toBe(true)
      expect(port).toBeGreaterThanOrEqual(10_000)
    }
    const held = await listen(ports[0]!)
    try {
      expect(await bindable(held.port)).toBe(false)
    } finally {
      await held.close()
    }
    expect(await bindable(held.port)).toBe(true)
  })

  it("a start that finds its port taken meanwhile moves on to another; other failures are not retried", async () => {
    const taken = await listen(0)
    try {
      const chosen: Array<number> = []
      const choices = [taken.port]
      const choose = async () => {
        const port = choices.shift() ?? (await freePort())
        chosen.push(port)
        return port
      }
      const server = await onFreePort(listen, addressInUse, { choose })
      await server.close()
      expect(chosen[0]).toBe(taken.port)
      expect(chosen).toHaveLength(2)
      expect(server.port).toBe(chosen[1])

      // Only a taken port is worth another try, and the tries are bounded.
      let starts = 0
      await expect(onFreePort(async () => {
        starts++
        throw new Error("permission denied")
      }, addressInUse)).rejects.toThrow("permission denied")
      expect(starts).toBe(1)
      starts = 0
      await expect(
        onFreePort(
          async (port) => {
            starts++
            return listen(port)
          },
          addressInUse,
          { attempts: 3, choose: async () => taken.port }
        )
      ).rejects.toThrow(/EADDRINUSE/)
      expect(starts).toBe(3)
    } finally {
      await taken.close()
    }
  })
})
