import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Phase, TrustBundle } from '@mycelium/core-interfaces'
import { until } from '@mycelium/testing'
import { AgentStateStore } from '../src/agent-state.js'

/** The agent's own state files when the disk refuses writes: reported, kept in memory, retried, healed. */
describe('agent state store on a disk that refuses writes', () => {
  let dir: string
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'agent-state-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('reports the failing file, keeps the trust bundle in memory, and writes both once the disk is back, without another call', async () => {
    const stateDir = join(dir, 'state')
    writeFileSync(stateDir, 'a file where the state directory should be')
    const store = new AgentStateStore(stateDir)
    await store.saveHistory([{ from: Phase.UNSPECIFIED, to: Phase.BOOTSTRAP, reason: 'agent started', at: new Date() }])
    const bundle = TrustBundle.fromPartial({ networkId: 'n', caCertificatesPem: ['ca'] })
    await store.saveTrustBundle(bundle)
    expect(store.problems.join('\n')).toContain(`cannot write: ${join(stateDir, 'agent.bin')}`)
    expect(store.problems.join('\n')).toContain(`cannot write: ${join(stateDir, 'trust-bundle.bin')}`)
    // No second enrolment for a bundle that could not be saved.
    expect(await store.loadTrustBundle()).toEqual(bundle)
    rmSync(stateDir)
    mkdirSync(stateDir)
    await until('written after the disk came back', async () => store.problems.length === 0, 30_000)
    const fresh = new AgentStateStore(stateDir)
    expect((await fresh.loadHistory()).map((h) => h.reason)).toEqual(['agent started'])
    expect(await fresh.loadTrustBundle()).toEqual(bundle)
  })

  it('a newer trust bundle saved once the disk is back is never overwritten by the retry of an older one', async () => {
    const stateDir = join(dir, 'state')
    writeFileSync(stateDir, 'a file where the state directory should be')
    const store = new AgentStateStore(stateDir)
    const older = TrustBundle.fromPartial({ networkId: 'n', caCertificatesPem: ['old ca'] })
    const newer = TrustBundle.fromPartial({ networkId: 'n', caCertificatesPem: ['new ca'] })
    await store.saveTrustBundle(older)
    await store.flush() // its retry has failed too: the older bundle is waiting for the next retry
    expect(store.problems.join('\n')).toContain(`cannot write: ${join(stateDir, 'trust-bundle.bin')}`)
    rmSync(stateDir)
    mkdirSync(stateDir)
    await store.saveTrustBundle(newer)
    await store.flush()
    expect(store.problems).toEqual([])
    expect(await new AgentStateStore(stateDir).loadTrustBundle()).toEqual(newer)
  })
})
