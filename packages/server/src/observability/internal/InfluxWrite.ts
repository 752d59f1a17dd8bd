/**
 * The parts of an InfluxDB write that differ between servers: where to write (the URL's API,
 * database or bucket, timestamp precision), how to authenticate (a 2.x token or 1.x basic
 * credentials) and what an answer means (delivered, partly written, refused and why).
 */
import * as Either from "effect/Either"
import * as Redacted from "effect/Redacted"

/** The write endpoint as the pusher uses it. */
export interface Target {
  /** The full URL, query included (it may hold `u=`/`p=` credentials: never log it). */
  readonly url: string
  /** The URL without its query, for logs and errors. */
  readonly shown: string
  /** `v2` for `/api/v2/write` (InfluxDB 2.x, 3.x, 1.8+), `v1` for anything else (`/write`, Telegraf, VictoriaMetrics). */
  readonly api: "v1" | "v2"
  /** The unit of the timestamps the endpoint expects, from the URL's `precision` (nanoseconds when absent). */
  readonly precision: Precision
  /** The `Authorization` header to send, if any. */
  readonly authorization: Redacted.Redacted<string> | undefined
}

/** Timestamp units both write APIs read the same way. (1.x reads `us` as nanoseconds and 2.x refuses `u`, so neither is offered.) */
export type Precision = "ns" | "ms" | "s"

const precisions: ReadonlyArray<Precision> = ["ns", "ms", "s"]

/** What the pusher needs to know to reach the endpoint. */
export interface Credentials {
  readonly token?: Redacted.Redacted<string> | undefined
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
}

/** Checks the URL and credentials once, at startup; the answer is the sentence an operator reads. */
export const target = (url: string, credentials: Credentials): Either.Either<Target, string> => {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    return Either.left(`"${url.split("?")[0]}" is not a URL (expected e.g. http://influx:8086/write?db=ccat)`)
  }
  const shown = `${parsed.origin}${parsed.pathname}`
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") return Either.left(`${shown} is not an http or https URL`)
  const api = parsed.pathname.replace(/\/+$/, "").endsWith("/api/v2/write") ? "v2" : "v1"
  const raw = parsed.searchParams.get("precision")
  const precision = raw === null || raw === "" || raw === "n" ? "ns" : raw
  if (!precisions.includes(precision as Precision)) return Either.left(`${shown}: precision=${raw} is not one of ${precisions.join(", ")}`)
  const { password, token, username } = credentials
  if (token !== undefined && (username !== undefined || password !== undefined)) {
    return Either.left("set either a token (InfluxDB 2.x/3.x, or user:password for 1.8+) or a username and password (1.x), not both")
  }
  if ((username === undefined) !== (password === undefined)) return Either.left("a username needs a password and a password a username")
  const authorization = token !== undefined
    ? Redacted.make(`Token ${Redacted.value(token)}`)
    : username !== undefined && password !== undefined
    ? Redacted.make(`Basic ${Buffer.from(`${username}:${Redacted.value(password)}`).toString("base64")}`)
    : undefined
  return Either.right({ url, shown, api, precision: precision as Precision, authorization })
}

/** Now (milliseconds since the epoch) in the endpoint's precision. */
export const timestamp = (precision: Precision, nowMs: number): bigint =>
  precision === "ns" ? BigInt(nowMs) * 1_000_000n : precision === "ms" ? BigInt(nowMs) : BigInt(Math.floor(nowMs / 1000))

/** How an answer other than 2xx is read. */
export type Refusal =
  | { readonly _tag: "Partial"; readonly detail: string }
  | { readonly _tag: "Unauthorized" | "NotFound" | "Rejected" | "Status"; readonly detail: string }

/** The server's own words: `{"error": …}` (1.x), `{"message": …}` (2.x), or the raw text. */
export const detailOf = (body: string): string => {
  let text = body.trim()
  try {
    const json = JSON.parse(text) as { error?: unknown; message?: unknown }
    if (typeof json.error === "string") text = json.error
    else if (typeof json.message === "string") text = json.message
  } catch {
    // Not JSON: a proxy's page or plain text, kept as it is.
  }
  return text.replace(/\s+/g, " ").slice(0, 300)
}

/**
 * A refusal by status and body. A partial write (1.x answers 400, 2.x 422) wrote every point but
 * the ones named: sending the same points again cannot help, so it counts as delivered.
 */
export const refusal = (status: number, body: string): Refusal => {
  const detail = detailOf(body)
  if (/partial write/i.test(detail) && (status === 400 || status === 422)) return { _tag: "Partial", detail }
  if (status === 401 || status === 403) return { _tag: "Unauthorized", detail }
  if (status === 404) return { _tag: "NotFound", detail }
  if (status === 400 || status === 413 || status === 422) return { _tag: "Rejected", detail }
  return { _tag: "Status", detail }
}
