/**
 * `ccat staging request | show | wait`: ask a running server to stage archived observations or
 * packages at a PROCESSING location, look at a request, and wait for it to finish. `wait` draws
 * a progress bar on a terminal and prints one line per change otherwise (logs, CI), then the
 * staged files' local paths when the server reports them; a failed request exits 1 with why.
 */
import { StagingApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

type View = typeof StagingApi.StagingRequestView.Type
type RequestId = View["id"]

/**
 * The staged files' local paths, when the server's staging view carries them (a list of paths,
 * or of objects with a `path`/`localPath`); empty when it does not.
 */
export const stagedPaths = (r: View): ReadonlyArray<string> => {
  const found = (r as unknown as Record<string, unknown>).stagedPaths ?? (r as unknown as Record<string, unknown>).localPaths
  if (!Array.isArray(found)) return []
  return found.flatMap((p: unknown) => {
    if (typeof p === "string") return [p]
    if (typeof p === "object" && p !== null) {
      const o = p as Record<string, unknown>
      const path = o.localPath ?? o.path
      return typeof path === "string" ? [path] : []
    }
    return []
  })
}

/** The request as people read it. */
const describe = (r: View): string => {
  const lines = [
    `staging request ${r.id}  ${r.status}`,
    `  location ${r.dataLocationId}  created ${Output.instant(r.createdAt)}  updated ${Output.instant(r.updatedAt)}  expires ${Output.instant(r.expiresAt)}`
  ]
  if (r.errorMessage !== null) lines.push(`  error: ${r.errorMessage}`)
  lines.push(`  items (${r.items.length}):`)
  for (const i of r.items) lines.push(i.executedObsUnitId !== null ? `    observation ${i.executedObsUnitId}` : `    package ${i.rawDataPackageId}`)
  const paths = stagedPaths(r)
  if (paths.length > 0) lines.push(`  staged (${paths.length}):`, ...paths.map((p) => `    ${p}`))
  return lines.join("\n")
}

const ids = (name: string, description: string) => Options.text(name).pipe(Options.repeated, Options.withDescription(description))

const request = Command.make(
  "request",
  {
    ...Remote.options,
    location: Options.text("location").pipe(Options.withDescription("the PROCESSING location to stage at (its short name)")),
    observation: ids("observation", "an observation to stage (its id); repeatable"),
    package: ids("package", "a package to stage (its id); repeatable"),
    expires: Options.date("expires").pipe(Options.withDescription("when the staged copies may be cleaned up (default: the server's)"), Options.optional)
  },
  (o) =>
    Effect.gen(function* () {
      if (o.observation.length === 0 && o.package.length === 0) return yield* Remote.usage(o.json, "name at least one --observation or --package")
      const observationIds = yield* Effect.forEach(o.observation, (id) => Remote.requireUuid(o.json, "--observation", id))
      const packageIds = yield* Effect.forEach(o.package, (id) => Remote.requireUuid(o.json, "--package", id))
      const created = yield* Remote.withClient(o, (c) =>
        c.staging.create({
          payload: {
            location: o.location,
            ...(observationIds.length > 0 ? { observationIds } : {}),
            ...(packageIds.length > 0 ? { packageIds } : {}),
            ...(Option.isSome(o.expires) ? { expiresAt: o.expires.value } : {})
          }
        })
      )
      if (o.json) return yield* Remote.printJson(StagingApi.StagingRequestView, created)
      yield* Console.log(describe(created))
      yield* Console.log(`follow it with: ccat staging wait ${created.id}`)
    })
).pipe(Command.withDescription("ask for observations or packages to be staged at a PROCESSING location (scientists and admins)"))

const idArg = Args.text({ name: "id" }).pipe(Args.withDescription("the staging request's id"))

const show = Command.make("show", { ...Remote.options, id: idArg }, (o) =>
  Effect.gen(function* () {
    const id = (yield* Remote.requireUuid(o.json, "the staging request id", o.id)) as RequestId
    const r = yield* Remote.withClient(o, (c) => c.staging.get({ path: { id } }))
    if (o.json) return yield* Remote.printJson(StagingApi.StagingRequestView, r)
    yield* Console.log(describe(r))
  })
).pipe(Command.withDescription("one staging request: its items, status, expiry and staged paths"))

/** How far along a request is, by its status: the steps the staging worker takes it through. */
const steps = { pending: 0, scheduled: 1, in_progress: 2, completed: 3, failed: 3 } as const

const bar = (r: View, elapsedMs: number, width = 30): string => {
  const filled = Math.round((steps[r.status] / 3) * width)
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${r.status.padEnd(11)} ${Output.duration(elapsedMs)}`
}

const wait = Command.make(
  "wait",
  {
    ...Remote.options,
    id: idArg,
    interval: Options.integer("interval").pipe(Options.withDefault(2), Options.withDescription("seconds between looks (default 2)")),
    timeout: Options.integer("timeout").pipe(Options.withDescription("give up (exit 1) after this many seconds (default: wait until it ends)"), Options.optional)
  },
  (o) =>
    Effect.gen(function* () {
      const id = (yield* Remote.requireUuid(o.json, "the staging request id", o.id)) as RequestId
      if (o.interval < 1) return yield* Remote.usage(o.json, `--interval must be at least 1 second, not ${o.interval}`)
      const timeout = Option.getOrUndefined(o.timeout)
      if (timeout !== undefined && timeout < 1) return yield* Remote.usage(o.json, `--timeout must be at least 1 second, not ${timeout}`)
      const tty = process.stderr.isTTY === true && !o.json
      const started = Date.now()
      let last: string | undefined
      let r: View
      while (true) {
        r = yield* Remote.withClient(o, (c) => c.staging.get({ path: { id } }))
        const elapsed = Date.now() - started
        if (tty) yield* Effect.sync(() => process.stderr.write(`\r${bar(r, elapsed)}`))
        else if (r.status !== last && !o.json) yield* Console.error(`${Output.instant(new Date())} ${r.id} ${r.status}`)
        last = r.status
        if (r.status === "completed" || r.status === "failed") break
        if (timeout !== undefined && elapsed >= timeout * 1000) {
          if (tty) yield* Effect.sync(() => process.stderr.write("\n"))
          return yield* new Remote.CliError({ exitCode: 1, kind: "Timeout", json: o.json, message: `staging request ${id} is still ${r.status} after ${timeout} s` })
        }
        yield* Effect.sleep(Duration.seconds(o.interval))
      }
      if (tty) yield* Effect.sync(() => process.stderr.write("\n"))
      if (o.json) yield* Remote.printJson(StagingApi.StagingRequestView, r)
      if (r.status === "failed") {
        return yield* new Remote.CliError({ exitCode: 1, kind: "StagingFailed", json: o.json, message: `staging request ${id} failed: ${r.errorMessage ?? "no reason recorded"}` })
      }
      if (o.json) return
      const paths = stagedPaths(r)
      yield* Console.log(`staging request ${r.id} completed; staged until ${Output.instant(r.expiresAt)}`)
      for (const p of paths) yield* Console.log(p)
    })
).pipe(Command.withDescription("wait for a staging request to end: a progress bar on a terminal, lines otherwise; prints the staged paths"))

/** `ccat staging ...`. */
export const command = Command.make("staging").pipe(
  Command.withDescription("staging archived data at a PROCESSING location"),
  Command.withSubcommands([request, show, wait])
)
