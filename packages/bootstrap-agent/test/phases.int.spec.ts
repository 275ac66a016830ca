import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  Availability,
  CommandState,
  IdentityState,
  NodeConfig,
  Phase,
  silentLogger,
  type Logger,
  type LogFields,
  type PhaseTransition,
  type RuntimeCapability
} from '@mycelium/core-interfaces'
import type { SporeClient } from '@mycelium/spore-client'
import { AgentStateStore } from '../src/agent-state.js'
import { startDevNetwork, type DevNetwork, type ManagerClockFaults } from '@mycelium/dev-network'
import { ConfigStore, type BootstrapAgent } from '../src/index.js'
import { devAgent, until } from './helpers/agent.js'

/**
 * Phases that mean what they say, against a dev network over real mTLS:
 * FALLBACK holds through every reconnection attempt, RECOVERY backs off
 * inside itself, a failed start leaves nothing started, capabilities follow
 * the node, and manager deadlines survive clock skew.
 */
let net: DevNetwork
let dir: string
const agents: BootstrapAgent[] = []

beforeAll(async () => {
  net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300 })
})
afterAll(async () => {
  await net?.stop()
})
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'agent-phases-'))
})
afterEach(async () => {
  for (const a of agents.splice(0)) await a.stop()
  await net.startManager('network-manager')
  rmSync(dir, { recursive: true, force: true })
})

function track(agent: BootstrapAgent): BootstrapAgent {
  agents.push(agent)
  return agent
}

/** A fresh node with its own (single-use) join token. */
async function freshAgent(nodeId: string, options: Parameters<typeof devAgent>[3] = {}): Promise<BootstrapAgent> {
  return track(devAgent(net, dir, nodeId, { joinToken: await net.newJoinToken(), ...options }))
}

const phases = (ts: PhaseTransition[]): string[] => ts.map((t) => Phase[t.to])

/** A logger that keeps every line (message and fields) for the test to read. */
function recordingLogger(lines: Array<{ msg: string; fields: LogFields }>): Logger {
  const keep = (msg: string, fields: LogFields = {}): void => {
    lines.push({ msg, fields })
  }
  const logger: Logger = { error: keep, warn: keep, info: keep, debug: keep, forComponent: () => logger, child: () => logger }
  return logger
}

describe('FALLBACK while the manager is unreachable', () => {
  it('stays FALLBACK through every reconnection attempt, showing attempt, next retry and last error; leaves only for HANDOFF', async () => {
    const agent = await freshAgent('node-fb')
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    const after: PhaseTransition[] = []
    agent.on('transition', (t) => after.push(t))
    const seen = new Set<string>()
    const progress: Array<{ attempt: number; lastError: string; next: boolean }> = []

    await net.stopManager('network-manager')
    await until(
      'three failed reconnection attempts',
      () => {
        const s = agent.status()
        seen.add(Phase[s.phase])
        progress.push({
          attempt: s.progress?.attempt ?? 0,
          lastError: s.progress?.lastError ?? '',
          next: s.progress?.nextAttemptAt != null
        })
        return agent.counters.reconnectAttempts >= 3 && s.progress?.nextAttemptAt != null && (s.progress?.attempt ?? 0) >= 4
      },
      20_000,
      () => agent.status().progress
    )
    // Every poll of the status during the outage said FALLBACK after the first one that saw the loss.
    expect([...seen].filter((p) => p !== 'MANAGED')).toEqual(['FALLBACK'])
    expect(phases(after)).toEqual(['FALLBACK'])
    const status = agent.status()
    expect(status.reason).toMatch(/^manager link lost: /)
    expect(status.progress?.lastError).toMatch(/^registration failed: /)
    expect(status.progress?.step).toMatch(/^waiting before reconnection attempt \d+$/)
    expect(progress.some((p) => p.next)).toBe(true)
    expect(agent.counters.transitions).toMatchObject({ FALLBACK: 1, DISCOVERY: 1, REGISTRATION: 1, HANDOFF: 1, MANAGED: 1 })

    await net.startManager('network-manager')
    await until(
      'MANAGED again',
      () => agent.phase === Phase.MANAGED,
      20_000,
      () => agent.status().progress
    )
    expect(phases(after)).toEqual(['FALLBACK', 'HANDOFF', 'MANAGED'])
    expect(after[1]!.reason).toMatch(/^reconnected \(reconnection attempt \d+\): registered with lease /)
    expect(agent.status().progress).toMatchObject({ attempt: 0, lastError: '' })
  })
})

describe('RECOVERY with a broken identity file', () => {
  it.each([
    ['node.crt', 'garbage, not a certificate'],
    ['ca.crt', '']
  ])(
    '%s replaced by %j: one RECOVERY transition, retries inside it with backoff naming the file; repaired → MANAGED',
    async (file, content) => {
      const nodeId = `node-rc-${file.split('.')[0]!}`
      const first = await freshAgent(nodeId)
      await first.start()
      await until('MANAGED', () => first.phase === Phase.MANAGED)
      await first.stop()
      const path = join(dir, nodeId, 'identity', file)
      const good = readFileSync(path)
      writeFileSync(path, content)

      const lines: Array<{ msg: string; fields: LogFields }> = []
      // Jitter pinned near its top: each wait is just under its ceiling, so the backoff shows in the delays.
      const second = track(
        devAgent(net, dir, nodeId, {
          logger: recordingLogger(lines),
          init: { random: () => 0.999, reconnect: { initialMs: 100, maxMs: 800 } }
        })
      )
      const transitions: PhaseTransition[] = []
      const failures: string[] = []
      second.on('transition', (t) => transitions.push(t))
      second.on('step', (s) => {
        if (s.lastError !== '' && s.step.startsWith('waiting')) failures.push(s.lastError)
      })
      await second.start()
      await until(
        'five failed identity attempts',
        () => (second.status().progress?.attempt ?? 0) >= 5,
        20_000,
        () => second.status().progress
      )
      expect(phases(transitions)).toEqual(['BOOTSTRAP', 'RECOVERY'])
      expect(second.phase).toBe(Phase.RECOVERY)
      expect(second.counters.transitions).toEqual({ BOOTSTRAP: 1, RECOVERY: 1 })
      expect(transitions[1]!.reason).toContain(path)
      expect(failures.length).toBeGreaterThanOrEqual(4)
      for (const f of failures) expect(f).toContain(`${path}: contains no PEM certificate`)
      const delays = lines.filter((l) => l.msg === 'retry scheduled').map((l) => l.fields.delayMs)
      expect(delays.slice(0, 5)).toEqual([99, 199, 399, 799, 799]) // doubling from 100 ms, capped at 800 ms

      writeFileSync(path, good)
      await until(
        'MANAGED once repaired',
        () => second.phase === Phase.MANAGED,
        20_000,
        () => second.status().progress
      )
      expect(phases(transitions)).toEqual(['BOOTSTRAP', 'RECOVERY', 'DISCOVERY', 'REGISTRATION', 'HANDOFF', 'MANAGED'])
      // Only phase changes are persisted: agent.bin holds both runs' transitions and one RECOVERY, not one per attempt.
      await second.stop()
      const onDisk = await new AgentStateStore(join(dir, nodeId), silentLogger()).loadHistory()
      expect(phases(onDisk)).toEqual([
        'BOOTSTRAP',
        'DISCOVERY',
        'REGISTRATION',
        'HANDOFF',
        'MANAGED',
        'BOOTSTRAP',
        'RECOVERY',
        'DISCOVERY',
        'REGISTRATION',
        'HANDOFF',
        'MANAGED'
      ])
    }
  )

  it('a retry cut short by a repaired identity supersedes the old wait: the next attempt stays visible until it runs', async () => {
    const nodeId = 'node-rc-short'
    const first = await freshAgent(nodeId)
    await first.start()
    await until('MANAGED', () => first.phase === Phase.MANAGED)
    await first.stop()
    writeFileSync(join(dir, nodeId, 'identity', 'node.crt'), 'garbage')
    let identity!: import('@mycelium/basic-net').IdentityStore
    // Waits of 400, 800, 1600 ms: the cut-short wait would outlive the early retry's failure by far.
    const second = track(
      devAgent(net, dir, nodeId, {
        onIdentity: (i) => (identity = i),
        init: { random: () => 0.999, reconnect: { initialMs: 400, maxMs: 1600 } }
      })
    )
    await second.start()
    await until('waiting before identity attempt 2', () => second.status().progress?.step === 'waiting before identity attempt 2')
    // The identity store says "usable" (an operator's repair that did not hold): retry now, not after the backoff.
    identity.emit('state', { state: IdentityState.VALID, reason: 'repaired', usable: true })
    // Steps are read from the agent's events (a step can be shorter than a poll); the status is
    // sampled meanwhile to see that the wait before attempt 3 shows when it will run.
    const steps: string[] = []
    second.on('step', (st) => steps.push(st.step))
    const seen: Array<{ step: string; next: boolean }> = []
    await until('identity attempt 3 ran', () => {
      const p = second.status().progress
      seen.push({ step: p?.step ?? '', next: p?.nextAttemptAt != null })
      return steps.some((st) => st.startsWith('identity attempt 3:') || st === 'waiting before identity attempt 4')
    })
    const waiting = seen.filter((s) => s.step === 'waiting before identity attempt 3')
    expect(waiting.length).toBeGreaterThan(0)
    expect(waiting.filter((s) => !s.next)).toEqual([])
  })

  it('a fresh node whose first enrolment failed enrols once when the manager is back (the new certificate does not trigger a second)', async () => {
    await net.stopManager('network-manager')
    let installs = 0
    const agent = await freshAgent('node-en-once', {
      init: { reconnect: { initialMs: 100, maxMs: 400 } },
      onIdentity: (i) => {
        const install = i.install.bind(i)
        i.install = async (chain, ca) => {
          installs++
          return install(chain, ca)
        }
      }
    })
    await agent.start()
    await until('RECOVERY after the failed enrolment', () => agent.phase === Phase.RECOVERY)
    await net.startManager('network-manager')
    await until(
      'MANAGED',
      () => agent.phase === Phase.MANAGED,
      20_000,
      () => agent.status().progress
    )
    expect(installs).toBe(1)
  })
})

describe('stop() while starting', () => {
  it('a run stopped before its start finished installs nothing (no config store, no command journal left to overlap the next run)', async () => {
    let identity!: import('@mycelium/basic-net').IdentityStore
    const agent = await freshAgent('node-stop-start', { onIdentity: (i) => (identity = i) })
    await identity.start()
    // The agent's own start and stop (the helper's wrappers also start and stop the identity store).
    const own = Object.getPrototypeOf(agent) as Pick<BootstrapAgent, 'start' | 'stop'>
    const starting = own.start.call(agent)
    await own.stop.call(agent)
    await starting
    expect(agent.isStarted()).toBe(false)
    expect(agent.configStore).toBeUndefined()
    expect(agent.executor).toBeUndefined()
    await agent.start()
    await until('MANAGED after the next start', () => agent.phase === Phase.MANAGED)
    expect(agent.executor).toBeDefined()
  })

  it('a stop landing during the identity check leaves no spore client running; the next run builds its own', async () => {
    const nodeId = 'node-stop-early'
    const lines: Array<{ msg: string; fields: LogFields }> = []
    const clients: SporeClient[] = []
    let release!: () => void
    const gate = new Promise<void>((r) => (release = r))
    let armed = false
    const agent = await freshAgent(nodeId, {
      logger: recordingLogger(lines),
      onSporeClient: (c) => clients.push(c),
      onIdentity: (i) => {
        const reload = i.reload
        ;(i as { reload: typeof reload }).reload = async () => {
          const report = await reload()
          if (armed && i.isStarted()) {
            armed = false
            await gate
          }
          return report
        }
      }
    })
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    await agent.stop()
    expect(clients.every((c) => !c.isStarted())).toBe(true)

    armed = true
    await agent.start() // the run's identity check is now held in reload()
    await agent.stop()
    const before = clients.length
    release()
    await until(
      'the stopped run finished its identity check',
      () => lines.some((l) => l.msg.startsWith('identity check abandoned')) || clients.slice(before).some((c) => c.isStarted())
    )
    expect(clients.filter((c) => c.isStarted())).toEqual([])
    expect(agent.sporeClient).toBeUndefined()

    await agent.start()
    await until('MANAGED again', () => agent.phase === Phase.MANAGED)
    expect(clients.filter((c) => c.isStarted())).toEqual([agent.sporeClient])
    expect(clients.length).toBe(before + 1)
  })
})

describe('start is all or nothing', () => {
  it('a failed start leaves the agent stopped; the next start really starts', async () => {
    // The config store cannot be opened (as node-core's would fail): start fails. A full or
    // read-only disk does not fail a start (the stores run on what they read), so the failure
    // comes from the component that opens the store.
    let refuse = true
    const agent = await freshAgent('node-st', {
      openConfigStore: async () => {
        if (refuse) throw new Error('config store unavailable')
        return ConfigStore.open(join(dir, 'node-st', 'config'), NodeConfig.fromPartial({ networkId: net.networkId, nodeId: 'node-st' }))
      }
    })
    await expect(agent.start()).rejects.toThrow(/config store unavailable/)
    expect(agent.isStarted()).toBe(false)
    await agent.stop() // after a failed start: nothing to do, no throw

    refuse = false
    await agent.start()
    expect(agent.isStarted()).toBe(true)
    await until('MANAGED after the second start', () => agent.phase === Phase.MANAGED)
    expect(agent.counters.transitions.BOOTSTRAP).toBe(1)
  })

  it('start and stop are idempotent; concurrent starts share one run', async () => {
    const agent = await freshAgent('node-id')
    await Promise.all([agent.start(), agent.start()])
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    expect(agent.counters.transitions.BOOTSTRAP).toBe(1)
    await agent.stop()
    await agent.stop()
    expect(agent.isStarted()).toBe(false)
    await agent.start()
    await until('MANAGED after a restart', () => agent.phase === Phase.MANAGED)
    expect(agent.counters.transitions.BOOTSTRAP).toBe(2)
    // The spore client is rebuilt per run (the first run's was stopped).
    expect(agent.sporeClient?.isStarted()).toBe(true)
  })
})

describe('truthful capabilities', () => {
  it('registers with the given agent version, lists K3s once available, and re-sends a change with the next heartbeat', async () => {
    let runtime: RuntimeCapability = { name: 'k3s', availability: Availability.UNAVAILABLE, version: '', reason: 'k3s binary not found' }
    // ComponentInfo's dynamic-component fields (state, restarts, reason) at their defaults: not a dynamic component's report.
    const info = (name: string, version: string, artifactDigest: string) => ({
      name,
      version,
      artifactDigest,
      state: 0,
      restarts: 0,
      reason: ''
    })
    let installed = [info('log-shipper', '1.2.0', 'sha256:ab')]
    const agent = await freshAgent('node-cap', {
      runtime: { capability: () => runtime },
      installedComponents: () => installed,
      init: { agentVersion: '9.8.7' }
    })
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    const record = () => net.networkManager.nodes.get('node-cap')!
    expect(record().capabilities).toMatchObject({ agentVersion: '9.8.7', components: [{ name: 'log-shipper', version: '1.2.0' }] })
    expect(record().capabilities?.runtime?.availability).toBe(Availability.UNAVAILABLE)
    expect(record().contractVersions).toEqual({ min: 1, max: 1 })
    expect(agent.status().agentVersion).toBe('9.8.7')
    await until('first heartbeat with capabilities', () => record().capabilityReports >= 1)
    const reports = record().capabilityReports

    runtime = { name: 'k3s', availability: Availability.AVAILABLE, version: 'v1.31.4+k3s1', reason: '' }
    await until('the manager holds the change', () => record().capabilities?.runtime?.availability === Availability.AVAILABLE, 10_000)
    expect(record().capabilities?.components).toEqual([info('k3s', 'v1.31.4+k3s1', ''), info('log-shipper', '1.2.0', 'sha256:ab')])
    installed = [...installed, info('metrics', '0.3.0', 'sha256:cd')]
    await until(
      'a newly installed component reaches the manager',
      () => record().capabilities?.components.some((c) => c.name === 'metrics') === true,
      10_000
    )
    expect(record().capabilityReports).toBe(reports + 2) // one per change, not one per heartbeat
    expect(agent.counters.capabilityUpdates).toBe(2)
    expect(record().registrations).toBe(1) // no re-registration: the lease and the handoff stand
    expect(agent.phase).toBe(Phase.MANAGED)
  })

  it('without a version given, reports it empty rather than a made-up default', async () => {
    const agent = await freshAgent('node-nov')
    await agent.start()
    await until('MANAGED', () => agent.phase === Phase.MANAGED)
    expect(net.networkManager.nodes.get('node-nov')?.capabilities?.agentVersion).toBe('')
  })
})

describe('manager deadlines under clock skew', () => {
  it.each<[string, ManagerClockFaults]>([
    ['manager 10 s ahead', { offsetMs: 10_000 }],
    ['manager 10 s behind', { offsetMs: -10_000 }],
    ['manager 10 s ahead, absolute times only (skew estimated)', { offsetMs: 10_000, absoluteTimesOnly: true }],
    ['manager 10 s behind, absolute times only (skew estimated)', { offsetMs: -10_000, absoluteTimesOnly: true }]
  ])(
    '%s: reaches MANAGED and stays through many lease lengths',
    async (_what, clock) => {
      // Lease 3 × 200 ms: 10 s of skew is 16 lease lengths.
      const skewed = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 200, handoffDeadlineMs: 5000, managerClock: clock })
      const d = mkdtempSync(join(tmpdir(), 'agent-skew-'))
      const agent = devAgent(skewed, d, 'node-skew', { joinToken: await skewed.newJoinToken() })
      const left: PhaseTransition[] = []
      agent.on('transition', (t) => {
        if (t.from === Phase.MANAGED || t.to === Phase.FALLBACK) left.push(t)
      })
      try {
        await agent.start()
        await until(
          'MANAGED',
          () => agent.phase === Phase.MANAGED,
          20_000,
          () => agent.status().history.map((h) => h.reason)
        )
        const acks = agent.counters.heartbeatAcks
        await until('15 more heartbeats acked (5 lease lengths)', () => agent.counters.heartbeatAcks >= acks + 15, 20_000)
        expect(left).toEqual([])
        expect(agent.phase).toBe(Phase.MANAGED)
        // Status shows the lease expiry on the node's own clock: within a lease length of now, not 10 s off.
        const expires = agent.status().managers[0]!.leaseExpiresAt!.getTime()
        expect(Math.abs(expires - Date.now())).toBeLessThan(2000)
      } finally {
        await agent.stop()
        await skewed.stop()
        rmSync(d, { recursive: true, force: true })
      }
    },
    40_000
  )
})

describe('command deadlines under clock skew', () => {
  it.each<[string, ManagerClockFaults]>([
    ['manager 10 s behind', { offsetMs: -10_000 }],
    ['manager 10 s behind, absolute times only (skew estimated)', { offsetMs: -10_000, absoluteTimesOnly: true }]
  ])(
    '%s: a command due in 5 s on the manager\'s clock runs (not "deadline exceeded" by the node\'s clock)',
    async (_what, clock) => {
      const skewed = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 200, handoffDeadlineMs: 5000, managerClock: clock })
      const d = mkdtempSync(join(tmpdir(), 'agent-skew-cmd-'))
      const restarted: string[] = []
      const agent = devAgent(skewed, d, 'node-skew-cmd', {
        joinToken: await skewed.newJoinToken(),
        restart: async (c) => void restarted.push(c)
      })
      try {
        await agent.start()
        await until('command session', () => agent.phase === Phase.MANAGED && skewed.commands.isConnected('node-skew-cmd'), 20_000)
        const managerNow = Date.now() + (clock.offsetMs ?? 0)
        const cmd = {
          commandId: 'skewed-deadline',
          issuedAt: new Date(managerNow),
          deadline: new Date(managerNow + 5000),
          issuer: 'test',
          kind: { $case: 'restart' as const, value: { component: 'k3s-runtime' } }
        }
        skewed.commands.send('node-skew-cmd', cmd)
        const updates = await skewed.commands.waitForOutcome(cmd.commandId)
        expect(updates.map((u) => CommandState[u.state])).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])
        expect(restarted).toEqual(['k3s-runtime'])
      } finally {
        await agent.stop()
        await skewed.stop()
        rmSync(d, { recursive: true, force: true })
      }
    },
    40_000
  )
})
