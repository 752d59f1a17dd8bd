// @ts-check
/**
 * The UI's only way to the server: the JSON API under `/api/v1`, with the signed-in user's
 * bearer token. The token lives in sessionStorage, so it is gone when the tab closes and is
 * never sent anywhere but this server. Every failure becomes an `ApiError` carrying the API's
 * own tag, reason and sentence, which the pages show as they are.
 */

const tokenKey = "ccat.token"

/** The API's answer to a request that did not succeed, or a network failure (status 0). */
export class ApiError extends Error {
  /**
   * @param {number} status HTTP status, 0 when the server could not be reached
   * @param {string} tag the error's `_tag` (Unauthorized, Forbidden, NotFound, Conflict, ...)
   * @param {string} message the sentence to show
   * @param {string | undefined} reason the error's reason, when it has one
   */
  constructor(status, tag, message, reason) {
    super(message)
    this.status = status
    this.tag = tag
    this.reason = reason
  }
}

/** The stored token, or null when nobody is signed in. */
export const token = () => sessionStorage.getItem(tokenKey)

/**
 * Keeps a token for this tab.
 * @param {string} value
 */
export const setToken = (value) => sessionStorage.setItem(tokenKey, value)

/** Forgets the token. */
export const clearToken = () => sessionStorage.removeItem(tokenKey)

/**
 * Reads a failed response into an ApiError: the API's tagged errors carry a message; schema
 * violations (`HttpApiDecodeError`) carry issues naming the field.
 * @param {Response} response
 */
const failure = async (response) => {
  /** @type {any} */
  let body = null
  try {
    body = await response.json()
  } catch {
    // Not JSON (a proxy's page): the status line is all there is.
  }
  const tag = typeof body?._tag === "string" ? body._tag : `HTTP ${response.status}`
  let message = typeof body?.message === "string" && body.message !== "" ? body.message : response.statusText || `HTTP ${response.status}`
  if (Array.isArray(body?.issues) && body.issues.length > 0) {
    message = body.issues.map((/** @type {any} */ i) => `${(i.path ?? []).join(".") || "request"}: ${i.message}`).join("; ")
  }
  return new ApiError(response.status, tag, message, typeof body?.reason === "string" ? body.reason : undefined)
}

/**
 * Calls the API. Undefined, null and empty-string parameters are left out of the query.
 * @param {"GET" | "POST" | "PATCH" | "DELETE"} method
 * @param {string} path below `/api/v1`, e.g. `/observations`
 * @param {{ query?: Record<string, string | number | null | undefined>, body?: unknown, token?: string }} [options]
 * @returns {Promise<any>}
 */
export const call = async (method, path, options = {}) => {
  const url = new URL(`/api/v1${path}`, location.origin)
  for (const [k, v] of Object.entries(options.query ?? {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v))
  }
  /** @type {Record<string, string>} */
  const headers = { accept: "application/json" }
  const bearer = options.token ?? token()
  if (bearer !== null) headers.authorization = `Bearer ${bearer}`
  if (options.body !== undefined) headers["content-type"] = "application/json"
  let response
  try {
    response = await fetch(url, { method, headers, body: options.body === undefined ? undefined : JSON.stringify(options.body) })
  } catch (e) {
    throw new ApiError(0, "NetworkError", `the server did not answer (${e instanceof Error ? e.message : String(e)})`, undefined)
  }
  if (!response.ok) {
    const error = await failure(response)
    // A token that stopped working (revoked, expired) ends the session: the user signs in again.
    if (response.status === 401) window.dispatchEvent(new CustomEvent("ccat:unauthorized", { detail: error }))
    throw error
  }
  if (response.status === 204) return null
  return response.json()
}

/**
 * GET a path.
 * @param {string} path
 * @param {Record<string, string | number | null | undefined>} [query]
 */
export const get = (path, query) => call("GET", path, { query })

/**
 * POST a JSON body.
 * @param {string} path
 * @param {unknown} body
 */
export const post = (path, body) => call("POST", path, { body })

/**
 * PATCH a JSON body.
 * @param {string} path
 * @param {unknown} body
 */
export const patch = (path, body) => call("PATCH", path, { body })

/**
 * Every item of a paged list, following cursors up to `max` items (the UI's lookups of sites,
 * locations and the like are small; a bound keeps a mistake from loading a whole table).
 * @param {string} path
 * @param {Record<string, string | number | null | undefined>} [query]
 * @param {number} [max]
 * @returns {Promise<any[]>}
 */
export const all = async (path, query = {}, max = 5000) => {
  /** @type {any[]} */
  const items = []
  /** @type {string | null} */
  let cursor = null
  do {
    const page = await get(path, { ...query, limit: 1000, cursor })
    items.push(...page.items)
    cursor = page.nextCursor
  } while (cursor !== null && items.length < max)
  return items
}
