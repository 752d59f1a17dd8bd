/**
 * A server for the science-access tests: the real HTTP layer on a free port with storages (so
 * it reads archive copies), the job queue for the lifecycle stages, one fresh ops-db, and a
 * temporary folder for the locations, all for the file's layer.
 */
import { Topology } from "@ccat/core"
import { OpsDb } from "@ccat/core/node"
import { TestDatabase } from "@ccat/core/testing"
import * as FetchHttpClient from "@effect/platform/FetchHttpClient"
import * as HttpServer from "@effect/platform/HttpServer"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import * as ConfigProvider from "effect/ConfigProvider"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { createServer } from "node:http"
import * as JobQueue from "../../src/engine/JobQueue.js"
import * as HttpServerLive from "../../src/HttpServer.js"
import * as Storages from "../../src/lifecycle/Storages.js"
import { ServerConfig } from "../../src/ServerConfig.js"

/** The base URL of the running test server. */
export class BaseUrl extends Context.Tag("test/science/BaseUrl")<BaseUrl, string>() {}

/** The server, the lifecycle's services and the database, for one test file. */
export const layer = (dir: string, environment: Record<string, string> = {}) => {
  const server = HttpServerLive.layerWith({ maxBodyBytes: HttpServerLive.maxBodyBytes }).pipe(
    Layer.provideMerge(NodeHttpServer.layer(createServer, { host: "127.0.0.1", port: 0 }))
  )
  const url = Layer.effect(BaseUrl, HttpServer.addressFormattedWith((a) => Effect.succeed(a)))
  return Layer.provideMerge(url, server).pipe(
    Layer.provideMerge(Layer.mergeAll(JobQueue.layer, Storages.layer())),
    Layer.provideMerge(
      Layer.succeed(ServerConfig, {
        configFile: undefined,
        host: "127.0.0.1",
        port: 0,
        dataDir: dir,
        databaseUrl: undefined,
        topology: Topology.demo(dir)
      })
    ),
    Layer.provideMerge(Layer.succeed(OpsDb.OpsDb, { kind: "external", target: "test" })),
    Layer.provideMerge(TestDatabase.layer),
    Layer.provideMerge(FetchHttpClient.layer),
    // settings the server reads from its environment (CCAT_MAX_DOWNLOADS), given per test file
    Layer.provide(
      Layer.setConfigProvider(
        ConfigProvider.orElse(ConfigProvider.fromMap(new Map(Object.entries(environment))), () => ConfigProvider.fromEnv())
      )
    )
  )
}

/**
 * A GET with an optional token (as a bearer token, or as `{ basic }`: HTTP Basic's password, as
 * TOPCAT sends it), answering the status, headers and the body's bytes, or the error that cut the
 * response (status 0 when it was cut before its head arrived).
 */
export const get = (url: string, token?: string | { readonly basic: string }) =>
  Effect.promise(async () => {
    let response: Response
    const authorization = token === undefined
      ? undefined
      : typeof token === "string"
      ? `Bearer ${token}`
      : `Basic ${Buffer.from(`token:${token.basic}`).toString("base64")}`
    try {
      response = await fetch(url, { headers: authorization === undefined ? {} : { authorization } })
    } catch (e) {
      return { status: 0, headers: new Headers(), body: Buffer.alloc(0), cut: String(e) }
    }
    try {
      const body = Buffer.from(await response.arrayBuffer())
      return { status: response.status, headers: response.headers, body, cut: undefined as string | undefined }
    } catch (e) {
      return { status: response.status, headers: response.headers, body: Buffer.alloc(0), cut: String(e) }
    }
  })

/** The rows of a DataLink VOTable as records of column name to cell text. */
export const votableRows = (xml: string): Array<Record<string, string>> => {
  const names = [...xml.matchAll(/<FIELD [^>]*name="([^"]+)"/g)].map((m) => m[1]!)
  const unescape = (s: string) =>
    s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&")
  return [...xml.matchAll(/<TR>(.*?)<\/TR>/gs)].map((tr) => {
    const cells = [...tr[1]!.matchAll(/<TD(?:\/>|>(.*?)<\/TD>)/gs)].map((m) => unescape(m[1] ?? ""))
    return Object.fromEntries(names.map((n, i) => [n, cells[i] ?? ""]))
  })
}
