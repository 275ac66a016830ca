import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import type { BootstrapAgent } from '../src/index.js'
import { devAgent, until } from './helpers/agent.js'

/**
 * 200 agents in one process against one dev Network Manager that is stopped
 * and restarted: every agent must come back to MANAGED, and the reconnections
 * must be spread by jitter (no one-second window holds more than half).
 */
const FLEET = 200

describe(`a fleet of ${FLEET} agents`, () => {
  let net: DevNetwork
  let dir: string
  const agents: BootstrapAgent[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'fleet-'))
    // The manager's own storm protection stays on (default rate), as in production.
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 1000 })
  }, 60_000)

  afterAll(async () => {
    await Promise.all(agents.map((a) => a.stop()))
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  }, 60_000)

  it('all reach MANAGED, survive a manager restart, and reconnect spread out', async () => {
    for (let i = 0; i < FLEET; i++) {
      // dialTimeoutMs: 200 agents and their manager share one event loop on 2 cores here; a TLS
      // handshake can wait seconds behind key generation and CSR signing, and the helper's 2 s
      // limit turns that wait into a retry storm (the product's default is 5 s).
      agents.push(
        devAgent(net, dir, `node-${String(i).padStart(3, '0')}`, {
          joinToken: await net.newJoinToken(),
          init: { reconnect: { initialMs: 500, maxMs: 8000 }, configConfirmWindowMs: 1000, dialTimeoutMs: 10_000 }
        })
      )
    }
    const t0 = Date.now()
    await Promise.all(agents.map((a) => a.start()))
    const notManaged = () => {
      const by: Record<string, number> = {}
      for (const a of agents.filter((x) => x.phase !== Phase.MANAGED)) by[Phase[a.phase]] = (by[Phase[a.phase]] ?? 0) + 1
      return { by, sample: agents.find((x) => x.phase !== Phase.MANAGED)?.status().progress }
    }
    await until('all MANAGED', () => agents.every((a) => a.phase === Phase.MANAGED), 120_000, notManaged)
    process.stdout.write(`${FLEET} agents MANAGED from a fresh start in ${Date.now() - t0} ms\n`)

    // The fleet is larger than the manager's burst: each agent learns the manager's reconnect window (acks carry a
    // changed one) and hands it to its spore client, whose watch redial after the restart spreads over it too.
    const windowOf = (a: BootstrapAgent): number => a.sporeClient?.timing().reconnectWindowMs ?? -1
    const advertised = (): number => net.networkManager.nodes.get('node-000')?.reconnectWindowMs ?? 0
    await until(
      'every spore client holds the advertised window',
      () => advertised() > 0 && agents.every((a) => windowOf(a) === advertised()),
      30_000,
      () => agents.map(windowOf).join(',')
    )

    // Record when each agent becomes MANAGED again after the restart.
    const managedAgain = new Map<BootstrapAgent, number>()
    for (const a of agents) {
      a.on('transition', (t) => {
        if (t.to === Phase.MANAGED && !managedAgain.has(a)) managedAgain.set(a, Date.now())
      })
    }
    await net.stopManager('network-manager')
    // Reconnection attempts run inside FALLBACK: the whole fleet says FALLBACK during the outage.
    await until('all in FALLBACK', () => agents.every((a) => a.phase === Phase.FALLBACK), 30_000)
    await new Promise((r) => setTimeout(r, 3000))
    const restartedAt = Date.now()
    await net.startManager('network-manager')
    await until(
      'all MANAGED again',
      () => managedAgain.size === FLEET,
      120_000,
      () => FLEET - managedAgain.size
    )

    const perSecond = new Map<number, number>()
    for (const at of managedAgain.values()) {
      const s = Math.floor((at - restartedAt) / 1000)
      perSecond.set(s, (perSecond.get(s) ?? 0) + 1)
    }
    const last = Math.max(...perSecond.keys())
    const histogram = Array.from({ length: last + 1 }, (_, s) => `${s}s:${perSecond.get(s) ?? 0}`)
    process.stdout.write(`reconnections per second after the manager restart: ${histogram.join(' ')}\n`)
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(FLEET / 2)
    expect(agents.every((a) => a.phase === Phase.MANAGED)).toBe(true)
  }, 300_000)
})
