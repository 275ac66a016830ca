import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { silentLogger } from '@mycelium/core-interfaces'
import { agentStatePaths } from '@mycelium/bootstrap-agent'
import { loadConfig, MyceliumNode, runCli, type CliIo, type RuntimeInfo } from '../src/index.js'
import { STATUS_SOCKET_NAME } from '../src/status-command.js'

/**
 * `node-core status --config <file>` finds the daemon that file configures:
 * the socket in its state directory by default, and the ports it chose at
 * run time from <stateDir>/runtime.json — no --socket needed.
 */
function capture(untilStopped: () => Promise<void> = () => Promise.resolve()): { io: CliIo; out: string[]; err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return { out, err, io: { out: (t) => void out.push(t), err: (t) => void err.push(t), env: {}, untilStopped } }
}

describe('node-core status finds the daemon of a config', () => {
  let dir: string
  let stateDir: string
  let file: string
  let node: MyceliumNode

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nc-status-'))
    stateDir = join(dir, 'state')
    file = join(dir, 'node.yaml')
    // No socketPath: the default, <stateDir>/status.sock. Both ports chosen at run time.
    writeFileSync(
      file,
      [
        'networkId: net1',
        'nodeId: edge-3',
        `stateDir: ${stateDir}`,
        'status:',
        '  grpcListenAddress: 127.0.0.1:0',
        '  httpListenAddress: 127.0.0.1:0',
        ''
      ].join('\n')
    )
    node = new MyceliumNode(await loadConfig({ file, env: {} }), silentLogger())
    await node.start()
  })

  afterAll(async () => {
    await node?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('the default socket is the state layout’s', () => {
    expect(STATUS_SOCKET_NAME).toBe(basename(agentStatePaths(stateDir).statusSocket))
  })

  it('writes the ports chosen at run time to <stateDir>/runtime.json', () => {
    const info = JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8')) as RuntimeInfo
    expect(info.pid).toBe(process.pid)
    expect(info.statusAddresses[0]).toBe(`unix://${join(stateDir, 'status.sock')}`)
    expect(info.statusAddresses[1]).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
    expect(info.httpAddress).toMatch(/^127\.0\.0\.1:[1-9]\d*$/)
  })

  it('`status --config` prints the status and where the daemon listens', async () => {
    const info = JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8')) as RuntimeInfo
    const c = capture()
    expect(await runCli(['status', '--config', file], c.io)).toBe(0)
    const text = c.out.join('')
    expect(text).toMatch(/^node\s+edge-3/m)
    expect(text).toContain(`http ${info.httpAddress}`)
    expect(text).toContain(`status ${info.statusAddresses[1]}`)
    const j = capture()
    expect(await runCli(['status', '--config', file, '--json'], j.io)).toBe(0)
    expect(JSON.parse(j.out.join('')).identity.nodeId).toBe('edge-3')
  })

  it('`status --socket host:port` reaches the TCP listener chosen at run time', async () => {
    const info = JSON.parse(readFileSync(join(stateDir, 'runtime.json'), 'utf8')) as RuntimeInfo
    const c = capture()
    expect(await runCli(['status', '--socket', info.statusAddresses[1]!, '--json'], c.io)).toBe(0)
    expect(JSON.parse(c.out.join('')).identity.nodeId).toBe('edge-3')
  })

  it('`status --watch` streams until stopped', async () => {
    let stop: () => void = () => undefined
    const stopped = new Promise<void>((resolve) => (stop = resolve))
    const c = capture(() => stopped)
    let firstLine: () => void = () => undefined
    const printed = new Promise<void>((resolve) => (firstLine = resolve))
    c.io.out = (t) => {
      c.out.push(t)
      firstLine()
    }
    const running = runCli(['status', '--config', file, '--watch'], c.io)
    await printed
    stop()
    expect(await running).toBe(0)
    expect(c.out[0]).toMatch(/^\d{4}-\d\d-\d\dT\S+Z {2}PHASE_\w+|^\S+ {2}[A-Z]+ /)
    expect(c.out[0]).toContain('health ')
  })

  it('after a stop: runtime.json is gone and status says no agent answers (exit 3)', async () => {
    await node.stop()
    expect(existsSync(join(stateDir, 'runtime.json'))).toBe(false)
    const c = capture()
    expect(await runCli(['status', '--config', file], c.io)).toBe(3)
    expect(c.err.join('')).toMatch(new RegExp(`^error: no agent answering on ${join(stateDir, 'status.sock')}`))
    await node.start()
  })
})
