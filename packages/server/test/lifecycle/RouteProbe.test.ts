/**
 * The rules of `ccat route bench` apart from its transfers: which settings it tries, which one it
 * recommends, how a probe's times become rates, which route a name means, and how `--write`
 * edits a YAML or JSON file (only the route's measured settings change).
 */
import { Topology } from "@ccat/core"
import { assert, describe, it } from "@effect/vitest"
import * as Either from "effect/Either"
import * as YAML from "yaml"
import * as RouteBench from "../../src/cli/RouteBenchRun.js"
import { edit } from "../../src/cli/RouteConfigWrite.js"
import * as RouteProbe from "../../src/lifecycle/RouteProbe.js"
import * as RouteTarget from "../../src/lifecycle/RouteTarget.js"

const topology = (routes: ReadonlyArray<Record<string, unknown>>) => {
  const site = (name: string, short: string, archive: boolean) => ({
    name,
    shortName: short,
    locations: [
      { name: `${name}-buffer`, type: "BUFFER", technology: "disk", driver: { root: `/srv/${name}/buffer` } },
      ...(archive
        ? [{ name: `${name}-archive`, type: "LONG_TERM_ARCHIVE", technology: "disk", driver: { root: `/srv/${name}/archive` } }]
        : [])
    ]
  })
  const decoded = Topology.decode({
    sites: [site("chile", "cl", false), site("cologne", "col", true), site("cornell", "cor", true)],
    routes
  })
  if (Either.isLeft(decoded)) throw new Error(decoded.left.message)
  return decoded.right
}

const measured = (label: string, rate: number, cost: number, error?: string): RouteProbe.Measured => ({
  setting: { label, options: {}, atOnce: 1, cost },
  setupSeconds: 1,
  seconds: 2,
  wholeRate: rate,
  rate,
  tooSmall: false,
  ...(error === undefined ? {} : { error })
})

describe("route bench rules", () => {
  it("names a route by FROM->TO, its path or its index; unknown and ambiguous names list the routes", () => {
    const t = topology([
      { from: "chile", to: "cologne", adapter: "rsync" },
      { from: "chile", to: "cornell", via: ["cologne"], adapter: "bbcp", options: { streams: 4 } },
      { from: "chile", to: "cornell", adapter: "rsync", priority: 9 }
    ])
    const name = (spec: string) => Either.map(RouteTarget.resolve(t, spec), (r) => r.index)
    assert.deepStrictEqual(name("chile->cologne"), Either.right(0))
    assert.deepStrictEqual(name("chile -> cologne -> cornell"), Either.right(1))
    assert.deepStrictEqual(name("2"), Either.right(2))
    const refused = (spec: string) => Either.match(RouteTarget.resolve(t, spec), { onLeft: (e) => e.message, onRight: () => "" })
    assert.match(refused("chile->cornell"), /names 2 routes; name one by its path or index/)
    assert.match(
      refused("chile->mars"),
      /no route chile -> mars is configured; the configured routes are 0: chile -> cologne \(rsync\); 1: chile -> cologne -> cornell \(bbcp\)/
    )
    assert.match(refused("3"), /there is no route 3/)
    assert.match(refused("chile"), /names no route/)
    // a relayed route is measured to its first hop's buffer
    const relayed = RouteTarget.resolve(t, "1")
    assert.isTrue(Either.isRight(relayed) && relayed.right.destination.location === "cologne-buffer")
  })

  it("tries 1/4/8/16 bbcp streams then windows at the best count, 1/2/4 rsync transfers at once", () => {
    const t = topology([
      { from: "chile", to: "cologne", adapter: "bbcp", options: { window: "8 MiB" } },
      { from: "chile", to: "cornell", adapter: "rsync" }
    ])
    const bbcp = Either.getOrThrow(RouteTarget.resolve(t, "0"))
    assert.deepStrictEqual(RouteProbe.firstSettings(bbcp).map((s) => s.label), [
      "1 stream, window 8 MiB",
      "4 streams, window 8 MiB",
      "8 streams, window 8 MiB",
      "16 streams, window 8 MiB"
    ])
    // the window already measured is not tried twice
    assert.deepStrictEqual(RouteProbe.windowSettings(bbcp, 4).map((s) => s.label), [
      "4 streams, default window",
      "4 streams, window 32 MiB"
    ])
    assert.deepStrictEqual(RouteProbe.optionsWith(bbcp, RouteProbe.windowSettings(bbcp, 4)[0]!), { streams: 4 })
    const rsync = Either.getOrThrow(RouteTarget.resolve(t, "1"))
    assert.deepStrictEqual(RouteProbe.firstSettings(rsync).map((s) => [s.label, s.atOnce]), [
      ["1 at once", 1],
      ["2 at once", 2],
      ["4 at once", 4]
    ])
    assert.deepStrictEqual(RouteProbe.windowSettings(rsync, 1), [])
  })

  it("recommends the cheapest setting within 5% of the best, never a failed one", () => {
    const all = [
      measured("1", 50, 100),
      measured("4", 52, 400),
      measured("8", 60, 800),
      measured("16", 61, 1600),
      measured("32", 999, 3200, "refused")
    ]
    assert.strictEqual(RouteProbe.best(all)!.setting.label, "16")
    assert.strictEqual(RouteProbe.recommend(all, 0.05)!.setting.label, "8")
    assert.strictEqual(RouteProbe.recommend([measured("1", 50, 100), measured("4", 51, 400)], 0.05)!.setting.label, "1")
    assert.isUndefined(RouteProbe.recommend([measured("1", 0, 100, "no route")]))
  })

  it("takes the setup out of the rate, unless the large probe hardly took longer than the small one", () => {
    const s = { label: "2 at once", options: {}, atOnce: 2, cost: 200 }
    const m = RouteProbe.figures(s, 3, 13, 100e6 + RouteProbe.smallProbeBytes)
    assert.strictEqual(m.rate, 20e6)
    assert.isFalse(m.tooSmall)
    const small = RouteProbe.figures(s, 3, 3.5, 1e6)
    assert.isTrue(small.tooSmall)
    assert.strictEqual(small.rate, small.wholeRate)
  })

  it("the steady rate is taken from the progress reports past the first quarter of the bytes, all transfers together", () => {
    // two transfers of 100 MB: slow while ramping up, then 10 MB/s each
    const samples = [0, 1, 2, 3, 4, 5, 6].flatMap((s) =>
      [0, 1].map((transfer) => ({ transfer, ms: 10_000 + s * 1000, bytes: s < 2 ? s * 2e6 : 4e6 + (s - 2) * 10e6 }))
    )
    assert.strictEqual(RouteProbe.steadyRate(samples, 100e6), 20e6)
    // reports spanning under a second say nothing
    assert.isUndefined(RouteProbe.steadyRate([{ transfer: 0, ms: 0, bytes: 50e6 }, { transfer: 0, ms: 500, bytes: 90e6 }], 100e6))
    assert.isUndefined(RouteProbe.steadyRate([], 100e6))
    const s = { label: "1 stream", options: {}, atOnce: 1, cost: 100 }
    assert.strictEqual(RouteProbe.figures(s, 5, 6, 1e6, 30e6).rate, 30e6)
    assert.isFalse(RouteProbe.figures(s, 5, 6, 1e6, 30e6).tooSmall)
  })

  it("--write keeps the route's own bundleTransferTime unless another was asked for", () => {
    const t = topology([{ from: "chile", to: "cologne", adapter: "rsync", bundleTransferTime: "10 minutes", measuredBandwidth: "1 MB" }])
    const target = Either.getOrThrow(RouteTarget.resolve(t, "0"))
    const m = { ...measured("2 at once", 40e6, 200), setting: { label: "2 at once", options: {}, atOnce: 2, cost: 200 } }
    assert.deepStrictEqual(RouteBench.changesFor(target, m, 20e6, undefined), {
      fields: { maxConcurrentTransfers: 2, measuredBandwidth: "20 MB" },
      options: {}
    })
    assert.deepStrictEqual(RouteBench.changesFor(target, m, 20e6, "2 hours").fields, {
      maxConcurrentTransfers: 2,
      measuredBandwidth: "20 MB",
      bundleTransferTime: "2 hours"
    })
  })

  it("--write: YAML keeps comments and every other key; JSON keeps its content; a removed window is removed", () => {
    const yaml = `# the site's topology
routes:
  - from: chile   # far away
    to: cologne
    adapter: bbcp
    options: { host: t.example.org, window: 8 MiB }  # tuned by hand
  - { from: chile, to: cornell, adapter: rsync }
policy:
  bundleMaxWait: 6 hours   # nights
`
    const changes = { fields: { measuredBandwidth: "48.5 MB", bundleTransferTime: "1 hours" }, options: { streams: 4, window: undefined } }
    const out = edit("ccat.yaml", yaml, 0, changes)
    for (const c of ["# the site's topology", "# far away", "# tuned by hand", "# nights"]) assert.include(out, c)
    assert.deepStrictEqual(YAML.parse(out), {
      routes: [
        {
          from: "chile",
          to: "cologne",
          adapter: "bbcp",
          options: { host: "t.example.org", streams: 4 },
          measuredBandwidth: "48.5 MB",
          bundleTransferTime: "1 hours"
        },
        { from: "chile", to: "cornell", adapter: "rsync" }
      ],
      policy: { bundleMaxWait: "6 hours" }
    })
    const json = JSON.stringify({ routes: [{ from: "chile", to: "cologne", adapter: "rsync" }], sites: [] })
    const jsonOut = JSON.parse(
      edit("ccat.json", json, 0, { fields: { maxConcurrentTransfers: 4, measuredBandwidth: "8.2 MB" }, options: {} })
    )
    assert.deepStrictEqual(jsonOut, {
      routes: [{ from: "chile", to: "cologne", adapter: "rsync", maxConcurrentTransfers: 4, measuredBandwidth: "8.2 MB" }],
      sites: []
    })
    assert.throws(() => edit("ccat.yaml", "routes: []\n", 0, changes), /routes\[0\] is not a mapping/)
  })

  it("writes measured rates to three digits, as sizes the configuration reads back", () => {
    for (const n of [1_157_668, 48_512_345, 123_456_789, 999_999, 2.5e9]) {
      const text = RouteBench.bytesText(n)
      const back = Topology.parseBytes(text)!
      assert.approximately(back, n, n * 0.006, text)
    }
  })
})
