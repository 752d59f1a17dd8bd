/**
 * One bundle sent through our bbcp adapter, as a transfer of the lifecycle runs it, for
 * `bench/wan-route-bench.ts`: started inside the link's chile namespace (`ip netns exec`), so the
 * adapter's ssh steps and bbcp's streams cross the emulated link. Prints one JSON line:
 * `{ seconds, steady }` (steady: bytes per second past the ramp-up, from the progress reports,
 * by the rule `ccat route bench` uses), or `{ error }`.
 *
 *   npx tsx bench/wan-send.ts '{"source":"/x/bundle","host":"10.220.2.2",...,"options":{"streams":4}}'
 */
import { TransferAdapter, TransferEndpoint } from "@ccat/core"
import { BbcpTransfer } from "@ccat/transfer-bbcp"
import * as Effect from "effect/Effect"
import * as Stream from "effect/Stream"
import * as fs from "node:fs/promises"
import { steadyRate, type Sample } from "../packages/server/src/lifecycle/RouteProbe.js"

interface Args {
  readonly source: string
  readonly destination: string
  readonly host: string
  readonly port: number
  readonly user: string
  readonly identityFile: string
  readonly sshOptions: ReadonlyArray<string>
  readonly bbcp: string
  readonly streams?: number
  readonly window?: number
}

const a = JSON.parse(process.argv[2] ?? "{}") as Args
const adapter = BbcpTransfer.make({
  bbcp: a.bbcp,
  remoteBbcp: a.bbcp,
  tuning: { ...(a.streams === undefined ? {} : { streams: a.streams }), ...(a.window === undefined ? {} : { window: a.window }) }
})
const bytes = (await fs.stat(a.source)).size
const samples: Array<Sample> = []
const started = Date.now()
const outcome = await Effect.runPromise(
  adapter
    .stream(
      {
        source: TransferEndpoint.local(a.source),
        destination: TransferEndpoint.ssh({
          host: a.host,
          port: a.port,
          user: a.user,
          identityFile: a.identityFile,
          sshOptions: [...a.sshOptions],
          path: a.destination
        }),
        kind: "file"
      },
      { verify: false, retry: TransferAdapter.noRetry }
    )
    .pipe(
      Stream.runForEach((
        e
      ) => (e._tag === "Progress" ? Effect.sync(() => samples.push({ transfer: 0, ms: Date.now(), bytes: e.bytes })) : Effect.void)),
      Effect.either
    )
)
const seconds = (Date.now() - started) / 1000
console.log(
  JSON.stringify(outcome._tag === "Left" ? { error: outcome.left.message } : { seconds, bytes, steady: steadyRate(samples, bytes) ?? null })
)
