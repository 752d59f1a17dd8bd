/**
 * A readable page of the API at `/api/v1/docs`, generated from the same OpenAPI document as
 * `/api/v1/openapi.json`: every group, route, role, parameter, body and error. It is plain HTML
 * with inline styles and no script, so it renders on a machine without internet access (the
 * usual OpenAPI viewers load their code from a CDN).
 */
import { Api } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as OpenApi from "@effect/platform/OpenApi"
import * as Effect from "effect/Effect"

const escape = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;")

const refName = (schema: any): string => {
  if (schema === undefined) return ""
  if (typeof schema.$ref === "string") return schema.$ref.split("/").pop()
  if (Array.isArray(schema.anyOf)) return schema.anyOf.map(refName).join(" | ")
  if (schema.type === "array") return `${refName(schema.items)}[]`
  return schema.type ?? "object"
}

const paragraphs = (text: string | undefined) =>
  (text ?? "").split(/\n\n+/).filter((t) => t !== "").map((t) => `<p>${escape(t)}</p>`).join("")

/** Renders the OpenAPI document of the contract as one HTML page. */
export const render = (): string => {
  const spec: any = OpenApi.fromApi(Api.Api)
  const byTag = new Map<string, Array<string>>()
  for (const [path, item] of Object.entries<any>(spec.paths)) {
    for (const [method, op] of Object.entries<any>(item)) {
      const tag = op.tags?.[0] ?? "other"
      const params = (op.parameters ?? []).map((p: any) =>
        `<li><code>${escape(p.name)}</code> <em>${escape(p.in)}${p.required ? ", required" : ""}</em> ${escape(refName(p.schema))}${
          p.description ? ` — ${escape(p.description)}` : ""
        }</li>`
      ).join("")
      const body = op.requestBody?.content?.["application/json"]?.schema
      const responses = Object.entries<any>(op.responses ?? {}).map(([status, r]) => {
        const schema = r.content?.["application/json"]?.schema
        return `<li><code>${escape(status)}</code> ${escape(schema ? refName(schema) : "")} <span class="muted">${
          escape(r.description ?? "")
        }</span></li>`
      }).join("")
      const section = `<section class="op"><h3><span class="method ${method}">${method.toUpperCase()}</span> <code>${
        escape(path)
      }</code> <span class="muted">${escape(op.operationId ?? "")}</span></h3>
        ${paragraphs(op.description)}
        ${params === "" ? "" : `<h4>Parameters</h4><ul>${params}</ul>`}
        ${body === undefined ? "" : `<h4>Body</h4><p><code>${escape(refName(body))}</code></p>`}
        <h4>Responses</h4><ul>${responses}</ul></section>`
      byTag.set(tag, [...(byTag.get(tag) ?? []), section])
    }
  }
  const tags = new Map<string, string>((spec.tags ?? []).map((t: any) => [t.name, t.description ?? ""]))
  const toc = [...byTag.keys()].map((t) => `<a href="#${escape(t)}">${escape(t)}</a>`).join(" · ")
  const groups = [...byTag.entries()].map(([tag, ops]) =>
    `<h2 id="${escape(tag)}">${escape(tag)}</h2>${paragraphs(tags.get(tag))}${ops.join("")}`
  ).join("")
  const schemas = Object.entries<any>(spec.components?.schemas ?? {}).map(([name, s]) => {
    const props = Object.entries<any>(s.properties ?? {}).map(([k, v]) =>
      `<li><code>${escape(k)}</code>${(s.required ?? []).includes(k) ? "" : " <em>optional</em>"} ${escape(refName(v))}${
        v.description ? ` — ${escape(v.description)}` : ""
      }</li>`
    ).join("")
    return `<section class="op" id="schema-${escape(name)}"><h3><code>${escape(name)}</code></h3>${paragraphs(s.description)}${
      props === "" ? "" : `<ul>${props}</ul>`
    }</section>`
  }).join("")
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escape(spec.info.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h2{border-bottom:2px solid #d8dde6;padding-top:1rem}.op{border:1px solid #d8dde6;border-radius:6px;padding:.5rem 1rem;margin:1rem 0}
.method{display:inline-block;min-width:4.5rem;text-align:center;border-radius:4px;color:#fff;font-size:.8rem;padding:.1rem .3rem}
.get{background:#2f6fb3}.post{background:#2e8b57}.patch{background:#b37a2f}.delete{background:#b33a2f}.muted{color:#6b7280;font-weight:normal}
code{background:#f3f5f8;padding:0 .2rem;border-radius:3px}h4{margin:.5rem 0 0}
</style></head><body>
<h1>${escape(spec.info.title)}</h1>
${paragraphs(spec.info.description)}
<p>Version ${escape(spec.info.version)}. Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</p>
<h2>Authentication</h2>
<p>Every endpoint except health and readiness takes an API token: <code>Authorization: Bearer ccat_…</code>. An admin creates one with
<code>ccat token create --account NAME --role ROLE [--instrument X] [--program Y]</code>; it is printed once. Each endpoint lists the roles it accepts.</p>
<p>${toc}</p>
${groups}
<h2 id="schemas">Schemas</h2>
${schemas}
</body></html>`
}

/** Serves the page at `/api/v1/docs`. */
export const layer = HttpApiBuilder.Router.use((router) =>
  Effect.gen(function* () {
    const response = HttpServerResponse.html(render())
    yield* router.get("/api/v1/docs", Effect.succeed(response))
  })
)
