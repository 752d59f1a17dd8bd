/**
 * Request bodies are read exactly as the OpenAPI document describes them: a property the
 * contract does not name is a 400 naming it, at the top of a body and inside it, and changes
 * nothing. The contract check covers every endpoint with a body, so a new one cannot forget.
 */
import { Api, ApiPayload } from "@ccat/core"
import { Fixtures } from "@ccat/core/testing"
import type * as HttpApiEndpoint from "@effect/platform/HttpApiEndpoint"
import * as OpenApi from "@effect/platform/OpenApi"
import { it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as SchemaAST from "effect/SchemaAST"
import { randomUUID } from "node:crypto"
import { expect } from "vitest"
import * as Harness from "./ApiHarness.js"

const endpoints = Object.values(Api.Api.groups).flatMap((g) =>
  (Object.values(g.endpoints) as Array<HttpApiEndpoint.HttpApiEndpoint.AnyWithProps>).map((e) => ({
    name: `${g.identifier}.${e.name}`,
    endpoint: e
  }))
)

/** A filing body for the fixture world, with `extra` merged into the top and `fileExtra` into its file. */
const filing = (world: Fixtures.World, extra: Record<string, unknown> = {}, fileExtra: Record<string, unknown> = {}) => ({
  id: randomUUID(),
  obsUnitId: world.obsUnit.id,
  startAt: "2026-05-01T03:00:00Z",
  sourceLocation: world.source.name,
  files: [{
    id: randomUUID(),
    module: "280GHz",
    relativePath: `strict/${randomUUID()}.fits`,
    sizeBytes: 3,
    checksum: Fixtures.checksum(),
    ...fileExtra
  }],
  ...extra
})

it.layer(Harness.layer(), { timeout: 60_000 })("request bodies as the OpenAPI document says", (it) => {
  it.effect("every body's Schema refuses properties it does not name, as the document's additionalProperties: false says", () =>
    Effect.sync(() => {
      const withBody = endpoints.filter((e) => Option.isSome(e.endpoint.payloadSchema))
      expect(withBody.length).toBeGreaterThan(15)
      const lax = withBody.filter((e) => {
        const annotation = SchemaAST.getParseOptionsAnnotation(Option.getOrThrow(e.endpoint.payloadSchema).ast)
        return Option.getOrUndefined(annotation)?.onExcessProperty !== ApiPayload.strict.parseOptions.onExcessProperty
      })
      expect(lax.map((e) => e.name)).toEqual([])
      const document = OpenApi.fromApi(Api.Api) as any
      const file = document.components.schemas.FileObservation
      expect(file.additionalProperties).toBe(false)
    }))

  it.effect("a misspelled field of a filing, at the top or in a file, is a 400 naming it, and nothing is filed", () =>
    Effect.gen(function* () {
      const world = yield* Fixtures.world.pipe(Effect.orDie)
      const token = yield* Harness.tokenFor({ role: "instrument", instrumentIds: [world.instrument.id] })
      const before = yield* Harness.counts()
      const top = yield* Harness.raw("POST", "/api/v1/observations", {
        token,
        body: JSON.stringify(filing(world, { endat: "2026-05-01T04:00:00Z" }))
      })
      expect(top.status).toBe(400)
      expect(JSON.stringify(top.json)).toContain("endat")
      const nested = yield* Harness.raw("POST", "/api/v1/observations", {
        token,
        body: JSON.stringify(filing(world, {}, { checksums: "sha256:00" }))
      })
      expect(nested.status).toBe(400)
      expect(JSON.stringify(nested.json)).toContain("checksums")
      const open = filing(world)
      const { files: _, ...header } = open
      expect((yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(header) })).status).toBe(200)
      const during = yield* Harness.counts()
      const added = yield* Harness.raw("POST", `/api/v1/observations/${open.id}/files`, {
        token,
        body: JSON.stringify({ sourceLocation: world.source.name, files: filing(world).files, note: "x" })
      })
      expect(added.status).toBe(400)
      expect(JSON.stringify(added.json)).toContain("note")
      const closed = yield* Harness.raw("POST", `/api/v1/observations/${open.id}/close`, {
        token,
        body: JSON.stringify({ endAt: "2026-05-01T04:00:00Z", status: "completed", qualty: "good" })
      })
      expect(closed.status).toBe(400)
      expect(JSON.stringify(closed.json)).toContain("qualty")
      expect(yield* Harness.counts()).toEqual(during)
      expect(during.raw_data_file).toBe(before.raw_data_file)
      // the same bodies without the stray fields are filed
      expect((yield* Harness.raw("POST", "/api/v1/observations", { token, body: JSON.stringify(filing(world)) })).status).toBe(200)
    }))

  it.effect("an admin's body with a field the contract does not name is refused before anything is created", () =>
    Effect.gen(function* () {
      const admin = yield* Harness.tokenFor({ role: "admin" })
      const before = yield* Harness.counts()
      const account = yield* Harness.raw("POST", "/api/v1/accounts", {
        token: admin,
        body: JSON.stringify({ name: `strict-${Fixtures.suffix()}`, displayName: "Strict", role: "admin", isRoot: true })
      })
      expect(account.status).toBe(400)
      expect(JSON.stringify(account.json)).toContain("isRoot")
      expect(yield* Harness.counts()).toEqual(before)
    }))
})
