import { createHash, randomBytes } from 'node:crypto'
import { execFile } from 'node:child_process'
import { createWriteStream } from 'node:fs'
import { mkdir, open, readdir, rename, rm, stat } from 'node:fs/promises'
import { request } from 'node:https'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { ArtifactFetchError, ArtifactTooLargeError, ArtifactVerificationError, ComponentInstallError } from './errors.js'
import type { ComponentSpec } from './planner.js'
import { fsyncDir, fsyncTree } from '@mycelium/core-utils'

const run = promisify(execFile)

export interface ArtifactStoreInit {
  /** Root: `blobs/sha256/<hex>` (verified artifacts) and `installs/<hex>` (unpacked). */
  dir: string
  /** The whole store (blobs + installs) may not grow past this. */
  maxBytes: number
  /** The network CA (PEM) HTTPS artifact servers must chain to; read at each fetch. */
  caPem: () => string | undefined
  /** One download may take this long. */
  fetchTimeoutMs: number
}

/**
 * A content-addressed artifact store. Invariants: a blob exists under its
 * digest only once its size and digest were checked (downloads go to a temp
 * file, fsync, rename); an install directory exists under a digest only
 * once it was fully unpacked, its entry found and every file fsynced (temp
 * dir, rename) — a crash or a failure at any point leaves the previous state,
 * never a half-installed component. Temp leftovers are swept at open.
 */
export class ArtifactStore {
  constructor(private readonly init: ArtifactStoreInit) {}

  private blobPath(digest: string): string {
    return join(this.init.dir, 'blobs', 'sha256', digest.slice('sha256:'.length))
  }

  installDir(digest: string): string {
    return join(this.init.dir, 'installs', digest.slice('sha256:'.length))
  }

  /** Creates the layout and removes temp leftovers of a crash. */
  async open(): Promise<void> {
    for (const d of [join(this.init.dir, 'blobs', 'sha256'), join(this.init.dir, 'installs')]) {
      await mkdir(d, { recursive: true })
      for (const f of await readdir(d)) if (f.startsWith('.tmp-')) await rm(join(d, f), { recursive: true, force: true })
    }
  }

  /** Digests with a complete install. */
  async installed(): Promise<string[]> {
    const names = await readdir(join(this.init.dir, 'installs')).catch(() => [] as string[])
    return names.filter((n) => /^[0-9a-f]{64}$/.test(n)).map((n) => `sha256:${n}`)
  }

  /** Bytes used by blobs and installs. */
  async usedBytes(): Promise<number> {
    return du(join(this.init.dir, 'blobs')).then(async (b) => b + (await du(join(this.init.dir, 'installs'))))
  }

  /**
   * Removes every blob and install whose digest is not in `keep` (the
   * components assigned or running). Returns the bytes freed.
   */
  async gc(keep: Set<string>): Promise<number> {
    let freed = 0
    for (const sub of ['blobs/sha256', 'installs']) {
      const dir = join(this.init.dir, sub)
      for (const n of await readdir(dir).catch(() => [] as string[])) {
        if (n.startsWith('.tmp-') || keep.has(`sha256:${n}`)) continue
        freed += await du(join(dir, n))
        await rm(join(dir, n), { recursive: true, force: true })
      }
    }
    return freed
  }

  /** Fetches (unless present), verifies and unpacks the spec's artifact; returns the install dir. */
  async install(spec: ComponentSpec, signal: AbortSignal): Promise<string> {
    const target = this.installDir(spec.digest)
    if (await exists(target)) return target
    const blob = await this.fetch(spec, signal)
    const tmp = join(this.init.dir, 'installs', `.tmp-${randomBytes(6).toString('hex')}`)
    try {
      await mkdir(tmp)
      try {
        // GNU tar refuses members with ".." and strips leading "/": nothing lands outside tmp.
        await run('tar', ['-xzf', blob, '-C', tmp, '--no-same-owner', '--no-same-permissions'], { signal })
      } catch (err) {
        if (signal.aborted) throw err
        const text = `${(err as { stderr?: string }).stderr ?? (err as Error).message}`.trim()
        throw new ComponentInstallError(spec.name, `artifact ${spec.digest} is not a readable .tar.gz: ${text}`, kindOf(text), {
          cause: err
        })
      }
      if (!(await exists(join(tmp, spec.entry))))
        throw new ComponentInstallError(spec.name, `entry "${spec.entry}" missing in artifact ${spec.digest}`, 'entry-missing')
      await fsyncTree(tmp)
      await rename(tmp, target)
      await fsyncDir(join(this.init.dir, 'installs'))
      return target
    } catch (err) {
      await rm(tmp, { recursive: true, force: true })
      if ((err as NodeJS.ErrnoException).code === 'ENOSPC' || (err as NodeJS.ErrnoException).code === 'EDQUOT')
        throw new ComponentInstallError(spec.name, `disk full while installing ${spec.digest}`, 'disk-full', { cause: err })
      throw err
    }
  }

  private async fetch(spec: ComponentSpec, signal: AbortSignal): Promise<string> {
    const path = this.blobPath(spec.digest)
    if (await exists(path)) return path
    // Room for the download (declared size, else the rest of the cap) and an unpacked copy of at most the same again.
    const used = await this.usedBytes()
    const room = this.init.maxBytes - used
    if (spec.sizeBytes > 0 && spec.sizeBytes * 2 > room)
      throw new ArtifactTooLargeError(
        spec.name,
        `artifact ${spec.sizeBytes} bytes (×2 to unpack) does not fit the store: ${used} of ${this.init.maxBytes} bytes used`
      )
    const limit = spec.sizeBytes > 0 ? spec.sizeBytes : Math.floor(room / 2)
    const errors: string[] = []
    for (const url of spec.urls) {
      if (signal.aborted) throw signal.reason
      try {
        await this.download(spec, url, path, limit, signal)
        return path
      } catch (err) {
        if (signal.aborted) throw err
        // A wrong artifact from one URL is not retried from another: the spore names one set of bytes.
        if ((err as Error).name === ArtifactTooLargeError.NAME || (err as Error).name === ArtifactVerificationError.NAME) throw err
        if ((err as NodeJS.ErrnoException).code === 'ENOSPC')
          throw new ComponentInstallError(spec.name, `disk full while fetching ${spec.digest}`, 'disk-full', { cause: err })
        errors.push(`${url}: ${(err as Error).message}`)
      }
    }
    throw new ArtifactFetchError(spec.name, `artifact ${spec.digest} could not be fetched: ${errors.join('; ')}`)
  }

  private async download(spec: ComponentSpec, url: string, path: string, limit: number, signal: AbortSignal): Promise<void> {
    const dir = join(this.init.dir, 'blobs', 'sha256')
    const tmp = join(dir, `.tmp-${randomBytes(6).toString('hex')}`)
    const ca = this.init.caPem()
    const hash = createHash('sha256')
    let size = 0
    try {
      await new Promise<void>((resolve, reject) => {
        const req = request(
          url,
          { ...(ca != null ? { ca } : {}), signal, timeout: this.init.fetchTimeoutMs, minVersion: 'TLSv1.2' },
          (res) => {
            if (res.statusCode !== 200) {
              res.resume()
              reject(new Error(`HTTP ${res.statusCode}`))
              return
            }
            const declared = Number(res.headers['content-length'] ?? NaN)
            if (Number.isFinite(declared) && declared > limit) {
              res.destroy()
              reject(tooBig(spec, url, declared, limit))
              return
            }
            const out = createWriteStream(tmp, { flags: 'wx' })
            out.on('error', reject)
            res.on('data', (chunk: Buffer) => {
              size += chunk.length
              if (size > limit) {
                res.destroy()
                out.destroy()
                reject(tooBig(spec, url, size, limit))
                return
              }
              hash.update(chunk)
              if (!out.write(chunk)) res.pause()
            })
            out.on('drain', () => res.resume())
            res.on('error', reject)
            res.on('end', () => out.end(() => resolve()))
          }
        )
        req.on('timeout', () => req.destroy(new Error(`no answer within ${this.init.fetchTimeoutMs} ms`)))
        req.on('error', reject)
        req.end()
      })
      if (spec.sizeBytes > 0 && size !== spec.sizeBytes)
        throw new ArtifactVerificationError(spec.name, `size mismatch from ${url}: got ${size} bytes, spore says ${spec.sizeBytes}`)
      const digest = `sha256:${hash.digest('hex')}`
      if (digest !== spec.digest)
        throw new ArtifactVerificationError(spec.name, `digest mismatch from ${url}: got ${digest}, spore says ${spec.digest}`)
      const fh = await open(tmp, 'r')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
      await rename(tmp, path)
      await fsyncDir(dir)
    } finally {
      await rm(tmp, { force: true })
    }
  }
}

function tooBig(spec: ComponentSpec, url: string, bytes: number, limit: number): ArtifactTooLargeError {
  return new ArtifactTooLargeError(spec.name, `artifact from ${url} is larger than allowed (${bytes} > ${limit} bytes)`)
}

function kindOf(tarText: string): 'disk-full' | 'bad-archive' {
  return /No space left/i.test(tarText) ? 'disk-full' : 'bad-archive'
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false
  )
}

async function du(path: string): Promise<number> {
  const s = await stat(path).catch(() => undefined)
  if (s == null) return 0
  if (!s.isDirectory()) return s.size
  let total = 0
  for (const n of await readdir(path)) total += await du(join(path, n))
  return total
}
