import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import { createK3sRuntime } from '@mycelium/k3s-runtime'
import { loadConfig, MyceliumNode } from '../src/index.js'

/**
 * Start is all or nothing, start/stop idempotent: a node whose HTTP status
 * port is taken fails to start, leaves nothing running (status socket gone,
 * agent not started), and starts for real once the port is free.
 */
describe('MyceliumNode start/stop', () => {
  let net: DevNetwork
  let dir: string

  beforeAll(async () => {
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300 })
    dir = mkdtempSync(join(tmpdir(), 'node-core-start-'))
  })
  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('a failed start stops what it started; the next start really starts; start and stop twice are harmless', async () => {
    const blocker: Server = createServer()
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', () => resolve()))
    const port = (blocker.address() as { port: number }).port
    const joinToken = await net.newJoinToken()
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, joinToken)
    const socket = join(dir, 'run', 'status.sock')
    const file = join(dir, 'node.yaml')
    writeFileSync(
      file,
      net.nodeConfigYaml({
        nodeId: 'start-node',
        stateDir: join(dir, 'state'),
        joinTokenFile: tokenFile,
        socketPath: socket,
        httpListenAddress: `127.0.0.1:${port}`
      })
    )
    const config = await loadConfig({ file })
    const node = new MyceliumNode(config, silentLogger(), { joinToken }) // the CLI reads joinTokenFile
    try {
      await expect(node.start()).rejects.toThrow(/EADDRINUSE/)
      expect(node.isStarted()).toBe(false)
      expect(node.statusServer.isStarted()).toBe(false)
      expect(existsSync(socket)).toBe(false)
      expect(node.agent.isStarted()).toBe(false)
      expect(node.runtime.isStarted()).toBe(false)
      await node.stop() // nothing left to stop

      await new Promise<void>((resolve) => blocker.close(() => resolve()))
      await Promise.all([node.start(), node.start()]) // concurrent calls share one start
      await node.start()
      expect(node.isStarted()).toBe(true)
      await until('MANAGED', () => node.agent.phase === Phase.MANAGED, 20_000, 20)
      expect(node.agent.counters.transitions.BOOTSTRAP).toBe(1) // one run, not one per start() call
      expect(node.status().agentVersion).not.toBe('')
    } finally {
      await node.stop()
      await node.stop()
    }
    expect(node.isStarted()).toBe(false)
    expect(existsSync(socket)).toBe(false)
  }, 40_000)

  it('a stop during start waits for it and leaves nothing running', async () => {
    const joinToken = await net.newJoinToken()
    writeFileSync(join(dir, 'token-early'), joinToken)
    const socket = join(dir, 'run', 'status-early.sock')
    const file = join(dir, 'node-early.yaml')
    writeFileSync(
      file,
      net.nodeConfigYaml({
        nodeId: 'early-stop-node',
        stateDir: join(dir, 'state-early'),
        joinTokenFile: join(dir, 'token-early'),
        socketPath: socket,
        httpListenAddress: '127.0.0.1:0'
      })
    )
    const node = new MyceliumNode(await loadConfig({ file }), silentLogger(), { joinToken })
    const starting = node.start()
    await node.stop()
    await starting
    // Nothing started after stop() returned: not the agent (the last component), not the status socket.
    expect(node.agent.isStarted()).toBe(false)
    expect(node.runtime.isStarted()).toBe(false)
    expect(node.statusServer.isStarted()).toBe(false)
    expect(node.isStarted()).toBe(false)
    expect(existsSync(socket)).toBe(false)
  }, 40_000)
})

describe('K3sRuntime start/stop', () => {
  it('start twice is one start; stop twice is harmless; it starts again after a stop', async () => {
    const runtime = createK3sRuntime({}, { k3s: undefined, nodeId: 'n', stateDir: mkdtempSync(join(tmpdir(), 'k3s-start-')), path: '' })
    await Promise.all([runtime.start(), runtime.start()])
    expect(runtime.isStarted()).toBe(true)
    runtime.stop()
    runtime.stop()
    expect(runtime.isStarted()).toBe(false)
    await runtime.start()
    expect(runtime.isStarted()).toBe(true)
    runtime.stop()
  })
})
