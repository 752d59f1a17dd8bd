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
 *   node scripts/checkDeclarations.mjs                       the workspace's built packages
 *   node scripts/checkDeclarations.mjs --root <dir> [pkg...]  packages installed in <dir>/node_modules
 *
 * Exits 1 and names every difference; run it after `npm run build`.
 */
import * as fs from "node:fs"
import { isBuiltin } from "node:module"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
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

/** The value names a namespace object holds, one level into nested namespaces. */
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

/** The value names TypeScript lets code use through `import * as M` of each entry. */
const declaredValues = (root, entries) => {
  const file = path.join(root, "__checkDeclarations__.ts")
  const text = entries.map((e, i) => `import * as E${i} from ${JSON.stringify(e.specifier)}\n`).join("")
  const options = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    skipLibCheck: true,
    noEmit: true,
    types: []
  }
  const host = ts.createCompilerHost(options)
  const readFile = host.readFile
  const getSourceFile = host.getSourceFile
  host.fileExists = (f) => f === file || ts.sys.fileExists(f)
  host.readFile = (f) => (f === file ? text : readFile.call(host, f))
  host.getSourceFile = (f, ...rest) =>
    f === file ? ts.createSourceFile(f, text, ts.ScriptTarget.ES2022, true) : getSourceFile.call(host, f, ...rest)
  const program = ts.createProgram([file], options, host)
  const checker = program.getTypeChecker()
  const source = program.getSourceFile(file)
  const properties = (type) => checker.getPropertiesOfType(type).map((p) => p.getName())

  const packageDirs = [...new Set(entries.map((e) => e.packageDir))]
  const ours = program.getSourceFiles().filter((f) => packageDirs.some((dir) => f.fileName.startsWith(dir + path.sep)))
  // an import no installed package answers turns what it names into `any`, silently
  const problems = ours.flatMap((f) => {
    const { importedFiles, typeReferenceDirectives } = ts.preProcessFile(f.text, true, true)
    const unresolved = [
      ...importedFiles.filter((i) =>
        !isBuiltin(i.fileName)
        && ts.resolveModuleName(i.fileName, f.fileName, options, host, undefined, undefined, f.impliedNodeFormat).resolvedModule ===
          undefined
      ),
      ...typeReferenceDirectives.filter((t) =>
        ts.resolveTypeReferenceDirective(t.fileName, f.fileName, options, host).resolvedTypeReferenceDirective === undefined
      )
    ]
    return unresolved.map((i) => `${path.relative(root, f.fileName)} imports ${i.fileName}, which is not installed with it`)
  })

  const values = source.statements.filter(ts.isImportDeclaration).map((statement, i) => {
    const where = checker.getSymbolAtLocation(statement.moduleSpecifier)?.valueDeclaration?.getSourceFile().fileName
    if (where === undefined) return { entry: entries[i], unresolved: true, values: new Set() }
    const alias = checker.getSymbolAtLocation(statement.importClause.namedBindings.name)
    const namespace = checker.getTypeOfSymbol(alias)
    const values = new Set()
    for (const member of checker.getPropertiesOfType(namespace)) {
      values.add(member.getName())
      for (const inner of properties(checker.getTypeOfSymbol(member))) values.add(`${member.getName()}.${inner}`)
    }
    return { entry: entries[i], declaredIn: where, unresolved: false, values }
  })
  return { values, problems }
}

/**
 * Compares runtime and declarations of every entry point of the given packages installed under
 * `root`. Returns, per entry, the values only the JavaScript has (`lost`) and the values only the
 * declarations have (`phantom`, for names the JavaScript has as namespaces); and the errors in
 * the packages' declaration files (`problems`: an import of a package not installed with them).
 */
export const checkDeclarations = async (root, packages = publishedPackages) => {
  const declared = declaredValues(root, packages.flatMap((name) => entryPoints(root, name)))
  allowVitestImport()
  const results = []
  for (const { entry, unresolved, values } of declared.values) {
    const runtime = runtimeValues(await import(pathToFileURL(entry.javascript).href))
    const runtimeSet = new Set(runtime)
    const namespaces = new Set(runtime.filter((n) => n.includes(".")).map((n) => n.split(".")[0]))
    results.push({
      specifier: entry.specifier,
      declarations: path.relative(root, entry.declarations),
      unresolved,
      runtimeCount: runtime.length,
      lost: runtime.filter((n) => !values.has(n)),
      // a member of a non-namespace value (a class's static) is the type's own business
      phantom: [...values].filter((n) => !runtimeSet.has(n) && (!n.includes(".") || namespaces.has(n.split(".")[0])))
    })
  }
  const failed = results.filter((r) => r.unresolved || r.lost.length > 0 || r.phantom.length > 0).length + declared.problems.length
  return { entries: results, problems: declared.problems, failed }
}

/** One line per entry point, then each lost or phantom value, then each error in the declarations. */
export const describeResults = ({ entries, problems }) =>
  [
    ...entries.flatMap((r) => [
      r.unresolved
        ? `${r.specifier}: its declarations (${r.declarations}) do not resolve`
        : `${r.specifier}: ${r.runtimeCount} values at run time, ${r.lost.length} missing from the declarations, ${r.phantom.length} only declared`,
      ...r.lost.map((n) => `  missing from the declarations: ${n}`),
      ...r.phantom.map((n) => `  declared, absent at run time: ${n}`)
    ]),
    ...problems.map((p) => `error in the declarations: ${p}`)
  ].join("\n")

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2)
  const at = args.indexOf("--root")
  const root = at === -1 ? path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..") : path.resolve(args[at + 1])
  const named = args.filter((_, i) => at === -1 || (i !== at && i !== at + 1))
  const result = await checkDeclarations(root, named.length > 0 ? named : publishedPackages)
  console.log(describeResults(result))
  if (result.failed > 0) {
    console.error(
      `checkDeclarations: ${result.failed} differences between the declarations and the JavaScript, or errors in the declarations`
    )
    process.exit(1)
  }
  console.log(`checkDeclarations: ${result.entries.length} entry points declare every value their JavaScript has`)
}
