/**
 * Requests the API refuses before any endpoint sees them: bodies over the limit (413, from the
 * Content-Length header, or while reading a chunked body) and bodies that are not JSON (400).
 * Both answer with the contract's own errors, so the derived client decodes them as such.
 */
import { ApiErrors } from "@ccat/core"
import type * as HttpApp from "@effect/platform/HttpApp"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

const tooLarge = (limit: number) => {
  const error = new ApiErrors.PayloadTooLarge({
    limitBytes: limit,
    message: `the request body is larger than the server accepts (${limit} bytes); send fewer files per request`
  })
  return HttpServerResponse.unsafeJson({ _tag: error._tag, limitBytes: error.limitBytes, message: error.message }, { status: 413 })
}

/** Wraps the API's app with the body limit and clear answers for unreadable bodies. */
export const limitBodies =
  (limit: number) =>
  <E, R>(app: HttpApp.Default<E, R>): HttpApp.Default<E, R | HttpServerRequest.HttpServerRequest> =>
    Effect.gen(function* () {
      const request = yield* HttpServerRequest.HttpServerRequest
      const length = Number(request.headers["content-length"] ?? "0")
      if (Number.isFinite(length) && length > limit) return tooLarge(limit)
      return yield* app.pipe(
        HttpIncomingMessage.withMaxBodySize(Option.some(limit)),
        Effect.catchIf(
          (e): e is E & HttpServerError.RequestError => HttpServerError.isServerError(e) && (e as HttpServerError.HttpServerError)._tag === "RequestError",
          (e) => {
            const cause = (e as HttpServerError.RequestError).cause
            if (cause instanceof Error && cause.message === "maxBytes exceeded") return Effect.succeed(tooLarge(limit))
            const json = cause instanceof SyntaxError
            const error = new ApiErrors.BadRequest({
              reason: json ? "MalformedJson" : "UnreadableBody",
              message: json ? `the request body is not valid JSON: ${cause.message}` : `the request body could not be read: ${String(cause)}`
            })
            return Effect.succeed(
              HttpServerResponse.unsafeJson({ _tag: error._tag, reason: error.reason, message: error.message }, { status: 400 })
            )
          }
        )
      )
    })
