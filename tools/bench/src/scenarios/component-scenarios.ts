import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Assignment, DynamicComponentState } from '@mycelium/core-interfaces'
import { ComponentManager } from '@mycelium/component-manager'
import { buildComponentArtifact } from '@mycelium/components'
import { DevArtifactServer, publishComponent, startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import type { Scenario } from '../harness.js'

/**
 * Dynamic components, measured with the real pieces: the fixture component
 * built by esbuild, served by the dev network's HTTPS artifact server,
 * fetched, verified, unpacked and started by a ComponentManager in this
 * process (the "agent"), speaking the contract on a unix socket.
 *
 * - assignment → healthy: setAssignments until the component answered
 *   Hello (cold: fetch + verify + unpack + spawn + Hello, a new store each run).
 * - on-demand RSS: this process + the component's process tree, before the
 *   first use, while it runs, and after it idled out (the 2 MB bar of #19).
 */
const SRC = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'components', 'src')

interface Shared {
  net: DevNetwork
  artifacts: DevArtifactServer
  ca: string
  fixture: { bytes: Buffer; entry: string }
}

let shared: Promise<Shared> | undefined
function setup(): Promise<Shared> {
  shared ??= (async () => {
    const net = await startDevNetwork({ networkId: 'bench-components' })
    const artifacts = await DevArtifactServer.start(net)
    const out = await mkdtemp(join(tmpdir(), 'bench-art-'))
    const a = await buildComponentArtifact('fixture', out, { srcDir: SRC })
    const bytes = await readFile(a.path)
    await rm(out, { recursive: true, force: true })
    return { net, artifacts, ca: net.caPem, fixture: { bytes, entry: a.entry } }
  })()
  return shared
}

async function teardown(): Promise<void> {
  const s = await shared
  shared = undefined
  await s?.artifacts.stop()
  await s?.net.stop()
}

const assignment = Assignment.fromPartial({ assignmentId: 'bench', componentSpore: 'component/fixture', desiredState: 'running' })

async function manager(s: Shared, onDemand: boolean): Promise<{ m: ComponentManager; dir: string }> {
  const body = await publishComponent(s.net, s.artifacts, {
    name: 'fixture',
    version: '1.0.0',
    bytes: s.fixture.bytes,
    entry: s.fixture.entry,
    onDemand,
    idleTimeoutMs: 500
  })
  const dir = await mkdtemp(join(tmpdir(), 'bench-cm-'))
  const m = new ComponentManager({ catalogue: () => [body] }, { dir, caPem: () => s.ca, healthIntervalMs: 100 })
  await m.start()
  return { m, dir }
}

const rssMb = (m: ComponentManager): number => {
  const mem = m.memory()
  return (mem.agentRssBytes + mem.componentsRssBytes) / 2 ** 20
}

export const componentScenarios: Scenario[] = [
  {
    id: 'component-assign-to-healthy',
    description: 'assignment → component fetched over HTTPS, verified, unpacked, started and answering Hello (cold store)',
    metrics: [{ name: 'assign_to_healthy_ms', unit: 'ms', better: 'lower' }],
    runs: 5,
    async run() {
      const s = await setup()
      const { m, dir } = await manager(s, false)
      try {
        const t0 = performance.now()
        await m.setAssignments(1, [assignment])
        await until('fixture running', () => m.status()[0]?.state === DynamicComponentState.RUNNING, 30_000, 2)
        return { assign_to_healthy_ms: performance.now() - t0 }
      } finally {
        await m.unloadAll()
        await m.stop()
        await rm(dir, { recursive: true, force: true })
      }
    },
    teardown
  },
  {
    id: 'component-on-demand-rss',
    description: 'on-demand component: agent + children RSS before first use, while running, after it idled out',
    metrics: [
      { name: 'rss_before_mb', unit: 'MiB', better: 'lower' },
      { name: 'rss_during_mb', unit: 'MiB', better: 'lower' },
      { name: 'rss_after_mb', unit: 'MiB', better: 'lower' },
      { name: 'rss_after_minus_before_mb', unit: 'MiB', better: 'lower', target: 2 },
      { name: 'first_use_ms', unit: 'ms', better: 'lower' }
    ],
    runs: 3,
    async run() {
      const s = await setup()
      const { m, dir } = await manager(s, true)
      try {
        await m.setAssignments(1, [assignment])
        global.gc?.()
        const before = rssMb(m)
        const t0 = performance.now()
        await m.use('fixture')
        const firstUse = performance.now() - t0
        const during = rssMb(m)
        await until('idled out', () => m.status()[0]?.state === DynamicComponentState.IDLE, 30_000, 20)
        global.gc?.()
        const after = rssMb(m)
        return {
          rss_before_mb: before,
          rss_during_mb: during,
          rss_after_mb: after,
          rss_after_minus_before_mb: after - before,
          first_use_ms: firstUse
        }
      } finally {
        await m.unloadAll()
        await m.stop()
        await rm(dir, { recursive: true, force: true })
      }
    },
    teardown
  }
]
