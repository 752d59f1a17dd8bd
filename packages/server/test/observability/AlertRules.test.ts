/**
 * The shipped alerting rules (`docs/alerts/ccat-rules.yml`): the real `promtool` checks them and
 * runs their unit tests, their names are the contract the built-in notifier shares, and every
 * series a rule reads is one a real server (or relay) exports, so the rules cannot drift from
 * the metrics. The figures added for the rules are checked against conditions made in a real
 * ops-db: a route whose last attempts failed, a buffer above its retention threshold, work that
 * waited at a stage.
 */
import { Topology } from "@ccat/core"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as HttpServer from "@effect/platform/HttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Ref from "effect/Ref"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import { createServer } from "node:http"
import * as path from "node:path"
import { parse } from "yaml"
import { LifecyclePolicy } from "../../src/lifecycle/Packaging.js"
import * as Metrics from "../../src/observability/Metrics.js"
import type { SyncState } from "../../src/relay/Forwarder.js"
import type { Reference } from "../../src/relay/Reference.js"
import * as RelayAuth from "../../src/relay/RelayAuth.js"
import * as RelayHttp from "../../src/relay/RelayHttp.js"
import * as RelayStore from "../../src/relay/RelayStore.js"
import * as Harness from "../ApiHarness.js"
import { repoRoot } from "../support.js"
import { parsePrometheus, valueOf, type Exposition } from "./Formats.js"

const rulesFile = path.join(repoRoot, "docs/alerts/ccat-rules.yml")
const testsFile = path.join(repoRoot, "docs/alerts/ccat-rules.test.yml")

/** The alert names the built-in notifier raises too: a contract, changed only together. */
const contract = [
  "CcatPackageFailed",
  "CcatBundleFailed",
  "CcatStagingRequestFailed",
  "CcatCircuitOpen",
  "CcatLocationFull",
  "CcatStageBacklogOld",
  "CcatAuditFindings",
  "CcatRelayBacklogOld"
]

const rules: ReadonlyArray<
  { alert: string; expr: string; for: string; labels: Record<string, string>; annotations: Record<string, string> }
> = parse(fs.readFileSync(rulesFile, "utf8")).groups.flatMap((g: { rules: ReadonlyArray<unknown> }) => g.rules)

/** The series names an expression reads. */
const seriesOf = (expr: string) => [...new Set(expr.match(/\bccat_[a-z_]+\b/g) ?? [])]

const promtool = (args: ReadonlyArray<string>) => {
  const r = spawnSync("promtool", args, { cwd: repoRoot, encoding: "utf8", timeout: 30_000 })
  if (r.error !== undefined && (r.error as NodeJS.ErrnoException).code === "ENOENT") {
    throw new Error(
      "promtool is not installed: it comes with the Debian package prometheus (apt-get install --no-install-recommends prometheus; .ci/run installs it)"
    )
  }
  return { status: r.status, output: `${r.stdout}${r.stderr}` }
}

const get = (url: string) => Effect.promise(() => fetch(url).then(async (r) => ({ status: r.status, text: await r.text() })))

it("promtool checks the rules and passes their unit tests", () => {
  const check = promtool(["check", "rules", rulesFile])
  assert.strictEqual(check.status, 0, check.output)
  assert.include(check.output, "SUCCESS")
  const test = promtool(["test", "rules", testsFile])
  assert.strictEqual(test.status, 0, test.output)
  assert.include(test.output, "SUCCESS")
})

it("every alert of the contract is there, persistent, with a severity and words for the operator", () => {
  assert.deepStrictEqual([...new Set(rules.map((r) => r.alert))].sort(), [...contract].sort())
  const tests = fs.readFileSync(testsFile, "utf8")
  for (const r of rules) {
    assert.match(r.for ?? "", /^\d+[mh]$/, `${r.alert} has no for:`)
    assert.include(["critical", "warning"], r.labels?.severity, `${r.alert} has no severity`)
    assert.isAbove(r.annotations?.summary?.length ?? 0, 10, `${r.alert} has no summary`)
    assert.match(r.annotations?.description ?? "", /`ccat [a-z]+/, `${r.alert}'s description names no ccat command`)
    assert.include(tests, `alertname: ${r.alert}`, `${r.alert} has no promtool test`)
  }
})

// The server's policy as `ccat serve` has it, so the figures read from it are exported.
const policy = Topology.PolicyConfig.make({})
const server = Harness.layer().pipe(Layer.provide(Layer.succeed(LifecyclePolicy, policy)))

it.layer(server, { timeout: 60_000 })("the rules read only what the server exports", (it) => {
  it.effect("every series of every rule but the relay's is in the server's /metrics, and the new figures are right", () =>
    Effect.gen(function* () {
      const sql = yield* SqlClient.SqlClient
      const w = yield* Fixtures.world.pipe(Effect.orDie)
      // A route chile -> cologne that completed once 4 h ago, then failed four times (one attempt
      // a stopping worker cut short, which says nothing of the route): open since the third failure.
      const [route] = yield* sql<{ id: string }>`
        insert into route (from_site_id, to_site_id, adapter) values (${w.chile.id}, ${w.cologne.id}, 'rsync') returning id`
      const bundle = yield* Fixtures.dataTransferPackage([]).pipe(Effect.orDie)
      const attempt = (status: string, hoursAgo: number, reason: string | null = null) => sql`
        insert into data_transfer (data_transfer_package_id, route_id, from_location_id, to_location_id, adapter, status, error_reason, finished_at)
        values (${bundle.id}, ${route.id}, ${w.chileBuffer.id}, ${w.cologneBuffer.id}, 'rsync', ${status}::operation_status, ${reason},
                now() - make_interval(secs => ${hoursAgo * 3600}))`
      yield* attempt("completed", 4)
      yield* attempt("failed", 3.5, "ConnectionRefused")
      yield* attempt("failed", 3, "ConnectionRefused")
      yield* attempt("failed", 2.5, "Interrupted")
      yield* attempt("failed", 2, "ConnectionRefused")
      yield* attempt("failed", 1, "Timeout")
      // Chile's buffer holds 6000 of its 10000 bytes, its retention acts at 50 %.
      yield* sql`update data_location set capacity_bytes = 10000 where id = ${w.chileBuffer.id}`
      yield* sql`insert into retention_policy (data_location_id, disk_usage_threshold) values (${w.chileBuffer.id}, 0.5)`
      // A file of a closed observation filed 2 h ago and not packaged; a package written to
      // Chile's buffer 3 h ago and in no bundle; a package that failed.
      const eou = yield* Fixtures.executedObsUnit(w).pipe(Effect.orDie)
      const file = yield* Fixtures.rawDataFile(w, eou).pipe(Effect.orDie)
      yield* sql`update raw_data_file set filed_at = now() - interval '2 hours' where id = ${file.id}`
      const written = yield* Fixtures.rawDataPackage(w, eou).pipe(Effect.orDie)
      yield* sql`update raw_data_package set status = 'in_progress', size_bytes = 6000, checksum = ${Fixtures.checksum()} where id = ${written.id}`
      const copy = yield* Fixtures.physicalCopy(w.chileBuffer, written).pipe(Effect.orDie)
      yield* sql`update physical_copy set size_bytes = 6000, created_at = now() - interval '3 hours' where id = ${copy.id}`
      const failed = yield* Fixtures.rawDataPackage(w, eou).pipe(Effect.orDie)
      yield* sql`update raw_data_package set status = 'failed', error_message = 'no BUFFER with room' where id = ${failed.id}`

      const baseUrl = yield* Harness.BaseUrl
      const scrape = yield* get(`${baseUrl}/metrics`)
      assert.strictEqual(scrape.status, 200)
      const e = parsePrometheus(scrape.text)
      assert.strictEqual(valueOf(e, "ccat_ops_db_up"), 1)
      const exported = (name: string) => e.samples.some((s) => s.name === name)
      for (const r of rules.filter((r) => r.alert !== "CcatRelayBacklogOld")) {
        for (const name of seriesOf(r.expr)) assert.isTrue(exported(name), `${r.alert} reads ${name}, which the server does not export`)
      }
      const doc = fs.readFileSync(path.join(repoRoot, "docs/metrics.md"), "utf8")
      for (const name of rules.flatMap((r) => seriesOf(r.expr))) {
        assert.include(doc, `\`${name}\``, `docs/metrics.md does not describe ${name}`)
      }

      const near = (actual: number | undefined, expected: number, what: string) =>
        assert.approximately(actual ?? Number.NaN, expected, 120, `${what}: ${actual} instead of about ${expected}`)
      const hop = { from: w.chile.name, to: w.cologne.name, adapter: "rsync" }
      near(valueOf(e, "ccat_route_circuit_open_seconds", hop), 2 * 3600, "route circuit open")
      near(valueOf(e, "ccat_location_circuit_open_seconds", { location: w.cologneBuffer.name }), 2 * 3600, "location circuit open")
      assert.strictEqual(valueOf(e, "ccat_location_circuit_open_seconds", { location: w.chileBuffer.name }), 0)
      assert.closeTo(valueOf(e, "ccat_location_fill_ratio", { location: w.chileBuffer.name }) ?? 0, 0.6, 1e-9)
      assert.strictEqual(valueOf(e, "ccat_location_fill_threshold_ratio", { location: w.chileBuffer.name }), 0.5)
      assert.isUndefined(valueOf(e, "ccat_location_fill_ratio", { location: w.cologneBuffer.name }), "no capacity, no fill")
      near(valueOf(e, "ccat_stage_oldest_waiting_seconds", { stage: "package" }), 2 * 3600, "waiting to package")
      near(valueOf(e, "ccat_stage_oldest_waiting_seconds", { stage: "bundle" }), 3 * 3600, "waiting to bundle")
      assert.strictEqual(valueOf(e, "ccat_stage_max_wait_seconds", { stage: "bundle" }), policy.bundleMaxWait / 1000 + 3600)
      assert.strictEqual(valueOf(e, "ccat_location_audit_cycle_seconds", { location: w.archive.name }), policy.audit.cycleDays * 86400)
      assert.isUndefined(valueOf(e, "ccat_location_audit_cycle_seconds", { location: w.processing.name }), "PROCESSING is not audited")
      assert.isAtLeast(valueOf(e, "ccat_raw_data_packages", { status: "failed" }) ?? 0, 1)

      // A completed attempt closes the circuit; a failure after it does not open it again.
      yield* attempt("completed", 0.5)
      yield* attempt("failed", 0.25, "Timeout")
      const fresh = yield* Metrics.make({ cacheFor: 0 }).pipe(Effect.provideService(LifecyclePolicy, policy))
      const after = parsePrometheus(yield* fresh.prometheus)
      assert.strictEqual(valueOf(after, "ccat_route_circuit_open_seconds", hop), 0)
      assert.strictEqual(valueOf(after, "ccat_location_circuit_open_seconds", { location: w.cologneBuffer.name }), 0)
    }).pipe(Effect.orDie))
})

/** The relay's HTTP side in this process, on a fresh store of its own. */
const emptyReference: Reference = {
  generatedAt: new Date().toISOString(),
  obsUnits: [],
  modules: [],
  locations: [],
  accounts: [],
  tokens: []
}
const relay = RelayHttp.layer({ maxBodyBytes: 1 << 20, retention: "1 hour" }).pipe(
  Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 })),
  Layer.provide(Layer.effect(RelayAuth.CurrentReference, Ref.make(emptyReference))),
  Layer.provide(
    Layer.effect(
      RelayHttp.RelayState,
      Effect.map(Ref.make<SyncState>({ pulledAt: undefined, lastError: undefined }), (sync) => ({ mainUrl: "http://127.0.0.1:9", sync }))
    )
  ),
  Layer.provideMerge(Layer.effectDiscard(RelayStore.ensureSchema)),
  Layer.provideMerge(TestDatabase.layerEmpty)
)

it.layer(relay, { timeout: 60_000 })("the relay rule reads what the relay exports", (it) => {
  it.effect("CcatRelayBacklogOld's series are in a relay's /metrics, and age with the backlog", () =>
    Effect.gen(function* () {
      yield* RelayStore.accept({
        id: crypto.randomUUID(),
        kind: "file",
        observationId: crypto.randomUUID(),
        instrumentId: crypto.randomUUID(),
        accountName: "prime-cam",
        payload: {}
      })
      const sql = yield* SqlClient.SqlClient
      yield* sql`update relay.filing set accepted_at = now() - interval '2 hours'`
      const url = yield* HttpServer.addressFormattedWith((a) => Effect.succeed(a))
      const scrape = yield* get(`${url}/metrics`)
      assert.strictEqual(scrape.status, 200)
      const e: Exposition = parsePrometheus(scrape.text)
      for (const name of rules.filter((r) => r.alert === "CcatRelayBacklogOld").flatMap((r) => seriesOf(r.expr))) {
        assert.isTrue(e.samples.some((s) => s.name === name), `CcatRelayBacklogOld reads ${name}, which the relay does not export`)
      }
      assert.approximately(valueOf(e, "ccat_relay_backlog_oldest_age_seconds") ?? 0, 7200, 120)
      assert.strictEqual(valueOf(e, "ccat_relay_backlog_filings"), 1)
    }).pipe(Effect.orDie))
})
