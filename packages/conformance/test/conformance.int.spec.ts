import * as grpc from '@grpc/grpc-js'
import { execFileSync, spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import {
  HandoffOutcome,
  NetworkManagerService,
  SporeServiceService,
  type NetworkManagerServer,
  type SporeServiceServer
} from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork, type DevUpdateManager } from '@mycelium/dev-network'
import { CONFORMANCE_CHECKS, runCli, runConformance, type CheckResult, type ConformanceReport } from '@mycelium/conformance'
import { devNetworkTriggers, managerIdentity, wrongManager } from './helpers.js'
import { enrolledIdentityFiles } from './identity.js'

/**
 * Python grpcio (a second gRPC implementation, see /work/shared/TESTBED.md):
 * Debian's python by full path, stubs from Debian's protoc and
 * grpc_python_plugin, as tools/dev-network's interop test does. `.ci/run`
 * installs them; elsewhere the Python case says why and skips.
 */
const PYTHON = '/usr/bin/python3'
const PROTOC = '/usr/bin/protoc'
const GRPC_PLUGIN = '/usr/bin/grpc_python_plugin'
const PROTOS = resolve(__dirname, '../../../protos')
function pythonMissing(): string | undefined {
  for (const bin of [PYTHON, PROTOC, GRPC_PLUGIN]) if (!existsSync(bin)) return `${bin} not found`
  try {
    execFileSync(PYTHON, ['-c', 'import grpc, grpc_tools'], { stdio: 'ignore' })
  } catch {
    return 'python3-grpcio / python3-grpc-tools are not installed'
  }
  return undefined
}
const noPython = pythonMissing()
if (noPython != null) process.stdout.write(`conformance: the Python wrong manager is skipped: ${noPython}\n`)
const itWithPython = noPython == null ? it : it.skip

/**
 * The kit against the reference managers (tools/dev-network, real mTLS on
 * 127.0.0.1): every check passes. Then against managers that are wrong on
 * purpose, each built from the dev network's own handlers with one behaviour
 * broken: the check that owns that behaviour fails, by name.
 */
describe('conformance kit', () => {
  let net: DevNetwork
  let um: DevUpdateManager
  let dir: string
  let artifact: { url: string; digest: string }
  const NODE = 'kit-node'

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'conformance-int-'))
    net = await startDevNetwork({
      networkId: 'conf',
      heartbeatIntervalMs: 300,
      handoffDeadlineMs: 1500,
      registrationRate: { burst: 30, perSecond: 15 }
    })
    net.networkManager.setAssignments(NODE, [
      { assignmentId: 'a1', componentSpore: 'component/example', desiredState: 'running', parameters: {} }
    ])
    um = await net.startUpdateManager()
    const file = join(dir, 'artifact.bin')
    writeFileSync(
      file,
      Buffer.alloc(64 * 1024, 7).map((_, i) => i % 251)
    )
    artifact = await um.addArtifact(file)
  }, 30_000)

  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  const byName = (report: ConformanceReport, name: string): CheckResult | undefined => report.results.find((r) => r.name === name)

  it('passes every check on the dev network, enrolling with a join token', async () => {
    const report = await runConformance({
      networkManager: net.endpoints.networkManager,
      enrollment: net.endpoints.enrollment,
      sporeService: net.endpoints.sporeManager,
      updateManager: artifact.url,
      artifactDigest: artifact.digest,
      joinToken: await net.newJoinToken(),
      nodeId: NODE,
      triggers: devNetworkTriggers(net),
      admissionBurst: 80,
      maxWaitMs: 10_000
    })
    const notPassed = report.results.filter((r) => r.status !== 'passed').map((r) => `${r.name}: ${r.status} ${r.detail}`)
    expect(notPassed).toEqual([])
    expect(report.results.map((r) => r.name)).toEqual(CONFORMANCE_CHECKS.map((c) => c.name))
    // What the generations check saw: the published config and the assignment set.
    expect(byName(report, 'heartbeat.generations')?.detail).toMatch(/config v1 served; assignments generation 1 served \(1\)/)
    expect(byName(report, 'admission.retry-after')?.detail).toMatch(/refused with retry-after-ms/)
  }, 90_000)

  it('the CLI runs with an existing node identity, skips what it cannot provoke, runs hooks, writes JUnit XML, exits with the failure count', async () => {
    // The identity the kit enrolled above is gone with its temp dir: give the CLI files, as a CI job would.
    const idDir = join(dir, 'cli')
    const files = await enrolledIdentityFiles(net, 'cli-node', idDir)
    const out: string[] = []
    const junit = join(dir, 'report.xml')
    const code = await runCli(
      [
        '--network-manager',
        net.endpoints.networkManager,
        '--spore-service',
        net.endpoints.sporeManager,
        '--ca',
        files.caFile,
        '--cert',
        files.certificateFile,
        '--key',
        files.keyFile,
        '--only',
        'registration.',
        'handoff.commit',
        'spores.',
        'commands.delivery',
        '--junit',
        junit
      ],
      { out: (t) => out.push(t), err: (t) => out.push(t) }
    )
    const text = out.join('')
    expect(code).toBe(0)
    expect(text).toMatch(/PASS {2}registration\.contract-negotiation/)
    expect(text).toMatch(/SKIP {2}spores\.watch-changes .*no way to make the Spore Manager publish a change/)
    expect(text).toMatch(/SKIP {2}commands\.delivery .*no way to make the manager send a restart command/)
    const xml = readFileSync(junit, 'utf8')
    expect(xml).toContain('<testcase classname="mycelium.conformance.handoff" name="handoff.commit"')
    expect(xml).toMatch(/name="commands\.delivery"[^>]*>\s*<skipped message="no way/)
    // Hooks run with the node's context; a failing command hook fails its check at once, and the exit code counts it.
    const marker = join(dir, 'hook-ran')
    out.length = 0
    const failing = await runCli(
      [
        '--network-manager',
        net.endpoints.networkManager,
        '--spore-service',
        net.endpoints.sporeManager,
        '--ca',
        files.caFile,
        '--cert',
        files.certificateFile,
        '--key',
        files.keyFile,
        '--only',
        'commands.delivery',
        'spores.watch-changes',
        '--command-hook',
        `echo "$MYCELIUM_NODE_ID $MYCELIUM_COMMAND_KIND" > ${marker}; echo refused >&2; exit 3`,
        '--spore-change-hook',
        `echo "$MYCELIUM_NETWORK_ID" >> ${marker}`,
        '--junit',
        junit
      ],
      { out: (t) => out.push(t), err: (t) => out.push(t), env: { PATH: '/usr/bin:/bin' } }
    )
    expect(failing).toBe(1)
    expect(out.join('')).toMatch(/FAIL {2}commands\.delivery .*the command trigger failed: hook `.*` exited with 3: refused/)
    expect(out.join('')).toMatch(/SKIP {2}spores\.watch-changes .*the trigger published nothing new/)
    expect(readFileSync(marker, 'utf8')).toBe('cli-node restart\nconf\n')
    expect(readFileSync(junit, 'utf8')).toMatch(/<failure message="the command trigger failed/)
    expect(
      await runCli(['--only', 'nope.x', '--network-manager', 'x:1', '--join-token', junit], {
        out: () => undefined,
        err: (t) => out.push(t)
      })
    ).toBe(101)
    expect(out.join('')).toContain('mycelium-conformance: --only: no check named nope.x (see --list)')
  }, 60_000)

  it('fails handoff.refuse-unknown against a manager that confirms handoffs nobody committed', async () => {
    const wrong = await wrongManager(net, 'network-manager', dir, (server) => {
      const real = net.networkManager.handlers()
      const handlers: NetworkManagerServer = {
        ...real,
        commitHandoff: (_call, cb) => cb(null, { outcome: HandoffOutcome.CONFIRMED, reason: '' })
      }
      server.addService(NetworkManagerService, handlers)
    })
    try {
      const report = await runConformance({
        networkManager: wrong.address,
        enrollment: net.endpoints.enrollment,
        joinToken: await net.newJoinToken(),
        only: ['handoff.commit', 'handoff.refuse-unknown']
      })
      expect(byName(report, 'handoff.commit')?.status).toBe('passed')
      expect(byName(report, 'handoff.refuse-unknown')).toMatchObject({
        status: 'failed',
        detail: 'a commit naming a handoff never opened was CONFIRMED'
      })
      expect(report.failed).toBe(1)
    } finally {
      wrong.stop()
    }
  }, 30_000)

  it('fails admission.retry-after against a manager that refuses registrations without retry-after', async () => {
    const wrong = await wrongManager(net, 'network-manager', dir, (server) => {
      const real = net.networkManager.handlers()
      let calls = 0
      const handlers: NetworkManagerServer = {
        ...real,
        registerNode: (call, cb) => {
          if (++calls % 2 === 0) cb({ code: grpc.status.RESOURCE_EXHAUSTED, details: 'busy' })
          else real.registerNode(call, cb)
        }
      }
      server.addService(NetworkManagerService, handlers)
    })
    try {
      const report = await runConformance({
        networkManager: wrong.address,
        enrollment: net.endpoints.enrollment,
        joinToken: await net.newJoinToken(),
        only: ['admission.retry-after'],
        admissionBurst: 10
      })
      expect(byName(report, 'admission.retry-after')?.status).toBe('failed')
      expect(byName(report, 'admission.retry-after')?.detail).toMatch(
        /^5 of 5 refusals \(RESOURCE_EXHAUSTED: busy\) carry no usable "retry-after-ms" metadata \(absent\)$/
      )
    } finally {
      wrong.stop()
    }
  }, 30_000)

  it('fails spores.watch-changes against a Spore Manager whose watch drops changes', async () => {
    const wrong = await wrongManager(net, 'spore-manager', dir, (server) => {
      const real = net.spores.handlers()
      const handlers: SporeServiceServer = {
        ...real,
        // The snapshot, then silence: changes published later never reach the stream.
        watchSpores: (call) => {
          call.write({ spores: [], snapshotComplete: true })
        }
      }
      server.addService(SporeServiceService, handlers)
    })
    try {
      const report = await runConformance({
        sporeService: wrong.address,
        enrollment: net.endpoints.enrollment,
        joinToken: await net.newJoinToken(),
        only: ['spores.watch-changes'],
        triggers: devNetworkTriggers(net),
        maxWaitMs: 2000
      })
      expect(byName(report, 'spores.watch-changes')?.status).toBe('failed')
      expect(byName(report, 'spores.watch-changes')?.detail).toMatch(
        /^the open watch never sent .*bootstrap@\d+.*, which ListSpores shows as changed/
      )
    } finally {
      wrong.stop()
    }
  }, 30_000)

  itWithPython(
    'fails registration.contract-negotiation against a Python grpcio manager that answers a version outside the range',
    async () => {
      const stubs = join(dir, 'py')
      const protos = readdirSync(join(PROTOS, 'mycelium/core/v1'))
        .filter((f) => f.endsWith('.proto'))
        .map((f) => join(PROTOS, 'mycelium/core/v1', f))
      const wkt = execFileSync(
        PYTHON,
        ['-c', 'import grpc_tools, os; print(os.path.join(os.path.dirname(grpc_tools.__file__), "_proto"))'],
        {
          encoding: 'utf8'
        }
      ).trim()
      mkdirSync(stubs, { recursive: true })
      execFileSync(PROTOC, [
        `-I${PROTOS}`,
        `-I${wkt}`,
        `--python_out=${stubs}`,
        `--grpc_out=${stubs}`,
        `--plugin=protoc-gen-grpc=${GRPC_PLUGIN}`,
        ...protos
      ])
      const identity = await managerIdentity(net, 'network-manager', stubs)
      const m = identity.material()!
      const files = { ca: join(stubs, 'ca.pem'), cert: join(stubs, 'nm.pem'), key: join(stubs, 'nm.key') }
      writeFileSync(files.ca, net.caPem)
      writeFileSync(files.cert, m.certificateChainPem)
      writeFileSync(files.key, m.keyPem, { mode: 0o600 })
      identity.stop()
      const child = spawn(PYTHON, [join(__dirname, 'interop', 'wrong_manager.py'), stubs, JSON.stringify(files)], {
        stdio: ['ignore', 'pipe', 'inherit']
      })
      try {
        const port = await new Promise<number>((ok, fail) => {
          child.stdout.once('data', (b: Buffer) => ok(Number(b.toString().trim())))
          child.once('exit', (code) => fail(new Error(`the Python manager exited with ${code}`)))
        })
        const report = await runConformance({
          networkManager: `127.0.0.1:${port}`,
          enrollment: net.endpoints.enrollment,
          joinToken: await net.newJoinToken(),
          only: ['registration.contract-negotiation']
        })
        expect(report.results).toEqual([
          expect.objectContaining({
            name: 'registration.contract-negotiation',
            status: 'failed',
            detail: "chose contract version 7, outside the node's range 1–1"
          })
        ])
      } finally {
        child.kill()
      }
    },
    60_000
  )
})
