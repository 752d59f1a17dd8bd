/**
 * `ccat status`: the operator's one-screen summary of a running server's `GET /status`:
 * what waits at each lifecycle stage, counts per state, what failed and why, every location's
 * fill and health, every route's throughput. `--json` prints the API's answer as it is.
 */
import { StatusApi } from "@ccat/core"
import * as Command from "@effect/cli/Command"
import * as Options from "@effect/cli/Options"
import * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Output from "./Output.js"
import * as Remote from "./Remote.js"

const circuitText = (c: StatusApi.Circuit): string =>
  c.state === "open" ? `OPEN (probe in ${Output.duration(c.retryInMs)}): ${Output.cut(c.reason, 80)}` : c.state

const flags = (l: { readonly readable: boolean; readonly writable: boolean; readonly deletable: boolean }) =>
  `${l.readable ? "r" : "-"}${l.writable ? "w" : "-"}${l.deletable ? "d" : "-"}`

/** The summary as people read it. */
export const render = (s: StatusApi.SystemStatus): string => {
  const out: Array<string> = [`CCAT Data Center status at ${Output.instant(s.at)}`, ""]
  const st = s.stages
  out.push("Lifecycle")
  out.push(
    Output.table(
      ["STAGE", "ITEMS", "BYTES"],
      [
        ["waiting to package", `${st.waitingToPackage.count} files`, Output.bytes(st.waitingToPackage.bytes)],
        ["waiting to bundle", `${st.waitingToBundle.count} packages`, Output.bytes(st.waitingToBundle.bytes)],
        ["in transfer", `${st.inTransfer.count} bundles`, Output.bytes(st.inTransfer.bytes)],
        ["waiting to archive", `${st.waitingToArchive.count} packages`, Output.bytes(st.waitingToArchive.bytes)],
        ["staged", `${st.staged.count} copies`, Output.bytes(st.staged.bytes)],
        ["waiting to delete", `${st.waitingToDelete.count} copies`, Output.bytes(st.waitingToDelete.bytes)]
      ]
    )
  )
  out.push("", "Counts")
  const c = s.counts
  out.push(
    Output.table(
      ["ENTITY", "BY STATE"],
      [
        ["files", Output.pairs(c.files)],
        ["packages", Output.pairs(c.packages)],
        ["  journey", Output.pairs(c.packageJourneys)],
        ["bundles", Output.pairs(c.bundles)],
        ["transfers", Output.pairs(c.transfers)],
        ["staging requests", Output.pairs(c.stagingRequests)],
        ["copies", Output.pairs(c.copies)]
      ]
    )
  )
  if (s.scope === "counts") {
    out.push("", "(this account sees counts only: failures, locations and routes are shown to operators and admins)")
    return out.join("\n")
  }
  const total = Object.values(s.failedTotals).reduce((a, b) => a + b, 0)
  out.push("", total === 0 ? "Failed: none" : `Failed (${s.failed.length} newest of ${total}: ${Output.pairs(s.failedTotals)})`)
  if (s.failed.length > 0) {
    out.push(Output.table(
      ["ENTITY", "ID", "STATE", "SINCE", "REASON"],
      s.failed.map((f) => [
        f.entity,
        f.id,
        f.state,
        Output.instant(f.updatedAt),
        Output.cut(f.errorMessage, 100)
      ])
    ))
    out.push("  retry with: ccat retry ENTITY ID --reason TEXT; history with: ccat packages show ID, ccat bundles show ID")
  }
  out.push("", "Locations")
  out.push(
    s.locations.length === 0 ? "  none" : Output.table(
      ["SITE", "LOCATION", "TYPE", "TECH", "RWD", "COPIES", "PRESENT", "USED", "CAPACITY", "FILL", "HEALTH"],
      s.locations.map((l) => [
        l.siteShortName,
        l.name,
        l.type,
        l.technology,
        flags(l),
        String(l.presentCopies),
        Output.bytes(l.presentBytes),
        Output.bytes(l.usedBytes),
        Output.bytes(l.capacityBytes),
        Output.percent(l.fillFraction),
        l.circuit.state !== "closed"
          ? circuitText(l.circuit)
          : l.lastFailure === null
          ? "ok"
          : `ok (last failure ${Output.instant(l.lastFailure.at)})`
      ])
    )
  )
  out.push("", "Routes")
  out.push(
    s.routes.length === 0 ? "  none" : Output.table(
      ["ROUTE", "ADAPTER", "LAST HOUR", "LAST 24 H", "FAILED 1H/24H", "CIRCUIT"],
      s.routes.map((r) => [
        [r.fromSite, ...(r.viaSite === null ? [] : [r.viaSite]), r.toSite].join(" -> "),
        r.adapter,
        `${Output.bytes(r.lastHour.bytes)} at ${Output.rate(r.lastHour.bytesPerSecond)}`,
        `${Output.bytes(r.last24Hours.bytes)} at ${Output.rate(r.last24Hours.bytesPerSecond)}`,
        `${r.lastHour.failedAttempts}/${r.last24Hours.failedAttempts}`,
        circuitText(r.circuit)
      ])
    )
  )
  return out.join("\n")
}

/** `ccat status`. */
export const command = Command.make(
  "status",
  {
    ...Remote.options,
    failed: Options.integer("failed").pipe(
      Options.withDefault(20),
      Options.withDescription("how many of the newest failed items to list, 0 to 1000 (default 20)")
    )
  },
  (o) =>
    Effect.gen(function* () {
      if (o.failed < 0 || o.failed > 1000) return yield* Remote.usage(o.json, `--failed must be from 0 to 1000, not ${o.failed}`)
      const status = yield* Remote.withClient(o, (c) => c.status.get({ urlParams: { failedLimit: o.failed } }))
      if (o.json) return yield* Remote.printJson(StatusApi.SystemStatus, status)
      yield* Console.log(render(status))
    })
).pipe(
  Command.withDescription(
    "summary of a running server: lifecycle stages, counts, failures with reasons, location fill and health, route throughput"
  )
)
