import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../src/index.js'

function capture() {
  const lines = { out: '', err: '' }
  return {
    lines,
    io: { out: (t: string) => void (lines.out += t), err: (t: string) => void (lines.err += t), untilStopped: () => Promise.resolve() }
  }
}

describe('dev-network CLI errors: one line, the documented exit code', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'dev-net-cli-err-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('no running network: exit 1, one line saying how to start one; --debug adds the stack', async () => {
    const c = capture()
    expect(await runCli(['fault', '--dir', dir, 'kill-streams'], c.io)).toBe(1)
    expect(c.lines.err.trimEnd().split('\n')).toEqual([
      `error: no running dev-network found in ${dir} (start one with: dev-network up --dir ${dir})`
    ])
    const d = capture()
    expect(await runCli(['--debug', 'fault', '--dir', dir, 'kill-streams'], d.io)).toBe(1)
    expect(d.lines.err).toMatch(/\n\s+at /)
  })

  it('a missing file: exit 1, one line naming it', async () => {
    const c = capture()
    const missing = join(dir, 'missing.json')
    expect(await runCli(['fault', '--dir', dir, 'push-config', missing], c.io)).toBe(1)
    expect(c.lines.err.trimEnd().split('\n')).toEqual([expect.stringContaining(missing)])
  })

  it('a bad flag or a missing required one: exit 2', async () => {
    const c = capture()
    expect(await runCli(['up', '--dir', dir, '--bogus'], c.io)).toBe(2)
    expect(c.lines.err.trimEnd().split('\n')).toEqual(["error: unknown option '--bogus'"])
    const m = capture()
    expect(await runCli(['fault', 'kill-streams'], m.io)).toBe(2)
    expect(m.lines.err.trimEnd().split('\n')).toEqual(["error: required option '--dir <dir>' not specified"])
  })
})
