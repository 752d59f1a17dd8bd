/**
 * Where everything sits in a package's tar: the layout is a pure function of the manifest (the
 * manifest entry first, then per member its not-yet-written parent folders, its header, its bytes
 * and padding, then the end-of-archive blocks). The writer streams exactly this layout, so an
 * archive's size and every member's offsets are known before a byte is read, and a file can be
 * read from a stored package by a ranged read.
 */
import * as PackageManifest from "./PackageManifest.js"
import * as TarFormat from "./TarFormat.js"

const parentDirectories = (path: string): Array<string> => {
  const parts = path.split("/")
  const out: Array<string> = []
  for (let i = 1; i < parts.length; i++) out.push(parts.slice(0, i).join("/"))
  return out
}

/**
 * The header blocks of one member: a folder header for each parent folder not in `seen` (added
 * to it), then the member's own header. The writer and the offsets use the same function.
 */
export const memberHeaders = (member: PackageManifest.Member, seen: Set<string>, mtime: number): Array<Uint8Array> => {
  const headers: Array<Uint8Array> = []
  // a folder is seen only with all the folders above it: most members' folder was seen already
  const slash = member.relativePath.lastIndexOf("/")
  const known = slash < 0 || seen.has(member.relativePath.slice(0, slash))
  for (const dir of known ? [] : parentDirectories(member.relativePath)) {
    if (seen.has(dir)) continue
    seen.add(dir)
    headers.push(TarFormat.encodeHeader({ name: dir, type: "directory", size: 0, mode: 0o755, mtime }))
  }
  headers.push(TarFormat.encodeHeader({ name: member.relativePath, type: "file", size: member.sizeBytes, mode: 0o644, mtime }))
  return headers
}

/** The archive's first entry: the manifest's header, its JSON bytes and their padding. */
export const manifestEntry = (manifest: PackageManifest.Manifest, mtime: number): Array<Uint8Array> => {
  const bytes = PackageManifest.encode(manifest)
  return [
    TarFormat.encodeHeader({ name: PackageManifest.manifestName, type: "file", size: bytes.length, mode: 0o444, mtime }),
    bytes,
    TarFormat.padding(bytes.length)
  ]
}

/** The exact size of the archive written for a manifest, known before a byte is read (a size hint). */
export const archiveSize = (manifest: PackageManifest.Manifest): number => {
  const seen = new Set<string>()
  let size = TarFormat.blockSize * 2
  for (const part of manifestEntry(manifest, 0)) size += part.length
  for (const member of PackageManifest.members(manifest)) {
    for (const h of memberHeaders(member, seen, 0)) size += h.length
    size += member.sizeBytes + TarFormat.padding(member.sizeBytes).length
  }
  return size
}

/** Where one member sits in the archive: its own header and its first data byte. */
export interface MemberOffset {
  /** The member's own header (a pax header first where it has one), after any folder headers. */
  readonly headerOffset: number
  /** Its first data byte; the data runs for the member's recorded size. */
  readonly dataOffset: number
}

/**
 * Each member's offsets in the archive, in manifest order: the layout is a pure function of the
 * manifest, so the offsets are known without the bytes.
 */
export const memberOffsets = (manifest: PackageManifest.Manifest): Array<MemberOffset> => {
  const seen = new Set<string>()
  let at = 0
  for (const part of manifestEntry(manifest, 0)) at += part.length
  const out: Array<MemberOffset> = []
  for (const member of PackageManifest.members(manifest)) {
    const headers = memberHeaders(member, seen, 0)
    for (let i = 0; i < headers.length - 1; i++) at += headers[i].length
    const headerOffset = at
    at += headers[headers.length - 1].length
    out.push({ headerOffset, dataOffset: at })
    at += member.sizeBytes + TarFormat.padding(member.sizeBytes).length
  }
  return out
}
