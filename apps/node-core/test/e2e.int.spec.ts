import { spawn, type ChildProcess } from 'node:child_process'
import { chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { BIN, runBin } from './helpers/daemon.js'
import { decodeFiles, reflectionClient } from './helpers/reflection-client.js'

/**
 * The release artifact (`npm run package`, the Nx `package` target the test
 * target depends on) run as a child process with a config file against
 * tools/dev-network: MANAGED; manager stopped → FALLBACK on /readyz and
 * `node-core status`; manager back → MANAGED; SIGTERM → exit 0 in time.
 */

const until = (what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<true> => untilTrue(what, probe, timeoutMs, 100)

describe('node-core run (the bundled daemon, as a child process)', () => {
  let net: DevNetwork
  let dir: string
  let agent: ChildProcess | undefined

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    dir = mkdtempSync(join(tmpdir(), 'node-core-e2e-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 1000 })
  })
  afterAll(async () => {
    agent?.kill('SIGKILL')
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('reaches MANAGED, reports FALLBACK while the manager is down, rejoins, and exits 0 on SIGTERM', async () => {
    const tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, net.joinToken)
    const socket = join(dir, 'run', 'status.sock')
    const config = join(dir, 'node.yaml')
    writeFileSync(
      config,
      net.nodeConfigYaml({
        nodeId: 'e2e-node',
        stateDir: join(dir, 'state'),
        joinTokenFile: tokenFile,
        socketPath: socket,
        httpListenAddress: '127.0.0.1:0',
        readyInFallback: false
      })
    )
    agent = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    let logs = ''
    agent.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
    agent.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
    const exited = new Promise<number | null>((resolve) => agent!.on('exit', (code) => resolve(code)))

    const httpAddress = async (): Promise<string> => {
      const line = logs.split('\n').find((l) => l.includes('HTTP status serving'))
      return line != null ? (JSON.parse(line) as { address: string }).address : ''
    }
    const readyz = async (): Promise<[number, string]> => {
      const res = await fetch(`http://${await httpAddress()}/readyz`)
      return [res.status, await res.text()]
    }
    await until('MANAGED on /readyz', async () => (await readyz())[0] === 200)
    // Enrolment made its CSR in a child (`node-core csr-child`): the X.509 library never loaded into the daemon.
    expect(logs).toContain('CSR made in a child process')
    expect(logs).not.toContain('making the CSR in this process instead')
    expect((await runBin(['status', '--socket', socket])).out).toMatch(/phase\s+MANAGED/)
    // The version reported is the built package's, at registration and in status.
    const version = (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version
    expect(net.networkManager.nodes.get('e2e-node')?.capabilities?.agentVersion).toBe(version)
    type JsonStatus = {
      phase: string
      reason: string
      agentVersion: string
      history: Array<{ to: string; reason: string }>
      progress?: { step?: string; attempt?: number; lastError?: string; nextAttemptAt?: string }
    }
    const statusJson = async (): Promise<JsonStatus> =>
      JSON.parse((await runBin(['status', '--socket', socket, '--json'])).out) as JsonStatus
    const managed = await statusJson()
    expect(managed.agentVersion).toBe(version)
    // Server reflection runs from its lazily loaded chunk (chunks/reflection.cjs, which holds
    // @bufbuild/protobuf's descriptors; the bundle keeps only its wire codec): it lists, and describes.
    const reflection = reflectionClient(`unix://${socket}`)
    try {
      const listed = await reflection.ask({ listServices: '*' })
      expect(listed.listServicesResponse?.service.map((s) => s.name)).toContain('mycelium.core.v1.NodeStatus')
      const files = decodeFiles(await reflection.ask({ fileContainingSymbol: 'mycelium.core.v1.NodeStatus' }))
      expect(files[0]?.name).toBe('mycelium/core/v1/node_status.proto')
      expect(files.map((f) => f.name)).toContain('google/protobuf/timestamp.proto')
    } finally {
      reflection.close()
    }
    const transitionsBefore = managed.history.length

    await net.stopManager('network-manager')
    await until('FALLBACK on /readyz', async () => {
      const [code, text] = await readyz()
      return code === 503 && text.startsWith('FALLBACK')
    })
    // FALLBACK holds through the reconnection attempts: the attempts are steps inside it
    // (never DISCOVERY/REGISTRATION), each visible as progress with its error.
    const seen = new Set<string>()
    let outage: JsonStatus | undefined
    await until('two failed reconnection attempts, seen from outside', async () => {
      const s = await statusJson()
      seen.add(s.phase)
      outage = s
      return (s.progress?.attempt ?? 0) >= 3 && (s.progress?.lastError ?? '') !== ''
    })
    expect([...seen]).toEqual(['PHASE_FALLBACK'])
    expect(outage!.reason).toMatch(/^manager link lost: heartbeat stream failed/)
    expect(outage!.progress?.lastError).toMatch(/^registration failed: /)
    expect(outage!.history.slice(transitionsBefore).map((h) => h.to)).toEqual(['PHASE_FALLBACK'])
    const [, text] = await readyz()
    expect(text).toMatch(/^FALLBACK: manager link lost: /)
    const table = await runBin(['status', '--socket', socket])
    expect(table.out).toMatch(/phase\s+FALLBACK/)
    expect(table.out).toMatch(/reason\s+manager link lost: /)
    expect(table.out).toMatch(
      /progress\s+(waiting before reconnection attempt \d+|reconnection attempt \d+: .*) \(.*last error: registration failed: /
    )
    const metrics = await (await fetch(`http://${await httpAddress()}/metrics`)).text()
    expect(metrics).toMatch(/mycelium_phase_transitions_total\{to="FALLBACK"\} 1\n/)
    expect(metrics).toMatch(/mycelium_phase_transitions_total\{to="BOOTSTRAP"\} 1\n/)

    await net.startManager('network-manager')
    await until('MANAGED again', async () => (await readyz())[0] === 200)
    expect((await statusJson()).history.slice(transitionsBefore).map((h) => h.to)).toEqual([
      'PHASE_FALLBACK',
      'PHASE_HANDOFF',
      'PHASE_MANAGED'
    ])

    const sent = Date.now()
    agent.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect(Date.now() - sent).toBeLessThan(10_000)
    expect(logs).toContain('"message":"stopping component"')
    agent = undefined
  }, 120_000)

  it.each([
    ['an unknown key', 'networkId: n\nnodeId: a\nhandof: {}\n', /node.yaml:3 handof: unknown key "handof"/],
    [
      'a wrong type',
      'networkId: n\nnodeId: a\nhandoff:\n  commitDeadline: 5\n',
      /node.yaml:4 handoff.commitDeadline: must be a duration string/
    ],
    ['a missing file', null, /missing.yaml: cannot read: ENOENT/]
  ])('refuses %s before writing anything, exit 2', async (_what, text, message) => {
    const case_ = mkdtempSync(join(dir, 'bad-'))
    const file = join(case_, text == null ? 'missing.yaml' : 'node.yaml')
    if (text != null) writeFileSync(file, `${text}stateDir: ${join(case_, 'state')}\n`)
    const r = await runBin(['run', '--config', file])
    expect(r.code).toBe(2)
    expect(r.out).toMatch(message)
    expect(readdirSync(case_).filter((f) => f !== 'node.yaml')).toEqual([])
  })

  it('the bundled bin: a missing join token file, a bad log level, a regular file at the socket path are one line each, exit 2, nothing written', async () => {
    const case_ = mkdtempSync(join(dir, 'hostile-'))
    const victim = join(case_, 'victim.txt')
    writeFileSync(victim, 'keep')
    const base = `networkId: n\nnodeId: a\nstateDir: ${join(case_, 'state')}\n`
    const runs: Array<[string, string[], RegExp]> = [
      [base, ['--join-token-file', join(case_, 'missing-token')], /^error: --join-token-file .*missing-token: cannot read: ENOENT\n$/],
      [`${base}logging:\n  level: bogus\n`, [], /^error: .*logging.level: "bogus" is not one of error, warn, info, debug\n$/],
      [
        `${base}status:\n  socketPath: ${victim}\n`,
        [],
        /^error: status.socketPath .*victim.txt: exists and is a regular file; refusing to replace it/
      ]
    ]
    for (const [yaml, flags, message] of runs) {
      writeFileSync(join(case_, 'node.yaml'), yaml)
      const r = await runBin(['run', '--config', join(case_, 'node.yaml'), ...flags])
      expect([r.code, r.out]).toEqual([2, expect.stringMatching(message)])
      expect(readdirSync(case_).sort()).toEqual(['node.yaml', 'victim.txt'])
    }
  })

  it('refuses an unreadable key file with its path, exit 1', async () => {
    const case_ = mkdtempSync(join(dir, 'key-'))
    const keyFile = join(case_, 'node.key')
    writeFileSync(keyFile, 'not a key')
    chmodSync(keyFile, 0o600)
    const file = join(case_, 'node.yaml')
    writeFileSync(
      file,
      `networkId: n\nnodeId: a\nstateDir: ${join(case_, 'state')}\nidentity:\n  keyFile: ${keyFile}\nstatus:\n  httpListenAddress: "off"\n  socketPath: ${join(case_, 's.sock')}\n`
    )
    const r = await runBin(['run', '--config', file])
    expect(r.code).not.toBe(0)
    expect(r.out).toContain(`${keyFile}: not a PEM private key`)
  })
})
