import { spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { until } from '@mycelium/testing'
import { bundle, extractCommit, linkNodeModules, previousRelease, REPO_ROOT } from './compat/build.js'

/**
 * Compatibility across versions: the agent and the dev network of the last
 * release (a commit recorded in compat/releases.json; the repository has no
 * release tags yet) are built from git and run against today's — old agent ↔
 * today's managers, today's agent ↔ old managers — through MANAGED, a command,
 * FALLBACK when the Network Manager goes away, and MANAGED again when it is
 * back. A release missing from the clone fails the test (it does not skip).
 *
 * Build: `git archive` of the release (no worktree metadata), today's
 * node_modules linked in (the release's dependencies are a subset of today's,
 * same versions), and one esbuild bundle per program with @mycelium/* from
 * TypeScript source and third-party packages required from node_modules.
 */
interface Build {
  agent: string
  driver: string
}

const DRIVER = readFileSync(join(__dirname, 'compat', 'driver.ts'), 'utf8')

async function buildTree(tree: string, sources: string): Promise<Build> {
  const agent = join(tree, 'apps', 'node-core', 'compat', 'bin.cjs')
  const driver = join(tree, 'tools', 'dev-network', 'compat', 'driver.cjs')
  await bundle({ entry: join(sources, 'apps', 'node-core', 'src', 'bin.ts'), outfile: agent, external: ['@mycelium/dev-network'] })
  await bundle({ stdin: { contents: DRIVER, resolveDir: sources }, outfile: driver })
  return { agent, driver }
}

type DriverEvent = { event: string; nodeId?: string; commandId?: string; state?: string; reason?: string }

/** One dev network (a driver process) and one agent against it. */
async function runPair(network: Build, agentBuild: Build, dir: string): Promise<void> {
  const NODE = 'compat-node'
  const events: DriverEvent[] = []
  let driverErr = ''
  const driver = spawn(process.execPath, [network.driver, JSON.stringify({ dir, nodeId: NODE })], { stdio: ['pipe', 'pipe', 'pipe'] })
  driver.stderr!.on('data', (d: Buffer) => (driverErr = (driverErr + d.toString()).slice(-4000)))
  createInterface({ input: driver.stdout! }).on('line', (l) => events.push(JSON.parse(l) as DriverEvent))
  let agent: ChildProcess | undefined
  let agentLog = ''
  const send = (op: object): void => void driver.stdin!.write(`${JSON.stringify(op)}\n`)
  const seen = (what: string, match: (e: DriverEvent) => boolean, timeoutMs = 30_000): Promise<true> =>
    until(
      `${what} (agent log tail: ${agentLog.slice(-1500)}; driver: ${driverErr})`,
      () => Promise.resolve(events.some(match)),
      timeoutMs,
      50
    )
  const phase = async (): Promise<string> => {
    const out = await new Promise<string>((resolve) => {
      const c = spawn(process.execPath, [agentBuild.agent, 'status', '--socket', join(dir, 'status.sock'), '--json'], {
        stdio: ['ignore', 'pipe', 'ignore']
      })
      let text = ''
      c.stdout.on('data', (d: Buffer) => (text += d.toString()))
      c.on('exit', () => resolve(text))
    })
    try {
      // ts-proto's JSON names the enum value (PHASE_MANAGED).
      return String((JSON.parse(out) as { phase: unknown }).phase).replace(/^PHASE_/, '')
    } catch {
      return ''
    }
  }
  try {
    await seen('the dev network up', (e) => e.event === 'up')
    agent = spawn(process.execPath, [agentBuild.agent, 'run', '--config', join(dir, 'node.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] })
    agent.stdout!.on('data', (d: Buffer) => (agentLog = (agentLog + d.toString()).slice(-20_000)))
    agent.stderr!.on('data', (d: Buffer) => (agentLog = (agentLog + d.toString()).slice(-20_000)))
    await seen('the agent MANAGED (handoff confirmed)', (e) => e.event === 'managed' && e.nodeId === NODE)
    send({ op: 'restart', commandId: 'compat-restart-1', component: 'http' })
    await seen(
      'the restart command SUCCEEDED',
      (e) => e.event === 'update' && e.commandId === 'compat-restart-1' && e.state === 'SUCCEEDED'
    )
    const states = events.filter((e) => e.event === 'update' && e.commandId === 'compat-restart-1').map((e) => e.state)
    // In order (a status resent after a reconnect is a repeat, not a new state).
    expect([...new Set(states)]).toEqual(['ACCEPTED', 'RUNNING', 'SUCCEEDED'])
    send({ op: 'stop-nm' })
    await seen('the Network Manager stopped', (e) => e.event === 'stopped')
    let last = ''
    await until(
      'the agent in FALLBACK',
      async () => (last = await phase()) === 'FALLBACK',
      30_000,
      200,
      () => last
    )
    const managedBefore = events.filter((e) => e.event === 'managed').length
    send({ op: 'start-nm' })
    await seen('the agent MANAGED again', () => events.filter((e) => e.event === 'managed' && e.nodeId === NODE).length > managedBefore)
    await until(
      'the agent reports MANAGED',
      async () => (last = await phase()) === 'MANAGED',
      30_000,
      200,
      () => last
    )
  } finally {
    agent?.kill('SIGKILL')
    driver.stdin!.end()
    driver.kill('SIGTERM')
  }
}

describe('compatibility with the last release', () => {
  let tmp: string
  let today: Build
  let previous: Build

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'conformance-compat-'))
    const old = join(tmp, 'previous')
    extractCommit(previousRelease(), old)
    linkNodeModules(old)
    // Today's sources, bundled into a tree of their own beside today's node_modules and protos.
    const now = join(tmp, 'today')
    mkdirSync(now)
    symlinkSync(join(REPO_ROOT, 'node_modules'), join(now, 'node_modules'))
    symlinkSync(join(REPO_ROOT, 'protos'), join(now, 'protos'))
    ;[previous, today] = await Promise.all([buildTree(old, old), buildTree(now, REPO_ROOT)])
  }, 60_000)

  afterAll(() => {
    if (tmp != null) rmSync(tmp, { recursive: true, force: true })
  })

  it('a release missing from this clone fails, saying how to get it (it never skips)', () => {
    expect(() => extractCommit('0'.repeat(40), join(tmp, 'missing'))).toThrow(
      /the last release 0{40} \(packages\/conformance\/compat\/releases\.json\) is not in this clone .*git fetch --unshallow/
    )
  })

  it("the last release's agent is managed by today's dev network: MANAGED, a command, FALLBACK and back", async () => {
    const dir = join(tmp, 'old-agent')
    mkdirSync(dir)
    await runPair(today, previous, dir)
  }, 60_000)

  it("today's agent is managed by the last release's dev network: MANAGED, a command, FALLBACK and back", async () => {
    const dir = join(tmp, 'new-agent')
    mkdirSync(dir)
    await runPair(previous, today, dir)
  }, 60_000)
})
