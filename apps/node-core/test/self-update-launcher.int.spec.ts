/**
 * The slot launcher with real child processes: a stand-in release in each slot
 * (test/fixtures/fake-slot.cjs) whose behaviour a file sets. A switch (child exits 75
 * after writing a trial) boots the other slot; a trial that exits at start boots N times,
 * then the previous slot; a trial that never commits is stopped at its window's end;
 * SIGKILL of the launcher (its child stops with it) and a torn or missing record at each
 * step of a write still boot a good slot.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { until } from '@mycelium/testing'

const LAUNCHER = join(__dirname, '..', 'slot-launcher.cjs')
// eslint-disable-next-line @typescript-eslint/no-require-imports
const launcher = require(LAUNCHER) as {
  readRecord(
    prefix: string
  ): Record<string, unknown> & { active: string; trial?: { slot: string; boots: number }; last?: { outcome: string; reason: string } }
  writeRecord(prefix: string, record: unknown): void
  DEFAULT_POLICY: { maxTrialExits: number }
}

let root: string
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'self-update-launcher-'))
})
afterAll(() => rmSync(root, { recursive: true, force: true }))

const running: ChildProcess[] = []
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.exitCode == null && p.signalCode == null) {
      p.kill('SIGKILL')
      await new Promise((r) => p.once('exit', r))
    }
  }
})

let n = 0
function prefixWith(behaviours: Record<string, string>): string {
  const prefix = join(root, `p${++n}`)
  for (const [slot, behaviour] of Object.entries(behaviours)) {
    mkdirSync(join(prefix, 'slots', slot), { recursive: true })
    copyFileSync(join(__dirname, 'fixtures', 'fake-slot.cjs'), join(prefix, 'slots', slot, 'node-core.cjs'))
    writeFileSync(join(prefix, 'slots', slot, 'behaviour'), behaviour)
  }
  return prefix
}

function startLauncher(
  prefix: string,
  env: Record<string, string> = {}
): ChildProcess & { exited: Promise<number | null>; errText: () => string } {
  const p = spawn(process.execPath, [LAUNCHER, '--prefix', prefix, 'run', '--config', 'x.yaml'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SLOT_LAUNCHER_PATH: LAUNCHER, ...env }
  })
  let stderr = ''
  p.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  running.push(p)
  return Object.assign(p, {
    exited: new Promise<number | null>((resolve) => p.once('exit', (code) => resolve(code))),
    toString: () => stderr,
    errText: () => stderr
  })
}

const boots = (prefix: string): Array<[string, number]> =>
  existsSync(join(prefix, 'boots.log'))
    ? readFileSync(join(prefix, 'boots.log'), 'utf8')
        .trim()
        .split('\n')
        .map((l) => l.split(' '))
        .map(([s, pid]) => [s!, Number(pid)])
    : []
const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

describe('slot launcher (real processes)', () => {
  it('a child that writes a trial and exits 75 is followed by the trial slot; a commit keeps it', async () => {
    const prefix = prefixWith({ a: 'switch', b: 'commit' })
    launcher.writeRecord(prefix, { format: 1, active: 'a' })
    startLauncher(prefix)
    await until('slot b committed', () => launcher.readRecord(prefix)?.last?.outcome === 'committed', 20_000)
    expect(launcher.readRecord(prefix)).toMatchObject({ active: 'b' })
    expect(launcher.readRecord(prefix).trial).toBeUndefined()
    expect(boots(prefix).map(([s]) => s)).toEqual(['a', 'b'])
  })

  it('a trial that exits at start boots N times, then the previous slot boots and the record says why', async () => {
    const prefix = prefixWith({ a: 'switch', b: 'exit:1' })
    launcher.writeRecord(prefix, { format: 1, active: 'a' })
    startLauncher(prefix)
    const { maxTrialExits } = launcher.DEFAULT_POLICY
    await until(
      'the previous slot boots again',
      () => boots(prefix).length === maxTrialExits + 2,
      20_000,
      20,
      () => boots(prefix)
    )
    expect(boots(prefix).map(([s]) => s)).toEqual(['a', ...Array<string>(maxTrialExits).fill('b'), 'a'])
    expect(launcher.readRecord(prefix)).toMatchObject({ active: 'a', last: { outcome: 'rolled-back' } })
    expect(launcher.readRecord(prefix).trial).toBeUndefined()
    expect(launcher.readRecord(prefix).last!.reason).toContain(`exited ${maxTrialExits} times`)
  })

  it('takes N exits from the unit environment; a bad value stops the launcher (exit 78) before anything boots', async () => {
    const prefix = prefixWith({ a: 'switch', b: 'exit:1' })
    launcher.writeRecord(prefix, { format: 1, active: 'a' })
    const bad = startLauncher(prefix, { NODE_CORE_TRIAL_MAX_EXITS: 'three' })
    expect(await bad.exited).toBe(78)
    expect(bad.errText()).toContain('NODE_CORE_TRIAL_MAX_EXITS=\\"three\\" is not an integer from 1 to 100')
    expect(boots(prefix)).toEqual([])
    startLauncher(prefix, { NODE_CORE_TRIAL_MAX_EXITS: '2' })
    await until(
      'the previous slot boots again',
      () => boots(prefix).length === 4,
      20_000,
      20,
      () => boots(prefix)
    )
    expect(boots(prefix).map(([s]) => s)).toEqual(['a', 'b', 'b', 'a'])
    expect(launcher.readRecord(prefix).last!.reason).toContain('exited 2 times')
  })

  it('a trial that never commits is stopped at the end of its window and the previous slot boots', async () => {
    const prefix = prefixWith({ a: 'switch', b: 'run' })
    launcher.writeRecord(prefix, { format: 1, active: 'a' })
    startLauncher(prefix, { TRIAL_WINDOW_MS: '1500' })
    await until(
      'the previous slot boots again',
      () => boots(prefix).length === 3,
      20_000,
      20,
      () => boots(prefix)
    )
    const [, [, trialPid]] = boots(prefix) as [[string, number], [string, number]]
    expect(boots(prefix).map(([s]) => s)).toEqual(['a', 'b', 'a'])
    expect(alive(trialPid)).toBe(false)
    expect(launcher.readRecord(prefix).last!.reason).toContain('did not reach MANAGED and HEALTHY within 2 s')
  })

  it('SIGKILL of the launcher during a trial boot stops its child; started again, it boots the trial, then rolls back after too many boots', async () => {
    const prefix = prefixWith({ a: 'run', b: 'run' })
    launcher.writeRecord(prefix, {
      format: 1,
      active: 'a',
      trial: {
        slot: 'b',
        previous: 'a',
        version: '0.2.0',
        commandId: 'c1',
        startedAtMs: Date.now(),
        windowMs: 600_000,
        boots: 4,
        exits: []
      }
    })
    for (let i = 0; i < 2; i++) {
      const l = startLauncher(prefix)
      await until('the trial child runs', () => boots(prefix).length === i + 1, 20_000)
      const [slot, pid] = boots(prefix)[i]!
      expect(slot).toBe('b')
      l.kill('SIGKILL')
      await l.exited
      await until('the child stops with its launcher', () => !alive(pid), 20_000)
    }
    const l = startLauncher(prefix)
    await until('a boots', () => boots(prefix).length === 3, 20_000)
    expect(boots(prefix)[2]![0]).toBe('a')
    expect(launcher.readRecord(prefix).last!.reason).toContain('started 6 times without a commit')
    l.kill('SIGTERM')
    expect(await l.exited).toBe(0)
  })

  it.each([
    ['a torn record (killed mid-write of a non-atomic copy) falls back to its previous copy', 'torn'],
    ['a temp file left by a write killed before its rename is ignored', 'temp'],
    ['no record at all boots the slot that holds a release', 'none']
  ])('%s', async (_title, state) => {
    const prefix = prefixWith({ b: 'run' })
    launcher.writeRecord(prefix, { format: 1, active: 'a' })
    launcher.writeRecord(prefix, { format: 1, active: 'b' })
    const file = join(prefix, 'boot.json')
    if (state === 'torn') writeFileSync(file, readFileSync(file, 'utf8').slice(0, 20))
    if (state === 'temp') writeFileSync(`${file}.tmp-999`, '{"record":{"format":1,"act')
    if (state === 'none') for (const f of [file, `${file}.prev`]) rmSync(f)
    const l = startLauncher(prefix)
    await until('b boots', () => boots(prefix).length === 1, 20_000)
    expect(boots(prefix)[0]![0]).toBe('b')
    expect(launcher.readRecord(prefix).active).toBe('b')
    l.kill('SIGTERM')
    expect(await l.exited).toBe(0)
  })
})
