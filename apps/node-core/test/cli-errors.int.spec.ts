import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { runCli, type CliIo } from '../src/cli.js'

function capture(): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return {
    out,
    err,
    io: { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {}, untilStopped: () => Promise.resolve() }
  }
}

describe('node-core CLI errors: one line, the documented exit code', () => {
  let dir: string
  let net: DevNetwork
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-cli-errors-'))
    net = await startDevNetwork({ networkId: 'net1' })
  })
  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const lines = (text: string[]): string[] => text.join('').trimEnd().split('\n')

  it('a refused enrolment: exit 1, one line naming the endpoint and the refusal; --debug adds the stack', async () => {
    const config = join(dir, 'node.yaml')
    writeFileSync(
      config,
      [
        'networkId: net1',
        'nodeId: edge-1',
        `stateDir: ${join(dir, 'state')}`,
        'identity:',
        '  enrollmentEndpoints:',
        `    - address: ${net.endpoints.enrollment}`,
        ''
      ].join('\n')
    )
    const parts = (await net.newJoinToken()).split('.')
    parts[3] = 'f'.repeat(parts[3]!.length) // a wrong secret: the server refuses
    writeFileSync(join(dir, 'token'), parts.join('.'))
    const args = ['identity', 'init', '--config', config, '--join-token-file', join(dir, 'token')]
    const c = capture()
    expect(await runCli(args, c.io)).toBe(1)
    expect(lines(c.err)).toEqual([
      expect.stringMatching(
        new RegExp(
          `^error: ${net.endpoints.enrollment}: UNAUTHENTICATED join token not recognised \\(EnrolmentError; --debug for the stack\\)$`
        )
      )
    ])
    const d = capture()
    expect(await runCli(['--debug', ...args], d.io)).toBe(1)
    expect(lines(d.err).length).toBeGreaterThan(1)
    expect(d.err.join('')).toMatch(/\n\s+at /)
  })

  it('a bad flag: exit 2, one line', async () => {
    const c = capture()
    expect(await runCli(['status', '--bogus'], c.io)).toBe(2)
    expect(lines(c.err)).toEqual(["error: unknown option '--bogus'"])
  })

  it('a missing config file: exit 2, one line naming it', async () => {
    const c = capture()
    const missing = join(dir, 'missing.yaml')
    expect(await runCli(['identity', 'init', '--config', missing], c.io)).toBe(2)
    expect(lines(c.err)).toEqual([expect.stringMatching(new RegExp(`^error: ${missing}: cannot read: ENOENT`))])
  })

  it('no agent answering: exit 3, one line without grpc-js boilerplate', async () => {
    const c = capture()
    const socket = join(dir, 'nothing.sock')
    expect(await runCli(['status', '--socket', socket], c.io)).toBe(3)
    expect(lines(c.err)).toEqual([expect.stringMatching(new RegExp(`^error: no agent answering on ${socket}: connect ENOENT`))])
    expect(c.err.join('')).not.toMatch(/Resolution note|No connection established/)
  })
})
