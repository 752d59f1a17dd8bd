/**
 * The `notifications:` section as `ccat serve` and `ccat config check` load it: a good one is
 * read with its secrets from the environment and from a file; a bad one stops the load with
 * every problem named by its field, and a secret written in the file is refused without being
 * echoed. The catalogue's alert names are the shipped Prometheus rules' names.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Redacted from "effect/Redacted"
import * as fs from "node:fs/promises"
import * as os from "node:os"
import * as path from "node:path"
import * as YAML from "yaml"
import * as Catalogue from "../../src/alerts/Catalogue.js"
import * as ServerConfig from "../../src/ServerConfig.js"
import { repoRoot } from "../support.js"

const topology = (dir: string) => `
sites:
  - name: cologne
    shortName: col
    role: main
    locations:
      - { name: cologne-buffer, type: BUFFER, technology: disk, driver: { root: ${dir}/buffer } }
`

const loadWith = (notifications: string) =>
  Effect.gen(function* () {
    const dir = yield* Effect.promise(() => fs.mkdtemp(path.join(os.tmpdir(), "ccat-notify-config-")))
    yield* Effect.addFinalizer(() => Effect.promise(() => fs.rm(dir, { recursive: true, force: true })))
    yield* Effect.promise(() => fs.writeFile(path.join(dir, "smtp-password"), "from-a-file\n"))
    const file = path.join(dir, "ccat.yaml")
    yield* Effect.promise(() =>
      fs.writeFile(file, notifications === "" ? topology(dir) : `${topology(dir)}\nnotifications:\n${notifications}`)
    )
    return yield* Effect.exit(ServerConfig.load({ configFile: file }))
  })

const problemsOf = (exit: Exit.Exit<unknown, ServerConfig.ConfigLoadError>) => {
  assert.isTrue(Exit.isFailure(exit), "the configuration is refused")
  return Exit.isFailure(exit) && exit.cause._tag === "Fail" ? exit.cause.error.message : ""
}

describe("the notifier's configuration", () => {
  it.scoped("a good section is loaded, with its secrets from the environment and from a file", () =>
    Effect.gen(function* () {
      process.env.CCAT_TEST_HOOK_TOKEN = "from-the-environment"
      const exit = yield* loadWith(`
  interval: 15 seconds
  conditions: { circuitOpenFor: 2 hours, for: { CcatPackageFailed: 0 }, stageMaxWait: { archive: 2 days } }
  sinks:
    - { name: am, type: alertmanager, url: "http://alertmanager:9093" }
    - { name: chat, type: webhook, url: "https://chat.example.org/hook", bearerToken: { env: CCAT_TEST_HOOK_TOKEN }, rateLimit: { messages: 5, per: 10 minutes } }
    - { name: ops-mail, type: email, host: smtp.example.org, port: 587, requireTls: true, username: ccat, password: { file: smtp-password }, from: ccat@example.org, to: [ops@example.org] }
`)
      assert.isTrue(Exit.isSuccess(exit), Exit.isFailure(exit) ? String(exit.cause) : "")
      if (!Exit.isSuccess(exit)) return
      const n = exit.value.notifications!
      assert.strictEqual(n.interval, 15_000)
      assert.strictEqual(n.conditions.circuitOpenFor, 7_200_000)
      assert.strictEqual(n.conditions.for.CcatPackageFailed, 0)
      assert.strictEqual(n.conditions.for.CcatAuditFindings, 3_600_000)
      assert.strictEqual(n.conditions.stageMaxWait.archive, 2 * 86_400_000)
      const [am, chat, mail] = n.sinks
      assert.deepStrictEqual(am.rateLimit, { messages: 20, per: 3_600_000 })
      assert.deepStrictEqual(chat.rateLimit, { messages: 5, per: 600_000 })
      assert.strictEqual(chat.type === "webhook" && chat.bearerToken ? Redacted.value(chat.bearerToken) : "", "from-the-environment")
      assert.strictEqual(mail.type === "email" && mail.password ? Redacted.value(mail.password) : "", "from-a-file")
      // Without the section no notifier runs.
      const none = yield* loadWith("").pipe(Effect.map((e) => (Exit.isSuccess(e) ? e.value.notifications : "failed")))
      assert.isUndefined(none)
    }))

  it.scoped("a bad section is refused at load, every problem named by its field", () =>
    Effect.gen(function* () {
      delete process.env.CCAT_TEST_MISSING_SECRET
      const message = problemsOf(
        yield* loadWith(`
  interval: soon
  sinks:
    - { name: am, type: alertmanager, url: "ftp://alertmanager:9093" }
    - { name: am, type: webhook, url: "https://user:secret@chat.example.org/hook" }
    - { name: mail, type: email, host: smtp.example.org, from: not-an-address, to: [] }
    - { name: pager, type: sms, url: "https://pager" }
    - { name: hook2, type: webhook, url: "https://x.example.org", timeout: 0 }
    - { name: hook3, type: webhook, url: "https://x.example.org", rateLimit: { messages: 0, per: 60 minutes } }
`)
      )
      for (const expected of [
        "notifications.interval:",
        "notifications.sinks[0].url: must be an http:// or https:// URL",
        "notifications.sinks[1].url: must not carry credentials",
        "notifications.sinks[2].from: must be an e-mail address",
        "notifications.sinks[2].to: list at least one recipient",
        "notifications.sinks[3].type:",
        "notifications.sinks[4].timeout: must be longer than zero",
        "notifications.sinks[5].rateLimit.messages: must be a whole number from 1 to 100000"
      ]) assert.include(message, expected)
      assert.notInclude(message, "secret@")

      const duplicate = problemsOf(
        yield* loadWith(`
  sinks:
    - { name: hook, type: webhook, url: "https://a.example.org" }
    - { name: hook, type: webhook, url: "https://b.example.org", bearerToken: { env: CCAT_TEST_MISSING_SECRET } }
    - { name: mail, type: email, host: smtp.example.org, username: ccat, password: { file: no-such-file }, from: a@example.org, to: [b@example.org] }
    - { name: mail2, type: email, host: smtp.example.org, username: ccat, from: a@example.org, to: [b@example.org] }
  retry: { initial: 2 hours, max: 1 minutes }
`)
      )
      assert.include(duplicate, `notifications.sinks[1].name: "hook" names two sinks`)
      assert.include(duplicate, "notifications.sinks[1].bearerToken: the environment variable CCAT_TEST_MISSING_SECRET is not set")
      assert.include(duplicate, "notifications.sinks[2].password: the file")
      assert.include(duplicate, "notifications.sinks[3]: username and password go together")
      assert.include(duplicate, "notifications.retry.initial: must not be longer than retry.max")

      // A password written into the file is refused, and not repeated in the error.
      const inline = problemsOf(
        yield* loadWith(`
  sinks:
    - { name: mail, type: email, host: smtp.example.org, username: ccat, password: hunter2, from: a@example.org, to: [b@example.org] }
`)
      )
      assert.include(inline, "notifications.sinks[0].password: a secret is never written in the configuration")
      assert.notInclude(inline, "hunter2")

      const empty = problemsOf(yield* loadWith("  sinks: []\n"))
      assert.include(empty, "notifications.sinks: list at least one sink")
      const unknown = problemsOf(yield* loadWith('  sinks: [{ name: am, type: alertmanager, url: "http://am:9093" }]\n  colour: red\n'))
      assert.include(unknown, "notifications.colour")
    }))

  it.effect("the catalogue's alert names are the shipped Prometheus rules' alert names", () =>
    Effect.gen(function* () {
      const text = yield* Effect.promise(() => fs.readFile(path.join(repoRoot, "docs/alerts/ccat-rules.yml"), "utf8"))
      const rules = YAML.parse(text) as { groups: Array<{ rules: Array<{ alert?: string }> }> }
      const alerts = new Set(rules.groups.flatMap((g) => g.rules.flatMap((r) => (r.alert === undefined ? [] : [r.alert]))))
      assert.deepStrictEqual([...alerts].sort(), [...Catalogue.names].sort())
      assert.deepStrictEqual(Catalogue.conditions.map((c) => c.name), [...Catalogue.names])
    }))
})
