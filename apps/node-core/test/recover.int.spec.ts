import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as tar from 'tar'
import { NodeConfig } from '@mycelium/core-interfaces'
import { ConfigStore } from '@mycelium/bootstrap-agent'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { runCli } from '../src/index.js'

describe('node-core identity and recover', () => {
  let net: DevNetwork
  let dir: string
  let configFile: string
  let tokenFile: string
  const out: string[] = []
  const io = { out: (t: string) => void out.push(t), err: (t: string) => void out.push(t), env: {}, untilStopped: () => Promise.resolve() }
  const run = async (...argv: string[]): Promise<[number, string]> => {
    out.length = 0
    const code = await runCli(argv, io)
    return [code, out.join('')]
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-recover-'))
    net = await startDevNetwork({ networkId: 'net1' })
    tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, `${net.joinToken}\n`)
    configFile = join(dir, 'node.yaml')
    writeFileSync(
      configFile,
      `networkId: net1\nnodeId: edge-1\nstateDir: ${join(dir, 'state')}\nidentity:\n  enrollmentEndpoints:\n    - address: ${net.endpoints.enrollment}\n`
    )
  })
  afterAll(async () => {
    await net.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('identity show before enrolment, init with the join token, show after', async () => {
    const [, before] = await run('identity', 'show', '--config', configFile)
    expect(before).toContain('state      MISSING')
    const [code, init] = await run('identity', 'init', '--config', configFile, '--join-token-file', tokenFile)
    expect([code, init]).toEqual([0, expect.stringMatching(/^enrolled as spiffe:\/\/net1\/node\/edge-1/)])
    const [, after] = await run('identity', 'show', '--config', configFile)
    expect(after).toContain('state      VALID')
    expect(after).not.toMatch(/PRIVATE KEY/)
    expect((await run('identity', 'init', '--config', configFile, '--join-token-file', tokenFile))[1]).toContain('already enrolled')
  })

  it('recover reset-config goes back to last-known-good; diagnostics never contain keys or tokens', async () => {
    const store = await ConfigStore.open(join(dir, 'state', 'config'), NodeConfig.fromPartial({ networkId: 'net1', nodeId: 'edge-1' }))
    await store.beginTrial(NodeConfig.fromPartial({ version: 4, networkId: 'net1', nodeId: 'edge-1' }), 60_000)
    writeFileSync(join(dir, 'state', 'join-token'), 'secret')
    mkdirSync(join(dir, 'state', 'k3s'), { recursive: true })
    writeFileSync(join(dir, 'state', 'k3s', 'kubeconfig.yaml'), 'users: [{user: {client-key-data: c2VjcmV0}}]\n')
    writeFileSync(join(dir, 'state', 'k3s', 'k3s.log'), 'level=info msg="k3s is up and running"\n')
    const [code, reset] = await run('recover', 'reset-config', '--config', configFile)
    expect(code).toBe(0)
    expect(reset).toMatch(/already on last-known-good v0|config reset from v4 to last-known-good v0/)
    const [, show] = await run('recover', 'show', '--config', configFile)
    expect(show).toContain('config     current v0, last-known-good v0')

    const tarball = join(dir, 'diag.tar.gz')
    const [dcode, diag] = await run('recover', 'diagnostics', '--config', configFile, '--out', tarball)
    expect(dcode).toBe(0)
    expect(diag).toContain('no private keys or join tokens')
    const entries: string[] = []
    await tar.t({ file: tarball, onReadEntry: (e) => void entries.push(e.path) })
    expect(entries.some((e) => e.endsWith('node.crt'))).toBe(true)
    expect(entries.filter((e) => /\.key$|join-token|kubeconfig/.test(e))).toEqual([])
    expect(entries.some((e) => e.endsWith('k3s/k3s.log'))).toBe(true) // K3s's output is what a diagnosis needs
  })

  it('recover show lists journal problems and the unfinished commands the next start resumes or fails', async () => {
    const { writeStateFile } = await import('@mycelium/core-utils')
    const journal = join(dir, 'state', 'commands.bin')
    const at = new Date().toISOString()
    await writeStateFile(
      journal,
      Buffer.from(JSON.stringify([{ commandId: 'cut-short', kind: 'restart', source: 'remote', updates: [{ state: 2, reason: '', at }] }]))
    )
    const [, show] = await run('recover', 'show', '--config', configFile)
    expect(show).toContain('commands   1 in the journal, 1 unfinished')
    expect(show).toContain('unfinished cut-short (restart, RUNNING): next start fails it: interrupted by an agent restart')
    writeFileSync(journal, 'garbage')
    writeFileSync(`${journal}.prev`, 'garbage')
    const [, broken] = await run('recover', 'show', '--config', configFile)
    expect(broken).toContain(
      `problem    ${journal}: not a state file (bad magic); previous copy: not a state file (bad magic); journal started empty`
    )
  })

  it('recover re-enrol moves the certificate aside and enrols again with a new token: same key, a new certificate', async () => {
    const [, before] = await run('identity', 'show', '--config', configFile)
    const shaBefore = /sha256\s+(\S+)/.exec(before)?.[1]
    expect(shaBefore).toBeDefined()
    // The first token is spent: an operator mints a new one for the re-enrolment.
    const fresh = join(dir, 'join-token-2')
    writeFileSync(fresh, `${await net.newJoinToken()}\n`)
    const [code, text] = await run('recover', 're-enrol', '--config', configFile, '--join-token-file', fresh)
    expect([code, text]).toEqual([0, expect.stringMatching(/^enrolled as spiffe:\/\/net1\/node\/edge-1 \(until /)])
    const [, after] = await run('identity', 'show', '--config', configFile)
    expect(after).toContain('state      VALID')
    expect(/sha256\s+(\S+)/.exec(after)?.[1]).not.toBe(shaBefore)
  })

  it('refuses an unknown recover action with usage exit 2', async () => {
    const [code, text] = await run('recover', 'explode', '--config', configFile)
    expect(code).toBe(2)
    expect(text).toContain('unknown recover action "explode"')
  })
})
