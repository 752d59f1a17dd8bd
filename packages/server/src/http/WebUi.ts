/**
 * The web UI: plain HTML, CSS and ES-module JavaScript from `packages/server/ui/`, served at
 * `/ui/` (and `/` redirects there). There is no build step and nothing is fetched from the
 * internet, so the UI works on an observatory's isolated network exactly as it is published.
 *
 * The folder is read once, when the layer is built, into a map of relative path → bytes. A
 * request is answered only from that map, so no part of a URL ever reaches the file system:
 * `..`, encoded `%2e%2e`, backslashes and symlinks cannot name a file outside the folder.
 */
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import { createHash } from "node:crypto"
import { existsSync } from "node:fs"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

/** The UI folder could not be found or read: the server would serve a broken UI, so it does not start. */
export class WebUiError extends Data.TaggedError("WebUiError")<{
  readonly reason: "NotFound" | "Unreadable"
  readonly folder: string
  readonly cause?: unknown
}> {
  override get message(): string {
    return this.reason === "NotFound"
      ? `web UI: no ui/ folder at ${this.folder} (the package is incomplete)`
      : `web UI: cannot read ${this.folder}: ${String(this.cause)}`
  }
}

/**
 * Where the assets are: `src/http/WebUi.ts` runs from sources (tests, tsx) two levels below the
 * package, while tsup bundles this module into `dist/cli.js`, one level below. The first
 * candidate holding `index.html` wins.
 */
export const folder = (): string | undefined =>
  [new URL("../../ui/", import.meta.url), new URL("../ui/", import.meta.url)]
    .map((u) => fileURLToPath(u))
    .find((dir) => existsSync(path.join(dir, "index.html")))

/** Content types of the files the UI is made of; anything else is not served. */
export const contentTypes: Readonly<Record<string, string>> = {
  ".html": "text/html; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon"
}

/** One asset, held in memory with its validator. */
export interface Asset {
  readonly body: Uint8Array
  readonly contentType: string
  /** A strong ETag from the content, so a browser revalidates cheaply and never runs stale code after an upgrade. */
  readonly etag: string
}

/** Reads every asset under `dir` (recursively) into a map keyed by its `/`-separated relative path. */
export const load = (dir: string) =>
  Effect.tryPromise({
    try: async () => {
      const assets = new Map<string, Asset>()
      const walk = async (sub: string): Promise<void> => {
        for (const entry of await fs.readdir(path.join(dir, sub), { withFileTypes: true })) {
          const relative = sub === "" ? entry.name : `${sub}/${entry.name}`
          if (entry.isDirectory()) {
            await walk(relative)
            continue
          }
          // Only regular files: a symlink in the folder is not followed out of it.
          if (!entry.isFile()) continue
          const contentType = contentTypes[path.extname(entry.name).toLowerCase()]
          if (contentType === undefined) continue
          const body = new Uint8Array(await fs.readFile(path.join(dir, relative)))
          assets.set(relative, { body, contentType, etag: `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"` })
        }
      }
      await walk("")
      return assets as ReadonlyMap<string, Asset>
    },
    catch: (cause) => new WebUiError({ reason: "Unreadable", folder: dir, cause })
  })

/**
 * The security headers of every UI response. The policy allows scripts, styles and requests to
 * this server only: even if API data were ever rendered as markup by mistake, an injected
 * inline script would not run.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY"
}

/**
 * The asset a request path names, or undefined. The path after `/ui/` is percent-decoded once
 * and must be a plain relative path: no empty, `.` or `..` segment, no backslash or NUL.
 */
export const resolve = (assets: ReadonlyMap<string, Asset>, rawPath: string): Asset | undefined => {
  const pathname = rawPath.split("?")[0].split("#")[0]
  if (!pathname.startsWith("/ui/")) return undefined
  let relative: string
  try {
    relative = decodeURIComponent(pathname.slice("/ui/".length))
  } catch {
    return undefined
  }
  if (relative === "") relative = "index.html"
  if (relative.includes("\\") || relative.includes("\0")) return undefined
  if (relative.split("/").some((s) => s === "" || s === "." || s === "..")) return undefined
  return assets.get(relative)
}

const notFound = HttpServerResponse.text("not found\n", { status: 404, headers: securityHeaders })

/** Serves the UI at `/ui/*`; `/` and `/ui` redirect to `/ui/`. */
export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const dir = folder()
    if (dir === undefined) {
      return yield* new WebUiError({ reason: "NotFound", folder: fileURLToPath(new URL("../../ui/", import.meta.url)) })
    }
    const assets = yield* load(dir)
    // One handler for the three routes: the router ignores a trailing slash, so `/ui/` may
    // arrive at the `/ui` route, and only the raw URL tells a redirect from the index.
    const handler = Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const pathname = request.url.split("?")[0]
      if (pathname === "/" || pathname === "/ui") return HttpServerResponse.redirect("/ui/", { status: 302 })
      const asset = resolve(assets, request.url)
      if (asset === undefined) return notFound
      const headers = { ...securityHeaders, etag: asset.etag, "cache-control": "no-cache" }
      if (request.headers["if-none-match"] === asset.etag) return HttpServerResponse.empty({ status: 304, headers })
      return HttpServerResponse.uint8Array(asset.body, { contentType: asset.contentType, headers })
    })
    yield* router.get("/", handler)
    yield* router.get("/ui", handler)
    yield* router.get("/ui/*", handler)
  })
)
