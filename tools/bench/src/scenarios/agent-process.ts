import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DevNetwork } from '@mycelium/dev-network'
import * as grpc from '@grpc/grpc-js'
import { NodeStatusClient, Phase, type GetStatusResponse } from '@mycelium/core-interfaces'

const require = createRequire(import.meta.url)

export interface ReleaseArtifact {
  /** The tarball (`npm run package`; the bench target depends on node-core's `package`). */
  tarball: string
  /** Where it is extracted: a temp dir with no node_modules. */
  dir: string
  /** Its entry, `node-core.cjs`. */
  bin: string
  /** The unit's `Environment=` (mycelium-node.service), given to every agent the bench starts; `BENCH_UNIT_ENV=0`: none (an A/B). */
  unitEnv: Record<string, string>
  /** Bytes of the single-file bundle, and of the Kubernetes client chunk beside it. */
  bundleBytes: number
  kubernetesChunkBytes: number
}

let release: ReleaseArtifact | undefined

/**
 * The environment the shipped systemd unit gives the agent (its `Environment=` lines): the
 * agent is measured as it runs on a node. Only unquoted KEY=VALUE words; anything else is
 * refused, naming the line, rather than measured without it.
 */
export function unitEnvironment(unitFile: string): Record<string, string> {
  const env: Record<string, string> = {}
  readFileSync(unitFile, 'utf8')
    .split('\n')
    .forEach((line, i) => {
      const m = /^Environment=(.*)$/.exec(line.trim())
      if (m == null) return
      for (const word of m[1]!.trim().split(/\s+/)) {
        const kv = /^([A-Za-z_][A-Za-z0-9_]*)=([^"'\\]*)$/.exec(word)
        if (kv == null) throw new Error(`${unitFile}:${i + 1}: cannot read "${word}" (the bench reads unquoted KEY=VALUE words only)`)
        env[kv[1]!] = kv[2]!
      }
    })
  return env
}

/** The release artifact, extracted once per bench process (removed at exit): what the scenarios run and measure. */
export function releaseArtifact(): ReleaseArtifact {
  if (release != null) return release
  const pkg = require.resolve('@mycelium/node-core/package.json')
  const { version } = JSON.parse(readFileSync(pkg, 'utf8')) as { version: string }
  // BENCH_RELEASE_TARBALL: another build of the artifact (an A/B comparison: package.mjs --out <dir>).
  const tarball = process.env.BENCH_RELEASE_TARBALL ?? join(pkg, '..', 'release', `node-core-${version}-linux-${process.arch}.tar.gz`)
  if (!existsSync(tarball)) throw new Error(`${tarball} is missing: npm run package`)
  const root = mkdtempSync(join(tmpdir(), 'bench-release-'))
  process.once('exit', () => rmSync(root, { recursive: true, force: true }))
  execFileSync('tar', ['-xzf', tarball, '-C', root])
  const dir = join(root, `node-core-${version}-linux-${process.arch}`)
  release = {
    tarball,
    dir,
    bin: join(dir, 'node-core.cjs'),
    unitEnv: process.env.BENCH_UNIT_ENV === '0' ? {} : unitEnvironment(join(dir, 'mycelium-node.service')),
    bundleBytes: statSync(join(dir, 'node-core-main.cjs')).size,
    kubernetesChunkBytes: statSync(join(dir, 'kubernetes-client.mjs')).size
  }
  return release
}

export interface AgentProcess {
  child: ChildProcess
  socket: string
  startedAt: number
  exited: Promise<number | null>
  logs(): string
}

/** Writes a config for `nodeId` against `net` and starts `node-core run` as a child process (`nodeArgs`/`env`: node's own flags, extra environment). */
export function startAgentProcess(
  net: DevNetwork,
  dir: string,
  nodeId: string,
  joinToken: string,
  extra: string[] = [],
  spawnOptions: { nodeArgs?: string[]; env?: Record<string, string> } = {}
): AgentProcess {
  const socket = join(dir, `${nodeId}.sock`)
  const config = join(dir, `${nodeId}.yaml`)
  const tokenFile = join(dir, `${nodeId}.token`)
  writeFileSync(tokenFile, joinToken)
  writeFileSync(
    config,
    net.nodeConfigYaml({ nodeId, stateDir: join(dir, nodeId), joinTokenFile: tokenFile, socketPath: socket, logLevel: 'warn' }) +
      extra.join('\n')
  )
  const startedAt = performance.now()
  const child = spawn(process.execPath, [...(spawnOptions.nodeArgs ?? []), releaseArtifact().bin, 'run', '--config', config], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...releaseArtifact().unitEnv, ...spawnOptions.env }
  })
  let logs = ''
  child.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
  child.stderr!.on('data', (d: Buffer) => (logs += d.toString()))
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return { child, socket, startedAt, exited, logs: () => logs }
}

/**
 * Polls NodeStatus until `predicate`; returns ms since `since` (performance.now()).
 * One client for the whole wait, closed at the end: a fresh client per poll whose
 * call times out while its connection is still being set up (an agent busy starting,
 * a loaded machine) leaves that connection open in grpc-js after `close()`, and the
 * agent then holds an idle HTTP/2 session for it — measured 23 such sessions (~0.6 MB
 * of nghttp2 memory in its heap snapshot) inflating the footprint it was measuring.
 * Reconnection backoff is kept at a few ms so that "serving" is seen as soon as it is.
 */
export async function untilStatus(
  socket: string,
  since: number,
  predicate: (phase: Phase) => boolean,
  timeoutMs = 60_000,
  pollMs = 5
): Promise<number> {
  const client = new NodeStatusClient(`unix://${socket}`, grpc.credentials.createInsecure(), {
    'grpc.initial_reconnect_backoff_ms': pollMs,
    'grpc.min_reconnect_backoff_ms': pollMs,
    'grpc.max_reconnect_backoff_ms': pollMs
  })
  const phase = (): Promise<Phase | undefined> =>
    new Promise((resolve) =>
      client.getStatus({}, new grpc.Metadata(), { deadline: Date.now() + 1000 }, (err, res?: GetStatusResponse) =>
        resolve(err == null ? (res?.status?.phase ?? Phase.UNSPECIFIED) : undefined)
      )
    )
  try {
    const end = Date.now() + timeoutMs
    for (;;) {
      const p = await phase()
      if (p !== undefined && predicate(p)) return performance.now() - since
      if (Date.now() > end) throw new Error(`status on ${socket} did not satisfy the condition within ${timeoutMs} ms`)
      await new Promise((r) => setTimeout(r, pollMs))
    }
  } finally {
    client.close()
  }
}

export async function stopAgent(agent: AgentProcess): Promise<void> {
  agent.child.kill('SIGTERM')
  await agent.exited
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 'NaN')
  return kb * 1024
}

const GNU_TIME = '/usr/bin/time'

/**
 * Wall time (ms), CPU time (user + system, ms) and peak RSS (MB, GNU time's %M;
 * NaN without /usr/bin/time) of `node <args>` run to its end. Both commands
 * compared in a scenario go through the same wrapper, so its own cost is on
 * both sides. CPU time is what a shared machine's load disturbs least.
 */
export function timedRun(args: string[]): { ms: number; cpuMs: number; peakRssMb: number } {
  const wrapped = existsSync(GNU_TIME)
  const t = performance.now()
  const r = wrapped
    ? spawnSync(GNU_TIME, ['-f', '%M %U %S', process.execPath, ...args], { encoding: 'utf8' })
    : spawnSync(process.execPath, args, { encoding: 'utf8' })
  const ms = performance.now() - t
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.slice(-500)}`)
  const m = wrapped ? /(\d+) ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr) : null
  return {
    ms,
    cpuMs: m != null ? (Number(m[2]) + Number(m[3])) * 1000 : Number.NaN,
    peakRssMb: m != null ? Number(m[1]) / 1024 : Number.NaN
  }
}

/** CPU time (user + system, ms) a running process has used so far (Linux /proc, clock ticks of 10 ms). */
export function cpuMs(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(fields[11]) + Number(fields[12])) * 10
}

/** The machine's 1-minute load average (`uptime`), recorded beside each timing: the machine may be shared. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0])
}
