import * as grpc from '@grpc/grpc-js'
import { loadSync } from '@grpc/proto-loader'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Phase, silentLogger } from '@mycelium/core-interfaces'
import { fetchStatus, runCli, startDev, type DevSession } from '../src/index.js'

/** The embedded dev default end to end: dev network + 2 agents, their status surfaces. */
describe('node-core dev', () => {
  let session: DevSession
  let dir: string
  let socket: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-dev-'))
    socket = join(dir, 'status.sock')
    session = await startDev({ agents: 2, heartbeatMs: 500, socketPath: socket }, silentLogger())
  }, 60_000)
  afterAll(async () => {
    await session?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  async function untilManaged(): Promise<void> {
    const end = Date.now() + 20_000
    while (!session.nodes.every((n) => n.agent.phase === Phase.MANAGED)) {
      if (Date.now() > end) throw new Error('agents not MANAGED')
      await new Promise((r) => setTimeout(r, 20))
    }
  }

  it('every agent hands off; NodeStatus answers on the unix socket with the transitions', async () => {
    await untilManaged()
    const status = await fetchStatus(socket)
    expect(status.phase).toBe(Phase.MANAGED)
    // Enrolment is a step inside BOOTSTRAP, not a transition: one entry per phase entered.
    expect(status.history.map((h) => Phase[h.to])).toEqual(['BOOTSTRAP', 'DISCOVERY', 'REGISTRATION', 'HANDOFF', 'MANAGED'])
    expect(status.managers[0]?.state).toBe('connected')
  })

  it('agents see each other as peers over mTLS PeerAssist', async () => {
    const end = Date.now() + 15_000
    let peers = (await fetchStatus(socket)).peers
    while (!(peers.length === 1 && peers[0]!.state === 'alive') && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 50))
      peers = (await fetchStatus(socket)).peers
    }
    expect(peers.map((p) => [p.identity?.nodeId, p.state, p.source])).toEqual([['dev-node-2', 'alive', 'seed']])
  })

  it('serves grpc.health.v1 and server reflection beside NodeStatus', async () => {
    const definition = loadSync(['health/v1/health.proto'], {
      includeDirs: [join(require.resolve('grpc-health-check/package.json'), '..', 'proto')],
      enums: String
    })
    const Health = (grpc.loadPackageDefinition(definition) as any).grpc.health.v1.Health
    const health = new Health(`unix://${socket}`, grpc.credentials.createInsecure())
    const res = await new Promise<{ status: string }>((resolve, reject) =>
      health.check({ service: 'mycelium.core.v1.NodeStatus' }, (err: Error | null, r: { status: string }) =>
        err != null ? reject(err) : resolve(r)
      )
    )
    health.close()
    expect(res.status).toBe('SERVING')

    const reflectionDef = loadSync(['grpc/reflection/v1alpha/reflection.proto'], {
      includeDirs: [join(require.resolve('@grpc/reflection/package.json'), '..', 'build', 'proto')]
    })
    const Reflection = (grpc.loadPackageDefinition(reflectionDef) as any).grpc.reflection.v1alpha.ServerReflection
    const reflection = new Reflection(`unix://${socket}`, grpc.credentials.createInsecure())
    const services = await new Promise<string[]>((resolve, reject) => {
      const call = reflection.serverReflectionInfo()
      call.on('data', (msg: { listServicesResponse?: { service: Array<{ name: string }> } }) => {
        resolve((msg.listServicesResponse?.service ?? []).map((s) => s.name))
        call.end()
      })
      call.on('error', reject)
      call.write({ listServices: '' })
    })
    reflection.close()
    expect(services).toContain('mycelium.core.v1.NodeStatus')
  })

  it('HTTP /healthz, /readyz and /metrics on localhost', async () => {
    await untilManaged()
    const base = `http://${session.endpoints.http}`
    expect((await fetch(`${base}/healthz`)).status).toBe(200)
    const ready = await fetch(`${base}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.text()).toContain('MANAGED')
    const metrics = await (await fetch(`${base}/metrics`)).text()
    expect(metrics).toContain('mycelium_phase{phase="MANAGED"} 1')
    expect(metrics).toMatch(/mycelium_heartbeat_acks_total \d+/)
    // A fresh node enrolled inside BOOTSTRAP: steps, not transitions.
    expect(metrics).toMatch(/^mycelium_phase_steps_total [1-9]\d*$/m)
    expect(metrics).toMatch(/^mycelium_capability_updates_total 0$/m)
    // No K3s on a developer machine: the runtime is reported down, with no workloads.
    expect(metrics).toContain('mycelium_runtime_available{runtime="k3s"} 0')
    expect(metrics).toContain('mycelium_component_restarts{component="k3s-runtime"} 0')
    expect(metrics).not.toMatch(/^mycelium_workloads\{/m)
  })

  it('node-core status prints the table, --json the message, and exit 3 when nothing answers', async () => {
    // MANAGED first (as the test above): under a loaded machine the lease may have lapsed and be renewing.
    await untilManaged()
    const out: string[] = []
    const io = {
      out: (t: string) => void out.push(t),
      err: (t: string) => void out.push(t),
      env: {},
      untilStopped: () => Promise.resolve()
    }
    expect(await runCli(['status', '--socket', socket], io)).toBe(0)
    expect(out.join('')).toMatch(/phase\s+MANAGED since/)
    out.length = 0
    expect(await runCli(['status', '--socket', socket, '--json'], io)).toBe(0)
    expect(JSON.parse(out.join('')).phase).toBe('PHASE_MANAGED')
    out.length = 0
    expect(await runCli(['status', '--socket', join(dir, 'nothing.sock')], io)).toBe(3)
    expect(out.join('')).toContain('no agent answering on')
  })
})

describe('node-core dev: management commands reach the composed node', () => {
  let session: DevSession
  let dir: string
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-cmd-'))
    session = await startDev({ agents: 1, heartbeatMs: 500, socketPath: join(dir, 'status.sock') }, silentLogger())
  }, 60_000)
  afterAll(async () => {
    await session?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('restarts a named component, and refuses an unknown one with the known names', async () => {
    const net = session.network
    const end = Date.now() + 20_000
    while (!net.commands.isConnected('dev-node-1') && Date.now() < end) await new Promise((r) => setTimeout(r, 20))
    const send = async (id: string, component: string) => {
      net.commands.send('dev-node-1', {
        commandId: id,
        issuedAt: new Date(),
        deadline: new Date(Date.now() + 30_000),
        issuer: 'test',
        kind: { $case: 'restart', value: { component } }
      })
      return (await net.commands.waitForOutcome(id)).at(-1)!
    }
    expect((await send('r-http', 'http')).state).toBe(3) // SUCCEEDED
    const bad = await send('r-moon', 'moon')
    expect(bad.state).toBe(4) // FAILED
    expect(bad.reason).toContain('unknown component "moon" (known: agent, k3s-runtime, status, http, identity, peers)')
    // No K3s on a developer machine: the restart fails and says why, nothing else is touched.
    const k3s = await send('r-k3s', 'k3s-runtime')
    expect(k3s.state).toBe(4)
    expect(k3s.reason).toContain('k3s is not supervised here (disabled in NodeConfig (k3s.enabled is false))')
    expect((await fetch(`http://${session.nodes[0]!.http.address}/healthz`)).status).toBe(200)
  })
})
