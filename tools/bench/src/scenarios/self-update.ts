import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { CommandState } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork, type DevUpdateManager } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import type { Scenario } from '../harness.js'
import { releaseArtifact } from './agent-process.js'

const require = createRequire(import.meta.url)
const HIGHER = '99.0.0'

interface Setup {
  net: DevNetwork
  um: DevUpdateManager
  root: string
  current: string
  good: string
  broken: string
}

/** This version's artifact, the same code stamped 99.0.0 (package.mjs --version), and 99.0.1 whose entry exits at once. */
async function setup(): Promise<Setup> {
  const root = mkdtempSync(join(tmpdir(), 'bench-self-update-'))
  const pkgDir = join(require.resolve('@mycelium/node-core/package.json'), '..')
  const { tarball } = releaseArtifact()
  execFileSync(process.execPath, [join(pkgDir, 'package.mjs'), '--version', HIGHER, '--out', join(root, 'rel')], { stdio: 'ignore' })
  const good = join(root, 'rel', `node-core-${HIGHER}-linux-${process.arch}.tar.gz`)
  const src = join(root, 'broken')
  mkdirSync(src)
  execFileSync('tar', ['-xzf', good, '-C', src])
  const top = `node-core-99.0.1-linux-${process.arch}`
  execFileSync('mv', [join(src, `node-core-${HIGHER}-linux-${process.arch}`), join(src, top)])
  writeFileSync(join(src, top, 'node-core.cjs'), 'process.exit(3)\n')
  const sums = execFileSync('sh', ['-c', 'find . -type f ! -name SHA256SUMS | sed "s|^./||" | sort | xargs sha256sum'], {
    cwd: join(src, top)
  })
  writeFileSync(join(src, top, 'SHA256SUMS'), sums)
  const broken = join(root, `${top}.tar.gz`)
  execFileSync('tar', ['-czf', broken, '-C', src, top])
  const net = await startDevNetwork({ networkId: 'bench-upd', heartbeatIntervalMs: 300 })
  const um = await net.startUpdateManager()
  return { net, um, root, current: tarball, good, broken }
}

let n = 0
/** A node installed in slots/a under the slot launcher, MANAGED at this version. */
async function installedNode(s: Setup): Promise<{ id: string; launcher: ChildProcess; version: () => string | undefined }> {
  const id = `bench-upd-${++n}`
  const prefix = join(s.root, id)
  mkdirSync(join(prefix, 'slots'), { recursive: true })
  execFileSync('tar', ['-xzf', s.current, '-C', join(prefix, 'slots')])
  const { version } = JSON.parse(readFileSync(require.resolve('@mycelium/node-core/package.json'), 'utf8')) as { version: string }
  execFileSync('mv', [join(prefix, 'slots', `node-core-${version}-linux-${process.arch}`), join(prefix, 'slots', 'a')])
  copyFileSync(join(prefix, 'slots', 'a', 'slot-launcher.cjs'), join(prefix, 'slot-launcher.cjs'))
  writeFileSync(join(prefix, 'token'), await s.net.newJoinToken())
  const yaml = s.net.nodeConfigYaml({
    nodeId: id,
    stateDir: join(prefix, 'state'),
    joinTokenFile: join(prefix, 'token'),
    socketPath: join(prefix, 'status.sock'),
    logLevel: 'warn'
  })
  writeFileSync(join(prefix, 'node.yaml'), yaml)
  const launcher = spawn(
    process.execPath,
    [join(prefix, 'slot-launcher.cjs'), '--prefix', prefix, 'run', '--config', join(prefix, 'node.yaml')],
    {
      stdio: 'ignore',
      detached: true
    }
  )
  const agentVersion = (): string | undefined => {
    const r = s.net.networkManager.nodes.get(id)
    return r?.managed === true && s.net.commands.isConnected(id) ? r.capabilities?.agentVersion : undefined
  }
  await until(`${id} MANAGED`, () => agentVersion() === version, 60_000, 5)
  return { id, launcher, version: agentVersion }
}

function kill(p: ChildProcess): Promise<void> {
  if (p.exitCode != null || p.signalCode != null) return Promise.resolve()
  const exited = new Promise<void>((r) => p.once('exit', () => r()))
  process.kill(-p.pid!, 'SIGKILL')
  return exited
}

/**
 * Self-update through the dev Update Manager, on the release artifacts:
 * `update` command → the new version MANAGED (download, verify, unpack, switch,
 * first boot, health window commit); a new version that exits at start → the
 * old version MANAGED again and the FAILED report (3 trial exits, rollback).
 */
export function selfUpdateScenarios(): Scenario[] {
  let shared: Setup | undefined
  return [
    {
      id: 'self-update',
      description:
        'release artifacts under the slot launcher: `update` command → 99.0.0 MANAGED and SUCCEEDED; a 99.0.1 that exits at start → rolled back, the old version MANAGED and FAILED reported',
      runs: 3,
      metrics: [
        { name: 'update-to-new-managed', unit: 'ms', better: 'lower' },
        { name: 'update-to-succeeded', unit: 'ms', better: 'lower' },
        { name: 'failed-start-to-old-managed', unit: 'ms', better: 'lower' }
      ],
      async run() {
        const s = (shared ??= await setup())
        const good = await s.um.addArtifact(s.good)
        const broken = await s.um.addArtifact(s.broken)
        const a = await installedNode(s)
        const b = await installedNode(s)
        try {
          await s.um.publishRelease(HIGHER, good)
          const t0 = performance.now()
          const id = s.um.sendUpdate(a.id, { version: HIGHER, artifact: good })
          await until('the new version MANAGED', () => a.version() === HIGHER, 120_000, 5)
          const newManaged = performance.now() - t0
          const updates = await s.net.commands.waitForOutcome(id, 120_000)
          const succeeded = performance.now() - t0
          if (!updates.some((u) => u.state === CommandState.SUCCEEDED)) throw new Error(`update not SUCCEEDED: ${JSON.stringify(updates)}`)

          await s.um.publishRelease('99.0.1', broken)
          const t1 = performance.now()
          const failedId = s.um.sendUpdate(b.id, { version: '99.0.1', artifact: broken })
          const failed = await s.net.commands.waitForOutcome(failedId, 120_000)
          const oldManaged = performance.now() - t1
          if (!failed.some((u) => u.state === CommandState.FAILED)) throw new Error(`failed start not reported: ${JSON.stringify(failed)}`)
          return { 'update-to-new-managed': newManaged, 'update-to-succeeded': succeeded, 'failed-start-to-old-managed': oldManaged }
        } finally {
          await kill(a.launcher)
          await kill(b.launcher)
        }
      },
      async teardown() {
        await shared?.net.stop()
        if (shared != null) rmSync(shared.root, { recursive: true, force: true })
      }
    }
  ]
}
