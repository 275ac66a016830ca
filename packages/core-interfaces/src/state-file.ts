import { createHash } from 'node:crypto'
import { link, mkdir, open, readFile, rename, rm } from 'node:fs/promises'
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
export const isCorruptStateError = (err: unknown): err is CorruptStateError =>
  err instanceof Error && err.name === CorruptStateError.NAME

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

async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
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
  const dir = dirname(path)
  await mkdir(dir, { recursive: true })
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`)
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
  if (options.keepPrevious === true) {
    const prevTmp = `${tmp}.prev`
    try {
      await link(path, prevTmp)
      await rename(prevTmp, `${path}.prev`)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
    }
  }
  await rename(tmp, path)
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
  const current = await readIfExists(path)
  let reason = 'missing'
  if (current != null) {
    const decoded = decode(current)
    if ('data' in decoded) return { data: decoded.data }
    reason = decoded.reason
  }
  const previous = await readIfExists(`${path}.prev`)
  if (previous == null) {
    if (current == null) return undefined
    throw new CorruptStateError(path, `${reason}; no previous copy`)
  }
  const decodedPrev = decode(previous)
  if ('data' in decodedPrev) return { data: decodedPrev.data, recoveredFromPrevious: { reason } }
  throw new CorruptStateError(path, `${reason}; previous copy: ${decodedPrev.reason}`)
}
