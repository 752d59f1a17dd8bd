/**
 * An in-process reference server for API tests: the real HTTP layer on a real Node server on
 * a free port, on a fresh migrated ops-db, called through the client derived from the contract
 * (`HttpApiClient.make(Api.Api)`), plus helpers to make accounts and tokens for each role.
 */
import { Api, Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { Fixtures, TestDatabase } from "@ccat/core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpApiClient from "@effect/platform/HttpApiClient"
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as Tokens from "../src/auth/Tokens.js"
import * as HttpServerLive from "../src/HttpServer.js"
import { ServerConfig } from "../src/ServerConfig.js"

/** The base URL of the running test server. */
export class BaseUrl extends Context.Tag("test/BaseUrl")<BaseUrl, string>() {}

/** A test server on a fresh database, with its SqlClient for direct checks. */
export const layer = (options: { readonly maxBodyBytes?: number } = {}) => {
  const server = HttpServerLive.layerWith({ maxBodyBytes: options.maxBodyBytes ?? HttpServerLive.maxBodyBytes }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
  )
  const url = Layer.effect(BaseUrl, HttpServer.addressFormattedWith((a) => Effect.succeed(a)))
  return Layer.provideMerge(url, server).pipe(
    Layer.provideMerge(
      Layer.succeed(ServerConfig, {
        configFile: undefined,
        host: "127.0.0.1",
        port: 0,
        dataDir: "/tmp/ccat-api-test",
        databaseUrl: undefined,
        topology: Topology.demo("/tmp/ccat-api-test")
      })
    ),
    Layer.provideMerge(Layer.succeed(OpsDb.OpsDb, { kind: "external", target: "test" })),
    Layer.provideMerge(TestDatabase.layer),
    Layer.provideMerge(FetchHttpClient.layer)
  )
}

/** The derived client, with a bearer token when one is given. */
export const client = (token?: string) =>
  Effect.gen(function* () {
    const baseUrl = yield* BaseUrl
    return yield* HttpApiClient.make(Api.Api, {
      baseUrl,
      transformClient: token === undefined ? undefined : HttpClient.mapRequest(HttpClientRequest.bearerToken(token))
    })
  })

/** A raw request (for bodies the derived client would never send), answering status and JSON. */
export const raw = (method: string, path: string, init: { token?: string; body?: string; headers?: Record<string, string> } = {}) =>
  Effect.gen(function* () {
    const baseUrl = yield* BaseUrl
    return yield* Effect.promise(async () => {
      const response = await fetch(`${baseUrl}${path}`, {
        method,
        headers: {
          ...(init.token === undefined ? {} : { authorization: `Bearer ${init.token}` }),
          ...(init.body === undefined ? {} : { "content-type": "application/json" }),
          ...init.headers
        },
        ...(init.body === undefined ? {} : { body: init.body })
      })
      const text = await response.text()
      let json: any
      try {
        json = text === "" ? undefined : JSON.parse(text)
      } catch {
        json = text
      }
      return { status: response.status, json }
    })
  })

/** An account of a role, with grants, and a fresh token for it. */
export const tokenFor = (input: {
  readonly role: "instrument" | "scientist" | "operator" | "admin"
  readonly name?: string
  readonly instrumentIds?: ReadonlyArray<string>
  readonly programIds?: ReadonlyArray<string>
}) =>
  Effect.gen(function* () {
    const account = yield* Tokens.ensureAccount({ name: input.name ?? `${input.role}-${Fixtures.suffix()}`, role: input.role })
    for (const id of input.instrumentIds ?? []) yield* Tokens.grantInstrument(account.id, id as any)
    for (const id of input.programIds ?? []) yield* Tokens.grantProgram(account.id, id as any)
    const { token } = yield* Tokens.issue({ accountId: account.id })
    return token
  }).pipe(Effect.orDie)

/** Counts the rows of tables, to prove a refused request changed nothing. */
export const counts = (
  tables: ReadonlyArray<string> = [
    "executed_obs_unit",
    "raw_data_file",
    "event_log",
    "staging_request",
    "staging_request_item",
    "api_token",
    "account"
  ]
) =>
  Effect.gen(function* () {
    const sql = yield* SqlClient.SqlClient
    const out: Record<string, number> = {}
    for (const t of tables) {
      const rows = yield* sql<{ n: number }>`select count(*)::int as n from ${sql(t)}`
      out[t] = rows[0].n
    }
    return out
  }).pipe(Effect.orDie)
