import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { silentLogger, type LogFields, type Logger } from '@mycelium/core-interfaces'
import { writeStateFile } from '@mycelium/core-utils'
import { NO_SELF_UPDATE_STATE, SELF_UPDATE_STATE_FILE, SelfUpdateStateFile, parseSelfUpdateState } from '../src/self-update-state.js'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'split-self-update-state-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

/** A logger that keeps the lines of one level. */
function keeping(level: 'info' | 'error', lines: Array<{ msg: string; fields: LogFields }>): Logger {
  const log = silentLogger()
  const logger: Logger = {
    ...log,
    [level]: (msg: string, fields: LogFields = {}) => lines.push({ msg, fields }),
    forComponent: () => logger,
    child: () => logger
  }
  return logger
}

describe('parseSelfUpdateState (the state file’s format, pure)', () => {
  it('reads a field that is missing or of another type as none; refuses text that is not a JSON object', () => {
    expect(parseSelfUpdateState('{"downgradeAllowedUntilMs":5,"downgradeReason":"ops","watchLastStartMs":7}')).toEqual({
      downgradeAllowedUntilMs: 5,
      downgradeReason: 'ops',
      watchLastStartMs: 7
    })
    expect(parseSelfUpdateState('{"downgradeAllowedUntilMs":"soon","downgradeReason":3}')).toEqual(NO_SELF_UPDATE_STATE)
    expect(() => parseSelfUpdateState('null')).toThrow()
    expect(() => parseSelfUpdateState('{')).toThrow()
  })
})

describe('SelfUpdateStateFile', () => {
  it('keeps an allowance across a restart (written through, read back)', async () => {
    const until = Date.now() + 60_000
    await new SelfUpdateStateFile(dir, silentLogger()).save({ downgradeAllowedUntilMs: until, downgradeReason: 'ops', watchLastStartMs: 3 })
    const again = new SelfUpdateStateFile(dir, silentLogger())
    await again.load()
    expect(again.current).toEqual({ downgradeAllowedUntilMs: until, downgradeReason: 'ops', watchLastStartMs: 3 })
    expect(again.downgradeAllowed).toBe(true)
  })

  it('clears an allowance that expired unused, on disk too, and says so', async () => {
    const old = { downgradeAllowedUntilMs: 1, downgradeReason: 'old', watchLastStartMs: 9 }
    await writeStateFile(join(dir, SELF_UPDATE_STATE_FILE), Buffer.from(JSON.stringify(old)))
    const lines: Array<{ msg: string; fields: LogFields }> = []
    const state = new SelfUpdateStateFile(dir, keeping('info', lines))
    await state.load()
    expect(state.downgradeAllowed).toBe(false)
    expect(state.current).toEqual({ downgradeAllowedUntilMs: 0, downgradeReason: '', watchLastStartMs: 9 })
    expect(lines).toEqual([{ msg: 'the downgrade allowance expired unused', fields: { reason: 'old' } }])
    const again = new SelfUpdateStateFile(dir, silentLogger())
    await again.load()
    expect(again.current.downgradeReason).toBe('')
  })

  it('reads an unreadable file (corrupt, or intact but not JSON) as no allowance, naming the file, never a failed boot', async () => {
    const path = join(dir, SELF_UPDATE_STATE_FILE)
    for (const write of [async () => writeFileSync(path, 'torn'), () => writeStateFile(path, Buffer.from('not json'))]) {
      rmSync(`${path}.prev`, { force: true })
      await write()
      const lines: Array<{ msg: string; fields: LogFields }> = []
      const state = new SelfUpdateStateFile(dir, keeping('error', lines))
      state.current = { downgradeAllowedUntilMs: Date.now() + 60_000, downgradeReason: 'in memory', watchLastStartMs: 1 }
      await state.load()
      expect(state.current).toEqual(NO_SELF_UPDATE_STATE)
      expect(lines.map((l) => [l.msg, l.fields.path])).toEqual([['self-update state unreadable; no downgrade allowance', path]])
    }
  })

  it('without a state directory lives in memory only', async () => {
    const state = new SelfUpdateStateFile(undefined, silentLogger())
    await state.save({ ...NO_SELF_UPDATE_STATE, watchLastStartMs: 42 })
    await state.load()
    expect(state.current.watchLastStartMs).toBe(42)
  })
})
