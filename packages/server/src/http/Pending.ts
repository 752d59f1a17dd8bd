/**
 * Groups of the contract whose handlers are still being written: every endpoint answers 500
 * "not implemented yet", so the contract can ship (and the client integrate) before the server
 * catches up. Each group leaves this list when its `*Http.ts` lands.
 */
import { Api } from "@ccat/core"
import * as HttpApiBuilder from "@effect/platform/HttpApiBuilder"
import type * as HttpApiGroup from "@effect/platform/HttpApiGroup"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"

/** A group whose every endpoint fails with a defect. */
export const pending = <const N extends string>(name: N): Layer.Layer<HttpApiGroup.ApiGroup<"ccat", N>> =>
  HttpApiBuilder.group(Api.Api, name as any, (handlers: any) =>
    Object.keys((Api.Api.groups as any)[name].endpoints).reduce(
      (h: any, endpoint) => h.handle(endpoint, () => Effect.dieMessage(`${name}.${endpoint} is not implemented yet`)),
      handlers
    )
  ) as any
