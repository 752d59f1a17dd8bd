/**
 * The web UI's files as the server hands them out: a real `ccat serve` (the bundled command, as
 * installed) on a fresh ops-db answers with content types, validators and security headers, and
 * with 404 to every path that tries to leave the UI folder; the published package holds the
 * folder; and the path resolution on its own.
 */
import { execFile } from "node:child_process"
import * as http from "node:http"
import { promisify } from "node:util"
import { afterAll, beforeAll, describe, expect, it } from "vitest"
import * as WebUi from "../../src/http/WebUi.js"
import * as CliWorld from "../cli/CliWorld.js"
import { repoRoot } from "../support.js"

const run = promisify(execFile)
let world: { readonly base: string; readonly close: () => Promise<void> }

beforeAll(async () => {
  const w = await CliWorld.start()
  world = { base: w.url, close: w.close }
}, 180_000)

afterAll(async () => {
  await world?.close()
}, 60_000)

/** A GET with the path sent exactly as written (fetch would normalise `..` away). */
const raw = (route: string, headers: Record<string, string> = {}) =>
  new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }>((resolve, reject) => {
    const url = new URL(world.base)
    const req = http.request({ host: url.hostname, port: url.port, path: route, method: "GET", headers }, (res) => {
      let body = ""
      res.setEncoding("utf8")
      res.on("data", (c) => (body += c))
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }))
    })
    req.on("error", reject)
    req.end()
  })

describe("web UI files", () => {
  it("serves the UI with content types, validators and security headers; / redirects to it", async () => {
    const root = await raw("/")
    expect(root.status).toBe(302)
    expect(root.headers.location).toBe("/ui/")
    expect((await raw("/ui")).headers.location).toBe("/ui/")
    const index = await raw("/ui/")
    expect(index.status).toBe(200)
    expect(index.headers["content-type"]).toBe("text/html; charset=utf-8")
    expect(index.body).toContain('<script type="module" src="js/main.js">')
    expect(index.headers["cache-control"]).toBe("no-cache")
    expect(index.headers["content-security-policy"]).toContain("script-src 'self'")
    expect(index.headers["x-content-type-options"]).toBe("nosniff")
    const etag = index.headers.etag!
    expect(etag).toMatch(/^"[\w-]+"$/)
    const again = await raw("/ui/", { "if-none-match": etag })
    expect(again.status).toBe(304)
    expect(again.body).toBe("")
    expect((await raw("/ui/app.css")).headers["content-type"]).toBe("text/css; charset=utf-8")
    expect((await raw("/ui/js/main.js")).headers["content-type"]).toBe("text/javascript; charset=utf-8")
    expect((await raw("/ui/js/pages/observations.js?v=1")).status).toBe(200)
    expect((await raw("/ui/no-such-page.js")).status).toBe(404)
  })

  it("answers 404 to every path that tries to leave the UI folder, plain or encoded", async () => {
    const attempts = [
      "/ui/../package.json",
      "/ui/../../package.json",
      "/ui/%2e%2e/package.json",
      "/ui/%2E%2E/%2E%2E/package.json",
      "/ui/%2e%2e%2fpackage.json",
      "/ui/js/..%2f..%2fsrc%2fcli.ts",
      "/ui/..%5c..%5cpackage.json",
      "/ui/./index.html",
      "/ui//etc/passwd",
      "/ui/%2fetc%2fpasswd",
      "/ui/index.html%00.js",
      "/ui/%zz"
    ]
    for (const route of attempts) {
      const r = await raw(route)
      expect(r.status, route).toBe(404)
      expect(r.body, route).not.toContain("@ccat/server")
      expect(r.body, route).not.toContain("root:")
    }
  })

  it("is in the published package: npm pack holds ui/ beside dist/", async () => {
    const { stdout } = await run("npm", ["pack", "--dry-run", "--json", "--workspace", "@ccat/server"], { cwd: repoRoot })
    const files = (JSON.parse(stdout)[0].files as Array<{ path: string }>).map((f) => f.path)
    for (const f of ["ui/index.html", "ui/app.css", "ui/js/main.js", "ui/js/pages/observations.js"]) expect(files).toContain(f)
    expect(files.filter((f) => f.startsWith("test/"))).toEqual([])
  })

  it("resolves only plain relative paths to loaded assets", () => {
    const asset: WebUi.Asset = { body: new Uint8Array(), contentType: "text/html; charset=utf-8", etag: '"x"' }
    const assets = new Map([["index.html", asset], ["js/main.js", asset]])
    expect(WebUi.resolve(assets, "/ui/")).toBe(asset)
    expect(WebUi.resolve(assets, "/ui/js/main.js?x=1")).toBe(asset)
    expect(WebUi.resolve(assets, "/ui/js%2Fmain.js")).toBe(asset)
    for (const bad of ["/ui/js/../index.html", "/ui/%2e%2e/x", "/ui/js\\main.js", "/ui/js//main.js", "/ui/%E0%A4%A", "/other/index.html"]) {
      expect(WebUi.resolve(assets, bad), bad).toBeUndefined()
    }
  })
})
