import { createHash } from 'node:crypto'
import { createReadStream, createWriteStream } from 'node:fs'
import { mkdir, open, readdir, readFile, rename, rm, stat, statfs } from 'node:fs/promises'
import { request, type RequestOptions } from 'node:https'
import type { IncomingMessage } from 'node:http'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { x as untar } from 'tar'
import { silentLogger, type AbortOptions, type Logger } from '@mycelium/core-interfaces'
import { readBootRecord, writeBootRecord, type BootRecord, type Slot } from './boot-record.js'
import { requiredBytes, type UpdateRequest } from './planner.js'
import { ArtifactFetchError, ArtifactNotHeldError, UpdateRefusedError } from './errors.js'
import { fsyncDir, fsyncTree } from '@mycelium/core-utils'

/** How long a trial has to reach MANAGED and HEALTHY. @default 120000 */
export const DEFAULT_TRIAL_WINDOW_MS = 120_000
/** Download attempts per URL (each resumes where the last stopped). @default 5 */
export const DEFAULT_DOWNLOAD_ATTEMPTS = 5
/** First retry delay (doubles, full jitter, capped at 5 s). @default 200 */
export const DEFAULT_RETRY_BASE_MS = 200
/** The unpacked release is at most this many times its tarball. @default 4 */
export const DEFAULT_UNPACK_FACTOR = 4
/** Free space kept beyond what an update needs. @default 64 MiB */
export const DEFAULT_RESERVE_BYTES = 64 * 1024 * 1024

/** One piece of an artifact from a peer (PeerAssist FetchArtifact). */
export interface ArtifactPiece {
  offset: number
  data: Uint8Array
  /** The artifact's whole size, as the peer says. */
  totalSize: number
}

/**
 * A peer that may hold the artifact (node-core dials it over mTLS): `fetch` streams it
 * from `offset`; it throws (or ends early) when the peer holds none or the stream breaks.
 * Nothing a peer sends is trusted: size and sha256 are checked as for HTTPS.
 */
export interface PeerArtifactSource {
  /** For logs and errors ("peer 10.0.0.2:7000"). */
  name: string
  fetch(sha256: string, offset: number, options: AbortOptions): AsyncIterable<ArtifactPiece>
}

export interface SelfUpdaterComponents {
  logger?: Logger
  /** Peers to fetch the artifact from when every URL failed (the Update Manager is unreachable). */
  peers?: () => PeerArtifactSource[]
}

export interface SelfUpdaterInit {
  /** Holds slots/{a,b}, boot.json and downloads/. */
  prefix: string
  /** The network CA (PEM) artifact servers must present a certificate from (read at each download). */
  caPem?: string | Buffer | (() => string | Buffer | undefined)
  /** @default DEFAULT_TRIAL_WINDOW_MS */
  trialWindowMs?: number
  /** @default DEFAULT_DOWNLOAD_ATTEMPTS */
  downloadAttempts?: number
  /** @default DEFAULT_RETRY_BASE_MS */
  retryBaseMs?: number
  /** @default DEFAULT_UNPACK_FACTOR */
  unpackFactor?: number
  /** @default DEFAULT_RESERVE_BYTES */
  reserveBytes?: number
  /** Free bytes on the file system of `path` (a seam for tests). @default statfs */
  freeBytes?: (path: string) => Promise<number>
  /** @default Date.now */
  now?: () => number
  /** [0, 1) for jitter. @default Math.random */
  random?: () => number
}

export interface InstallTarget {
  slot: Slot
  previous: Slot
  sha256: string
}

const statfsFree = async (path: string): Promise<number> => {
  const s = await statfs(path)
  return s.bavail * s.bsize
}

/**
 * The runner: installs a planned update into the inactive slot and marks it
 * as a trial. Every step leaves a bootable node when killed: the download is
 * a `.part` file outside the slots (resumed by HTTP Range); the unpack goes
 * to a temp dir, fsynced, then renamed over the slot; the trial is one
 * atomic boot-record write, the last step. Nothing touches a slot before the
 * artifact's size and sha256 are checked.
 */
export class SelfUpdater {
  private readonly log: Logger
  private readonly peers: () => PeerArtifactSource[]
  private readonly init: Required<Omit<SelfUpdaterInit, 'caPem'>> & Pick<SelfUpdaterInit, 'caPem'>

  constructor(components: SelfUpdaterComponents, init: SelfUpdaterInit) {
    this.log = (components.logger ?? silentLogger()).forComponent('self-update')
    this.peers = components.peers ?? (() => [])
    this.init = {
      trialWindowMs: DEFAULT_TRIAL_WINDOW_MS,
      downloadAttempts: DEFAULT_DOWNLOAD_ATTEMPTS,
      retryBaseMs: DEFAULT_RETRY_BASE_MS,
      unpackFactor: DEFAULT_UNPACK_FACTOR,
      reserveBytes: DEFAULT_RESERVE_BYTES,
      freeBytes: statfsFree,
      now: Date.now,
      random: Math.random,
      ...init
    }
  }

  get prefix(): string {
    return this.init.prefix
  }

  readRecord(): Promise<BootRecord | undefined> {
    return readBootRecord(this.init.prefix)
  }

  writeRecord(record: BootRecord): Promise<void> {
    return writeBootRecord(this.init.prefix, record)
  }

  /** Download → verify → unpack into `target.slot` → trial in the boot record. Refusals write nothing to the slots. */
  async install(req: UpdateRequest, target: InstallTarget, options: AbortOptions = {}): Promise<void> {
    const { prefix } = this.init
    await this.removeLeftovers()
    const urls = req.artifactUrls.filter((u) => u.startsWith('https://'))
    const file = await this.download(urls, target.sha256, req.sizeBytes ?? 0, options)
    this.log.info('artifact verified', { version: req.version, sha256: target.sha256 })
    await this.unpack(file, target.slot)
    this.log.info('unpacked into the inactive slot', { slot: target.slot, version: req.version })
    const record: BootRecord = (await this.readRecord()) ?? { format: 1, active: target.previous }
    await this.writeRecord({
      ...record,
      active: target.previous,
      trial: {
        slot: target.slot,
        previous: target.previous,
        version: req.version,
        commandId: req.commandId,
        startedAtMs: this.init.now(),
        windowMs: this.init.trialWindowMs,
        boots: 0,
        exits: []
      }
    })
    await this.keep(file, target.sha256)
    this.log.info('trial marked in the boot record', { slot: target.slot, version: req.version, windowMs: this.init.trialWindowMs, prefix })
  }

  /**
   * The verified artifact stays as artifacts/<sha256>.tar.gz: this node serves it to peers
   * (PeerAssist FetchArtifact) while the Update Manager is unreachable. Only the newest
   * KEPT_ARTIFACTS are kept (the running release's and the one before).
   */
  private async keep(file: string, sha256: string): Promise<void> {
    const dir = join(this.init.prefix, HELD_DIR)
    await mkdir(dir, { recursive: true })
    await rename(file, join(dir, `${sha256}${HELD_SUFFIX}`))
    await fsyncDir(dirname(file))
    const held = []
    for (const name of await readdir(dir)) {
      if (!name.endsWith(HELD_SUFFIX)) continue
      held.push({ name, mtimeMs: (await stat(join(dir, name)).catch(() => undefined))?.mtimeMs ?? 0 })
    }
    held.sort((x, y) => y.mtimeMs - x.mtimeMs)
    for (const old of held.slice(KEPT_ARTIFACTS)) if (old.name !== `${sha256}${HELD_SUFFIX}`) await rm(join(dir, old.name), { force: true })
    await fsyncDir(dir)
  }

  /** A verified artifact this node holds, by digest ("sha256:<hex>"): what it serves to peers. */
  async heldArtifact(digest: string): Promise<{ path: string; size: number } | undefined> {
    const m = /^sha256:([0-9a-f]{64})$/.exec(digest)
    if (m == null) return undefined
    const path = join(this.init.prefix, HELD_DIR, `${m[1]}${HELD_SUFFIX}`)
    const st = await stat(path).catch(() => undefined)
    return st?.isFile() === true ? { path, size: st.size } : undefined
  }

  /** Temp dirs of an unpack killed midway. */
  private async removeLeftovers(): Promise<void> {
    const slots = join(this.init.prefix, 'slots')
    await mkdir(slots, { recursive: true })
    for (const name of await readdir(slots)) {
      if (name.startsWith('.unpack-') || name.startsWith('.old-')) await rm(join(slots, name), { recursive: true, force: true })
    }
  }

  /** The verified artifact in downloads/<sha256>.part (resumed from what an earlier attempt left). */
  private async download(urls: string[], sha256: string, expectedSize: number, options: AbortOptions): Promise<string> {
    const dir = join(this.init.prefix, 'downloads')
    await mkdir(dir, { recursive: true })
    const file = join(dir, `${sha256}.part`)
    const held = join(this.init.prefix, HELD_DIR, `${sha256}${HELD_SUFFIX}`)
    if ((await this.heldArtifact(`sha256:${sha256}`)) != null && (await sha256Of(held)) === sha256) {
      await rename(held, file) // fetched before (a rolled-back or earlier install): not again
      return file
    }
    let lastError = 'no URL tried'
    for (const url of urls) {
      let size: number
      try {
        size = await this.headSize(url, options)
      } catch (err) {
        lastError = `${url}: ${(err as Error).message}`
        continue
      }
      if (expectedSize > 0 && size !== expectedSize)
        throw new UpdateRefusedError(`artifact at ${url} is ${size} bytes, the release names ${expectedSize}`)
      await this.checkDisk(file, size)
      for (let attempt = 1; attempt <= this.init.downloadAttempts; attempt++) {
        options.signal?.throwIfAborted()
        try {
          await this.fetchRange(url, file, size, options)
          break
        } catch (err) {
          if ((err as Error).name === UpdateRefusedError.NAME) throw err
          lastError = `${url}: ${(err as Error).message}`
          this.log.warn('artifact download interrupted; resuming', { url, attempt, err: (err as Error).message })
          if (attempt === this.init.downloadAttempts) break
          const delay = this.init.random() * Math.min(5000, this.init.retryBaseMs * 2 ** (attempt - 1))
          await sleep(delay, undefined, options.signal != null ? { signal: options.signal } : {})
        }
      }
      const got = (await stat(file).catch(() => undefined))?.size ?? 0
      if (got !== size) continue
      const digest = await sha256Of(file)
      if (digest !== sha256) {
        await rm(file, { force: true })
        throw new UpdateRefusedError(`artifact digest mismatch: expected sha256:${sha256}, got sha256:${digest} (${url})`)
      }
      return file
    }
    const fromPeers = await this.downloadFromPeers(file, sha256, expectedSize, options)
    if (fromPeers.ok) return file
    throw new ArtifactFetchError(`artifact not fetched (kept for a resume): ${lastError}${fromPeers.why}`)
  }

  /** Free space for an artifact of `size` (less what `file` already holds), else refused. */
  private async checkDisk(file: string, size: number): Promise<void> {
    const have = (await stat(file).catch(() => undefined))?.size ?? 0
    const free = await this.init.freeBytes(this.init.prefix)
    const need = requiredBytes(size, this.init.unpackFactor, this.init.reserveBytes) - have
    if (free < need)
      throw new UpdateRefusedError(`too little disk at ${this.init.prefix}: the update needs ${need} bytes free, ${free} are`)
  }

  /**
   * Every URL failed: the peers that hold the artifact, one after another, each resumed
   * from what `file` holds (a stream that breaks is asked again from its offset, capped
   * like an HTTPS attempt). Pieces must arrive in order; a peer that says another size
   * than the release or an earlier piece, or sends more, is dropped. Size and sha256 are
   * checked after, exactly as for HTTPS.
   */
  private async downloadFromPeers(
    file: string,
    sha256: string,
    expectedSize: number,
    options: AbortOptions
  ): Promise<{ ok: true } | { ok: false; why: string }> {
    const peers = this.peers()
    if (peers.length === 0) return { ok: false, why: '' }
    let why = ''
    for (const peer of peers) {
      for (let attempt = 1; attempt <= this.init.downloadAttempts; attempt++) {
        options.signal?.throwIfAborted()
        try {
          await this.fetchFromPeer(peer, file, sha256, expectedSize, options)
          break
        } catch (err) {
          if ((err as Error).name === UpdateRefusedError.NAME) throw err
          why = `; ${peer.name}: ${(err as Error).message}`
          const final = (err as Error).name === PeerRefusedError.NAME || (err as Error).name === ArtifactNotHeldError.NAME
          if (final || attempt === this.init.downloadAttempts) break
          this.log.warn('artifact download from a peer interrupted; resuming', { peer: peer.name, attempt, err: (err as Error).message })
          const delay = this.init.random() * Math.min(5000, this.init.retryBaseMs * 2 ** (attempt - 1))
          await sleep(delay, undefined, options.signal != null ? { signal: options.signal } : {})
        }
      }
      const got = (await stat(file).catch(() => undefined))?.size ?? 0
      if (got === 0 || (expectedSize > 0 && got !== expectedSize) || this.peerSize == null || got !== this.peerSize) continue
      const digest = await sha256Of(file)
      if (digest !== sha256) {
        // A peer sent other bytes: drop them, try the next peer from zero.
        await rm(file, { force: true })
        why = `; ${peer.name}: sent an artifact whose sha256 is ${digest}, not ${sha256}`
        this.log.warn('a peer sent a wrong artifact', { peer: peer.name, expected: sha256, got: digest })
        continue
      }
      this.log.info('artifact fetched from a peer', { peer: peer.name, sha256, size: got })
      return { ok: true }
    }
    return { ok: false, why }
  }

  /** The size the last peer stream announced (what `downloadFromPeers` checks the file against). */
  private peerSize?: number

  private async fetchFromPeer(
    peer: PeerArtifactSource,
    file: string,
    sha256: string,
    expectedSize: number,
    options: AbortOptions
  ): Promise<void> {
    let have = (await stat(file).catch(() => undefined))?.size ?? 0
    if (expectedSize > 0 && have > expectedSize) {
      await rm(file, { force: true })
      have = 0
    }
    if (expectedSize > 0 && have === expectedSize) {
      this.peerSize = expectedSize
      return
    }
    this.peerSize = undefined
    const out = await open(file, have === 0 ? 'w' : 'a')
    let written = have
    try {
      for await (const piece of peer.fetch(sha256, have, options)) {
        if (this.peerSize == null) {
          if (expectedSize > 0 && piece.totalSize !== expectedSize)
            throw new PeerRefusedError(`says the artifact is ${piece.totalSize} bytes, the release names ${expectedSize}`)
          if (written === 0) await this.checkDisk(file, piece.totalSize)
          this.peerSize = piece.totalSize
        }
        if (piece.totalSize !== this.peerSize) throw new PeerRefusedError('changed the artifact size mid-stream')
        if (piece.offset !== written) throw new PeerRefusedError(`sent offset ${piece.offset}, expected ${written}`)
        if (written + piece.data.length > this.peerSize) throw new PeerRefusedError(`sent more than its ${this.peerSize} bytes`)
        await out.write(piece.data)
        written += piece.data.length
      }
      // What arrived is kept, durably: the next attempt asks only for the rest.
      await out.sync()
    } finally {
      await out.close()
    }
    if (this.peerSize == null && written > 0) this.peerSize = written // a resume of an already complete file
    if (this.peerSize == null || written < this.peerSize) throw new Error(`truncated: ${written} of ${this.peerSize ?? '?'} bytes`)
  }

  private get(url: string, method: string, headers: Record<string, string>, options: AbortOptions): Promise<IncomingMessage> {
    const ca = typeof this.init.caPem === 'function' ? this.init.caPem() : this.init.caPem
    return new Promise((resolve, reject) => {
      const req = request(url, {
        method,
        headers,
        ...(ca != null ? { ca } : {}),
        minVersion: 'TLSv1.2',
        ...(options.signal != null ? { signal: options.signal } : {})
      } as RequestOptions)
      req.on('response', resolve)
      req.on('error', reject)
      req.end()
    })
  }

  private async headSize(url: string, options: AbortOptions): Promise<number> {
    const res = await this.get(url, 'HEAD', {}, options)
    res.resume()
    const size = Number(res.headers['content-length'])
    if (res.statusCode !== 200 || !Number.isSafeInteger(size)) throw new Error(`HEAD answered ${res.statusCode} without a size`)
    return size
  }

  /** One GET from what `file` holds; appends and fsyncs. Throws when the stream ends early. */
  private async fetchRange(url: string, file: string, size: number, options: AbortOptions): Promise<void> {
    let have = (await stat(file).catch(() => undefined))?.size ?? 0
    if (have > size) {
      await rm(file, { force: true })
      have = 0
    }
    if (have === size) return
    const res = await this.get(url, 'GET', have > 0 ? { range: `bytes=${have}-` } : {}, options)
    if (res.statusCode === 200)
      have = 0 // the server ignores Range: start again
    else if (res.statusCode !== 206) {
      res.resume()
      throw new Error(`GET answered ${res.statusCode}`)
    }
    // Flowing mode: each chunk goes to the file as it arrives, so a cut connection loses
    // nothing it delivered (an async iterator drops what it buffered when the stream errors).
    const out = createWriteStream(file, { flags: have === 0 ? 'w' : 'a' })
    let written = have
    let oversize = false
    const cut = await new Promise<string>((resolve) => {
      res.on('data', (chunk: Buffer) => {
        if (written + chunk.length > size) {
          oversize = true
          res.destroy()
          return
        }
        written += chunk.length
        out.write(chunk)
      })
      res.on('end', () => resolve(''))
      res.on('error', (err) => resolve(` (${err.message})`))
      res.on('close', () => resolve(' (connection closed)'))
    })
    await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err != null ? reject(err) : resolve())))
    if (oversize) {
      await rm(file, { force: true })
      throw new UpdateRefusedError(`artifact larger than its announced ${size} bytes (${url})`)
    }
    // What arrived is kept, durably: the next attempt asks only for the rest.
    const fd = await open(file, 'r')
    await fd.sync().finally(() => fd.close())
    if (written < size) throw new Error(`truncated: ${written} of ${size} bytes${cut}`)
  }

  /** tar → temp dir → fsync → SHA256SUMS checked → rename over the slot → fsync of slots/. */
  private async unpack(file: string, slot: Slot): Promise<void> {
    const slots = join(this.init.prefix, 'slots')
    const tmp = join(slots, `.unpack-${slot}-${process.pid}`)
    await rm(tmp, { recursive: true, force: true })
    await mkdir(tmp, { recursive: true })
    try {
      await untar({ file, cwd: tmp, strip: 1 })
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      throw new UpdateRefusedError(`artifact is not a release tarball: ${(err as Error).message}`)
    }
    const problem = await checkRelease(tmp)
    if (problem != null) {
      await rm(tmp, { recursive: true, force: true })
      throw new UpdateRefusedError(`artifact is not a valid release: ${problem}`)
    }
    await fsyncTree(tmp)
    const old = join(slots, `.old-${slot}-${process.pid}`)
    await rename(join(slots, slot), old).catch(() => undefined)
    await rename(tmp, join(slots, slot))
    await fsyncDir(slots)
    await rm(old, { recursive: true, force: true })
  }
}

/** A peer's stream was wrong (not merely cut): no resume from that peer. */
class PeerRefusedError extends Error {
  static readonly NAME = 'PeerRefusedError'
  override readonly name = PeerRefusedError.NAME
}

/** Where verified artifacts are kept (served to peers), and their suffix. */
const HELD_DIR = 'artifacts'
const HELD_SUFFIX = '.tar.gz'
/** Verified artifacts kept to serve to peers. */
const KEPT_ARTIFACTS = 2

async function sha256Of(file: string): Promise<string> {
  const hash = createHash('sha256')
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer)
  return hash.digest('hex')
}

/** node-core.cjs present, every SHA256SUMS line matching; else what is wrong. */
async function checkRelease(dir: string): Promise<string | undefined> {
  const sums = await readFile(join(dir, 'SHA256SUMS'), 'utf8').catch(() => undefined)
  if (sums == null) return 'no SHA256SUMS'
  const names = new Set<string>()
  for (const line of sums.split('\n').filter((l) => l !== '')) {
    const m = /^([0-9a-f]{64}) {2}(.+)$/.exec(line)
    if (m == null) return `bad SHA256SUMS line "${line}"`
    if ((await sha256Of(join(dir, m[2]!)).catch(() => undefined)) !== m[1]) return `${m[2]} does not match SHA256SUMS`
    names.add(m[2]!)
  }
  if (!names.has('node-core.cjs')) return 'no node-core.cjs'
  return undefined
}
