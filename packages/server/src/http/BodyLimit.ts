/**
 * Requests the API refuses before any endpoint sees them: bodies over the limit (413, from the
 * Content-Length header before reading, or while reading a chunked body) and bodies that are not
 * JSON (400). It is an API-level middleware, so it fails with the contract's own errors and the
 * platform encodes them like any other; the derived client decodes them as such.
 */
import { Api, ApiErrors } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import * as HttpIncomingMessage from "@effect/platform/HttpIncomingMessage"
import * as HttpServerError from "@effect/platform/HttpServerError"
import * as HttpServerRequest from "@effect/platform/HttpServerRequest"
import type * as HttpServerResponse from "@effect/platform/HttpServerResponse"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"

const tooLarge = (limit: number) =>
  new ApiErrors.PayloadTooLarge({
    limitBytes: limit,
    message: `the request body is larger than the server accepts (${limit} bytes); send fewer files per request`
  })

/** The API-level middleware with a body limit of `limit` bytes. */
export const layer = (limit: number) =>
  HttpApiBuilder.middleware(
    Api.Api,
    (app) =>
      Effect.flatMap(
        HttpServerRequest.HttpServerRequest,
        (
          request
        ): Effect.Effect<
          HttpServerResponse.HttpServerResponse,
          ApiErrors.PayloadTooLarge | ApiErrors.BadRequest,
          HttpServerRequest.HttpServerRequest
        > => {
          const length = Number(request.headers["content-length"] ?? "0")
          if (Number.isFinite(length) && length > limit) return Effect.fail(tooLarge(limit))
          return app.pipe(
            HttpIncomingMessage.withMaxBodySize(Option.some(limit)),
            // The platform reads JSON bodies with `orDie`, so an unreadable body arrives as a defect.
            Effect.catchAllDefect((defect): Effect.Effect<never, ApiErrors.PayloadTooLarge | ApiErrors.BadRequest> => {
              if (!(HttpServerError.isServerError(defect) && defect._tag === "RequestError")) return Effect.die(defect)
              const cause = defect.cause
              if (cause instanceof Error && cause.message === "maxBytes exceeded") return Effect.fail(tooLarge(limit))
              const json = cause instanceof SyntaxError
              return Effect.fail(
                new ApiErrors.BadRequest({
                  reason: json ? "MalformedJson" : "UnreadableBody",
                  message: json
                    ? `the request body is not valid JSON: ${cause.message}`
                    : `the request body could not be read: ${String(cause)}`
                })
              )
            })
          )
        }
      )
  )
