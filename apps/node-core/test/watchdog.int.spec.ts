import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { get } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import {
  DistressProblem,
  HealthState,
  NodeConfig,
  NodeStatusClient,
  Phase,
  silentLogger,
  type StatusReport
} from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { createLogger, MyceliumNode } from '../src/index.js'

/**
 * The watchdog in a running node (real gRPC/mTLS to the dev network, real
 * status servers): a hang and a crash injected into each long-lived
 * component — into the component itself, through its internals (no config
 * key or hook exists for it) — is seen by its probe, the component is
 * restarted with its state and serves again; the restart budget (1 here)
 * spent, the node is UNHEALTHY and its call for help names the component.
 */
const until = (what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000): Promise<true> =>
  untilTrue(what, async () => probe(), timeoutMs, 50)

const line = (node: MyceliumNode, name: string) => node.health().components.find((c) => c.name === `watchdog:${name}`)

const healthz = (address: string): Promise<number> =>
  new Promise((resolve, reject) => {
    const [host, port] = [address.slice(0, address.lastIndexOf(':')), address.slice(address.lastIndexOf(':') + 1)]
    get({ host, port: Number(port), path: '/healthz', timeout: 2000 }, (res) => {
      res.resume()
      resolve(res.statusCode ?? 0)
    }).on('error', reject)
  })

const getStatus = (address: string): Promise<StatusReport> =>
  new Promise((resolve, reject) => {
    const client = new NodeStatusClient(address, grpc.credentials.createInsecure())
    client.getStatus({}, (err, res) => {
      client.close()
      if (err != null) reject(err)
      else resolve(res.status!)
    })
  })

/** Internals the faults are injected into (never reachable from config or the CLI). */
interface Internals {
  http: { server?: { removeAllListeners(event: string): void } }
  statusServer: { server?: grpc.Server }
  link: { timers: NodeJS.Timeout[]; stream?: NodeJS.EventEmitter }
  spores: { runRefresh: () => Promise<unknown> }
}

describe('watchdog in a running node', () => {
  let net: DevNetwork
  let dir: string
  let node: MyceliumNode

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-watchdog-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 300 })
    const tokenFile = join(dir, 'token')
    writeFileSync(tokenFile, await net.newJoinToken())
    const config = NodeConfig.fromPartial({
      networkId: 'net1',
      nodeId: 'node-w',
      stateDir: join(dir, 'node-w'),
      identity: { joinTokenFile: tokenFile, enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
      discovery: {
        bootstrapFile: net.bootstrapFile,
        refreshInterval: { seconds: 0, nanos: 200e6 },
        sourceTimeout: { seconds: 0, nanos: 300e6 }
      },
      peers: { listenAddress: '127.0.0.1:0' },
      status: { httpListenAddress: '127.0.0.1:0', socketPath: join(dir, 'status.sock') }
    })
    node = new MyceliumNode(
      config,
      process.env.DEBUG_WATCHDOG ? createLogger({ level: 'info', format: 'json', stream: process.stderr }) : silentLogger(),
      {
        joinToken: readFileSync(tokenFile, 'utf8').trim(),
        watchdog: { intervalMs: 100, probeTimeoutMs: 500, maxRestarts: 1, windowMs: 600_000, stopTimeoutMs: 1000 }
      }
    )
    await node.start()
    await until('MANAGED', () => node.agent.phase === Phase.MANAGED)
  })
  afterAll(async () => {
    await node?.stop()
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('restarts the HTTP status server when its handler hangs; it answers again', async () => {
    ;(node.http as unknown as Internals['http']).server!.removeAllListeners('request') // requests are taken, never answered
    await until('status-http restarted', () => line(node, 'status-http')?.state === HealthState.DEGRADED)
    expect(line(node, 'status-http')?.reason).toMatch(/no answer within 500 ms \(hung\)/)
    await until('/healthz answers', () =>
      healthz(node.http.address).then(
        (code) => code === 200,
        () => false
      )
    )
  })

  it('restarts the NodeStatus gRPC server when it dies; the socket answers again', async () => {
    ;(node.statusServer as unknown as Internals['statusServer']).server!.forceShutdown()
    await until('status-grpc restarted', () => line(node, 'status-grpc')?.state === HealthState.DEGRADED)
    expect(line(node, 'status-grpc')?.reason).toMatch(/failed: NodeStatus at unix:/)
    const socket = `unix://${join(dir, 'status.sock')}`
    await until('NodeStatus answers', () =>
      getStatus(socket).then(
        () => true,
        () => false
      )
    )
    const status = await getStatus(socket)
    expect(status.components.map((c) => c.name)).toEqual(expect.arrayContaining(['watchdog:status-http', 'watchdog:status-grpc']))
  })

  it('restarts the agent when its heartbeat loop stalls while MANAGED; it is MANAGED again on a new lease', async () => {
    const link = (node.agent as unknown as Internals).link
    const lease = node.agent.status().managers[0]?.leaseId
    // The loop's timers die and its stream's events go nowhere: the link itself never notices.
    for (const t of link.timers) clearInterval(t)
    link.timers = []
    for (const event of ['data', 'end', 'error']) link.stream!.removeAllListeners(event)
    link.stream!.on('error', () => undefined)
    await until('heartbeat restarted', () => line(node, 'heartbeat')?.state === HealthState.DEGRADED)
    expect(line(node, 'heartbeat')?.reason).toMatch(/lease ended .* without renewal/)
    await until('MANAGED on a new lease', () => node.agent.phase === Phase.MANAGED && node.agent.status().managers[0]?.leaseId !== lease)
  })

  it('restarts the agent when the spore refresh loop hangs (Spore Manager lost: polling)', async () => {
    net.faults['spore-manager'].refuseWith = grpc.status.UNAVAILABLE
    net.spores.killStreams()
    await until('spore client polling', () => node.agent.sporeClient?.status().mode === 'fallback')
    const client = node.agent.sporeClient!
    ;(client as unknown as Internals['spores']).runRefresh = () => new Promise(() => undefined) // the next poll never ends
    await until('spores restarted', () => line(node, 'spores')?.state === HealthState.DEGRADED)
    expect(line(node, 'spores')?.reason).toMatch(/no spore source polled for \d+ s \(refresh loop stalled\)/)
    await until('a new spore client', () => node.agent.sporeClient != null && node.agent.sporeClient !== client)
  })

  it('restarts K3s supervision when it stops under a running node', async () => {
    node.runtime.stop() // the supervision dies (K3s itself is never stopped by it)
    await until('k3s-runtime restarted', () => line(node, 'k3s-runtime')?.state === HealthState.DEGRADED && node.runtime.isStarted())
    expect(line(node, 'k3s-runtime')?.reason).toMatch(/made no progress/)
  })

  it('gives up after the budget: the node is UNHEALTHY and its call for help names the component', async () => {
    // The second hang of the HTTP server in the window: its budget (1 restart) is spent.
    ;(node.http as unknown as Internals['http']).server!.removeAllListeners('request')
    await until('status-http given up on', () => line(node, 'status-http')?.state === HealthState.UNHEALTHY)
    expect(node.watchdog.failed()).toEqual({ name: 'status-http', reason: expect.stringMatching(/1 restarts within 600 s did not help/) })
    const health = node.health()
    expect(health.state).toBe(HealthState.UNHEALTHY)
    expect(health.reason).toMatch(/watchdog:status-http: no answer within 500 ms/)
    // Without its managers, the node asks its peers for help, naming the failed component first.
    net.faults['network-manager'].refuseWith = grpc.status.UNAVAILABLE
    net.killStreams()
    await until('FALLBACK', () => node.agent.phase === Phase.FALLBACK)
    expect(node.distress!.need()).toMatchObject({
      problem: DistressProblem.COMPONENT_FAILED,
      evidence: expect.arrayContaining([expect.stringMatching(/^status-http: no answer within 500 ms/)])
    })
  })
})
