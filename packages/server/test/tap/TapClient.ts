/**
 * A small TAP client for the tests: requests to the in-process server's `/tap`, with or without a
 * token, and readers for the answers (VOTable rows and fields, QUERY_STATUS, CSV).
 */
import * as Effect from "effect/Effect"
import * as Harness from "../ApiHarness.js"

/** An answer of the service. */
export interface Answer {
  readonly status: number
  readonly contentType: string
  readonly location: string | null
  readonly challenge: string | null
  readonly text: string
}

/** HTTP Basic credentials, as TOPCAT and STILTS send them when challenged: the token is the password. */
export const basic = (token: string, user = "token") => `Basic ${Buffer.from(`${user}:${token}`).toString("base64")}`

/**
 * Sends a request; `form` goes as an urlencoded body (POST) or as the query string (GET); a
 * token goes as a bearer token, `authorization` as the header itself.
 */
export const request = (
  path: string,
  init: { readonly method?: string; readonly token?: string; readonly authorization?: string; readonly form?: Record<string, string> } = {}
) =>
  Effect.gen(function* () {
    const base = yield* Harness.BaseUrl
    const method = init.method ?? (init.form === undefined ? "GET" : "POST")
    const query = method === "GET" && init.form !== undefined ? `?${new URLSearchParams(init.form)}` : ""
    return yield* Effect.promise(async (): Promise<Answer> => {
      const response = await fetch(`${base}${path}${query}`, {
        method,
        redirect: "manual",
        headers: init.authorization !== undefined
          ? { authorization: init.authorization }
          : init.token === undefined
          ? {}
          : { authorization: `Bearer ${init.token}` },
        ...(method !== "GET" && init.form !== undefined ? { body: new URLSearchParams(init.form) } : {})
      })
      return {
        status: response.status,
        contentType: response.headers.get("content-type") ?? "",
        location: response.headers.get("location"),
        challenge: response.headers.get("www-authenticate"),
        text: await response.text()
      }
    })
  })

/** A synchronous ADQL query. */
export const query = (
  adql: string,
  options: { readonly token?: string; readonly format?: string; readonly maxrec?: number; readonly method?: "GET" | "POST" } = {}
) =>
  request("/tap/sync", {
    method: options.method ?? "POST",
    ...(options.token === undefined ? {} : { token: options.token }),
    form: {
      REQUEST: "doQuery",
      LANG: "ADQL",
      QUERY: adql,
      ...(options.format === undefined ? {} : { RESPONSEFORMAT: options.format }),
      ...(options.maxrec === undefined ? {} : { MAXREC: String(options.maxrec) })
    }
  })

const unescape = (s: string) =>
  s.replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&quot;/g, '"').replace(/&apos;/g, "'").replace(/&amp;/g, "&")

/** The rows of a VOTable's TABLEDATA, as strings. */
export const rows = (votable: string): Array<Array<string>> =>
  [...votable.matchAll(/<TR>(.*?)<\/TR>/gs)].map((tr) =>
    [...tr[1]!.matchAll(/<TD>(.*?)<\/TD>|<TD\/>/gs)].map((td) => unescape(td[1] ?? ""))
  )

/** The FIELD names of a VOTable. */
export const fields = (votable: string): Array<string> => [...votable.matchAll(/<FIELD name="([^"]*)"/g)].map((m) => m[1]!)

/** Every QUERY_STATUS of a VOTable, in order. */
export const statuses = (votable: string): Array<string> =>
  [...votable.matchAll(/<INFO name="QUERY_STATUS" value="([A-Z]+)"/g)].map((m) => m[1]!)

/** The message of an error document. */
export const errorMessage = (votable: string): string =>
  unescape(/<INFO name="QUERY_STATUS" value="ERROR">(.*?)<\/INFO>/s.exec(votable)?.[1] ?? "")
