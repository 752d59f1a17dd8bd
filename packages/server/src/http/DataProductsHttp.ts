/**
 * The data products group: a pipeline files a processed product with its provenance (see
 * `ProductFiling`); people list products (`ProductList`) and read one back with its files,
 * packages and journey to the archive.
 */
import { Api, ApiSecurity } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as Effect from "effect/Effect"
import * as ProductFiling from "./ProductFiling.js"
import * as ProductList from "./ProductList.js"

/** The data products group's handlers. */
export const DataProductsHttpLive = HttpApiBuilder.group(Api.Api, "dataProducts", (handlers) =>
  handlers
    .handle("file", ({ payload }) => Effect.flatMap(ApiSecurity.CurrentAccount, (p) => ProductFiling.file(p, payload)))
    .handle("list", ({ urlParams }) => Effect.flatMap(ApiSecurity.CurrentAccount, (p) => ProductList.list(p, urlParams)))
    .handle("get", ({ path }) =>
      Effect.gen(function* () {
        const p = yield* ApiSecurity.CurrentAccount
        const product = yield* ProductFiling.read(p, path.id.toLowerCase())
        if (product === undefined) return yield* ProductFiling.notFound(path.id)
        return product
      })))
