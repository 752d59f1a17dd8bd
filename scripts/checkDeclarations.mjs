/**
 * Do the published declarations let TypeScript see every value the published JavaScript has?
 *
 * For each entry point in each package's `exports` (an entry with `types` and `import`), this
 * imports the JavaScript and lists its value exports, one level into every namespace
 * (`Ids.RawDataPackageId`), then asks TypeScript, reading only the declarations the entry's
 * `types` name, which values `import * as M from "<entry>"` lets code use. A value missing from
 * the declarations is a value an integrator cannot call, though the workspace, which compiles
 * against the sources, can; a value only the declarations have would fail at run time.
 *
 * It also reports an import in the packages' declarations that nothing installed answers (a
 * dependency their package.json does not name: what it names would silently be `any`), and
 * type-checks, in the same program, files an integrator would write (`--program`).
 *
 *   node scripts/checkDeclarations.mjs                        the workspace's built packages
 *   node scripts/checkDeclarations.mjs --root <dir> [--program <file.ts>]... [package...]
 *                                                              packages installed in <dir>/node_modules
 *
 * Exits 1 and names every difference and error; run it after `npm run build`.
 */
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { parseArgs } from "node:util"
import ts from "typescript"

/** The published packages whose entry points are checked when none are named. */
export const publishedPackages = [
  "@ccat/core",
  "@ccat/storage-drivers",
  "@ccat/transfer-bbcp",
  "@ccat/transfer-rsync",
  "@ccat/client",
  "@ccat/server"
]

/** The entry points of an installed package: specifier, JavaScript file and declaration file. */
const entryPoints = (root, name) => {
  const dir = path.join(root, "node_modules", name)
  const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8"))
  const exports = typeof pkg.exports === "object" && pkg.exports !== null && !Array.isArray(pkg.exports) ? pkg.exports : {}
  const packageDir = fs.realpathSync(dir)
  return Object.entries(exports)
    .filter(([key, entry]) => !key.includes("*") && typeof entry === "object" && entry !== null && entry.types && entry.import)
    .map(([key, entry]) => ({
      specifier: key === "." ? name : `${name}/${key.slice(2)}`,
      packageDir,
      javascript: path.join(dir, entry.import),
      declarations: path.join(dir, entry.types)
    }))
}

/**
 * Whether a value is what `export * as X` gives at run time: a module namespace object, or, in a
 * bundle, esbuild's stand-in for one, a plain object of enumerable getters.
 */
const isNamespace = (value) => {
  if (Object.prototype.toString.call(value) === "[object Module]") return true
  if (typeof value !== "object" || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  if (prototype !== Object.prototype && prototype !== null) return false
  const properties = Object.values(Object.getOwnPropertyDescriptors(value))
  return properties.every((p) => p.enumerable && p.get !== undefined && p.set === undefined)
}

/** A value's exports: each name, and for a namespace the names inside it (`Ids.ShortName`). */
const runtimeValues = (namespace) =>
  Object.keys(namespace).flatMap((key) =>
    isNamespace(namespace[key]) ? [key, ...Object.keys(namespace[key]).map((inner) => `${key}.${inner}`)] : [key]
  )

/**
 * @ccat/core/testing imports vitest, which refuses to load outside a test run: it reads its
 * worker's state at import. Only the names of the exports are read here, nothing is run.
 */
const allowVitestImport = () => {
  globalThis.__vitest_worker__ ??= { environment: { name: "node" }, config: {}, providedContext: {}, onCleanup: () => {} }
}

/** What an integrator's tsconfig would say: Node's module resolution, strict, Node's globals. */
const compilerOptions = {
  module: ts.ModuleKind.NodeNext,
  moduleResolution: ts.ModuleResolutionKind.NodeNext,
  target: ts.ScriptTarget.ES2022,
  lib: ["lib.es2022.d.ts"],
  strict: true,
  skipLibCheck: true,
  noEmit: true,
  types: ["node"]
}

/** A diagnostic as `file:line: message`, the file relative to `root`. */
const describeDiagnostic = (root, d) => {
  const message = ts.flattenDiagnosticMessageText(d.messageText, "\n")
  if (d.file === undefined || d.start === undefined) return message
  return `${path.relative(root, d.file.fileName)}:${d.file.getLineAndCharacterOfPosition(d.start).line + 1}: ${message}`
}

/**
 * One TypeScript program over the declarations alone: a file `import * as E0 from "<entry>"` per
 * entry point, and the given programs. Answers, per entry, the values `E0` lets code use (one level
 * into the namespaces the JavaScript has), the imports of the packages' declaration files that no
 * installed package answers (what they name would be `any`), and the programs' errors.
 */
const typeCheck = (root, entries, namespaces, programs) => {
  const file = path.join(root, "__checkDeclarations__.ts")
  const text = entries.map((e, i) => `import * as E${i} from ${JSON.stringify(e.specifier)}\n`).join("")
  const host = ts.createCompilerHost(compilerOptions)
  const { readFile, getSourceFile } = host
  host.fileExists = (f) => f === file || ts.sys.fileExists(f)
  host.readFile = (f) => (f === file ? text : readFile.call(host, f))
  host.getSourceFile = (
    f,
    ...rest
  ) => (f === file ? ts.createSourceFile(f, text, ts.ScriptTarget.ES2022, true) : getSourceFile.call(host, f, ...rest))
  const program = ts.createProgram([file, ...programs], compilerOptions, host)
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)

  const values = source.statements.filter(ts.isImportDeclaration).map((statement, i) => {
    if (checker.getSymbolAtLocation(statement.moduleSpecifier) === undefined) return undefined
    const found = new Set()
    const alias = checker.getSymbolAtLocation(statement.importClause.namedBindings.name)
    for (const member of checker.getPropertiesOfType(checker.getTypeOfSymbol(alias))) {
      const name = member.getName()
      found.add(name)
      if (!namespaces[i].has(name)) continue
      for (const inner of checker.getPropertiesOfType(checker.getTypeOfSymbol(member))) found.add(`${name}.${inner.getName()}`)
    }
    return found
  })

  const packageDirs = [...new Set(entries.map((e) => e.packageDir))]
  const declarationFiles = program.getSourceFiles().filter((f) => packageDirs.some((dir) => f.fileName.startsWith(dir + path.sep)))
  const unresolved = declarationFiles.flatMap((f) => {
    const { importedFiles, typeReferenceDirectives } = ts.preProcessFile(f.text, true, true)
    const missing = [
      ...importedFiles.filter((i) =>
        !isBuiltin(i.fileName)
        && ts.resolveModuleName(i.fileName, f.fileName, compilerOptions, host, undefined, undefined, f.impliedNodeFormat)
          .resolvedModule === undefined
      ),
      ...typeReferenceDirectives.filter((t) =>
        ts.resolveTypeReferenceDirective(t.fileName, f.fileName, compilerOptions, host).resolvedTypeReferenceDirective === undefined
      )
    ]
    return [...new Set(missing.map((i) => i.fileName))].map((name) =>
      `${path.relative(root, f.fileName)} imports ${name}, which is not installed with it`
    )
  })

  const errors = programs.length === 0 ? [] : [
    ...program.getGlobalDiagnostics(),
    ...programs.flatMap((p) => {
      const f = program.getSourceFile(p)
      return [...program.getSyntacticDiagnostics(f), ...program.getSemanticDiagnostics(f)]
    })
  ].map((d) => describeDiagnostic(root, d))

  return { values, unresolved, errors }
}

/**
 * Compares the JavaScript and the declarations of every entry point of the given packages
 * installed under `root`, in one TypeScript program that also type-checks `programs` (files an
 * integrator would write). Answers, per entry, the values only the JavaScript has (`lost`) and
 * those only the declarations have (`phantom`, among the JavaScript's namespaces); the imports
 * in the packages' declarations that nothing installed answers (`unresolved`); the programs'
 * errors (`errors`); and how many of all these there are (`failed`).
 */
export const checkDeclarations = async (root, packages = publishedPackages, programs = []) => {
  const entries = packages.flatMap((name) => entryPoints(root, name))
  allowVitestImport()
  const runtime = []
  for (const entry of entries) runtime.push(runtimeValues(await import(pathToFileURL(entry.javascript).href)))
  const namespaces = runtime.map((names) => new Set(names.filter((n) => n.includes(".")).map((n) => n.split(".")[0])))
  const declared = typeCheck(root, entries, namespaces, programs.map((p) => path.resolve(p)))

  const results = entries.map((entry, i) => {
    const values = declared.values[i]
    const names = new Set(runtime[i])
    return {
      specifier: entry.specifier,
      declarations: path.relative(root, entry.declarations),
      unresolved: values === undefined,
      runtimeCount: runtime[i].length,
      lost: values === undefined ? runtime[i] : runtime[i].filter((n) => !values.has(n)),
      phantom: values === undefined ? [] : [...values].filter((n) => !names.has(n))
    }
  })
  const failed = results.reduce((n, r) => n + (r.unresolved ? 1 : 0) + r.lost.length + r.phantom.length, 0)
    + declared.unresolved.length + declared.errors.length
  return { entries: results, unresolved: declared.unresolved, errors: declared.errors, failed }
}

/** One line per entry point, each lost or phantom value, each unresolved import, each error. */
export const describeResults = ({ entries, unresolved, errors }) =>
  [
    ...entries.flatMap((r) => [
      r.unresolved
        ? `${r.specifier}: its declarations (${r.declarations}) do not resolve`
        : `${r.specifier}: ${r.runtimeCount} values at run time, ${r.lost.length} missing from the declarations, ${r.phantom.length} only declared`,
      ...r.lost.map((n) => `  missing from the declarations: ${n}`),
      ...r.phantom.map((n) => `  declared, absent at run time: ${n}`)
    ]),
    ...unresolved.map((u) => `error in the declarations: ${u}`),
    ...errors.map((e) => `error in a program: ${e}`)
  ].join("\n")

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { root: { type: "string" }, program: { type: "string", multiple: true } }
  })
  const root = path.resolve(values.root ?? path.join(path.dirname(fileURLToPath(import.meta.url)), ".."))
  const result = await checkDeclarations(root, positionals.length > 0 ? positionals : publishedPackages, values.program ?? [])
  console.log(describeResults(result))
  if (result.failed > 0) {
    console.error(`checkDeclarations: ${result.failed} differences between declarations and JavaScript, or errors`)
    process.exit(1)
  }
  console.log(`checkDeclarations: ${result.entries.length} entry points declare every value their JavaScript has`)
}
