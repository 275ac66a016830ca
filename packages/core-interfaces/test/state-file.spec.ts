import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isCorruptStateError, readStateFile, writeStateFile } from '../src/index.js'

describe('state files (atomic, checksummed, previous copy kept)', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mycelium-state-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('reads back what was written, with mode 0600 and no temp files left', async () => {
    const path = join(dir, 'sub', 'config.bin')
    await writeStateFile(path, Buffer.from('v1'))
    await writeStateFile(path, Buffer.from('v2'))
    expect((await readStateFile(path))?.data.toString()).toBe('v2')
    expect(statSync(path).mode & 0o777).toBe(0o600)
    expect(readdirSync(join(dir, 'sub')).sort()).toEqual(['config.bin', 'config.bin.prev'])
  })

  it('is undefined when nothing was ever written', async () => {
    expect(await readStateFile(join(dir, 'none'))).toBeUndefined()
  })

  it.each([
    ['a flipped payload byte', (b: Buffer) => { b[b.length - 1] ^= 1; return b }, 'checksum mismatch'],
    ['truncation', (b: Buffer) => b.subarray(0, b.length - 1), 'truncated'],
    ['foreign content', () => Buffer.from('{"hello":1}'), 'bad magic']
  ])('falls back to the previous good copy after %s and says why', async (_what, damage, reason) => {
    const path = join(dir, 'spores.bin')
    await writeStateFile(path, Buffer.from('good'))
    await writeStateFile(path, Buffer.from('newer'))
    writeFileSync(path, damage(readFileSync(path)))
    const read = await readStateFile(path)
    expect(read?.data.toString()).toBe('good')
    expect(read?.recoveredFromPrevious?.reason).toContain(reason)
  })

  it('reports, not crashes, when both copies are corrupt', async () => {
    const path = join(dir, 'journal.bin')
    await writeStateFile(path, Buffer.from('a'))
    await writeStateFile(path, Buffer.from('b'))
    writeFileSync(path, 'junk')
    writeFileSync(`${path}.prev`, 'junk')
    const err = await readStateFile(path).catch((e: unknown) => e)
    expect(isCorruptStateError(err)).toBe(true)
    expect((err as Error).message).toContain(path)
  })

  it('uses the previous copy when a crash left only it', async () => {
    const path = join(dir, 'x.bin')
    await writeStateFile(path, Buffer.from('one'))
    await writeStateFile(path, Buffer.from('two'))
    rmSync(path)
    expect((await readStateFile(path))?.data.toString()).toBe('one')
  })
})
