/**
 * The errors of the HTTP API, shared by the server (which fails with them) and the derived
 * client (which decodes them back into these classes). Each carries a small `reason` union and
 * a readable `message` as a field, so a person reading the raw JSON with curl sees the same
 * sentence a program gets from `error.message`. Schema violations of a request are the
 * platform's own `HttpApiDecodeError` (400), whose issues name the field and the rule.
 */
import * as HttpApiSchema from "@effect/platform/HttpApiSchema"
import * as Schema from "effect/Schema"

/**
 * The request is not a valid request at all: 400. `MalformedJson` and `UnreadableBody` for the
 * body; `IdempotencyKey` for an `Idempotency-Key` header that is empty, too long or of other
 * characters than the server accepts.
 */
export class BadRequest extends Schema.TaggedError<BadRequest>()(
  "BadRequest",
  { reason: Schema.Literal("MalformedJson", "UnreadableBody", "IdempotencyKey"), message: Schema.String },
  HttpApiSchema.annotations({ status: 400, description: "The body could not be read as JSON." })
) {}

/** Why a request carried no usable credentials. */
export const UnauthorizedReason = Schema.Literal("MissingToken", "MalformedToken", "UnknownToken", "Revoked", "Expired", "AccountDisabled")

/** No valid bearer token: 401. The reason says what to fix (send one, renew it, ask an admin). */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()(
  "Unauthorized",
  { reason: UnauthorizedReason, message: Schema.String },
  HttpApiSchema.annotations({ status: 401, description: "No valid bearer token (missing, malformed, unknown, revoked or expired)." })
) {}

/**
 * The token is valid but may not do this: 403. `Role` when the endpoint is not for the account's
 * role; `Instrument` when an instrument account files for an instrument it was not granted;
 * `Program` when a scientist asks for an observing program it may not access.
 */
export class Forbidden extends Schema.TaggedError<Forbidden>()(
  "Forbidden",
  {
    reason: Schema.Literal("Role", "Instrument", "Program"),
    message: Schema.String,
    /** The roles the endpoint accepts, when the role was the problem. */
    allowedRoles: Schema.optional(Schema.Array(Schema.String))
  },
  HttpApiSchema.annotations({ status: 403, description: "The token's account may not do this." })
) {}

/** A thing named in the path does not exist (or is not visible to the caller): 404. */
export class NotFound extends Schema.TaggedError<NotFound>()(
  "NotFound",
  { entity: Schema.String, id: Schema.String, message: Schema.String },
  HttpApiSchema.annotations({ status: 404, description: "No such thing, or not one the caller may see." })
) {}

/**
 * The request disagrees with what is stored: 409. `DifferentContent` is a re-file of an id with
 * other values (`fields` names each one that differs); `DuplicatePath` another file id at the
 * same path of the observation; `PathHeld` a SOURCE path still held by a file of another
 * observation (one owner per SOURCE path); `Closed` new files for a closed observation; `StateConflict` an
 * action the row's current state does not allow (retrying something that has not failed);
 * `AlreadyExists` a name that is taken.
 */
export class Conflict extends Schema.TaggedError<Conflict>()(
  "Conflict",
  {
    reason: Schema.Literal("DifferentContent", "DuplicatePath", "PathHeld", "Closed", "StateConflict", "AlreadyExists"),
    entity: Schema.String,
    id: Schema.String,
    /** The fields whose stored value differs from the request's (DifferentContent). */
    fields: Schema.Array(Schema.String),
    message: Schema.String
  },
  HttpApiSchema.annotations({
    status: 409,
    description: "Conflicts with what is stored (a different re-file, a state that does not allow it)."
  })
) {}

/** The body is larger than the server accepts: 413. */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()(
  "PayloadTooLarge",
  { limitBytes: Schema.Number, message: Schema.String },
  HttpApiSchema.annotations({ status: 413, description: "The body exceeds the server's limit; split the batch." })
) {}

/**
 * The request is well-formed but cannot be applied: 422. `UnknownReference` names a field whose
 * id or name does not exist; `WrongLocationType` a location of the wrong type (files are filed at
 * SOURCE, staging goes to PROCESSING); `OutOfRange` a value the domain refuses (an end before the
 * start); `IdempotencyKeyReused` an `Idempotency-Key` the caller already sent with another request
 * (field `Idempotency-Key`); `Invalid` anything else, with the field.
 */
export class Unprocessable extends Schema.TaggedError<Unprocessable>()(
  "Unprocessable",
  {
    reason: Schema.Literal("UnknownReference", "WrongLocationType", "OutOfRange", "IdempotencyKeyReused", "Invalid"),
    field: Schema.String,
    message: Schema.String
  },
  HttpApiSchema.annotations({ status: 422, description: "Well-formed but not applicable (an unknown reference, a wrong location type)." })
) {}
