/**
 * The previous release of this repository, built where the upgrade test can run it: the last
 * release before HEAD, tagged or recorded in `releases.json` (docs/development.md, "Releases"), its sources taken with
 * `git archive` into a folder outside the repository, its dependencies linked from this
 * checkout's `node_modules` when its lockfile asks for nothing this checkout lacks (else
 * installed with `npm ci --prefer-offline`), and its packages built by their build scripts
 * without declarations (they are for integrators, not for running). The folder is keyed by the tag's commit and
 * this checkout's lockfile, so a second run reuses it.
 */
import { execFileSync } from "node:child_process"
import { createHash, randomBytes } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { repoRoot } from "../support.js"

/** A built previous release. */
export interface PreviousRelease {
  readonly tag: string
  readonly commit: string
  /** The folder holding its sources, `node_modules` and builds. */
  readonly root: string
  /** Its `ccat` command, built. */
  readonly cli: string
  /** How its dependencies were provided: linked from this checkout or installed. */
  readonly dependencies: "linked" | "installed"
  /** Whether this call built it (false: an earlier run's build was reused). */
  readonly built: boolean
}

const git = (args: ReadonlyArray<string>): string => execFileSync("git", args, { cwd: repoRoot, encoding: "utf8" }).trim()

const tagPattern = "v[0-9]*"

/** The releases recorded in `releases.json`, oldest first: what a clone made without tags still has. */
const recorded = (): ReadonlyArray<{ readonly tag: string; readonly commit: string }> =>
  (JSON.parse(fs.readFileSync(path.join(repoRoot, "releases.json"), "utf8")) as {
    releases: ReadonlyArray<{ tag: string; commit: string }>
  }).releases

const isAncestor = (ancestor: string, of: string): boolean => {
  try {
    execFileSync("git", ["merge-base", "--is-ancestor", ancestor, of], { cwd: repoRoot, stdio: "ignore" })
    return true
  } catch {
    return false
  }
}

/**
 * The last release before the checked-out code (a release is upgraded from the one before, so
 * HEAD itself does not count): the newest of the `vX.Y.Z` tags and the releases recorded in
 * `releases.json` that are ancestors of HEAD. A tag and its record must name the same commit.
 */
export const lastTag = (): { readonly tag: string; readonly commit: string } => {
  const head = git(["rev-parse", "HEAD"])
  const candidates = new Map<string, string>()
  for (const r of recorded()) candidates.set(r.commit, r.tag)
  let tags: ReadonlyArray<string> = []
  try {
    tags = git(["tag", "--list", tagPattern, "--merged", "HEAD"]).split("\n").filter((t) => t !== "")
  } catch {
    // no tags fetched: the record alone
  }
  for (const tag of tags) {
    const commit = git(["rev-parse", `${tag}^{commit}`])
    const record = recorded().find((r) => r.tag === tag)
    if (record !== undefined && record.commit !== commit) {
      throw new Error(`release ${tag} is tagged on ${commit} but releases.json records ${record.commit}; tags are never moved`)
    }
    candidates.set(commit, tag)
  }
  const before = [...candidates].filter(([commit]) => commit !== head && isAncestor(commit, head))
  const newest = before.find(([commit]) => before.every(([other]) => other === commit || isAncestor(other, commit)))
  if (newest === undefined) {
    throw new Error(
      `no release (a ${tagPattern} tag or an entry of releases.json) is an ancestor of HEAD in ${repoRoot}; ` +
        "a shallow clone lacks their commits: run `git fetch --tags --unshallow` (docs/development.md, Releases)"
    )
  }
  return { tag: newest[1], commit: newest[0] }
}

type Lock = { readonly packages: Record<string, { readonly version?: string; readonly integrity?: string; readonly link?: boolean }> }

/** Whether every installed package the old lockfile names is installed here at the same path and version. */
const lockIsSubset = (old: Lock, current: Lock): boolean =>
  Object.entries(old.packages).every(([key, entry]) => {
    if (key === "" || entry.link === true || !key.includes("node_modules/")) return true
    const here = current.packages[key]
    return here !== undefined && here.version === entry.version && here.integrity === entry.integrity
  })

/**
 * Gives the old tree this checkout's dependencies through one symlink per package, except the
 * workspace's own (`@ccat/*`), which must be the old tree's packages, not this checkout's.
 */
const linkDependencies = (root: string) => {
  const here = path.join(repoRoot, "node_modules")
  const there = path.join(root, "node_modules")
  fs.mkdirSync(there)
  for (const name of fs.readdirSync(here)) {
    if (name === "@ccat" || name === ".cache" || name === ".package-lock.json") continue
    fs.symlinkSync(path.join(here, name), path.join(there, name))
  }
  fs.mkdirSync(path.join(there, "@ccat"))
  const rootPackage = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { workspaces: ReadonlyArray<string> }
  for (const workspace of rootPackage.workspaces) {
    const name = (JSON.parse(fs.readFileSync(path.join(root, workspace, "package.json"), "utf8")) as { name: string }).name
    // relative, so the folder can be renamed once built
    const link = path.join(there, name)
    fs.symlinkSync(path.relative(path.dirname(link), path.join(root, workspace)), link)
  }
}

/**
 * Builds each workspace package by its own build script, core first and the server last, with
 * `--no-dts` added to each tsup step and each `tsc --emitDeclarationOnly` step left out
 * (declarations are most of a build's time and nothing here reads them); any other step runs as
 * written.
 */
const build = (root: string) => {
  const rootPackage = JSON.parse(fs.readFileSync(path.join(root, "package.json"), "utf8")) as { workspaces: ReadonlyArray<string> }
  const rank = (w: string) => (w.endsWith("/core") ? 0 : w.endsWith("/server") ? 2 : 1)
  const bin = path.join(root, "node_modules", ".bin")
  for (const workspace of [...rootPackage.workspaces].sort((a, b) => rank(a) - rank(b))) {
    const pkg = JSON.parse(fs.readFileSync(path.join(root, workspace, "package.json"), "utf8")) as { scripts?: { build?: string } }
    const script = pkg.scripts?.build
    if (script === undefined) continue
    for (const step of script.split("&&").map((s) => s.trim())) {
      if (/^tsc\s.*--emitDeclarationOnly(\s|$)/.test(step)) continue
      const command = /^tsup(\s|$)/.test(step) ? `${step} --no-dts` : step
      execFileSync("sh", ["-c", command], {
        cwd: path.join(root, workspace),
        env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ""}` },
        stdio: "pipe",
        timeout: 300_000
      })
    }
  }
}

/**
 * Removes builds of the same release made for an earlier lockfile of this checkout, once they
 * are an hour old: every dependency change leaves one behind, and none is used again.
 */
const pruneSiblings = (root: string) => {
  const prefix = path.basename(root).replace(/-[0-9a-f]{8}$/, "-")
  for (const entry of fs.readdirSync(path.dirname(root))) {
    const other = path.join(path.dirname(root), entry)
    if (other === root || !entry.startsWith(prefix) || !/^[0-9a-f]{8}$/.test(entry.slice(prefix.length))) continue
    try {
      if (Date.now() - fs.statSync(path.join(other, ".ccat-release.json")).mtimeMs > 3600_000) {
        fs.rmSync(other, { recursive: true, force: true })
      }
    } catch {
      // not a finished build (or already gone): leave it
    }
  }
}

/** Materialises and builds the previous release, or finds an earlier run's build of it. */
export const previousRelease = (): PreviousRelease => {
  const { tag, commit } = lastTag()
  const lockDigest = createHash("sha256").update(repoRoot).update(fs.readFileSync(path.join(repoRoot, "package-lock.json"))).digest("hex")
  const root = path.join(os.tmpdir(), `ccat-release-${commit.slice(0, 12)}-${lockDigest.slice(0, 8)}`)
  const cli = path.join(root, "packages", "server", "dist", "cli.js")
  const readyFile = path.join(root, ".ccat-release.json")
  if (fs.existsSync(readyFile)) {
    const ready = JSON.parse(fs.readFileSync(readyFile, "utf8")) as { dependencies: "linked" | "installed" }
    return { tag, commit, root, cli, dependencies: ready.dependencies, built: false }
  }
  // Built beside its final name and renamed at the end, so a run cut short leaves nothing that looks ready.
  const work = `${root}.part-${randomBytes(4).toString("hex")}`
  fs.mkdirSync(work, { recursive: true })
  try {
    const archive = path.join(work, ".source.tar")
    git(["archive", "--format=tar", "-o", archive, commit])
    execFileSync("tar", ["-xf", archive, "-C", work])
    fs.rmSync(archive)
    const oldLock = JSON.parse(fs.readFileSync(path.join(work, "package-lock.json"), "utf8")) as Lock
    const currentLock = JSON.parse(fs.readFileSync(path.join(repoRoot, "package-lock.json"), "utf8")) as Lock
    const dependencies = lockIsSubset(oldLock, currentLock) ? "linked" : "installed"
    if (dependencies === "linked") linkDependencies(work)
    else execFileSync("npm", ["ci", "--prefer-offline", "--no-audit", "--no-fund"], { cwd: work, stdio: "pipe", timeout: 600_000 })
    build(work)
    if (!fs.existsSync(path.join(work, "packages", "server", "dist", "cli.js"))) {
      throw new Error(`${tag} built no packages/server/dist/cli.js`)
    }
    fs.writeFileSync(path.join(work, ".ccat-release.json"), JSON.stringify({ tag, commit, dependencies }))
    try {
      fs.renameSync(work, root)
    } catch (e) {
      // Another run finished the same build first: use that one.
      if (!fs.existsSync(readyFile)) throw e
      fs.rmSync(work, { recursive: true, force: true })
    }
    pruneSiblings(root)
    return { tag, commit, root, cli, dependencies, built: true }
  } catch (e) {
    fs.rmSync(work, { recursive: true, force: true })
    throw e
  }
}
