import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { NodeConfig, Phase, silentLogger } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { MyceliumNode } from '../src/index.js'
import { BIN } from './helpers/daemon.js'

/**
 * Emergency contact, the acceptance of issue #20, across a real network
 * boundary. Node A (the shipped daemon) runs in its own network namespace
 * and reaches the root namespace over one veth pair: peer B (in this test
 * process) on one address, the dev network's managers on another. A's route
 * to the managers is cut (a blackhole route in A's namespace), then the
 * Network Manager moves to a new port (new spores) while A's certificate is
 * due for renewal. A calls B for help; B (MANAGED) forwards to the Network
 * Manager and relays the answer: A takes the new spores and a renewed
 * certificate, and reaches MANAGED on the moved manager once its route
 * returns — no manual action. Needs root and iproute2 (skipped otherwise,
 * with the reason printed); the namespace is always deleted.
 */
function whyNotRunnable(): string | undefined {
  if (process.platform !== 'linux') return 'network namespaces need Linux'
  if (process.getuid?.() !== 0) return 'network namespaces need root (CI runs as root)'
  try {
    execFileSync('ip', ['-V'], { stdio: 'ignore' })
  } catch {
    return 'iproute2 (`ip`) is not installed'
  }
  return undefined
}
const skipReason = whyNotRunnable()
if (skipReason != null) process.stdout.write(`distress netns test skipped: ${skipReason}\n`)
const maybe = skipReason == null ? describe : describe.skip

/** TCP connections from `src` to `dst` this host still holds open (TIME-WAIT is the kernel's alone). */
function openConnections(src: string, dst: string): string {
  const states = ['established', 'fin-wait-1', 'fin-wait-2', 'close-wait', 'last-ack', 'closing']
  return execFileSync('ss', ['-Htn', ...states.flatMap((s) => ['state', s]), 'src', src, 'dst', dst], { encoding: 'utf8' }).trim()
}

const ip = (...args: string[]): void => {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] })
}
const until = (what: string, probe: () => boolean, timeoutMs = 60_000): Promise<true> =>
  untilTrue(what, async () => probe(), timeoutMs, 100)

maybe('emergency contact across namespaces: A reaches only B, B reaches the manager', () => {
  const tag = randomBytes(3).toString('hex')
  const ns = `mycd-a-${tag}`
  const veth = `mcd${tag}`
  const subnet = `10.77.${230 + (Number.parseInt(tag.slice(0, 2), 16) % 20)}`
  const [peerB, nodeA, managers] = [`${subnet}.1`, `${subnet}.2`, `${subnet}.3`]
  let dir: string
  let net: DevNetwork | undefined
  let b: MyceliumNode | undefined
  let a: ChildProcess | undefined
  let logs = ''

  const cleanup = (): void => {
    a?.kill('SIGKILL')
    try {
      ip('netns', 'del', ns) // takes A's end of the veth pair, and with it ours
    } catch {
      // already gone
    }
    try {
      ip('link', 'del', veth)
    } catch {
      // went with the namespace
    }
  }

  beforeAll(() => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-distress-netns-'))
    try {
      ip('netns', 'add', ns)
      ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns)
      ip('addr', 'add', `${peerB}/24`, 'dev', veth)
      ip('addr', 'add', `${managers}/24`, 'dev', veth)
      ip('link', 'set', veth, 'up')
      ip('-n', ns, 'addr', 'add', `${nodeA}/24`, 'dev', 'eth0')
      ip('-n', ns, 'link', 'set', 'eth0', 'up')
      ip('-n', ns, 'link', 'set', 'lo', 'up')
    } catch (err) {
      cleanup()
      throw err
    }
  })

  afterAll(async () => {
    // A first (its kernel, still there, resets what it held open), then B and the managers, and
    // the namespace last: deleted first, it took A's end of every connection with it, and this
    // process's sockets to A sat in FIN-WAIT-1 retransmitting for minutes, holding jest open.
    if (a != null && a.exitCode == null && a.signalCode == null) {
      const exited = new Promise((resolve) => a!.once('exit', resolve))
      a.kill('SIGKILL')
      await exited
    }
    await b?.stop()
    await net?.stop()
    cleanup()
    rmSync(dir, { recursive: true, force: true })
  })

  it('A gets the moved managers’ spores and a renewed certificate through B, then reaches MANAGED when its route returns', async () => {
    const netDir = join(dir, 'net')
    const start = (ports?: { networkManager: number; enrollment: number; sporeManager: number }): Promise<DevNetwork> =>
      startDevNetwork({ networkId: 'net1', dir: netDir, host: managers, heartbeatIntervalMs: 500, ...(ports != null ? { ports } : {}) })
    net = await start()

    // B: MANAGED, in this process, its PeerAssist server on the root side of the veth.
    const bToken = await net.newJoinToken()
    b = new MyceliumNode(
      NodeConfig.fromPartial({
        networkId: 'net1',
        nodeId: 'node-b',
        stateDir: join(dir, 'b'),
        identity: { enrollmentEndpoints: [{ address: net.endpoints.enrollment }] },
        discovery: { bootstrapFile: net.bootstrapFile },
        reconnect: { initial: { seconds: 0, nanos: 200e6 }, max: { seconds: 1, nanos: 0 } },
        peers: { listenAddress: `${peerB}:0` },
        status: { httpListenAddress: 'off', socketPath: '' }
      }),
      silentLogger(),
      { joinToken: bToken }
    )
    await b.start()
    await until('B MANAGED', () => b!.agent.phase === Phase.MANAGED)

    // A: the shipped daemon in its namespace; its certificate is always due for renewal (renewBefore > lifetime).
    // A's own copy of the bootstrap file, as provisioned: the dev network rewriting its file must not reach A.
    const aBootstrap = join(dir, 'a-bootstrap.json')
    copyFileSync(net.bootstrapFile, aBootstrap)
    const tokenFile = join(dir, 'a.token')
    writeFileSync(tokenFile, await net.newJoinToken())
    const config = join(dir, 'a.yaml')
    writeFileSync(
      config,
      [
        'networkId: net1',
        'nodeId: node-a',
        `stateDir: ${join(dir, 'a')}`,
        'identity:',
        `  joinTokenFile: ${tokenFile}`,
        '  renewBefore: 25h',
        '  enrollmentEndpoints:',
        `    - address: ${net.endpoints.enrollment}`,
        'discovery:',
        `  bootstrapFile: ${aBootstrap}`,
        'reconnect:',
        '  initial: 200ms',
        '  max: 1s',
        'peers:',
        `  listenAddress: ${nodeA}:7100`,
        `  seeds: [{ address: "${b.peers!.server.address}" }]`,
        '  pingInterval: 300ms',
        'status:',
        `  socketPath: ${join(dir, 'a.sock')}`,
        '  httpListenAddress: "off"',
        'logging:',
        '  level: info',
        '  format: json',
        ''
      ].join('\n')
    )
    a = spawn('ip', ['netns', 'exec', ns, process.execPath, BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    a.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
    a.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
    await until('A MANAGED', () => net!.networkManager.nodes.get('node-a')?.managed === true)
    const certBefore = readFileSync(join(dir, 'a', 'identity', 'node.crt'), 'utf8')

    // The managers stop, then A's route to them is cut (B stays reachable), then the Network Manager
    // comes back moved (new port, new spores). Cut first, the old managers' closing connections to A
    // would never be answered and sit in FIN-WAIT-1 for minutes, holding this process open: the cut
    // waits until they are gone. Meanwhile A finds nothing listening, so it learns nothing new.
    const old = net.endpoints
    const ports = {
      networkManager: 0,
      enrollment: Number(old.enrollment.split(':')[1]),
      sporeManager: Number(old.sporeManager.split(':')[1])
    }
    await net.stop()
    await until('the old managers’ connections to A closed', () => openConnections(managers, nodeA) === '')
    ip('-n', ns, 'route', 'add', 'blackhole', `${managers}/32`)
    net = await start(ports)
    expect(net.endpoints.networkManager).not.toBe(old.networkManager)
    await until('B MANAGED on the moved manager', () => net!.networkManager.nodes.get('node-b')?.managed === true)

    // A's call for help, answered through B: a renewed certificate, and the new spores (from the
    // distress answer, or from B's GetSpores, whichever comes first: both through B, the only peer A reaches).
    await until(
      'A helped through B',
      () => net!.distress.records.some((r) => r.nodeId === 'node-a' && r.relayedBy === 'node-b' && r.given.includes('certificate')),
      90_000
    ).catch((err: Error) => {
      const lines = logs.split('\n').filter((l) => /distress|phase transition|certificate/.test(l))
      throw new Error(`${err.message}\nrecords: ${JSON.stringify(net!.distress.records)}\nA: ${lines.slice(-15).join('\n')}`)
    })
    await until('A installed the renewed certificate', () => readFileSync(join(dir, 'a', 'identity', 'node.crt'), 'utf8') !== certBefore)
    expect(net.networkManager.nodes.get('node-a')?.managed ?? false).toBe(false) // still cut off

    // The route returns: A registers with the moved manager on its own.
    ip('-n', ns, 'route', 'del', 'blackhole', `${managers}/32`)
    await until('A MANAGED on the moved manager', () => net!.networkManager.nodes.get('node-a')?.managed === true, 90_000)
    const logged = (message: string, has: RegExp): boolean =>
      logs.split('\n').some((l) => l.includes(`"message":"${message}"`) && has.test(l))
    expect(logged('distress round', /"delivered":true/)).toBe(true)
    // A knew the moved manager only through B: its own sources (bootstrap copy, Spore Manager) were stale or cut off.
    expect(logged('spores accepted', /"source":"(distress|peers)"/)).toBe(true)
  }, 300_000)
})
