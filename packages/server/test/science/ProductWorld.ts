/**
 * An archived data product for the processed-results tests, on the science server
 * (`ScienceWorld.ts`): an observation's raw package is archived, a pipeline writes its product at
 * the PROCESSING location and files it through `@ccat/client` with its provenance, and the
 * product is packaged and archived. Also the calls the tests read it with: TAP, DataLink, and a
 * refused filing's error.
 */
import { Checksum, type DataProductsApi } from "@ccat/core"
import { createClient } from "@ccat/client"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createHash, randomBytes, randomUUID } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Archiving from "../../src/lifecycle/Archiving.js"
import * as Packaging from "../../src/lifecycle/Packaging.js"
import * as ObsCorePublisher from "../../src/ObsCorePublisher.js"
import { tokenFor } from "../ApiHarness.js"
import { arrivedPackage, type ArrivedPackage, runSitesUntil, topologyFrom } from "../lifecycle/ArchiveWorld.js"
import { observatory, policyLayer, syncTopology } from "../lifecycle/LifecycleWorld.js"
import { BaseUrl, get, votableRows } from "./ScienceWorld.js"

/** Writes a product's files at the PROCESSING location, as a pipeline would, and describes them for filing. */
export const writeFiles = (root: string, folder: string, sizes: ReadonlyArray<readonly [string, number]>) =>
  Effect.promise(async () => {
    const out: Array<DataProductsApi.ProductFileSpec> = []
    for (const [name, bytes] of sizes) {
      const relativePath = `${folder}/${name}`
      const body = randomBytes(bytes)
      await fs.mkdir(path.dirname(path.join(root, relativePath)), { recursive: true })
      await fs.writeFile(path.join(root, relativePath), body)
      out.push({
        id: randomUUID(),
        relativePath,
        sizeBytes: bytes,
        checksum: Checksum.make("sha256", createHash("sha256").update(body).digest("hex"))
      })
    }
    return out
  })

/** A synchronous TAP query answered as CSV lines (header first). */
export const tap = (base: string, adql: string, token?: string) =>
  Effect.promise(async () => {
    const response = await fetch(`${base}/tap/sync`, {
      method: "POST",
      headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
      body: new URLSearchParams({ REQUEST: "doQuery", LANG: "ADQL", RESPONSEFORMAT: "csv", QUERY: adql })
    })
    return (await response.text()).trim().split("\r\n")
  })

/** The DataLink rows of one ID, as the caller with the token (or anonymous) sees them. */
export const links = (base: string, id: string, token?: string) =>
  Effect.map(get(`${base}/api/v1/datalink?ID=${encodeURIComponent(id)}`, token), (r) => votableRows(r.body.toString()))

/** The promise's rejection (a contract error), or a failed assertion when it resolves. */
export const refused = (promise: () => Promise<unknown>) =>
  Effect.promise(() =>
    promise().then(() => ({ _tag: "resolved" }) as Record<string, unknown>, (e: unknown) => e as Record<string, unknown>)
  )

/** The first filing of a product, for a test to look at before the product is archived. */
export interface Filing {
  readonly observationId: ArrivedPackage["eou"]["id"]
  readonly ccat: Awaited<ReturnType<typeof createClient>>
  readonly product: DataProductsApi.FileDataProduct
  readonly filed: DataProductsApi.DataProduct
}

/** An archived level-2 product of one archived observation, and who may see it. */
export interface ArchivedProduct {
  readonly base: string
  readonly observatory: Effect.Effect.Success<typeof observatory>
  readonly scientist: string
  readonly observationId: string
  readonly packageId: string
  readonly product: DataProductsApi.FileDataProduct
  readonly stored: DataProductsApi.DataProduct
  readonly productPackageId: string
  readonly processingRoot: string
}

/**
 * Archives an observation's raw package, files a level-2 image of it at PROCESSING as the
 * program's scientist (`onFiled` sees the first filing), and runs packaging and archiving until
 * the product is ARCHIVED.
 */
export const archivedProduct = <E = never, R = never>(
  dir: string,
  onFiled: (filing: Filing) => Effect.Effect<void, E, R> = () => Effect.void
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const base = yield* BaseUrl
    const topology = topologyFrom(dir)
    yield* syncTopology(topology)
    yield* ObsCorePublisher.write({ baseUrl: base })
    const obs = yield* observatory
    const raw = yield* arrivedPackage(topology, obs, [{ path: "det/a.fits", bytes: 20_000 }])
    const status = (id: string) =>
      Effect.map(sql<{ status: string }>`select status::text as status from raw_data_package where id = ${id}`, ([p]) => p!.status)
    yield* runSitesUntil([["cologne", [Archiving.stage]]], Effect.map(status(raw.packageId), (s) => s === "completed"), 60_000).pipe(
      Effect.provide(policyLayer(topology))
    )

    const processingRoot = topology.sites.flatMap((s) => s.locations).find((l) => l.type === "PROCESSING")!.driver.root as string
    const files = yield* writeFiles(processingRoot, `products/m83-${raw.eou.id.slice(0, 8)}`, [
      ["map.fits", 60_000],
      ["weights.fits", 3_000]
    ])
    const scientist = yield* tokenFor({ role: "scientist", programIds: [obs.program.id] })
    const product: DataProductsApi.FileDataProduct = {
      id: randomUUID(),
      name: `M83 map ${raw.eou.id.slice(0, 8)}`,
      pipeline: "ccat-mapmaker",
      pipelineVersion: "1.4.2",
      parameters: { pixelArcsec: 4, iterations: 20 },
      calibLevel: 2,
      dataproductType: "image",
      location: "cologne-processing",
      inputs: [{ observationId: raw.eou.id }],
      files
    }
    const ccat = yield* Effect.promise(() => createClient({ baseUrl: base, token: scientist }))
    const filed = yield* Effect.promise(() => ccat.fileDataProduct(product))
    yield* onFiled({ observationId: raw.eou.id, ccat, product, filed })

    const archived = Effect.map(
      Effect.promise(() => ccat.api.dataProducts.get({ path: { id: product.id } })),
      (p) => p.journey === "ARCHIVED"
    )
    yield* runSitesUntil([["cologne", [Packaging.stage, Archiving.stage]]], archived, 60_000).pipe(
      Effect.provide(policyLayer(topology))
    )
    const stored = yield* Effect.promise(() => ccat.api.dataProducts.get({ path: { id: product.id } }))
    yield* Effect.promise(() => ccat.close())
    return {
      base,
      observatory: obs,
      scientist,
      observationId: raw.eou.id,
      packageId: raw.packageId,
      product,
      stored,
      productPackageId: stored.packages[0]!.id,
      processingRoot
    } satisfies ArchivedProduct
  })

/** The archived product a test file's tests share. */
export class Product extends Context.Tag("test/science/Product")<Product, ArchivedProduct>() {}

/** Builds the archived product once for a test file, on the science server's layer. */
export const productLayer = (dir: string) => Layer.effect(Product, archivedProduct(dir))
