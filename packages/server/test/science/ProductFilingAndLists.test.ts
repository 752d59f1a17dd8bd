/**
 * Filing processed results against an archived product (`ProductWorld.ts`), on a real PostgreSQL
 * and the real HTTP server: bad input (unknown or invisible inputs, a bad calib_level, a name or
 * id reused with other content, inputs of two programs, a path already filed or in staged data)
 * is refused with a clear error and changes nothing; a product of a product, or of a product's
 * package, keeps the whole provenance; two filings racing for one name store one. The product
 * list pages within the caller's programs and filters by program, pipeline, calib_level,
 * observation and journey; `ccat products` (run in process) lists and shows them.
 */
import type { DataProductsApi } from "@ccat/core"
import { createClient } from "@ccat/client"
import * as Command from "@effect/cli/Command"
import * as NodeContext from "@effect/platform-node/NodeContext"
import { assert, describe, layer } from "@effect/vitest"
import * as SqlClient from "@effect/sql/SqlClient"
import type * as Console from "effect/Console"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import { randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import { tmpdir } from "node:os"
import * as path from "node:path"
import { afterAll } from "vitest"
import * as Products from "../../src/cli/Products.js"
import { counts, tokenFor } from "../ApiHarness.js"
import { observatory } from "../lifecycle/LifecycleWorld.js"
import { links, Product, productLayer, refused, writeFiles } from "./ProductWorld.js"
import { layer as scienceLayer } from "./ScienceWorld.js"

const dir = path.join(tmpdir(), `ccat-products-${randomBytes(4).toString("hex")}`)
afterAll(() => fs.rm(dir, { recursive: true, force: true }))

describe("Processed results filed and listed", () => {
  layer(Layer.provideMerge(productLayer(dir), scienceLayer(dir)), { timeout: "3 minutes", excludeTestServices: true })((it) => {
    it.effect(
      "bad input gets a clear error and changes nothing; a product of a product keeps the whole provenance",
      () =>
        Effect.gen(function* () {
          const w = yield* Product
          const sql = yield* SqlClient.SqlClient
          const ccat = yield* Effect.promise(() => createClient({ baseUrl: w.base, token: w.scientist, retry: false }))
          const files = yield* writeFiles(w.processingRoot, `products/level3-${randomUUID().slice(0, 8)}`, [["cube.fits", 2_000]])
          const next: DataProductsApi.FileDataProduct = {
            ...w.product,
            id: randomUUID(),
            name: `M83 mosaic ${randomUUID().slice(0, 8)}`,
            calibLevel: 3,
            dataproductType: "cube",
            inputs: [{ productId: w.product.id }],
            files
          }
          const other = yield* observatory
          const otherObservation = randomUUID()
          yield* sql`insert into executed_obs_unit (id, obs_unit_id, start_at, end_at, status) values (${otherObservation}, ${other.obsUnit.id}, now() - interval '2 hours', now() - interval '1 hour', 'completed')`
          const adminToken = yield* tokenFor({ role: "admin" })
          // a staging request's folder, which its release removes with whatever is in it
          const [request] = yield* sql<{ id: string }>`
          insert into staging_request (account_id, data_location_id, status, staged_folders)
          select (select id from account limit 1), id, 'completed', jsonb_build_object(${randomUUID()}::text, 'deep-field/' || gen_random_uuid())
          from data_location where name = ${w.product.location} returning id`
          const [{ folder }] = yield* sql<
            { folder: string }
          >`select (select value from jsonb_each_text(staged_folders) limit 1) as folder from staging_request where id = ${request!.id}`
          const tables = ["data_product", "data_product_input", "data_product_observation", "raw_data_file", "event_log"]
          const before = yield* counts(tables)
          const cases: ReadonlyArray<readonly [string, DataProductsApi.FileDataProduct, string, string]> = [
            ["an unknown input", { ...next, inputs: [{ observationId: randomUUID() }] }, "Unprocessable", "inputs[0].observationId"],
            [
              "an unknown input product",
              { ...next, inputs: [{ productId: w.product.id }, { productId: randomUUID() }] },
              "Unprocessable",
              "inputs[1].productId"
            ],
            [
              "an input of a program the caller may not see",
              { ...next, inputs: [{ observationId: otherObservation }] },
              "Forbidden",
              "may not access"
            ],
            [
              "an input named twice",
              { ...next, inputs: [{ packageId: w.packageId }, { packageId: w.packageId }] },
              "Unprocessable",
              "named twice"
            ],
            ["a reused name with other content", { ...next, name: w.product.name.toLowerCase() }, "Conflict", "is taken by product"],
            ["a reused id with other content", { ...next, id: w.product.id }, "Conflict", "calibLevel"],
            [
              "a path already filed there",
              { ...next, files: [{ ...files[0]!, relativePath: w.product.files[0]!.relativePath }] },
              "Conflict",
              "is held by"
            ],
            ["a location that is not PROCESSING", { ...next, location: "cologne-archive" }, "Unprocessable", "PROCESSING"],
            [
              "a path in the staged data's store",
              { ...next, files: [{ ...files[0]!, relativePath: ".store/map.fits" }] },
              "Unprocessable",
              "store of staged data"
            ],
            [
              "a path in a staging request's folder",
              { ...next, files: [{ ...files[0]!, relativePath: `${folder}/out/map.fits` }] },
              "Unprocessable",
              request!.id
            ]
          ]
          for (const [what, request, tag, says] of cases) {
            const e = yield* refused(() => ccat.fileDataProduct(request))
            assert.strictEqual(e._tag, tag, `${what}: ${JSON.stringify(e)}`)
            assert.include(JSON.stringify(e), says, what)
          }
          // a calib_level the contract refuses, sent as plain JSON
          const bad = yield* Effect.promise(() =>
            fetch(`${w.base}/api/v1/data-products`, {
              method: "POST",
              headers: { authorization: `Bearer ${w.scientist}`, "content-type": "application/json" },
              body: JSON.stringify({ ...next, calibLevel: 1 })
            }).then(async (r) => ({ status: r.status, body: await r.text() }))
          )
          assert.strictEqual(bad.status, 400)
          assert.include(bad.body, "calibLevel")
          assert.deepStrictEqual(yield* counts(tables), before)

          // inputs of two programs, even for an admin who sees both
          const byAdmin = yield* Effect.promise(() => createClient({ baseUrl: w.base, token: adminToken, retry: false }))
          const spans = yield* refused(() =>
            byAdmin.fileDataProduct({ ...next, inputs: [{ observationId: w.observationId }, { observationId: otherObservation }] })
          )
          assert.strictEqual(spans._tag, "Unprocessable")
          assert.include(String(spans.message), "span observing programs")
          assert.deepStrictEqual(yield* counts(tables), before)

          // a level-3 product of the level-2 one: its provenance reaches the observation
          const mosaic = yield* Effect.promise(() => ccat.fileDataProduct(next))
          assert.deepStrictEqual<ReadonlyArray<string>>(mosaic.observationIds, [w.observationId])
          assert.deepStrictEqual(mosaic.inputs, [{ productId: w.product.id }])
          const own = yield* links(w.base, mosaic.publisherDid, w.scientist)
          assert.deepStrictEqual(
            own.filter((r) => r.semantics === "#progenitor").map((r) => decodeURIComponent(r.access_url!.split("ID=")[1]!)),
            [mosaic.publisherDid.replace(mosaic.id, w.product.id)]
          )

          // a package of a product as an input: the product's observations come with it
          const fromPackage = yield* Effect.promise(() => ccat.fileDataProduct({
            ...next,
            id: randomUUID(),
            name: `from package ${next.id}`,
            inputs: [{ packageId: w.productPackageId }],
            files: [{ ...files[0]!, id: randomUUID(), relativePath: `from-package-${next.id}/cube.fits` }]
          }))
          assert.deepStrictEqual<ReadonlyArray<string>>(fromPackage.observationIds, [w.observationId])

          // two filings racing for one name: one is stored, the other is a 409 and leaves nothing
          const racing = (n: number): DataProductsApi.FileDataProduct => ({
            ...next,
            id: randomUUID(),
            name: `race ${next.id}`,
            files: [{ ...files[0]!, id: randomUUID(), relativePath: `race-${next.id}/${n}.fits` }]
          })
          const raced = yield* Effect.promise(() => Promise.allSettled([ccat.fileDataProduct(racing(1)), ccat.fileDataProduct(racing(2))]))
          assert.deepStrictEqual(raced.map((r) => r.status).sort(), ["fulfilled", "rejected"])
          assert.strictEqual((raced.find((r) => r.status === "rejected") as PromiseRejectedResult).reason._tag, "Conflict")
          assert.strictEqual(
            (yield* sql<{ n: number }>`select count(*)::int as n from data_product where name = ${`race ${next.id}`}`)[0]!.n,
            1
          )
          yield* Effect.promise(() => Promise.all([ccat.close(), byAdmin.close()]))
        }),
      60_000
    )

    it.effect(
      "the product list pages by keyset within the caller's programs, filters by program, pipeline, calib_level, observation and journey, and refuses bad filters",
      () =>
        Effect.gen(function* () {
          const w = yield* Product
          const ccat = yield* Effect.promise(() => createClient({ baseUrl: w.base, token: w.scientist, retry: false }))
          const list = (urlParams: Parameters<typeof ccat.api.dataProducts.list>[0]["urlParams"]) =>
            Effect.promise(() => ccat.api.dataProducts.list({ urlParams }))
          const all = yield* list({})
          assert.isNull(all.nextCursor)
          assert.isAtLeast(all.items.length, 4)
          const first = all.items[0]!
          assert.deepStrictEqual(
            [first.id, first.name, first.calibLevel, first.journey, first.location, first.pipeline],
            [w.product.id, w.product.name, 2, "ARCHIVED", "cologne-processing", "ccat-mapmaker"]
          )
          // one at a time, every product once, in the same order
          const paged: Array<string> = []
          let cursor: string | undefined
          do {
            const next = yield* list({ limit: 1, ...(cursor === undefined ? {} : { cursor }) })
            paged.push(...next.items.map((p) => p.id))
            cursor = next.nextCursor ?? undefined
          } while (cursor !== undefined)
          assert.deepStrictEqual(paged, all.items.map((p) => p.id))
          const ids = (page: { readonly items: ReadonlyArray<{ readonly id: string }> }) => page.items.map((p) => p.id)
          const rest = all.items.slice(1).map((p) => p.id)
          assert.deepStrictEqual(ids(yield* list({ calibLevel: 2 })), [w.product.id])
          assert.deepStrictEqual(ids(yield* list({ calibLevel: 3 })), rest)
          assert.deepStrictEqual(ids(yield* list({ archived: "true" })), [w.product.id])
          assert.deepStrictEqual(ids(yield* list({ archived: "false" })), rest)
          assert.deepStrictEqual(ids(yield* list({ journey: "WAITING" })), rest)
          assert.deepStrictEqual(
            ids(yield* list({ pipeline: "ccat-mapmaker", programId: first.programId, observationId: w.observationId as never })),
            ids(all)
          )
          assert.deepStrictEqual(ids(yield* list({ pipeline: "CCAT-mapmaker" })), [])
          assert.deepStrictEqual(ids(yield* list({ observationId: randomUUID() as never })), [])
          assert.deepStrictEqual(ids(yield* list({ programId: randomUUID() as never })), [])

          // another program's scientist sees none of them, an operator all; an instrument may not list products
          const lists = (token: string, query = "") =>
            Effect.promise(() =>
              fetch(`${w.base}/api/v1/data-products${query}`, { headers: { authorization: `Bearer ${token}` } }).then(async (r) => ({
                status: r.status,
                body: await r.text()
              }))
            )
          const stranger = yield* tokenFor({ role: "scientist", programIds: [(yield* observatory).program.id] })
          assert.deepStrictEqual(JSON.parse((yield* lists(stranger)).body), { items: [], nextCursor: null })
          assert.strictEqual(JSON.parse((yield* lists(yield* tokenFor({ role: "operator" }))).body).items.length, all.items.length)
          assert.strictEqual((yield* lists(yield* tokenFor({ role: "instrument", instrumentIds: [] }))).status, 403)
          // bad filters: named, and a cursor not ours
          for (
            const [query, status, says] of [
              ["?calibLevel=1", 400, "calibLevel"],
              ["?limit=0", 400, "limit"],
              ["?programId=m83", 400, "programId"],
              ["?archived=yes", 400, "archived"],
              ["?journey=DONE", 400, "journey"],
              ["?cursor=bm90LW91cnM", 422, "cursor"]
            ] as const
          ) {
            const answer = yield* lists(w.scientist, query)
            assert.strictEqual(answer.status, status, `${query}: ${answer.body}`)
            assert.include(answer.body, says, query)
          }
          yield* Effect.promise(() => ccat.close())
        }),
      30_000
    )

    it.effect(
      "ccat products lists and shows products, in process against the server; bad options exit 2 and an unknown product 3",
      () =>
        Effect.gen(function* () {
          const w = yield* Product
          const lines: Array<string> = []
          const base = yield* Effect.console
          const capture: Console.Console = {
            ...base,
            log: (...args) => Effect.sync(() => void lines.push(args.join(" "))),
            unsafe: { ...base.unsafe, log: (...args) => void lines.push(args.join(" ")) }
          }
          const run = (...args: Array<string>) => {
            lines.length = 0
            return Command.run(Products.command, { name: "ccat", version: "test" })(["node", "products", ...args]).pipe(
              Effect.withConsole(capture),
              Effect.provide(NodeContext.layer),
              Effect.flip,
              Effect.option
            )
          }
          const ok = (ran: Option.Option<unknown>) => assert.isTrue(Option.isNone(ran), JSON.stringify(ran))
          const remote = ["--url", w.base, "--token", w.scientist]
          const [{ programId }] = yield* SqlClient.SqlClient.pipe(
            Effect.flatMap((sql) =>
              sql<{ programId: string }>`select observing_program_id as program_id from data_product where id = ${w.product.id}`
            )
          )
          ok(yield* run(...remote, "--json", "--program", programId!))
          const listed = JSON.parse(lines.join("\n")) as { items: Array<{ id: string }>; more: boolean }
          assert.strictEqual(listed.items[0]!.id, w.product.id)
          ok(yield* run(...remote, "--calib-level", "2", "--archived"))
          assert.include(lines.join("\n"), w.product.name)
          assert.include(lines.join("\n"), "ARCHIVED")
          ok(yield* run("show", ...remote, w.product.id))
          const shown = lines.join("\n")
          for (const says of [
            "inputs (1)",
            `observation  ${w.observationId}`,
            "derived from observations (1)",
            "files (2)",
            "packages (1)",
            w.product.files[0]!.relativePath,
            "ccat-mapmaker 1.4.2"
          ]) assert.include(shown, says)
          const refusal = (e: Option.Option<unknown>) => Option.getOrThrow(e) as { readonly exitCode?: number; readonly message?: string }
          const badProgram = refusal(yield* run(...remote, "--program", "m83"))
          assert.deepStrictEqual([badProgram.exitCode, badProgram.message], [2, `--program must be a UUID, not "m83"`])
          assert.strictEqual(refusal(yield* run(...remote, "--archived", "--not-archived")).exitCode, 2)
          const unknown = refusal(yield* run("show", ...remote, randomUUID()))
          assert.strictEqual(unknown.exitCode, 3)
          assert.include(unknown.message, "does not exist or is not visible")
        }),
      30_000
    )
  })
})
