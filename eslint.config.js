/**
 * ESLint: the rules that catch bugs the type checker does not (why these and not others:
 * docs/adr/lint-and-format.md). Layout is dprint's (dprint.json), so no rule here is about layout.
 */
import js from "@eslint/js"
import { defineConfig } from "eslint/config"
import globals from "globals"
import tseslint from "typescript-eslint"

/** Effect's modules whose functions build an Effect: such a call left as a statement never runs. */
const effectModules =
  "Effect|Console|Stream|Ref|SynchronizedRef|SubscriptionRef|Queue|PubSub|Deferred|Fiber|FiberRef|Metric|Layer|Scope|Clock|Random|TestClock"
const discarded = "an Effect left as a statement never runs: yield* it, or run it"

export default defineConfig(
  {
    ignores: [
      "**/node_modules/",
      "**/dist/",
      "**/coverage/",
      "test-artifacts/",
      "**/fixtures/",
      "**/*.generated.*",
      ".ccat/",
      ".tmp/",
      "packages/server/.test-cli-*/"
    ]
  },
  { linterOptions: { reportUnusedDisableDirectives: "error" } },
  js.configs.recommended,
  tseslint.configs.recommended,
  { files: ["**/*.{ts,mts,cts,js,mjs,cjs}"], ignores: ["packages/server/ui/**"], languageOptions: { globals: globals.node } },
  { files: ["packages/server/ui/**/*.js"], languageOptions: { globals: globals.browser } },
  {
    rules: {
      // `== null` is the one loose comparison we use (null or undefined); any other is a bug
      eqeqeq: ["error", "smart"],
      "no-template-curly-in-string": "error",
      "no-self-compare": "error",
      "no-unreachable-loop": "error",
      "no-constructor-return": "error",
      "default-case-last": "error",
      "no-restricted-syntax": [
        "error",
        {
          selector:
            `ExpressionStatement > CallExpression[callee.type="MemberExpression"][callee.object.name=/^(${effectModules})$/][callee.property.name!=/^run/]`,
          message: discarded
        },
        {
          selector:
            `ExpressionStatement > CallExpression[callee.property.name="pipe"]:not(:has(> MemberExpression[property.name=/^run/])) > MemberExpression.callee > CallExpression.object > MemberExpression.callee[object.name=/^(${effectModules})$/][property.name!=/^run/]`,
          message: discarded
        }
      ],
      "no-restricted-imports": [
        "error",
        {
          paths: [{ name: "effect", message: "import the module (effect/Effect, effect/Schema), as everywhere else" }],
          patterns: [{
            group: ["@effect/schema", "@effect/schema/*"],
            message: "Schema comes from effect/Schema; @effect/schema is deprecated"
          }]
        }
      ],
      // a name starting with _ is unused on purpose (a positional parameter, an `infer _E`)
      "@typescript-eslint/no-unused-vars": [
        "error",
        {
          argsIgnorePattern: "^_",
          varsIgnorePattern: "^_",
          caughtErrorsIgnorePattern: "^_",
          destructuredArrayIgnorePattern: "^_",
          ignoreRestSiblings: true
        }
      ],
      // `interface Service extends Client {}` names a type for declaration files
      "@typescript-eslint/no-empty-object-type": ["error", { allowInterfaces: "with-single-extends" }],
      // `let [a, i] = ...` where only `i` changes reads better than two statements
      "prefer-const": ["error", { destructuring: "all" }],
      // `any` is deliberate where it appears (generic bounds such as Driver<A = any>, JSON bodies in
      // tests); strict TypeScript checks the rest, and a ban would mean a disable comment each time
      "@typescript-eslint/no-explicit-any": "off",
      // Effect.gen(function* () { ... }) without a yield is an ordinary lazy Effect, not a mistake
      "require-yield": "off"
    }
  },
  {
    // the VOTable writers match the control characters XML 1.0 cannot carry, on purpose
    files: ["packages/server/src/tap/Votable.ts", "packages/server/src/science/DataLinkVotable.ts"],
    rules: { "no-control-regex": "off" }
  }
)
