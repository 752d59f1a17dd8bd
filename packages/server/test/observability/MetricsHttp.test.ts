/**
 * `GET /metrics` on the real in-process server (the same HTTP layer `ccat serve` runs): Prometheus
 * text 0.0.4 without a token, the ops-db series, and the server's own request metrics labelled
 * by the contract's route templates (never by raw paths).
 */
import { Fixtures } from "@ccat/core/testing"
import { assert, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as MetricsHttp from "../../src/observability/MetricsHttp.js"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Harness from "../ApiHarness.js"
import { repoRoot } from "../support.js"
import { parsePrometheus, valueOf } from "./Formats.js"

const get = (path: string, token?: string) =>
  Effect.gen(function* () {
    const baseUrl = yield* Harness.BaseUrl
    return yield* Effect.promise(async () => {
      const r = await fetch(`${baseUrl}${path}`, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } })
      return { status: r.status, contentType: r.headers.get("content-type"), text: await r.text() }
    })
  })

it.layer(Harness.layer(), { timeout: 60_000 })("GET /metrics", (it) => {
  it.effect("serves valid Prometheus text with ops-db and request series, unauthenticated", () =>
    Effect.gen(function* () {
      yield* Fixtures.world.pipe(Effect.orDie)
      const operator = yield* Harness.tokenFor({ role: "operator" })
      yield* get("/api/v1/health")
      yield* get(`/api/v1/packages/${crypto.randomUUID()}`, operator)
      yield* get("/no/such/path/123")
      const r = yield* get("/metrics")
      assert.strictEqual(r.status, 200)
      assert.match(r.contentType ?? "", /^text\/plain; version=0\.0\.4/)
      const e = parsePrometheus(r.text)
      assert.strictEqual(valueOf(e, "ccat_ops_db_up"), 1)
      assert.strictEqual(e.types.get("ccat_raw_data_files"), "gauge")
      assert.strictEqual(e.types.get("ccat_transfer_bytes_total"), "counter")
      assert.strictEqual(e.types.get("ccat_http_request_duration_seconds"), "histogram")
      assert.isAtLeast(valueOf(e, "ccat_http_requests_total", { method: "GET", route: "/api/v1/health", status: "200" }) ?? 0, 1)
      assert.isAtLeast(valueOf(e, "ccat_http_requests_total", { method: "GET", route: "/api/v1/packages/{id}", status: "404" }) ?? 0, 1)
      assert.isAtLeast(valueOf(e, "ccat_http_requests_total", { method: "GET", route: "other", status: "404" }) ?? 0, 1)
      // No raw path ever becomes a label value.
      assert.isFalse(e.samples.some((s) => s.labels.route?.includes("/no/such") || /[0-9a-f]{8}-/.test(s.labels.route ?? "")))
      // The dashboard queries only series the server exports, and docs/metrics.md describes every one.
      const families = new Set(e.types.keys())
      const dashboard = JSON.parse(yield* Effect.promise(() => fs.readFile(path.join(repoRoot, "docs/grafana-dashboard.json"), "utf8")))
      const exprs: Array<string> = dashboard.panels.flatMap((p: any) => (p.targets ?? []).map((t: any) => t.expr))
      assert.isAbove(exprs.length, 20)
      for (const name of exprs.flatMap((x) => x.match(/ccat_[a-z_]+/g) ?? [])) {
        assert.isTrue(
          families.has(name) || families.has(name.replace(/_(bucket|sum|count)$/, "")),
          `the dashboard queries ${name}, which is not exported`
        )
      }
      const doc = yield* Effect.promise(() => fs.readFile(path.join(repoRoot, "docs/metrics.md"), "utf8"))
      for (const name of [...families].filter((n) => n.startsWith("ccat_"))) {
        assert.include(doc, `\`${name}\``, `docs/metrics.md does not describe ${name}`)
      }
      // A second scrape counts the first.
      const again = parsePrometheus((yield* get("/metrics")).text)
      assert.isAtLeast(valueOf(again, "ccat_http_requests_total", { method: "GET", route: MetricsHttp.path, status: "200" }) ?? 0, 1)
    }))

  it.effect("route templates: literal segments win over parameters", () =>
    Effect.sync(() => {
      assert.strictEqual(MetricsHttp.routeOf("/api/v1/observations?limit=2"), "/api/v1/observations")
      assert.strictEqual(MetricsHttp.routeOf(`/api/v1/observations/${crypto.randomUUID()}`), "/api/v1/observations/{id}")
      assert.strictEqual(MetricsHttp.routeOf("/metrics"), "/metrics")
      assert.strictEqual(MetricsHttp.routeOf("/wp-login.php"), "other")
    }))
})
