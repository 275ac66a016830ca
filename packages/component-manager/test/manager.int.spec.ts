import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Assignment, DynamicComponentState, type ComponentBody } from '@mycelium/core-interfaces'
import { until } from '@mycelium/testing'
import { ComponentManager, type ComponentManagerInit } from '../src/index.js'
import { artifactHost, bodyFor, buildAndHost, processesUnder, recordingLogger, type ArtifactHost } from './helpers.js'

/**
 * The manager with real artifacts (esbuild bundles in .tar.gz) over real
 * HTTPS, real child processes speaking the component contract on unix
 * sockets, and real files.
 */
let host: ArtifactHost
let built: Awaited<ReturnType<typeof buildAndHost>>
const dirs: string[] = []
const managers: ComponentManager[] = []

beforeAll(async () => {
  host = await artifactHost()
  built = await buildAndHost(host, ['fixture', 'node-metrics'])
}, 120_000)

afterAll(async () => {
  for (const m of managers) await m.unloadAll('test over').catch(() => undefined)
  for (const m of managers) await m.stop()
  await host.close()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

function newDir(): string {
  const d = mkdtempSync(join(tmpdir(), 'cm-'))
  dirs.push(d)
  return d
}

function manager(dir: string, catalogue: () => ComponentBody[], over: Partial<ComponentManagerInit> = {}) {
  const logger = recordingLogger()
  const m = new ComponentManager(
    { logger, catalogue },
    {
      dir,
      caPem: () => host.pki.caPem.toString(),
      healthIntervalMs: 50,
      startTimeoutMs: 5000,
      stopGraceMs: 2000,
      restartBackoff: { initialMs: 20, maxMs: 100 },
      restartBudget: { maxRestarts: 2, windowMs: 60_000 },
      installRetryMs: 60_000,
      ...over
    }
  )
  managers.push(m)
  return { m, logger }
}

const assign = (name: string, desiredState = 'running', parameters: Record<string, string> = {}): Assignment =>
  Assignment.fromPartial({ assignmentId: `as-${name}`, componentSpore: `component/${name}`, desiredState, parameters })

const stateOf = (m: ComponentManager, name: string) => m.status().find((s) => s.name === name)

const reach = (m: ComponentManager, name: string, state: DynamicComponentState, timeoutMs = 20_000) =>
  until(
    `${name} ${DynamicComponentState[state]}`,
    () => stateOf(m, name)?.state === state && stateOf(m, name),
    timeoutMs,
    20,
    () => m.status()
  )

describe('ComponentManager (real artifacts, HTTPS, child processes)', () => {
  it('assign → fetched, verified, running, reported; its output in the agent log; unassign → stopped and removed', async () => {
    const dir = newDir()
    const fixture = bodyFor(host, built.fixture!, { args: ['--mode', 'ok'] })
    const { m, logger } = manager(dir, () => [fixture])
    await m.start()
    await m.setAssignments(1, [assign('fixture', 'running', { greeting: 'hi' })])
    const s = await reach(m, 'fixture', DynamicComponentState.RUNNING)
    expect(s).toMatchObject({ version: '1.0.0', artifactDigest: built.fixture!.digest, assignmentId: 'as-fixture', restarts: 0 })
    expect(s.pid).toBeGreaterThan(0)
    expect(s.rssBytes).toBeGreaterThan(1_000_000)
    expect(m.installed()).toEqual([
      {
        name: 'fixture',
        version: '1.0.0',
        artifactDigest: built.fixture!.digest,
        state: DynamicComponentState.RUNNING,
        restarts: 0,
        reason: ''
      }
    ])
    expect(processesUnder(join(dir, 'run'))).toEqual([s.pid])
    // Its own V8 heap limit (the node's default: the spore sets none).
    expect(readFileSync(`/proc/${s.pid}/cmdline`, 'utf8').split('\0')).toContain('--max-old-space-size=64')
    await until('component output in the agent log', () =>
      logger.lines.some((l) => l.component === 'component:fixture' && l.msg === 'begin {"greeting":"hi"}')
    )

    await m.setAssignments(2, [])
    await until('fixture removed', () => m.status().length === 0)
    expect(processesUnder(join(dir, 'run'))).toEqual([])
    expect(readdirSync(join(dir, 'store', 'installs'))).toEqual([])
    expect(readdirSync(join(dir, 'store', 'blobs', 'sha256'))).toEqual([])
  }, 60_000)

  it('a stopped manager leaves components running; a new one adopts them (same process, never a second)', async () => {
    const dir = newDir()
    const fixture = bodyFor(host, built.fixture!)
    const first = manager(dir, () => [fixture]).m
    await first.start()
    await first.setAssignments(1, [assign('fixture')])
    const pid = (await reach(first, 'fixture', DynamicComponentState.RUNNING)).pid
    await first.stop()
    expect(processesUnder(join(dir, 'run'))).toEqual([pid])

    // The managers and every spore source are gone too: the stored assignment and spec carry on.
    const second = manager(dir, () => []).m
    await second.start()
    expect(stateOf(second, 'fixture')).toMatchObject({ state: DynamicComponentState.RUNNING, pid })
    expect(second.assignmentsGeneration).toBe(1)
    await second.reconcile()
    expect(processesUnder(join(dir, 'run'))).toEqual([pid])
    await second.unloadAll()
  }, 60_000)

  it('a component killed while the agent was away is started again, once', async () => {
    const dir = newDir()
    const fixture = bodyFor(host, built.fixture!)
    const first = manager(dir, () => [fixture]).m
    await first.start()
    await first.setAssignments(1, [assign('fixture')])
    const pid = (await reach(first, 'fixture', DynamicComponentState.RUNNING)).pid
    await first.stop()
    process.kill(pid, 'SIGKILL')
    await until('old process gone', () => !processesUnder(join(dir, 'run')).includes(pid))

    const second = manager(dir, () => [fixture]).m
    await second.start()
    const s = await reach(second, 'fixture', DynamicComponentState.RUNNING)
    expect(s.pid).not.toBe(pid)
    expect(processesUnder(join(dir, 'run'))).toEqual([s.pid])
    await second.unloadAll()
  }, 60_000)

  describe('bad input: a clear reason, nothing half-installed, other components untouched', () => {
    let dir: string
    let m: ComponentManager
    let catalogue: ComponentBody[]
    const metricsPort = 20000 + (process.pid % 20000)

    beforeAll(async () => {
      dir = newDir()
      catalogue = [bodyFor(host, built['node-metrics']!)]
      m = manager(dir, () => catalogue, { startTimeoutMs: 1500 }).m
      await m.start()
      await m.setAssignments(1, [assign('node-metrics', 'running', { listen: `127.0.0.1:${metricsPort}` })])
      await reach(m, 'node-metrics', DynamicComponentState.RUNNING)
    }, 60_000)

    let generation = 1
    /** Assigns `name` (with `body` as its verified spore, or none) beside node-metrics; its FAILED reason. */
    async function tryBad(body: ComponentBody | undefined, name = body!.name): Promise<string> {
      catalogue = body != null ? [catalogue[0]!, body] : [catalogue[0]!]
      await m.setAssignments(++generation, [assign('node-metrics', 'running', { listen: `127.0.0.1:${metricsPort}` }), assign(name)])
      const s = await reach(m, name, DynamicComponentState.FAILED)
      // The good one never stopped, nothing half-installed is left.
      expect(stateOf(m, 'node-metrics')).toMatchObject({ state: DynamicComponentState.RUNNING, restarts: 0 })
      expect(readdirSync(join(dir, 'store', 'installs')).filter((n) => n.startsWith('.tmp-'))).toEqual([])
      expect(readdirSync(join(dir, 'store', 'blobs', 'sha256')).filter((n) => n.startsWith('.tmp-'))).toEqual([])
      return s.reason
    }

    it('the node-metrics component serves Prometheus metrics', async () => {
      const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text()
      expect(text).toMatch(/^node_load1 [\d.]+$/m)
      expect(text).toMatch(/^node_memory_MemAvailable_bytes \d+$/m)
      expect(text).toMatch(/^node_cpu_seconds_total\{cpu="0",mode="idle"\} [\d.]+$/m)
    })

    it('digest mismatch', async () => {
      const other = `sha256:${'0'.repeat(64)}`
      const reason = await tryBad(
        bodyFor(host, built.fixture!, { name: 'bad-digest', artifactDigest: other, artifactUrls: [host.url('/fixture.tar.gz')] })
      )
      expect(reason).toContain(`digest mismatch from ${host.url('/fixture.tar.gz')}`)
      expect(readdirSync(join(dir, 'store', 'installs'))).not.toContain('0'.repeat(64))
    }, 60_000)

    it('size mismatch', async () => {
      const reason = await tryBad(bodyFor(host, built.fixture!, { name: 'bad-size', artifactSizeBytes: built.fixture!.sizeBytes - 1 }))
      expect(reason).toContain('larger than allowed')
    }, 60_000)

    it('entry missing', async () => {
      const reason = await tryBad(bodyFor(host, built.fixture!, { name: 'no-entry', entry: 'missing.cjs' }))
      expect(reason).toContain('entry "missing.cjs" missing in artifact')
      expect(readdirSync(join(dir, 'store', 'installs'))).toHaveLength(1) // node-metrics only
    }, 60_000)

    it('unknown (or unsigned) spore', async () => {
      // Unsigned, wrongly signed or expired spores never reach the verified catalogue the manager reads.
      const reason = await tryBad(undefined, 'ghost')
      expect(reason).toBe('no verified spore "component/ghost" (unknown, unsigned or expired)')
    }, 60_000)

    it('crashes at start: restarts with a budget, then FAILED', async () => {
      const reason = await tryBad(bodyFor(host, built.fixture!, { name: 'crasher', args: ['--mode', 'crash'] }))
      expect(reason).toMatch(
        /start failed: crasher: process exit code 3 before answering Hello; 3 failures within 60 s: restart budget spent/
      )
      expect(stateOf(m, 'crasher')!.restarts).toBe(3)
    }, 60_000)

    it('never answers Hello', async () => {
      const reason = await tryBad(bodyFor(host, built.fixture!, { name: 'silent', args: ['--mode', 'silent'] }))
      expect(reason).toContain('no Hello answer within')
      expect(processesUnder(join(dir, 'run')).length).toBe(1) // the silent ones were killed
    }, 90_000)

    it('speaks another contract version', async () => {
      const reason = await tryBad(bodyFor(host, built.fixture!, { name: 'fixture', args: ['--mode', 'contract2'] }))
      expect(reason).toContain('speaks contract versions 2..2, this node speaks 1')
    }, 60_000)
  })
})

describe('ComponentManager: on demand, upgrades, store cap', () => {
  it('an on-demand component is installed at assignment, started on first use, stopped after its idle time (its memory freed)', async () => {
    const dir = newDir()
    const body = bodyFor(host, built.fixture!, { onDemand: true, idleTimeoutMs: 300 })
    const { m } = manager(dir, () => [body])
    await m.start()
    await m.setAssignments(1, [assign('fixture')])
    expect(stateOf(m, 'fixture')).toMatchObject({ state: DynamicComponentState.IDLE, pid: 0, rssBytes: 0, onDemand: true })
    expect(processesUnder(join(dir, 'run'))).toEqual([])

    const used = await m.use('fixture')
    expect(used).toMatchObject({ state: DynamicComponentState.RUNNING })
    expect(processesUnder(join(dir, 'run'))).toEqual([used.pid])
    expect(m.memory().componentsRssBytes).toBeGreaterThan(1_000_000)

    await reach(m, 'fixture', DynamicComponentState.IDLE)
    expect(processesUnder(join(dir, 'run'))).toEqual([])
    expect(m.memory().componentsRssBytes).toBe(0)
    expect(stateOf(m, 'fixture')!.reason).toBe('on-demand component idle')
    // The restart command for an on-demand component is a use: it starts again.
    await m.restart('fixture')
    expect(stateOf(m, 'fixture')!.state).toBe(DynamicComponentState.RUNNING)
  }, 60_000)

  it('an upgrade that is healthy replaces the old version (then collected); one that fails is rolled back, the old one running', async () => {
    const dir = newDir()
    const v1 = bodyFor(host, built.fixture!)
    let catalogue = [v1]
    const { m } = manager(dir, () => catalogue, { startTimeoutMs: 1500 })
    await m.start()
    await m.setAssignments(1, [assign('fixture')])
    const first = await reach(m, 'fixture', DynamicComponentState.RUNNING)

    const v2 = bodyFor(host, built['fixture-v2']!, { version: '2.0.0' })
    catalogue = [v2]
    await m.reconcile()
    const second = await until('v2 running', () => stateOf(m, 'fixture')?.version === '2.0.0' && stateOf(m, 'fixture'))
    expect(second).toMatchObject({ state: DynamicComponentState.RUNNING, artifactDigest: v2.artifactDigest })
    expect(processesUnder(join(dir, 'run'))).toEqual([second.pid])
    expect(readdirSync(join(dir, 'store', 'installs'))).toEqual([v2.artifactDigest.slice(7)])
    expect(first.pid).not.toBe(second.pid)
    // The restart command: one new process, the same version.
    await m.restart('fixture')
    const restarted = stateOf(m, 'fixture')!
    expect(restarted).toMatchObject({ state: DynamicComponentState.RUNNING, version: '2.0.0' })
    expect(processesUnder(join(dir, 'run'))).toEqual([restarted.pid])
    expect(restarted.pid).not.toBe(second.pid)

    // v3: same code, a spore that makes it crash at start.
    const v3 = bodyFor(host, built.fixture!, { version: '3.0.0', args: ['--mode', 'crash'] })
    catalogue = [v3]
    await m.reconcile()
    const back = await until(
      'rolled back',
      () => /rolled back to 2\.0\.0/.test(stateOf(m, 'fixture')?.reason ?? '') && stateOf(m, 'fixture')
    )
    expect(back).toMatchObject({ state: DynamicComponentState.RUNNING, version: '2.0.0' })
    expect(back.reason).toContain('upgrade to 3.0.0 failed')
    expect(processesUnder(join(dir, 'run'))).toEqual([back.pid])
    // Nothing more is tried for the refused version: the old one stays.
    await m.reconcile()
    expect(stateOf(m, 'fixture')!.pid).toBe(back.pid)
  }, 90_000)

  it('an artifact that does not fit the store is refused before it is fetched', async () => {
    const dir = newDir()
    const body = bodyFor(host, built.fixture!)
    const { m } = manager(dir, () => [body], { storeMaxBytes: built.fixture!.sizeBytes })
    await m.start()
    const before = host.hits.get('/fixture.tar.gz') ?? 0
    await m.setAssignments(1, [assign('fixture')])
    const s = await reach(m, 'fixture', DynamicComponentState.FAILED)
    expect(s.reason).toContain('does not fit the store')
    expect(host.hits.get('/fixture.tar.gz') ?? 0).toBe(before)
  }, 60_000)

  it('a component that crashes while running is restarted after a backoff and counted', async () => {
    const dir = newDir()
    const body = bodyFor(host, built.fixture!, { args: ['--mode', 'crash-later', '--after-ms', '300'] })
    const { m } = manager(dir, () => [body], { restartBudget: { maxRestarts: 1, windowMs: 60_000 } })
    await m.start()
    await m.setAssignments(1, [assign('fixture')])
    const s = await reach(m, 'fixture', DynamicComponentState.FAILED)
    expect(s.reason).toMatch(/process exit code 4; 2 failures within 60 s: restart budget spent/)
    expect(s.restarts).toBe(2)
    expect(processesUnder(join(dir, 'run'))).toEqual([])
  }, 60_000)
})

describe('ComponentManager: update commands', () => {
  it('an update to a verified version replaces the running one; a bad one is refused with the reason and the old one keeps running', async () => {
    const dir = newDir()
    const v1 = bodyFor(host, built.fixture!)
    const { m } = manager(dir, () => [v1])
    await m.start()
    await m.setAssignments(1, [assign('fixture')])
    const first = await reach(m, 'fixture', DynamicComponentState.RUNNING)

    const v2 = built['fixture-v2']!
    await m.update({ name: 'fixture', version: '2.0.0', digest: v2.digest, urls: [host.url('/fixture-v2.tar.gz')] })
    const second = stateOf(m, 'fixture')!
    expect(second).toMatchObject({ state: DynamicComponentState.RUNNING, version: '2.0.0', artifactDigest: v2.digest })
    expect(second.pid).not.toBe(first.pid)
    // The spore still names v1: the update's version stands.
    await m.reconcile()
    expect(stateOf(m, 'fixture')!.pid).toBe(second.pid)

    const wrong = `sha256:${'1'.repeat(64)}`
    await expect(m.update({ name: 'fixture', version: '3.0.0', digest: wrong, urls: [host.url('/fixture.tar.gz')] })).rejects.toThrow(
      /update of fixture to 3\.0\.0 failed: install failed: fixture: digest mismatch/
    )
    expect(stateOf(m, 'fixture')).toMatchObject({ state: DynamicComponentState.RUNNING, version: '2.0.0', pid: second.pid })
    await m.reconcile()
    expect(stateOf(m, 'fixture')!.pid).toBe(second.pid)
    await expect(m.update({ name: 'ghost', version: '1', digest: wrong, urls: [] })).rejects.toThrow('component ghost is not assigned')
  }, 60_000)
})

const isRoot = process.getuid?.() === 0
;(isRoot ? describe : describe.skip)('ComponentManager: a full disk and an unwritable store (tmpfs, root only)', () => {
  let mnt: string
  beforeAll(() => {
    mnt = newDir()
    // Room for the state file, not for the artifact.
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=64k', 'cm-disk-test', mnt])
  })
  afterAll(() => {
    execFileSync('umount', [mnt])
  })

  it('a download that fills the disk fails with "disk full" and leaves nothing behind', async () => {
    const dir = join(mnt, 'cm')
    const body = bodyFor(host, built.fixture!)
    const { m } = manager(dir, () => [body])
    await m.start()
    await m.setAssignments(1, [assign('fixture')])
    const s = await reach(m, 'fixture', DynamicComponentState.FAILED)
    expect(s.reason).toContain(`install failed: fixture: disk full while fetching ${body.artifactDigest}`)
    expect(readdirSync(join(dir, 'store', 'blobs', 'sha256'))).toEqual([])
    expect(readdirSync(join(dir, 'store', 'installs'))).toEqual([])
    await m.stop()
  }, 60_000)

  it('a store that cannot be created does not keep the manager from starting: every component says why', async () => {
    execFileSync('mount', ['-o', 'remount,ro', mnt])
    try {
      const { m } = manager(join(mnt, 'never'), () => [bodyFor(host, built.fixture!)])
      await m.start()
      await m.setAssignments(1, [assign('fixture')])
      expect(stateOf(m, 'fixture')).toMatchObject({
        state: DynamicComponentState.FAILED,
        reason: expect.stringMatching(/^component store unusable: E(ROFS|NOENT)/)
      })
      await m.stop()
    } finally {
      execFileSync('mount', ['-o', 'remount,rw', mnt])
    }
  }, 60_000)
})
