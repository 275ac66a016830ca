/**
 * The runner against a real HTTPS server (certificate from a test CA, ranged GET):
 * a verified artifact lands in the inactive slot and the boot record marks its
 * trial; an interrupted download resumes by Range; a digest mismatch, a download
 * that stays truncated and too little disk are refused with nothing written to the slots.
 */
import { createHash } from 'node:crypto'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createTestPki, type TestPki } from '@mycelium/testing'
import {
  ArtifactNotHeldError,
  SelfUpdater,
  isArtifactFetchError,
  isUpdateRefusedError,
  planUpdate,
  readBootRecord,
  type PeerArtifactSource,
  type UpdateRequest
} from '../src/index.js'

let pki: TestPki
let root: string
let server: Server
let base: string
let artifact: Buffer
let sha: string
/** How the server answers the next GETs. */
let mode: 'ok' | 'cut-once' | 'cut-always' = 'ok'
const ranges: string[] = []

beforeAll(async () => {
  pki = createTestPki('net1')
  root = mkdtempSync(join(tmpdir(), 'self-update-runner-'))
  const rel = join(root, 'build', 'node-core-0.2.0-linux-x64')
  mkdirSync(rel, { recursive: true })
  // Incompressible content, so the tarball is big enough to cut in the middle.
  writeFileSync(
    join(rel, 'node-core.cjs'),
    `// ${createHash('sha256').update('x').digest('hex')}\n${Buffer.alloc(200_000, 1).toString('base64')}`
  )
  writeFileSync(join(rel, 'blob.bin'), Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7919) % 251)))
  const sums = ['blob.bin', 'node-core.cjs'].map(
    (f) =>
      `${createHash('sha256')
        .update(readFileSync(join(rel, f)))
        .digest('hex')}  ${f}\n`
  )
  writeFileSync(join(rel, 'SHA256SUMS'), sums.join(''))
  execFileSync('tar', ['-czf', join(root, 'a.tar.gz'), '-C', join(root, 'build'), 'node-core-0.2.0-linux-x64'])
  artifact = readFileSync(join(root, 'a.tar.gz'))
  sha = createHash('sha256').update(artifact).digest('hex')
  const { keyPem, certPem } = pki.issue('update-manager', 'spiffe://net1/manager/update-manager')
  server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    if (req.method === 'HEAD') return res.writeHead(200, { 'content-length': artifact.length }).end()
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '')
    ranges.push(req.headers.range ?? '')
    const from = range != null ? Number(range[1]) : 0
    const body = artifact.subarray(from)
    res.writeHead(range != null ? 206 : 200, {
      'content-length': body.length,
      ...(range != null ? { 'content-range': `bytes ${from}-${artifact.length - 1}/${artifact.length}` } : {})
    })
    if (mode === 'ok') return res.end(body)
    if (mode === 'cut-once') mode = 'ok'
    // A graceful end of the connection (TLS close_notify after the data) short of content-length: the client has the third.
    res.write(body.subarray(0, Math.floor(body.length / 3)), () => res.socket?.end())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  base = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
})
afterAll(async () => {
  await new Promise((r) => server.close(r))
  rmSync(root, { recursive: true, force: true })
  pki.cleanup()
})
beforeEach(() => {
  mode = 'ok'
  ranges.length = 0
})

let n = 0
function setup(
  init: Partial<ConstructorParameters<typeof SelfUpdater>[1]> = {},
  peers: PeerArtifactSource[] = []
): { prefix: string; updater: SelfUpdater } {
  const prefix = join(root, `p${++n}`)
  mkdirSync(join(prefix, 'slots', 'a'), { recursive: true })
  writeFileSync(join(prefix, 'slots', 'a', 'node-core.cjs'), 'old')
  return { prefix, updater: new SelfUpdater({ peers: () => peers }, { prefix, caPem: pki.caPem, retryBaseMs: 1, ...init }) }
}
const request = (over: Partial<UpdateRequest> = {}): UpdateRequest => ({
  commandId: 'c1',
  component: '',
  version: '0.2.0',
  artifactDigest: `sha256:${sha}`,
  artifactUrls: [`${base}/node-core-0.2.0.tar.gz`],
  ...over
})
async function install(updater: SelfUpdater, req = request()): Promise<void> {
  const plan = planUpdate(req, { currentVersion: '0.1.0', runningSlot: 'a', record: await updater.readRecord() })
  if (plan.action !== 'install') throw new Error(`plan: ${JSON.stringify(plan)}`)
  await updater.install(req, plan)
}
/** Slots as the launcher sees them: names and the entry's size. */
const slots = (prefix: string): string[] =>
  readdirSync(join(prefix, 'slots')).map(
    (s) => `${s}:${existsSync(join(prefix, 'slots', s, 'node-core.cjs')) ? statSync(join(prefix, 'slots', s, 'node-core.cjs')).size : '-'}`
  )

describe('SelfUpdater.install', () => {
  it('puts a verified artifact into the inactive slot and marks its trial', async () => {
    const { prefix, updater } = setup()
    await install(updater)
    expect(readFileSync(join(prefix, 'slots', 'b', 'node-core.cjs'), 'utf8')).toContain('// ')
    expect(readFileSync(join(prefix, 'slots', 'a', 'node-core.cjs'), 'utf8')).toBe('old')
    const record = await readBootRecord(prefix)
    expect(record).toMatchObject({ active: 'a', trial: { slot: 'b', previous: 'a', version: '0.2.0', commandId: 'c1', boots: 0 } })
    expect(readdirSync(join(prefix, 'downloads'))).toEqual([]) // the download is removed once unpacked
  })

  it('resumes an interrupted download with an HTTP Range request', async () => {
    const { prefix, updater } = setup()
    mode = 'cut-once'
    await install(updater)
    expect(ranges[0]).toBe('')
    expect(ranges[1]).toMatch(/^bytes=\d+-$/)
    expect(Number(/\d+/.exec(ranges[1]!)![0])).toBeGreaterThan(0)
    expect((await readBootRecord(prefix))?.trial?.slot).toBe('b')
  })

  it('a download that stays truncated fails after capped attempts, keeps the part for a later resume, writes nothing to the slots', async () => {
    const { prefix, updater } = setup({ downloadAttempts: 3 })
    mode = 'cut-always'
    const err = await install(updater).catch((e: unknown) => e)
    expect(isArtifactFetchError(err)).toBe(true)
    expect((err as Error).message).toContain('truncated')
    expect(ranges).toHaveLength(3)
    expect(slots(prefix)).toEqual(['a:3'])
    expect(await readBootRecord(prefix)).toBeUndefined()
    const part = readdirSync(join(prefix, 'downloads'))
    expect(part).toEqual([`${sha}.part`])
    // The next attempt resumes from the kept part.
    mode = 'ok'
    ranges.length = 0
    await install(updater)
    expect(ranges).toEqual([expect.stringMatching(/^bytes=[1-9]\d*-$/)])
  })

  it('a digest mismatch is refused: the download is deleted, nothing written to the slots', async () => {
    const { prefix, updater } = setup()
    const err = await install(updater, request({ artifactDigest: `sha256:${'0'.repeat(64)}` })).catch((e: unknown) => e)
    expect(isUpdateRefusedError(err)).toBe(true)
    expect((err as Error).message).toContain('digest mismatch')
    expect(slots(prefix)).toEqual(['a:3'])
    expect(readdirSync(join(prefix, 'downloads'))).toEqual([])
    expect(await readBootRecord(prefix)).toBeUndefined()
  })

  it('too little disk is refused before anything is downloaded', async () => {
    const { prefix, updater } = setup({ freeBytes: () => Promise.resolve(1000) })
    const err = await install(updater).catch((e: unknown) => e)
    expect(isUpdateRefusedError(err)).toBe(true)
    expect((err as Error).message).toMatch(/too little disk at .*: the update needs \d+ bytes free, 1000 are/)
    expect(ranges).toEqual([])
    expect(slots(prefix)).toEqual(['a:3'])
  })

  it('a server whose certificate is not from the network CA is never fetched from', async () => {
    const other = createTestPki('net2')
    try {
      const { prefix, updater } = setup({ caPem: other.caPem, downloadAttempts: 1 })
      const err = await install(updater).catch((e: unknown) => e)
      expect(isArtifactFetchError(err)).toBe(true)
      expect(ranges).toEqual([])
      expect(slots(prefix)).toEqual(['a:3'])
    } finally {
      other.cleanup()
    }
  })
})

describe('SelfUpdater: from peers when every URL fails', () => {
  const dead = (): UpdateRequest => request({ artifactUrls: ['https://127.0.0.1:1/gone.tar.gz'] })
  const asked: string[] = []
  /** A peer (the PeerAssist stream is basic-net's, tested there): `bytes` in 6 pieces, cut once after the second when `cutOnce`. */
  const peer = (name: string, bytes: Buffer | undefined, cutOnce = false): PeerArtifactSource => {
    const piece = Math.ceil((bytes?.length ?? 6) / 6)
    let cut = cutOnce ? 2 * piece : undefined
    return {
      name,
      async *fetch(_sha, offset) {
        asked.push(`${name}@${offset}`)
        if (bytes == null) throw new ArtifactNotHeldError(`${name} holds none`)
        for (let at = offset; at < bytes.length; at += piece) {
          if (cut != null && at >= cut) {
            cut = undefined
            throw new Error('stream cut')
          }
          yield { offset: at, data: bytes.subarray(at, Math.min(bytes.length, at + piece)), totalSize: bytes.length }
        }
      }
    }
  }
  beforeEach(() => (asked.length = 0))

  it('asks the peers that hold it, resumes a cut stream from its offset, and keeps the artifact to serve', async () => {
    const { prefix, updater } = setup({ downloadAttempts: 2 }, [peer('p0', undefined), peer('p1', artifact, true)])
    await install(updater, { ...dead(), sizeBytes: artifact.length })
    expect(asked).toEqual(['p0@0', 'p1@0', `p1@${2 * Math.ceil(artifact.length / 6)}`]) // p0 holds none: asked once
    expect((await readBootRecord(prefix))?.trial?.slot).toBe('b')
    expect(await updater.heldArtifact(`sha256:${sha}`)).toEqual({ path: join(prefix, 'artifacts', `${sha}.tar.gz`), size: artifact.length })
  })

  it('trusts no peer: other bytes are deleted and the next peer is asked from zero; another size is refused', async () => {
    const evil = Buffer.from(artifact)
    evil[1000] = evil[1000]! ^ 0xff
    const { prefix, updater } = setup({ downloadAttempts: 1 }, [peer('evil', evil), peer('good', artifact)])
    await install(updater, dead())
    expect(asked).toEqual(['evil@0', 'good@0'])
    expect((await readBootRecord(prefix))?.trial?.slot).toBe('b')

    const other = setup({ downloadAttempts: 1 }, [peer('short', artifact.subarray(10))])
    const err = await install(other.updater, { ...dead(), sizeBytes: artifact.length }).catch((e: unknown) => e)
    expect(isArtifactFetchError(err)).toBe(true)
    expect((err as Error).message).toContain(
      `short: says the artifact is ${artifact.length - 10} bytes, the release names ${artifact.length}`
    )
    expect(slots(other.prefix)).toEqual(['a:3'])
  })
})
