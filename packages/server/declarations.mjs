/**
 * The type declarations of the server as a library (dist/lib/*.d.ts, `types` of the package's
 * export), one file per module the library's surface reaches, starting from src/index.ts.
 *
 * Why not `tsup --dts`: tsup always asks TypeScript to stop on errors (noEmitOnError), and then
 * TypeScript checks the declarations of every module in the program, i.e. every module the entry
 * imports: the whole server. Most of the server's modules export layers and handlers whose
 * inferred types name internal services and errors that a declaration file cannot name, and
 * they are not part of the library. The library's surface is typed explicitly instead
 * (Assembly.ts, Plugins.ts, ServerConfig.ts, Storages.ts); this emits the declarations of the
 * modules it reaches and fails, naming each error, if any of them has a type it cannot write.
 *
 *   node declarations.mjs     (after tsup has built dist/lib/index.js)
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import ts from "typescript"

const here = path.dirname(fileURLToPath(import.meta.url))
const src = path.join(here, "src")
const out = path.join(here, "dist", "lib")

const config = ts.getParsedCommandLineOfConfigFile(
  path.join(here, "tsconfig.build.json"),
  {},
  {
    ...ts.sys,
    onUnRecoverableConfigFileDiagnostic: (d) => {
      throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"))
    }
  }
)
// The workspace's packages are read from their sources, as `npm run typecheck` reads them: the
// declarations name them by package (`@ccat/core`), and what they resolve to is checked the same way.
const repository = path.resolve(here, "..", "..")
const workspace = ts.readConfigFile(path.join(repository, "tsconfig.json"), ts.sys.readFile).config
const options = {
  ...config.options,
  baseUrl: repository,
  paths: workspace.compilerOptions.paths,
  declaration: true,
  emitDeclarationOnly: true,
  noEmit: false,
  noEmitOnError: false,
  declarationMap: false,
  sourceMap: false,
  rootDir: src,
  outDir: out
}
const program = ts.createProgram([path.join(src, "index.ts")], options)

/** The local modules a declaration file imports, as source paths. */
const localImports = (from, text) => {
  const found = []
  for (const m of text.matchAll(/(?:from\s+|import\()\s*["'](\.{1,2}\/[^"']+)["']/g)) {
    found.push(path.resolve(path.dirname(from), m[1].replace(/\.js$/, ".ts")))
  }
  return found
}

/** TS6059: a file of the program is outside rootDir. */
const outsideRootDir = 6059
const diagnostics = []
const queue = [path.join(src, "index.ts")]
const seen = new Set(queue)
while (queue.length > 0) {
  const file = queue.shift()
  const source = program.getSourceFile(file)
  if (source === undefined) throw new Error(`${file} is not in the program`)
  diagnostics.push(
    ...[...program.getSyntacticDiagnostics(source), ...program.getSemanticDiagnostics(source), ...program.getDeclarationDiagnostics(source)]
      // the other packages' sources are in the program only to be read; nothing of them is emitted
      .filter((d) => d.code !== outsideRootDir)
  )
  program.emit(
    source,
    (name, text) => {
      fs.mkdirSync(path.dirname(name), { recursive: true })
      fs.writeFileSync(name, text)
      for (const next of localImports(file, text)) {
        if (!seen.has(next)) {
          seen.add(next)
          queue.push(next)
        }
      }
    },
    undefined,
    true
  )
}

if (diagnostics.length > 0) {
  console.error(ts.formatDiagnosticsWithColorAndContext(diagnostics, {
    getCanonicalFileName: (f) => f,
    getCurrentDirectory: () => here,
    getNewLine: () => "\n"
  }))
  console.error(`declarations: ${diagnostics.length} errors in the library's modules`)
  process.exit(1)
}
console.log(`declarations: ${seen.size} modules in ${path.relative(process.cwd(), out)}`)
