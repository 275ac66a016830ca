/**
 * Self-update end to end, with the release artifacts built in the test (this
 * version from `npm run package`, and 99.0.0 — the same code stamped higher by
 * `package.mjs --version`), installed as an operator does (slots/a + the slot
 * launcher), on a dev network with its Update Manager:
 *   happy path: `update` → 99.0.0 runs MANAGED, SUCCEEDED, the old slot kept;
 *   a new version that exits at start → rolled back, FAILED with the reason once the old one is MANAGED;
 *   one that never reaches MANAGED → rolled back at the window;
 *   a digest mismatch, a release not signed by a release key, another channel, a contract the managers do not speak,
 *   a lower version → refused by name, nothing written to the slots;
 *   a downgrade only after an operator-signed ALLOW_DOWNGRADE (kept across a restart, consumed by the downgrade);
 *   update.watch: a new release on the node's channel updates it by itself, the artifact from a peer (PeerAssist);
 *   SIGKILL (launcher and agent) during the download or the first boot, or the state a kill mid-unpack
 *   leaves → a good version boots and the update completes (the switch itself: self-update-launcher.int.spec.ts).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { generateKeyPairSync } from 'node:crypto'
import {
  copyFileSync,
  existsSync,
  openSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync
} from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandState, type CommandUpdate } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork, type DevUpdateManager } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import { releaseTarball } from './helpers/release.js'
import { statusJson } from './helpers/daemon.js'

const HERE = join(__dirname, '..')
const CURRENT = (JSON.parse(readFileSync(join(HERE, 'package.json'), 'utf8')) as { version: string }).version
const HIGHER = '99.0.0'
const ARCH = process.arch

let root: string
let net: DevNetwork
let um: DevUpdateManager
const artifacts: Record<string, string> = {}

/** A release tarball of `version` whose node-core.cjs is `entry` (the rest from the good 99.0.0). */
function variant(version: string, entry: string): string {
  const src = join(root, 'variants', version)
  mkdirSync(src, { recursive: true })
  execFileSync('tar', ['-xzf', artifacts[HIGHER]!, '-C', src])
  const top = `node-core-${version}-linux-${ARCH}`
  execFileSync('mv', [join(src, `node-core-${HIGHER}-linux-${ARCH}`), join(src, top)])
  writeFileSync(join(src, top, 'node-core.cjs'), entry)
  const sums = execFileSync('sh', ['-c', 'find . -type f ! -name SHA256SUMS | sed "s|^./||" | sort | xargs sha256sum'], {
    cwd: join(src, top)
  })
  writeFileSync(join(src, top, 'SHA256SUMS'), sums)
  const out = join(root, `${top}.tar.gz`)
  execFileSync('tar', ['-czf', out, '-C', src, top])
  return out
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), 'self-update-e2e-'))
  artifacts[CURRENT] = releaseTarball()
  execFileSync(process.execPath, [join(HERE, 'package.mjs'), '--version', HIGHER, '--out', join(root, 'rel')], { stdio: 'ignore' })
  artifacts[HIGHER] = join(root, 'rel', `node-core-${HIGHER}-linux-${ARCH}.tar.gz`)
  artifacts['99.0.1'] = variant('99.0.1', "'use strict'\nprocess.exit(3)\n")
  artifacts['99.0.2'] = variant(
    '99.0.2',
    "'use strict'\nsetInterval(() => undefined, 1000)\nprocess.on('SIGTERM', () => process.exit(0))\nif (process.channel) { process.channel.unref(); process.on('disconnect', () => process.exit(0)) }\n"
  )
  net = await startDevNetwork({ networkId: 'upd', heartbeatIntervalMs: 300 })
  um = await net.startUpdateManager()
}, 120_000)
afterAll(async () => {
  await net?.stop()
  if (process.env.KEEP_SELF_UPDATE_E2E == null) rmSync(root, { recursive: true, force: true })
})

interface Node {
  id: string
  prefix: string
  launcher: ChildProcess
  start(): void
  kill(): Promise<void>
}
const nodes: Node[] = []
afterEach(async () => {
  for (const n of nodes.splice(0)) await n.kill()
})

let count = 0
/** A node installed from this version's artifact in slots/a, run by the slot launcher. */
async function installNode(env: Record<string, string> = {}, extraYaml = ''): Promise<Node> {
  const id = `upd-node-${++count}`
  const prefix = join(root, id)
  mkdirSync(join(prefix, 'slots'), { recursive: true })
  execFileSync('tar', ['-xzf', artifacts[CURRENT]!, '-C', join(prefix, 'slots')])
  execFileSync('mv', [join(prefix, 'slots', `node-core-${CURRENT}-linux-${ARCH}`), join(prefix, 'slots', 'a')])
  copyFileSync(join(prefix, 'slots', 'a', 'slot-launcher.cjs'), join(prefix, 'slot-launcher.cjs'))
  writeFileSync(join(prefix, 'token'), await net.newJoinToken())
  writeFileSync(
    join(prefix, 'node.yaml'),
    net.nodeConfigYaml({
      nodeId: id,
      stateDir: join(prefix, 'state'),
      joinTokenFile: join(prefix, 'token'),
      socketPath: join(prefix, 'status.sock')
    }) + extraYaml
  )
  const node: Node = {
    id,
    prefix,
    launcher: undefined as unknown as ChildProcess,
    start() {
      node.launcher = spawn(
        process.execPath,
        [join(prefix, 'slot-launcher.cjs'), '--prefix', prefix, 'run', '--config', join(prefix, 'node.yaml')],
        {
          stdio: ['ignore', openSync(join(prefix, 'node.log'), 'a'), openSync(join(prefix, 'node.log'), 'a')],
          detached: true, // its own process group: SIGKILL reaches launcher and agent at once
          env: { ...process.env, NODE_CORE_UPDATE_TRIAL_WINDOW_MS: '90000', ...env }
        }
      )
    },
    async kill() {
      const p = node.launcher
      if (p.exitCode != null || p.signalCode != null) return
      const exited = new Promise((r) => p.once('exit', r))
      process.kill(-p.pid!, 'SIGKILL')
      await exited
    }
  }
  nodes.push(node)
  node.start()
  await managedAt(node, CURRENT)
  return node
}

const record = (n: Node) => (JSON.parse(readFileSync(join(n.prefix, 'boot.json'), 'utf8')) as { record: Record<string, any> }).record
async function managedAt(n: Node, version: string, timeoutMs = 60_000): Promise<void> {
  await until(
    `${n.id} MANAGED at ${version}`,
    () => {
      const r = net.networkManager.nodes.get(n.id)
      return r?.managed === true && r.capabilities?.agentVersion === version && net.commands.isConnected(n.id)
    },
    timeoutMs,
    50,
    () => ({
      version: net.networkManager.nodes.get(n.id)?.capabilities?.agentVersion,
      log: readFileSync(join(n.prefix, 'node.log'), 'utf8').slice(-3000)
    })
  )
}
/** Publishes the release spore (signed by the network's release keys) and sends the `update` command. */
async function offer(n: Node, version: string, file: string): Promise<string> {
  const artifact = await um.addArtifact(file)
  await um.publishRelease(version, artifact)
  return um.sendUpdate(n.id, { version, artifact })
}
const final = (updates: CommandUpdate[]): CommandUpdate => updates.find((u) => u.state >= CommandState.SUCCEEDED)!
const slotsOf = (n: Node): string[] => readdirSync(join(n.prefix, 'slots')).sort()

describe('self-update through the Update Manager', () => {
  it('happy path: the node runs the new version, MANAGED, the command SUCCEEDED, the old slot kept', async () => {
    const n = await installNode()
    const id = await offer(n, HIGHER, artifacts[HIGHER]!)
    const updates = await net.commands.waitForOutcome(id, 120_000)
    expect(final(updates)).toMatchObject({ state: CommandState.SUCCEEDED })
    await managedAt(n, HIGHER)
    expect(record(n)).toMatchObject({ active: 'b', last: { outcome: 'committed', version: HIGHER } })
    expect(record(n).trial).toBeUndefined()
    expect(slotsOf(n)).toEqual(['a', 'b'])
    expect(existsSync(join(n.prefix, 'slots', 'a', 'node-core.cjs'))).toBe(true)
    // Visible in NodeStatus (`node-core status --json`), in heartbeats and in /metrics' source.
    const status = await until(
      'status with the update',
      async () => {
        const s = (await statusJson(join(n.prefix, 'status.sock'))) as { update?: Record<string, string> } | undefined
        return s?.update?.lastOutcome === 'committed' ? s.update : undefined
      },
      30_000
    )
    expect(status).toMatchObject({ slot: 'b', version: HIGHER, lastVersion: HIGHER })
    await until('a heartbeat with the update', () => net.networkManager.nodes.get(n.id)?.lastHealth?.update?.slot === 'b', 30_000)

    // `node-core recover rollback` switches slots by hand; the restarted agent is the old version again.
    const out = execFileSync(process.execPath, [
      join(n.prefix, 'slots', 'b', 'node-core.cjs'),
      'recover',
      'rollback',
      '--config',
      join(n.prefix, 'node.yaml'),
      '--prefix',
      n.prefix
    ]).toString()
    expect(out).toContain('to slot a')
    await n.kill()
    n.start()
    await managedAt(n, CURRENT)
    expect(record(n)).toMatchObject({ active: 'a', last: { outcome: 'manual-rollback' } })
  }, 240_000)

  it('a new version that exits at start: rolled back within N restarts, FAILED with the reason once the old version is MANAGED', async () => {
    const n = await installNode()
    const id = await offer(n, '99.0.1', artifacts['99.0.1']!)
    const updates = await net.commands.waitForOutcome(id, 120_000)
    expect(final(updates).state).toBe(CommandState.FAILED)
    expect(final(updates).reason).toMatch(new RegExp(`rolled back to ${CURRENT}: version 99.0.1 exited 3 times`))
    await managedAt(n, CURRENT)
    expect(record(n)).toMatchObject({ active: 'a', last: { outcome: 'rolled-back', reported: true } })
  }, 240_000)

  it('a new version that never reaches MANAGED: rolled back at the window', async () => {
    const n = await installNode({ NODE_CORE_UPDATE_TRIAL_WINDOW_MS: '6000' })
    const id = await offer(n, '99.0.2', artifacts['99.0.2']!)
    const updates = await net.commands.waitForOutcome(id, 120_000)
    expect(final(updates).state).toBe(CommandState.FAILED)
    expect(final(updates).reason).toContain('version 99.0.2 did not reach MANAGED and HEALTHY within 6 s')
    await managedAt(n, CURRENT)
  }, 240_000)

  it('a digest mismatch, a wrong release signature and a lower version are refused, nothing written to the slots', async () => {
    const n = await installNode()
    const good = await um.addArtifact(artifacts[HIGHER]!)
    // A release manifest signed by a key the trust bundle does not name as a release key.
    await um.publishRelease(HIGHER, good, {
      signWith: [{ keyId: 'not-a-release-key', privateKey: generateKeyPairSync('ed25519').privateKey }]
    })
    const unsigned = final(await net.commands.waitForOutcome(um.sendUpdate(n.id, { version: HIGHER, artifact: good }), 60_000))
    expect(unsigned).toMatchObject({ state: CommandState.REJECTED })
    expect(unsigned.reason).toContain(
      'release/node-core: signed by unknown key not-a-release-key (0 valid release signatures of 1 required)'
    )
    // A command for another artifact than the signed release names.
    await um.publishRelease(HIGHER, good)
    const other = final(
      await net.commands.waitForOutcome(
        um.sendUpdate(n.id, { version: HIGHER, artifact: { ...good, digest: `sha256:${'1'.repeat(64)}` } }),
        60_000
      )
    )
    expect(other).toMatchObject({ state: CommandState.REJECTED })
    expect(other.reason).toContain(`release/node-core names ${HIGHER} (${good.digest})`)
    um.faults.corrupt = true
    try {
      const id = um.sendUpdate(n.id, { version: HIGHER, artifact: good })
      const mismatch = final(await net.commands.waitForOutcome(id, 60_000))
      expect(mismatch.state).toBe(CommandState.FAILED)
      expect(mismatch.reason).toContain('refused: artifact digest mismatch')
    } finally {
      um.faults.corrupt = false
    }
    // A release on another channel than the node's ("stable" by default), and one needing a newer contract than the managers speak.
    await um.publishRelease(HIGHER, good, { channel: 'beta' })
    const beta = final(await net.commands.waitForOutcome(um.sendUpdate(n.id, { version: HIGHER, artifact: good }), 60_000))
    expect(beta).toMatchObject({ state: CommandState.REJECTED })
    expect(beta.reason).toContain(`channel-mismatch: release ${HIGHER} is on channel "beta", this node follows "stable"`)
    await um.publishRelease(HIGHER, good, { minContractVersion: 2 })
    const contract = final(await net.commands.waitForOutcome(um.sendUpdate(n.id, { version: HIGHER, artifact: good }), 60_000))
    expect(contract).toMatchObject({ state: CommandState.REJECTED })
    expect(contract.reason).toContain('contract-unsupported: release 99.0.0 needs contract version 2 or higher')
    const status = (await statusJson(join(n.prefix, 'status.sock'))) as { update?: Record<string, string> } | undefined
    expect(status?.update).toMatchObject({ lastRefusalCode: 'contract-unsupported', lastRefusalVersion: HIGHER, channel: 'stable' })
    const lower = final(await net.commands.waitForOutcome(um.sendUpdate(n.id, { version: '0.0.1', artifact: good }), 60_000))
    expect(lower).toMatchObject({ state: CommandState.REJECTED })
    expect(lower.reason).toContain(`lower than the running ${CURRENT}`)
    expect(slotsOf(n)).toEqual(['a'])
    expect(record(n).trial).toBeUndefined()
  }, 240_000)

  it('SIGKILL during the download: the old version boots, the update resumes by Range and completes', async () => {
    const n = await installNode()
    const artifact = await um.addArtifact(artifacts[HIGHER]!)
    await um.publishRelease(HIGHER, artifact)
    um.faults.stallAfterBytes = 200_000
    const id = um.sendUpdate(n.id, { version: HIGHER, artifact })
    const part = join(n.prefix, 'downloads', `${artifact.digest.slice(7)}.part`)
    await until('the download is under way', () => existsSync(part) && statSync(part).size > 0, 60_000)
    await n.kill()
    um.faults.stallAfterBytes = undefined
    um.requests.length = 0
    n.start()
    const updates = await net.commands.waitForOutcome(id, 120_000)
    expect(final(updates)).toMatchObject({ state: CommandState.SUCCEEDED })
    await managedAt(n, HIGHER)
    expect(um.requests[0]).toMatch(/^bytes=[1-9]\d*-$/)
  }, 240_000)

  it('SIGKILL during the first boot of the new version: started again, the trial boots again and commits', async () => {
    const n = await installNode()
    const id = await offer(n, HIGHER, artifacts[HIGHER]!)
    await until('the trial boots', () => (record(n).trial?.boots as number | undefined) === 1, 60_000)
    await n.kill()
    n.start()
    expect(final(await net.commands.waitForOutcome(id, 120_000))).toMatchObject({ state: CommandState.SUCCEEDED })
    await managedAt(n, HIGHER)
    expect(record(n)).toMatchObject({ active: 'b', last: { outcome: 'committed' } })
  }, 240_000)

  it('what a SIGKILL during the unpack leaves (a temp dir, a half slot) boots the old version and is cleaned by the next update', async () => {
    const n = await installNode()
    await n.kill()
    // The state a kill mid-unpack leaves: the temp dir of the unpack, and an older slot b half moved away.
    mkdirSync(join(n.prefix, 'slots', '.unpack-b-4242', 'protos'), { recursive: true })
    writeFileSync(join(n.prefix, 'slots', '.unpack-b-4242', 'node-core-main.cjs'), 'partial')
    mkdirSync(join(n.prefix, 'slots', '.old-b-4242'), { recursive: true })
    n.start()
    await managedAt(n, CURRENT)
    const id = await offer(n, HIGHER, artifacts[HIGHER]!)
    expect(final(await net.commands.waitForOutcome(id, 120_000))).toMatchObject({ state: CommandState.SUCCEEDED })
    expect(slotsOf(n)).toEqual(['a', 'b'])
  }, 240_000)

  it('a downgrade is refused until an operator-signed ALLOW_DOWNGRADE emergency operation allows one', async () => {
    const n = await installNode()
    expect(final(await net.commands.waitForOutcome(await offer(n, HIGHER, artifacts[HIGHER]!), 120_000)).state).toBe(CommandState.SUCCEEDED)
    await managedAt(n, HIGHER)
    const refused = final(await net.commands.waitForOutcome(await offer(n, CURRENT, artifacts[CURRENT]!), 60_000))
    expect(refused).toMatchObject({ state: CommandState.REJECTED })
    expect(refused.reason).toContain('needs an operator-signed emergency operation')
    expect(final(await net.commands.waitForOutcome(um.sendAllowDowngrade(n.id, 'drill'), 60_000)).state).toBe(CommandState.SUCCEEDED)
    // The allowance is kept across a restart (self-update.state).
    await n.kill()
    n.start()
    await managedAt(n, HIGHER)
    expect(final(await net.commands.waitForOutcome(await offer(n, CURRENT, artifacts[CURRENT]!), 120_000)).state).toBe(
      CommandState.SUCCEEDED
    )
    await managedAt(n, CURRENT)
    expect(record(n)).toMatchObject({ active: 'a', last: { outcome: 'committed', version: CURRENT } })
    // Consumed by the downgrade it allowed.
    const again = final(await net.commands.waitForOutcome(await offer(n, '0.0.1', artifacts[CURRENT]!), 60_000))
    expect(again.reason).toContain('downgrade: version 0.0.1 is lower')
  }, 240_000)

  it('update.watch: a new release on the channel updates the node by itself, the artifact fetched from a peer that holds it', async () => {
    const port = await freePort()
    // A serves PeerAssist and holds the 99.0.0 artifact (as a node that installed it keeps it); its watch is off.
    const [a, b] = await Promise.all([
      installNode({}, `peers:\n  listenAddress: 127.0.0.1:${port}\n`),
      installNode(
        {},
        `peers:\n  listenAddress: 127.0.0.1:0\n  seeds:\n    - address: 127.0.0.1:${port}\n  pingInterval: 500ms\nupdate:\n  channel: stable\n  watch: true\n  watchMinInterval: 1s\n`
      )
    ])
    const artifact = await um.addArtifact(artifacts[HIGHER]!)
    mkdirSync(join(a.prefix, 'artifacts'), { recursive: true })
    copyFileSync(artifacts[HIGHER]!, join(a.prefix, 'artifacts', `${artifact.digest.slice(7)}.tar.gz`))
    // The release names an Update Manager URL nobody answers: only the peer has the bytes.
    await um.publishRelease(HIGHER, { ...artifact, url: 'https://127.0.0.1:1/artifacts/gone.tar.gz' })
    await managedAt(b, HIGHER, 120_000)
    // The trial commits itself once MANAGED and HEALTHY (no command to answer).
    await until('B committed', () => record(b).last?.outcome === 'committed', 60_000)
    expect(record(b)).toMatchObject({ active: 'b', last: { outcome: 'committed', version: HIGHER } })
    expect(record(b).last.commandId).toMatch(/^watch:99\.0\.0:/)
    expect(readFileSync(join(b.prefix, 'node.log'), 'utf8')).toContain('artifact fetched from a peer')
    // B now holds it too (and would serve it); A, not watching, still runs its version.
    expect(existsSync(join(b.prefix, 'artifacts', `${artifact.digest.slice(7)}.tar.gz`))).toBe(true)
    expect(net.networkManager.nodes.get(a.id)?.capabilities?.agentVersion).toBe(CURRENT)
  }, 240_000)
})

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo
      srv.close(() => resolve(port))
    })
  })
}
