/**
 * `ccat location enable | disable`: the operator's maintenance switches. Disabling writes to a
 * buffer before swapping a disk makes the lifecycle send new packages elsewhere; disabling
 * deletions holds cleanup while a copy is checked. The reason is recorded in the event log
 * with the operator's account name (`ccat events --entity location:NAME`). Locations are named by their short name or id.
 */
import type { CcatClient } from "@ccat/client"
import { LocationsApi } from "@ccat/core"
import * as Args from "@effect/cli/Args"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Remote from "./Remote.js"

/** Location names by id, for printing copies and attempts. */
export const names = (c: CcatClient.Client) =>
  Effect.map(c.locations.list({ urlParams: {} }), (all) => new Map<string, string>(all.map((l) => [l.id, l.name])))

/** The location a name or id stands for, or a NotFound-like refusal (exit 3) naming the known ones. */
export const resolve = (o: Remote.Remote, nameOrId: string) =>
  Effect.gen(function* () {
    const all = yield* Remote.withClient(o, (c) => c.locations.list({ urlParams: {} }))
    const found = all.find((l) => l.id === nameOrId || l.name === nameOrId)
    if (found !== undefined) return found
    return yield* new Remote.CliError({
      exitCode: 3,
      kind: "NotFound",
      json: o.json,
      message: `no data location ${JSON.stringify(nameOrId)}; known: ${all.map((l) => l.name).join(", ") || "none"}`
    })
  })

const switchOptions = {
  ...Remote.options,
  location: Args.text({ name: "location" }).pipe(Args.withDescription("the location's short name or id")),
  read: Options.boolean("read").pipe(Options.withDescription("reads from the location")),
  write: Options.boolean("write").pipe(Options.withDescription("writes to the location")),
  delete: Options.boolean("delete").pipe(Options.withDescription("deletions at the location (cleanup)")),
  reason: Options.text("reason").pipe(Options.withDescription("why (maintenance, a failing disk); recorded in the event log"))
}

const flip =
  (enable: boolean) => (o: Remote.Remote & { location: string; read: boolean; write: boolean; delete: boolean; reason: string }) =>
    Effect.gen(function* () {
      if (o.reason.trim() === "") return yield* Remote.usage(o.json, "--reason must say why")
      if (o.reason.length > 500) return yield* Remote.usage(o.json, "--reason must be at most 500 characters")
      // No flag named means all three: "disable cologne-buffer" takes the location out of service.
      const all = !o.read && !o.write && !o.delete
      const location = yield* resolve(o, o.location)
      const updated = yield* Remote.withClient(o, (c) =>
        c.locations.setAvailability({
          path: { id: location.id },
          payload: {
            ...(all || o.read ? { readable: enable } : {}),
            ...(all || o.write ? { writable: enable } : {}),
            ...(all || o.delete ? { deletable: enable } : {}),
            reason: o.reason
          }
        }))
      if (o.json) return yield* Remote.printJson(LocationsApi.LocationView, updated)
      const yes = (b: boolean) => (b ? "yes" : "NO")
      yield* Console.log(`${updated.name}: read ${yes(updated.readable)}, write ${yes(updated.writable)}, delete ${yes(updated.deletable)}`)
    })

const enable = Command.make("enable", switchOptions, flip(true)).pipe(
  Command.withDescription("resume reads, writes and/or deletions at a location (all three unless --read/--write/--delete say which)")
)
const disable = Command.make("disable", switchOptions, flip(false)).pipe(
  Command.withDescription("pause reads, writes and/or deletions at a location (all three unless --read/--write/--delete say which)")
)

/** `ccat location ...`. */
export const command = Command.make("location").pipe(
  Command.withDescription("a data location's availability switches"),
  Command.withSubcommands([enable, disable])
)
