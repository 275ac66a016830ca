import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  isCorruptStateError,
  isStateWriteError,
  readStateFile,
  removeStaleTempFiles,
  writeStateFile,
  type StateWriteError
} from '../src/index.js'

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
    [
      'a flipped payload byte',
      (b: Buffer) => {
        b[b.length - 1] ^= 1
        return b
      },
      'checksum mismatch'
    ],
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

describe('state files: hostile disk states', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mycelium-state-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('uses the previous copy when a directory is in the file’s place, and a write moves the directory aside', async () => {
    const path = join(dir, 'agent.bin')
    await writeStateFile(path, Buffer.from('good'))
    await writeStateFile(path, Buffer.from('newer'))
    rmSync(path)
    mkdirSync(join(path, 'inside'), { recursive: true })
    const read = await readStateFile(path)
    expect(read?.data.toString()).toBe('good')
    expect(read?.recoveredFromPrevious?.reason).toContain('a directory is in its place')
    await writeStateFile(path, Buffer.from('again'))
    expect((await readStateFile(path))?.data.toString()).toBe('again')
    // Nothing stored is lost: the directory is kept under another name.
    expect(readdirSync(dir).filter((f) => f.startsWith('agent.bin.displaced-'))).toHaveLength(1)
  })

  it('names the file when a directory is there and no previous copy exists', async () => {
    const path = join(dir, 'commands.bin')
    mkdirSync(path)
    const err = await readStateFile(path).catch((e: unknown) => e)
    expect(isCorruptStateError(err)).toBe(true)
    expect((err as Error).message).toBe(`${path}: a directory is in its place; no previous copy`)
  })

  it('removes temp files that interrupted writes of other processes left, and keeps its own', async () => {
    const path = join(dir, 'agent.bin')
    await writeStateFile(path, Buffer.from('x'))
    const stale = ['.agent.bin.1.1700000000000.tmp', '.agent.bin.2.1700000000001.tmp.prev']
    const own = `.agent.bin.${process.pid}.1700000000002.tmp`
    for (const f of [...stale, own, '.other.bin.3.1.tmp']) writeFileSync(join(dir, f), 'partial')
    expect((await removeStaleTempFiles(path)).sort()).toEqual(stale.sort())
    await readStateFile(path)
    expect(readdirSync(dir).sort()).toEqual([own, '.other.bin.3.1.tmp', 'agent.bin'].sort())
  })

  it('says which file could not be written, typed by cause', async () => {
    const blocker = join(dir, 'not-a-dir')
    writeFileSync(blocker, 'file')
    const err = await writeStateFile(join(blocker, 'x.bin'), Buffer.from('x')).catch((e: unknown) => e)
    expect(isStateWriteError(err)).toBe(true)
    expect((err as StateWriteError).path).toBe(join(blocker, 'x.bin'))
    expect((err as Error).message).toContain(join(blocker, 'x.bin'))
  })
})
