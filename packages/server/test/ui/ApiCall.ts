/**
 * Calls to a running server's API as the UI tests make them, outside the browser: to arrange
 * what a page should show and to check what a click did.
 */

/** Calls the API with a token; throws on a non-2xx answer, with the body. */
export type ApiCall = (token: string, method: string, route: string, body?: unknown) => Promise<any>

/** An ApiCall to the server at `base` (`http://host:port`). */
export const apiAt = (base: string): ApiCall => async (token, method, route, body) => {
  const r = await fetch(`${base}/api/v1${route}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const text = await r.text()
  if (!r.ok) throw new Error(`${method} ${route}: ${r.status} ${text}`)
  return text === "" ? null : JSON.parse(text)
}
