import { createHash } from 'node:crypto'
import { link, lstat, mkdir, open, readdir, readFile, rename, rm } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'

/**
 * Durable state files. Invariants:
 * - a write is atomic: temp file, fsync, rename over the old file, fsync the
 *   directory — a crash leaves the old or the new content, never a mix;
 * - the content is checksummed, so a torn or bit-rotted file is detected;
 * - the previous good content is kept beside it (`<file>.prev`), and a read
 *   of a corrupt file falls back to it and says so, never a boot loop.
 *
 * Format: "MYCS" | u8 format version (1) | 3 zero bytes | u32 BE length |
 * 32-byte SHA-256 of the payload | payload.
 */
const MAGIC = Buffer.from('MYCS')
const HEADER_BYTES = 4 + 4 + 4 + 32
const FORMAT_VERSION = 1

/** Both the file and its previous copy are unreadable. */
export class CorruptStateError extends Error {
  static readonly NAME = 'CorruptStateError'
  override readonly name = CorruptStateError.NAME
  constructor(
    readonly path: string,
    reason: string
  ) {
    super(`${path}: ${reason}`)
  }
}
export const isCorruptStateError = (err: unknown): err is CorruptStateError => err instanceof Error && err.name === CorruptStateError.NAME

/**
 * A state file could not be written. `kind` says why in terms an operator
 * acts on: the disk is full, the file system is read-only, or another error
 * (the errno `code` is kept). The message always names the file.
 */
export class StateWriteError extends Error {
  static readonly NAME = 'StateWriteError'
  override readonly name = StateWriteError.NAME
  readonly kind: 'disk-full' | 'read-only' | 'other'
  constructor(
    readonly path: string,
    readonly code: string | undefined,
    cause: Error
  ) {
    const kind =
      code === 'ENOSPC' || code === 'EDQUOT'
        ? 'disk-full'
        : code === 'EROFS' || code === 'EACCES' || code === 'EPERM'
          ? 'read-only'
          : 'other'
    const what = kind === 'disk-full' ? 'disk full' : kind === 'read-only' ? 'read-only' : 'cannot write'
    super(`${what}: ${path} (${cause.message})`, { cause })
    this.kind = kind
  }
}
export const isStateWriteError = (err: unknown): err is StateWriteError => err instanceof Error && err.name === StateWriteError.NAME

export interface StateFileContent {
  data: Buffer
  /** Set when the file was corrupt or missing and its previous copy was used. */
  recoveredFromPrevious?: { reason: string }
}

function encode(data: Uint8Array): Buffer {
  const header = Buffer.alloc(HEADER_BYTES)
  MAGIC.copy(header, 0)
  header.writeUInt8(FORMAT_VERSION, 4)
  header.writeUInt32BE(data.length, 8)
  createHash('sha256').update(data).digest().copy(header, 12)
  return Buffer.concat([header, data])
}

/** The payload, or the reason the bytes are not a valid state file. */
function decode(bytes: Buffer): { data: Buffer } | { reason: string } {
  if (bytes.length < MAGIC.length || !bytes.subarray(0, MAGIC.length).equals(MAGIC)) return { reason: 'not a state file (bad magic)' }
  if (bytes.length < HEADER_BYTES) return { reason: `truncated: ${bytes.length} of ${HEADER_BYTES} header bytes` }
  const version = bytes.readUInt8(4)
  if (version !== FORMAT_VERSION) return { reason: `unsupported format version ${version}` }
  const length = bytes.readUInt32BE(8)
  const data = bytes.subarray(HEADER_BYTES)
  if (data.length !== length) return { reason: `truncated: ${data.length} of ${length} payload bytes` }
  if (!createHash('sha256').update(data).digest().equals(bytes.subarray(12, HEADER_BYTES))) {
    return { reason: 'checksum mismatch' }
  }
  return { data }
}

/** The bytes, `undefined` when absent, or why they cannot be read (e.g. a directory in its place). */
async function readIfExists(path: string): Promise<Buffer | undefined | { unreadable: string }> {
  try {
    return await readFile(path)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return undefined
    if (code === 'EISDIR') return { unreadable: 'a directory is in its place' }
    return { unreadable: `unreadable (${code ?? (err as Error).message})` }
  }
}

let tempCounter = 0
const TEMP_FILE = /^\.(.+)\.(\d+)\.(\d+)\.tmp(\.prev)?$/

/**
 * Removes the temp files that interrupted atomic writes of `path` left
 * behind (`.<name>.<pid>.<ms>.tmp`, and its `.prev` link). Files of this
 * process are kept: one of its writes may be in flight.
 */
export async function removeStaleTempFiles(path: string): Promise<string[]> {
  const dir = dirname(path)
  const name = basename(path)
  let entries: string[]
  try {
    entries = await readdir(dir)
  } catch {
    return []
  }
  const removed: string[] = []
  for (const entry of entries) {
    const m = TEMP_FILE.exec(entry)
    if (m == null || m[1] !== name || Number(m[2]) === process.pid) continue
    await rm(join(dir, entry), { force: true, recursive: true }).then(
      () => removed.push(entry),
      () => undefined // a read-only directory: they stay, harmless
    )
  }
  return removed
}

async function fsyncPath(path: string, flags: string): Promise<void> {
  const handle = await open(path, flags)
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * Atomically replaces `path` with `data` (temp file in the same directory,
 * fsync, rename, fsync of the directory). With `keepPrevious`, the old
 * content stays as `<path>.prev`; a hard link keeps `path` present the whole
 * time, so a reader never finds neither file.
 */
export async function writeFileAtomic(
  path: string,
  data: Uint8Array | string,
  options: { mode?: number; keepPrevious?: boolean } = {}
): Promise<void> {
  try {
    await writeAtomically(path, data, options)
  } catch (err) {
    throw new StateWriteError(path, (err as NodeJS.ErrnoException).code, err as Error)
  }
}

async function writeAtomically(path: string, data: Uint8Array | string, options: { mode?: number; keepPrevious?: boolean }): Promise<void> {
  const dir = dirname(path)
  await mkdir(dir, { recursive: true })
  // The counter keeps two writes within one millisecond apart.
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now() * 1000 + (tempCounter++ % 1000)}.tmp`)
  const handle = await open(tmp, 'w', options.mode ?? 0o600)
  try {
    await handle.writeFile(data)
    await handle.sync()
  } catch (err) {
    await handle.close()
    await rm(tmp, { force: true })
    throw err
  }
  await handle.close()
  // A directory where the file belongs cannot be renamed over: move it aside
  // (nothing is deleted) so the node can keep its state again.
  for (const target of options.keepPrevious === true ? [path, `${path}.prev`] : [path]) {
    const existing = await lstat(target).catch(() => undefined)
    if (existing?.isDirectory() === true) await rename(target, `${target}.displaced-${Date.now()}`)
  }
  if (options.keepPrevious === true) {
    const prevTmp = `${tmp}.prev`
    try {
      await link(path, prevTmp)
      await rename(prevTmp, `${path}.prev`)
    } catch (err) {
      await rm(prevTmp, { force: true })
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // The new content is not in place: its temp file must not stay and fill the disk.
        await rm(tmp, { force: true })
        throw err
      }
    }
  }
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
  await fsyncPath(dir, 'r')
}

/** Atomically replaces a checksummed state file, keeping the old content as `<path>.prev`. */
export async function writeStateFile(path: string, data: Uint8Array, mode = 0o600): Promise<void> {
  await writeFileAtomic(path, encode(data), { mode, keepPrevious: true })
}

/**
 * Reads a state file. `undefined` when neither it nor its previous copy
 * exists; the previous copy (with the reason) when the file is corrupt or
 * missing; CorruptStateError when both are unusable.
 */
export async function readStateFile(path: string): Promise<StateFileContent | undefined> {
  await removeStaleTempFiles(path)
  const current = await readIfExists(path)
  let reason = 'missing'
  if (Buffer.isBuffer(current)) {
    const decoded = decode(current)
    if ('data' in decoded) return { data: decoded.data }
    reason = decoded.reason
  } else if (current != null) {
    reason = current.unreadable
  }
  const previous = await readIfExists(`${path}.prev`)
  if (!Buffer.isBuffer(previous)) {
    if (current == null && previous == null) return undefined
    throw new CorruptStateError(path, `${reason}; ${previous == null ? 'no previous copy' : `previous copy: ${previous.unreadable}`}`)
  }
  const decodedPrev = decode(previous)
  if ('data' in decodedPrev) return { data: decodedPrev.data, recoveredFromPrevious: { reason } }
  throw new CorruptStateError(path, `${reason}; previous copy: ${decodedPrev.reason}`)
}
