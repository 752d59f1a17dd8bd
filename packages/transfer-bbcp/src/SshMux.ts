/**
 * Shared ssh connections for bbcp's transfers. At 220 ms a new ssh connection costs about eight
 * round trips (TCP, key exchange, authentication, the session) before its command runs, and a
 * bbcp transfer makes two ssh calls (bbcp's agent, the publish with the checksums). Through a
 * master connection each call opens only a channel on it.
 *
 * A route's master outlives the transfer that opened it: the route's next transfer in the same
 * process rides it without a handshake. It closes once no transfer has used it for the route's
 * idle time (`ControlPersist`-style, default 60 s), and at the process's exit. One master carries
 * at most `maxSessions` transfers at once (each one ssh session at a time), so it never asks
 * for more channels than the far sshd's `MaxSessions` allows; more transfers open another master.
 * Before a master is reused it is checked (`ssh -O check`, a local round trip); a master that
 * does not answer is replaced, and one whose transfer failed on the connection is retired
 * once its other transfers end.
 *
 * Each master's socket lives in a folder of its own (mode 0700, `ccat-ssh-<pid>-*` in the temp
 * folder). A process killed outright cannot close its masters: each exits by itself once idle
 * for the idle time (`ControlPersist`), and the next master made on the machine removes the
 * folders whose process is gone and whose socket no longer answers.
 */
import type { TransferEndpoint } from "@ccat/core"
import { TransferError } from "@ccat/core"
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Scope from "effect/Scope"
import * as SshMaster from "./internal/SshMaster.js"

/** The prefix of the folders holding master sockets, in the temp folder. */
export const folderPrefix = SshMaster.folderPrefix

/** What a call through a master adds to an endpoint's ssh options. */
export const controlOptions = SshMaster.controlOptions

/** Removes folders left by processes that are gone and whose master has exited since. */
export const sweep = SshMaster.sweep

/** Seconds a master with no transfer stays open for the route's next one, unless the route says otherwise. */
export const defaultIdleSeconds = 60

/** Transfers one master carries at once unless the route says otherwise: OpenSSH's default `MaxSessions`. */
export const defaultMaxSessions = 10

/** Seconds a master of a route with no idle time lives on when its process is killed before it could close it. */
const orphanSeconds = 30

/** How a route's shared connection lives. */
export interface Settings {
  /**
   * Seconds a master no transfer uses stays open for the route's next transfer (default 60),
   * also how long it outlives a killed process. 0: it closes when its last transfer ends.
   */
  readonly idleSeconds?: number
  /** Transfers one master carries at once, at most the far sshd's `MaxSessions` (default 10). */
  readonly maxSessions?: number
}

/** What a master's start settled to: running (its files, its pid if known), unshared (go on without), or an ssh error. */
type Started = Exit.Exit<{ readonly files: SshMaster.Files; readonly pid: number | undefined } | undefined, TransferError.TransferError>

interface Master {
  readonly key: string
  readonly idleSeconds: number
  readonly maxSessions: number
  readonly ssh: string
  /** How to reach the host (its path is not the master's: each transfer adds its own). */
  readonly endpoint: TransferEndpoint.Ssh
  ready: Promise<Started>
  files: SshMaster.Files | undefined
  pid: number | undefined
  holders: number
  retired: boolean
  closing: Promise<void> | undefined
  idleTimer: ReturnType<typeof setTimeout> | undefined
  /** Set while no transfer holds it: the next one checks it before riding it. */
  idle: boolean
}

const live: Array<Master> = []

const keyOf = (endpoint: TransferEndpoint.Ssh, ssh: string, idleSeconds: number, maxSessions: number): string =>
  JSON.stringify([
    ssh,
    endpoint.host,
    endpoint.port,
    endpoint.user,
    endpoint.identityFile,
    endpoint.sshOptions ?? [],
    idleSeconds,
    maxSessions
  ])

const persistOf = (m: Master) => (m.idleSeconds > 0 ? m.idleSeconds : orphanSeconds)

const throughOf = (m: Master, files: SshMaster.Files, endpoint: TransferEndpoint.Ssh): TransferEndpoint.Ssh => ({
  ...endpoint,
  sshOptions: [...(endpoint.sshOptions ?? []), ...SshMaster.controlOptions(files.socket, persistOf(m))]
})

let exitHooked = false

/** Closes every master when the process exits, however it exits short of being killed outright. */
const hookExit = () => {
  if (exitHooked) return
  exitHooked = true
  process.once("exit", () => {
    for (const m of live.splice(0)) {
      if (m.files !== undefined) SshMaster.closeNow(throughOf(m, m.files, m.endpoint), m.ssh, m.files, m.pid)
    }
  })
}

const startMaster = (m: Master, adapter: string): Promise<Started> =>
  Effect.runPromiseExit(
    Effect.gen(function* () {
      // a temp folder that cannot be made means no sharing, never a failed transfer
      const files = yield* Effect.tryPromise(() => SshMaster.makeFiles()).pipe(Effect.orElseSucceed(() => undefined))
      if (files === undefined) return undefined
      m.files = files
      const started = yield* SshMaster.start(m.endpoint, m.ssh, files, persistOf(m), adapter)
      return started === undefined ? undefined : { files, pid: started.pid }
    })
  ).then((exit) => {
    if (Exit.isSuccess(exit) && exit.value !== undefined) m.pid = exit.value.pid
    // a master that did not start is offered to no later transfer; the last holder removes its folder
    else m.retired = true
    return exit
  })

/** A master with room for one more transfer, or a new one; the caller holds it until `release`. */
const reserve = (endpoint: TransferEndpoint.Ssh, ssh: string, idleSeconds: number, maxSessions: number, adapter: string): Master => {
  const key = keyOf(endpoint, ssh, idleSeconds, maxSessions)
  const found = live.find((m) => m.key === key && !m.retired && m.holders < m.maxSessions)
  if (found !== undefined) {
    found.holders++
    if (found.idleTimer !== undefined) clearTimeout(found.idleTimer)
    found.idleTimer = undefined
    return found
  }
  hookExit()
  const m: Master = {
    key,
    idleSeconds,
    maxSessions,
    ssh,
    endpoint: { ...endpoint, path: "/" },
    ready: Promise.resolve(Exit.succeed(undefined)),
    files: undefined,
    pid: undefined,
    holders: 1,
    retired: false,
    closing: undefined,
    idleTimer: undefined,
    idle: false
  }
  m.ready = startMaster(m, adapter)
  live.push(m)
  return m
}

/** Closes a master once: out of the pool first, so no transfer takes it meanwhile. */
const closeMaster = (m: Master): Promise<void> => {
  if (m.closing !== undefined) return m.closing
  m.retired = true
  if (m.idleTimer !== undefined) clearTimeout(m.idleTimer)
  const i = live.indexOf(m)
  if (i !== -1) live.splice(i, 1)
  m.closing = m.ready.then(async () => {
    if (m.files !== undefined) await Effect.runPromise(SshMaster.close(throughOf(m, m.files, m.endpoint), m.ssh, m.files, m.pid))
  })
  return m.closing
}

/** A transfer that failed on its connection or timed out may have met a broken master: it is offered to no later transfer. */
const brokeConnection = (exit: Exit.Exit<unknown, unknown>): boolean =>
  Exit.isFailure(exit) &&
  Cause.failures(exit.cause).pipe(
    Chunk.some((e) => e instanceof TransferError.TransferError && (e.reason === "Connection" || e.reason === "Timeout"))
  )

/** Ends one transfer's hold; the last one out closes a retired master, or starts its idle time. */
const release = (m: Master, exit: Exit.Exit<unknown, unknown>): Promise<void> => {
  m.holders--
  if (brokeConnection(exit)) m.retired = true
  if (m.holders > 0) return Promise.resolve()
  if (m.retired || m.idleSeconds === 0) return closeMaster(m)
  m.idle = true
  m.idleTimer = setTimeout(() => {
    if (m.holders === 0) void closeMaster(m)
  }, m.idleSeconds * 1000)
  m.idleTimer.unref()
  return Promise.resolve()
}

/**
 * The endpoint reached through a shared master for the current scope, or the endpoint unchanged
 * where one cannot be had (its options name a socket already, the temp folder's path is too long
 * or has characters bbcp's `-T` cannot carry, the master did not start for a reason ssh did not
 * name): sharing saves time, it is never a reason to fail by itself. A master that cannot start
 * because the host is unreachable or refuses the key fails the transfer with that reason.
 */
export const shared = (
  endpoint: TransferEndpoint.Ssh,
  ssh = "ssh",
  settings: Settings = {},
  adapter = "bbcp"
): Effect.Effect<TransferEndpoint.Ssh, TransferError.TransferError, Scope.Scope> => {
  const idleSeconds = Math.max(0, settings.idleSeconds ?? defaultIdleSeconds)
  const maxSessions = Math.max(1, Math.floor(settings.maxSessions ?? defaultMaxSessions))
  if (!SshMaster.canShare(endpoint)) return Effect.succeed(endpoint)
  return Effect.gen(function* () {
    const held: { current: Master | undefined } = { current: undefined }
    yield* Effect.addFinalizer((exit) =>
      Effect.promise(() => {
        const m = held.current
        held.current = undefined
        return m === undefined ? Promise.resolve() : release(m, exit)
      })
    )
    for (let tries = 0; tries < 3; tries++) {
      const m = yield* Effect.sync(() => (held.current = reserve(endpoint, ssh, idleSeconds, maxSessions, adapter)))
      const wasIdle = m.idle
      m.idle = false
      const started = yield* Effect.promise(() => m.ready)
      if (Exit.isFailure(started)) return yield* Effect.failCause(started.cause)
      if (started.value === undefined) return endpoint
      const through = throughOf(m, started.value.files, endpoint)
      if (!wasIdle) return through
      // a master that sat idle may have exited or hung since: a local round trip tells
      const pid = yield* SshMaster.masterPid(through, ssh)
      if (pid !== undefined) {
        m.pid = pid
        return through
      }
      yield* Effect.promise(() => {
        m.retired = true
        held.current = undefined
        return release(m, Exit.void)
      })
    }
    return endpoint
  }).pipe(Effect.withSpan("SshMux.shared"))
}

/** One master as the pool holds it, for tests and diagnostics. */
export interface MasterInfo {
  readonly host: string
  readonly socket: string | undefined
  readonly pid: number | undefined
  readonly holders: number
  readonly retired: boolean
}

/** The masters this process holds now. */
export const masters = (): ReadonlyArray<MasterInfo> =>
  live.map((m) => ({ host: m.endpoint.host, socket: m.files?.socket, pid: m.pid, holders: m.holders, retired: m.retired }))

/** Closes every master of this process now (a worker's shutdown; they close at its exit anyway). */
export const closeAll: Effect.Effect<void> = Effect.promise(() => Promise.all([...live].map(closeMaster))).pipe(
  Effect.asVoid,
  Effect.withSpan("SshMux.closeAll")
)
