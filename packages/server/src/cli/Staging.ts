/**
 * `ccat staging request | show | wait | release`: ask a running server to stage archived
 * observations or packages at a PROCESSING location, look at a request, wait for it to finish,
 * and release it once processing is done. `wait` is the
 * client's own `waitForStaging` (polling with backoff, a failed request as a typed error): it
 * draws a progress bar on a terminal and prints one line per change otherwise (logs, CI), then
 * the staged files' local paths; a failed request exits 1 with the server's reason.
 */
import { CcatClient, Staging } from "@ccat/client"
import { StagingApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

type View = typeof StagingApi.StagingRequestView.Type
type RequestId = View["id"]

/** The request as people read it. */
const describe = (r: View, location: string = r.dataLocationId): string => {
  const lines = [
    `staging request ${r.id}  ${r.status}`,
    `  location ${location}  created ${Output.instant(r.createdAt)}  updated ${Output.instant(r.updatedAt)}  expires ${
      Output.instant(r.expiresAt)
    }`
  ]
  if (r.releasedAt !== null) lines.push(`  released ${Output.instant(r.releasedAt)}: its staged files are no longer kept for it`)
  if (r.errorMessage !== null) lines.push(`  error: ${r.errorMessage}`)
  lines.push(`  items (${r.items.length}):`)
  for (const i of r.items) {
    lines.push(i.executedObsUnitId !== null ? `    observation ${i.executedObsUnitId}` : `    package ${i.rawDataPackageId}`)
  }
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
    expires: Options.date("expires").pipe(
      Options.withDescription("when the staged copies may be cleaned up (default: the server's)"),
      Options.optional
    )
  },
  (o) =>
    Effect.gen(function* () {
      if (o.observation.length === 0 && o.package.length === 0) {
        return yield* Remote.usage(o.json, "name at least one --observation or --package")
      }
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
        }))
      if (o.json) return yield* Remote.printJson(StagingApi.StagingRequestView, created)
      yield* Console.log(describe(created))
      yield* Console.log(`follow it with: ccat staging wait ${created.id}`)
    })
).pipe(Command.withDescription("ask for observations or packages to be staged at a PROCESSING location (scientists and admins)"))

const idArg = Args.text({ name: "id" }).pipe(Args.withDescription("the staging request's id"))

const StagedFiles = Schema.Array(StagingApi.StagedFile)

const Shown = Schema.Struct({
  request: StagingApi.StagingRequestView,
  /** The staged files with their local paths; empty until the request is completed. */
  files: Schema.Array(StagingApi.StagedFile),
  location: Schema.String
})

const show = Command.make("show", { ...Remote.options, id: idArg }, (o) =>
  Effect.gen(function* () {
    const id = (yield* Remote.requireUuid(o.json, "the staging request id", o.id)) as RequestId
    const shown = yield* Remote.withClient(o, (c) =>
      Effect.gen(function* () {
        const request = yield* c.staging.get({ path: { id } })
        // Every page of the files; each page also names the location.
        const files: Array<StagingApi.StagedFile> = []
        let page = yield* c.staging.files({ path: { id }, urlParams: { limit: 1000 } })
        files.push(...page.items)
        while (page.nextCursor !== null) {
          page = yield* c.staging.files({ path: { id }, urlParams: { limit: 1000, cursor: page.nextCursor } })
          files.push(...page.items)
        }
        return { request, files, location: page.location }
      }))
    if (o.json) return yield* Remote.printJson(Shown, shown)
    yield* Console.log(describe(shown.request, shown.location))
    if (shown.files.length > 0) {
      yield* Console.log(`  staged files (${shown.files.length}):`)
      for (const f of shown.files) yield* Console.log(`    ${f.localPath ?? `${shown.location}:${f.key}`}`)
    }
  })).pipe(Command.withDescription("one staging request: its items, status, expiry and, once completed, the staged files' local paths"))

/** How far along a request is, by its status: the steps the staging worker takes it through. */
const steps = { pending: 0, scheduled: 1, in_progress: 2, completed: 3, failed: 3 } as const

const bar = (p: Staging.Progress, width = 30): string => {
  const filled = Math.round((steps[p.status] / 3) * width)
  return `[${"#".repeat(filled)}${"-".repeat(width - filled)}] ${p.status.padEnd(11)} ${Output.duration(Duration.toMillis(p.elapsed))}`
}

const Waited = Schema.Struct({
  requestId: Schema.String,
  location: Schema.String,
  expiresAt: Schema.NullOr(Schema.Date),
  files: StagedFiles,
  paths: Schema.Array(Schema.String)
})

const wait = Command.make(
  "wait",
  {
    ...Remote.options,
    id: idArg,
    interval: Options.integer("interval").pipe(
      Options.withDefault(10),
      Options.withDescription("the longest pause between looks, in seconds (default 10; the first is 1 s)")
    ),
    timeout: Options.integer("timeout").pipe(
      Options.withDescription("give up (exit 1) after this many seconds; the request goes on (default: wait until it ends)"),
      Options.optional
    )
  },
  (o) =>
    Effect.gen(function* () {
      const id = yield* Remote.requireUuid(o.json, "the staging request id", o.id)
      if (o.interval < 1) return yield* Remote.usage(o.json, `--interval must be at least 1 second, not ${o.interval}`)
      const timeout = Option.getOrUndefined(o.timeout)
      if (timeout !== undefined && timeout < 1) return yield* Remote.usage(o.json, `--timeout must be at least 1 second, not ${timeout}`)
      const tty = process.stderr.isTTY === true && !o.json
      let last: string | undefined
      const onProgress = (p: Staging.Progress) => {
        if (tty) process.stderr.write(`\r${bar(p)}`)
        else if (p.status !== last && !o.json) process.stderr.write(`${Output.instant(new Date())} ${p.requestId} ${p.status}\n`)
        last = p.status
      }
      const staged = yield* Remote.withClient(o, (c) =>
        Staging.waitForStaging(id, {
          onProgress,
          pollBase: Duration.seconds(Math.min(1, o.interval)),
          pollCap: Duration.seconds(o.interval),
          ...(timeout === undefined ? {} : { timeout: Duration.seconds(timeout) })
        }).pipe(
          Effect.provideService(CcatClient.CcatClient, c),
          Effect.ensuring(Effect.sync(() => tty && process.stderr.write("\n"))),
          // A failed request or a timeout is a failure (exit 1), not a refusal.
          Effect.catchTag(
            "StagingError",
            (e) =>
              Effect.fail(
                new Remote.CliError({
                  exitCode: 1,
                  kind: e.reason === "Failed" ? "StagingFailed" : "Timeout",
                  json: o.json,
                  message: e.message
                })
              )
          )
        ))
      if (o.json) return yield* Remote.printJson(Waited, staged)
      yield* Console.log(
        `staging request ${staged.requestId} completed at ${staged.location}; ${staged.files.length} files kept until ${
          Output.instant(staged.expiresAt)
        }`
      )
      for (const f of staged.files) yield* Console.log(f.localPath ?? `${staged.location}:${f.key}`)
    })
).pipe(
  Command.withDescription(
    "wait for a staging request to end: a progress bar on a terminal, lines otherwise; prints the staged files' local paths"
  )
)

const release = Command.make("release", { ...Remote.options, id: idArg }, (o) =>
  Effect.gen(function* () {
    const id = (yield* Remote.requireUuid(o.json, "the staging request id", o.id)) as RequestId
    const released = yield* Remote.withClient(o, (c) => c.staging.release({ path: { id } }))
    if (o.json) return yield* Remote.printJson(StagingApi.StagingRequestView, released)
    yield* Console.log(describe(released))
  })).pipe(
    Command.withDescription(
      "release a request once processing is done: its folder is removed and the staged files no other request needs are deleted by cleanup (idempotent)"
    )
  )

/** `ccat staging ...`. */
export const command = Command.make("staging").pipe(
  Command.withDescription("staging archived data at a PROCESSING location"),
  Command.withSubcommands([request, show, wait, release])
)
