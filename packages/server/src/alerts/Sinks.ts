/**
 * The three ways the notifier tells people: Alertmanager's v2 API (which then routes, groups and
 * silences as the site configured it), a webhook (a JSON POST any chat or ticket system can take)
 * and e-mail over SMTP. Each sends one message carrying every notification due for it; a send
 * that does not complete within the sink's timeout, or that the peer refuses, fails with why, and
 * the delivery is tried again later.
 */
import * as HttpClient from "@effect/platform/HttpClient"
import * as HttpClientRequest from "@effect/platform/HttpClientRequest"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Redacted from "effect/Redacted"
import nodemailer from "nodemailer"
import type { Notification } from "./Incidents.js"
import type { SinkConfig } from "./NotifierConfig.js"

/** Why a sink did not take a message. */
export class SinkError extends Data.TaggedError("SinkError")<{
  readonly sink: string
  readonly reason: "Timeout" | "Transport" | "Refused"
  readonly detail: string
}> {
  override get message(): string {
    return `sink ${this.sink}: ${
      this.reason === "Timeout" ? "no answer in time" : this.reason === "Refused" ? "refused" : "cannot be reached"
    }: ${this.detail}`
  }
}

/** A sink: sends one message of notifications. */
export interface Sink {
  readonly name: string
  readonly send: (notifications: ReadonlyArray<Notification>) => Effect.Effect<void, SinkError>
}

/** An active alert's end as Alertmanager is told: far ahead, since the notifier sends it once and its resolution ends it. */
const activeFor = 365 * 24 * 3600_000

const iso = (d: Date) => d.toISOString()

/** Alertmanager's postable alerts; an incident due twice in one message (firing, then resolved) is sent as resolved. */
export const alertmanagerBody = (notifications: ReadonlyArray<Notification>, now: Date) => {
  const last = new Map<string, Notification>()
  for (const n of notifications) last.set(n.incidentId, n)
  return [...last.values()].map((n) => ({
    labels: { ...n.labels, alertname: n.alertname, severity: n.severity },
    annotations: { summary: n.summary, description: n.description, incident_id: n.incidentId },
    startsAt: iso(n.startedAt),
    endsAt: iso(n.kind === "resolved" && n.resolvedAt !== null ? n.resolvedAt : new Date(now.getTime() + activeFor))
  }))
}

/** The webhook's JSON body: every notification, in the order they happened. */
export const webhookBody = (notifications: ReadonlyArray<Notification>) => ({
  source: "ccat-notifier",
  notifications: notifications.map((n) => ({
    // What a receiver deduplicates on: the same id is the same notification, however often it arrives.
    deliveryId: `${n.incidentId}:${n.kind}`,
    incidentId: n.incidentId,
    status: n.kind,
    alertname: n.alertname,
    severity: n.severity,
    labels: n.labels,
    summary: n.summary,
    description: n.description,
    startsAt: iso(n.startedAt),
    endsAt: n.kind === "resolved" && n.resolvedAt !== null ? iso(n.resolvedAt) : null
  }))
})

/** The e-mail's subject and text. */
export const emailMessage = (notifications: ReadonlyArray<Notification>) => {
  const line = (n: Notification) => `[${n.kind === "firing" ? "FIRING" : "RESOLVED"}] ${n.alertname} (${n.severity}): ${n.summary}`
  const subject = notifications.length === 1
    ? `[CCAT] ${line(notifications[0])}`
    : `[CCAT] ${notifications.filter((n) => n.kind === "firing").length} firing, ${
      notifications.filter((n) => n.kind === "resolved").length
    } resolved`
  const text = notifications.map((n) =>
    [
      line(n),
      ...(n.description === "" ? [] : [`  ${n.description}`]),
      `  labels: ${Object.entries(n.labels).map(([k, v]) => `${k}=${v}`).join(", ")}`,
      `  since: ${iso(n.startedAt)}${n.kind === "resolved" && n.resolvedAt !== null ? `, resolved: ${iso(n.resolvedAt)}` : ""}`,
      `  incident: ${n.incidentId}`
    ].join("\n")
  ).join("\n\n")
  return { subject, text: `${text}\n` }
}

const post = (sink: string, url: string, body: unknown, timeoutMs: number, bearer: Redacted.Redacted<string> | undefined) =>
  Effect.gen(function* () {
    const client = yield* HttpClient.HttpClient
    // Errors name the origin only: a webhook's path or query is often its secret (chat services put the token there).
    const shown = new URL(url).origin
    let request = HttpClientRequest.post(url).pipe(HttpClientRequest.bodyUnsafeJson(body))
    if (bearer !== undefined) request = HttpClientRequest.bearerToken(request, Redacted.value(bearer))
    const answer = yield* client.execute(request).pipe(
      Effect.flatMap((response) =>
        Effect.map(Effect.orElseSucceed(response.text, () => ""), (text) => ({ status: response.status, text }))
      ),
      Effect.scoped,
      Effect.timeoutFail({
        duration: timeoutMs,
        onTimeout: () => new SinkError({ sink, reason: "Timeout", detail: `${shown} did not answer within ${timeoutMs} ms` })
      }),
      Effect.catchTags({
        RequestError: (e) =>
          Effect.fail(
            new SinkError({
              sink,
              reason: "Transport",
              detail: `${shown}: ${e.reason}${e.cause instanceof Error ? ` (${e.cause.message})` : ""}`
            })
          ),
        ResponseError: (e) => Effect.fail(new SinkError({ sink, reason: "Transport", detail: `${shown}: ${e.reason}` }))
      })
    )
    if (answer.status < 200 || answer.status >= 300) {
      return yield* new SinkError({ sink, reason: "Refused", detail: `${shown} answered ${answer.status}: ${answer.text.slice(0, 300)}` })
    }
  })

/** The sink a configuration describes; HTTP sinks send through the given client. */
export const make = (config: SinkConfig, client: HttpClient.HttpClient): Sink => {
  const provide = Effect.provideService(HttpClient.HttpClient, client)
  switch (config.type) {
    case "alertmanager": {
      // The base URL, as Alertmanager's own configuration names it; the API path is added unless given.
      const base = config.url.replace(/\/+$/, "")
      const url = base.endsWith("/api/v2/alerts") ? base : `${base}/api/v2/alerts`
      return {
        name: config.name,
        send: (ns) => provide(post(config.name, url, alertmanagerBody(ns, new Date()), config.timeout, undefined))
      }
    }
    case "webhook":
      return {
        name: config.name,
        send: (ns) => provide(post(config.name, config.url, webhookBody(ns), config.timeout, config.bearerToken))
      }
    case "email": {
      const transport = nodemailer.createTransport({
        host: config.host,
        port: config.port,
        secure: config.secure,
        requireTLS: config.requireTls,
        connectionTimeout: config.timeout,
        greetingTimeout: config.timeout,
        socketTimeout: config.timeout,
        ...(config.username === undefined || config.password === undefined
          ? {}
          : { auth: { user: config.username, pass: Redacted.value(config.password) } })
      })
      return {
        name: config.name,
        send: (ns) => {
          const { subject, text } = emailMessage(ns)
          return Effect.tryPromise({
            try: () => transport.sendMail({ from: config.from, to: [...config.to], subject, text }),
            catch: (e) => {
              const err = e as { code?: string; responseCode?: number; message?: string }
              return new SinkError({
                sink: config.name,
                reason: err.code === "ETIMEDOUT" ? "Timeout" : err.responseCode !== undefined ? "Refused" : "Transport",
                detail: `${config.host}:${config.port}: ${err.message ?? String(e)}`
              })
            }
          }).pipe(Effect.asVoid)
        }
      }
    }
  }
}
