/**
 * A throwaway sshd on a high loopback port, with a throwaway host key and client key, for tests
 * and benchmarks of the transfer adapters (real rsync over real ssh, DESIGN §8). Needs Debian's
 * openssh-server; as root it logs in as root (`PermitRootLogin yes`, `StrictModes no`, no PAM).
 *
 * As a library: `const sshd = await start(); ...; await sshd.stop()`.
 * As a command: `npx tsx scripts/sshd.ts` starts one, prints how to reach it, stops on Ctrl-C.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs/promises"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { promisify } from "node:util"
import { LoopbackPort } from "@ccat/core/node"

const run = promisify(execFile)

/** A running sshd and how to reach it. */
export interface Sshd {
  readonly host: string
  readonly port: number
  readonly user: string
  /** The private key authorised to log in. */
  readonly identityFile: string
  /** Client options for a throwaway server: no host-key prompts, no known_hosts writes. */
  readonly sshOptions: ReadonlyArray<string>
  /** The temporary folder holding keys, config and log. */
  readonly dir: string
  /** Stops sshd and removes its folder. */
  readonly stop: () => Promise<void>
}

const accepts = (port: number, host = "127.0.0.1") =>
  new Promise<boolean>((resolve) => {
    const s = net.connect({ host, port })
    s.once("connect", () => {
      s.destroy()
      resolve(true)
    })
    s.once("error", () => resolve(false))
  })

/** Finds the sshd binary, or explains what to install. */
export const sshdBinary = async (): Promise<string> => {
  for (const p of ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]) {
    if (await fs.access(p).then(() => true, () => false)) return p
  }
  throw new Error("sshd not found: install openssh-server (apt-get install -y --no-install-recommends openssh-server rsync)")
}

/** Where and how sshd starts; without them it listens on a free port of 127.0.0.1. */
export interface StartOptions {
  /** The address sshd listens on (default 127.0.0.1). */
  readonly listenAddress?: string
  /** A fixed port (default: a free loopback port; in a fresh network namespace any port is free). */
  readonly port?: number
  /** Words put before sshd's command line, e.g. `["ip", "netns", "exec", NAME]` to start it in a namespace. */
  readonly wrap?: ReadonlyArray<string>
  /** Whether sshd accepts connections yet, for an sshd this process cannot reach (default: a connect). */
  readonly accepts?: (port: number) => Promise<boolean>
}

/** Starts a throwaway sshd (on 127.0.0.1 unless told otherwise) and waits until it accepts connections. */
export const start = async (options: StartOptions = {}): Promise<Sshd> => {
  const listenAddress = options.listenAddress ?? "127.0.0.1"
  const probe = options.accepts ?? ((p: number) => accepts(p, listenAddress))
  const sshd = await sshdBinary()
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), "ccat-sshd-"))
  await fs.mkdir("/run/sshd", { recursive: true }).catch(() => undefined)
  const hostKey = path.join(dir, "host_ed25519")
  const clientKey = path.join(dir, "client_ed25519")
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", hostKey])
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", clientKey])
  await fs.copyFile(`${clientKey}.pub`, path.join(dir, "authorized_keys"))
  const user = os.userInfo().username
  let child: ChildProcess | undefined
  let port = 0
  for (let tries = 0; tries < 5 && child === undefined; tries++) {
    port = options.port ?? (await LoopbackPort.freePort())
    const config = path.join(dir, "sshd_config")
    await fs.writeFile(
      config,
      [
        `Port ${port}`,
        `ListenAddress ${listenAddress}`,
        `HostKey ${hostKey}`,
        `PidFile ${path.join(dir, "sshd.pid")}`,
        `AuthorizedKeysFile ${path.join(dir, "authorized_keys")}`,
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "PubkeyAuthentication yes",
        "UsePAM no",
        "StrictModes no",
        "PermitRootLogin yes",
        `AllowUsers ${user}`,
        "MaxStartups 100:30:200",
        "MaxSessions 100",
        "LogLevel ERROR",
        "Subsystem sftp internal-sftp",
        ""
      ].join("\n")
    )
    const [command, ...wrapArgs] = [...(options.wrap ?? []), sshd]
    const proc = spawn(command!, [...wrapArgs, "-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] })
    let stderr = ""
    proc.stderr?.on("data", (c) => (stderr += String(c)))
    const deadline = Date.now() + 5000
    let up = false
    while (Date.now() < deadline && proc.exitCode === null) {
      if (await probe(port)) {
        up = true
        break
      }
      await new Promise((r) => setTimeout(r, 50))
    }
    if (up) child = proc
    else {
      proc.kill("SIGKILL")
      if (tries === 4) throw new Error(`sshd did not start: ${stderr}`)
    }
  }
  const proc = child!
  return {
    host: listenAddress,
    port,
    user,
    identityFile: clientKey,
    sshOptions: ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "LogLevel=ERROR"],
    dir,
    stop: async () => {
      if (proc.exitCode === null) {
        const exited = new Promise((r) => proc.once("exit", r))
        proc.kill("SIGTERM")
        await exited
      }
      await fs.rm(dir, { recursive: true, force: true })
    }
  }
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === path.resolve(new URL(import.meta.url).pathname)) {
  const sshd = await start()
  console.log(`sshd on ${sshd.host}:${sshd.port} (${sshd.dir})`)
  console.log(`ssh -p ${sshd.port} -i ${sshd.identityFile} ${sshd.sshOptions.map((o) => `-o ${o}`).join(" ")} ${sshd.user}@${sshd.host}`)
  const stop = () => void sshd.stop().then(() => process.exit(0))
  process.on("SIGINT", stop)
  process.on("SIGTERM", stop)
}
