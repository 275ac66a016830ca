import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { HealthState, Phase, silentLogger } from '@mycelium/core-interfaces'
import { agentStatePaths } from '@mycelium/bootstrap-agent'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { loadConfig, MyceliumNode, runCli } from '../src/index.js'

/**
 * docs/RECOVERY.md "Trust bundle lost", run as written: an enrolled node
 * whose state directory lost its trust bundle starts (no network call
 * needed to see it) in RECOVERY with `spores: no trust bundle yet`; with the
 * daemon stopped, `node-core recover re-enrol` with a new join token saves
 * the network's bundle again, and the next start reaches MANAGED.
 */
const until = (what: string, probe: () => boolean, timeoutMs = 30_000): Promise<true> => untilTrue(what, async () => probe(), timeoutMs, 50)

describe('runbook: trust bundle lost', () => {
  let net: DevNetwork
  let dir: string
  const out: string[] = []
  const io = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t), env: {}, untilStopped: () => Promise.resolve() }
  const run = async (...argv: string[]): Promise<[number, string]> => {
    out.length = 0
    const code = await runCli(argv, io)
    return [code, out.join('')]
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-runbook-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
  })
  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('RECOVERY saying so, then recover re-enrol, then MANAGED', async () => {
    const configFile = join(dir, 'node.yaml')
    const stateDir = join(dir, 'state')
    writeFileSync(
      configFile,
      `networkId: net1\nnodeId: edge-tb\nstateDir: ${stateDir}\nstatus:\n  httpListenAddress: "off"\n  socketPath: ""\ndiscovery:\n  bootstrapFile: ${net.bootstrapFile}\nidentity:\n  enrollmentEndpoints:\n    - address: ${net.endpoints.enrollment}\n`
    )
    const token = join(dir, 'token-1')
    writeFileSync(token, `${await net.newJoinToken()}\n`)
    expect((await run('identity', 'init', '--config', configFile, '--join-token-file', token))[0]).toBe(0)
    const bundle = agentStatePaths(stateDir).trustBundle
    expect(existsSync(bundle)).toBe(true)
    rmSync(bundle, { force: true })
    rmSync(`${bundle}.prev`, { force: true })

    const config = await loadConfig({ file: configFile, env: {} })
    const lost = new MyceliumNode(config, silentLogger())
    await lost.start()
    try {
      await until('RECOVERY', () => lost.agent.phase === Phase.RECOVERY)
      const spores = lost.health().components.find((c) => c.name === 'spores')
      expect(spores).toMatchObject({ state: HealthState.STOPPED, reason: 'no trust bundle yet' })
      expect(lost.status().reason).toMatch(/trust bundle/i)
    } finally {
      await lost.stop()
    }

    const fresh = join(dir, 'token-2')
    writeFileSync(fresh, `${await net.newJoinToken()}\n`)
    const [code, text] = await run('recover', 're-enrol', '--config', configFile, '--join-token-file', fresh)
    expect([code, text]).toEqual([0, expect.stringMatching(/^enrolled as spiffe:\/\/net1\/node\/edge-tb/)])
    expect(existsSync(bundle)).toBe(true)

    const back = new MyceliumNode(config, silentLogger())
    await back.start()
    try {
      await until('MANAGED', () => back.agent.phase === Phase.MANAGED)
    } finally {
      await back.stop()
    }
  })
})
