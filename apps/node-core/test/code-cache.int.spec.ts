import { spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until } from '@mycelium/testing'
import { runBin } from './helpers/daemon.js'
import { extractRelease } from './helpers/release.js'

/**
 * The daemon's warm code cache (launcher.cjs): the release artifact's first
 * `run` writes node-core-main.cjs.run-cache once MANAGED, recording the V8
 * flags the daemon set; the next start sets them before compiling and V8
 * accepts the cache — seen here as the file not being written again (a start
 * whose cache V8 rejected writes a new one at its MANAGED). Other commands keep
 * the package-time cache.
 */

const ROOT = extractRelease()
const BIN = join(ROOT, 'node-core.cjs')
const RUN_CACHE = join(ROOT, 'node-core-main.cjs.run-cache')
const BUNDLE = join(ROOT, 'node-core-main.cjs')
const sha256 = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex')

describe("the daemon's warm code cache (release artifact)", () => {
  let net: DevNetwork
  let dir: string

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'node-core-code-cache-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 1000 })
  })
  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  /** `node-core run` to MANAGED, then SIGTERM: its exit code. */
  async function startToManaged(config: string, socket: string): Promise<number | null> {
    const child = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
    let logs = ''
    child.stdout.on('data', (d: Buffer) => (logs += d.toString()))
    child.stderr.on('data', (d: Buffer) => (logs += d.toString()))
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
    try {
      await until(
        'MANAGED',
        async () => /phase\s+MANAGED/.test((await runBin(['status', '--socket', socket], BIN)).out) || child.exitCode != null,
        30_000,
        100
      )
      if (child.exitCode != null) throw new Error(`the daemon exited ${child.exitCode}: ${logs.slice(-2000)}`)
    } finally {
      child.kill('SIGTERM')
    }
    return exited
  }

  it('is written at the first MANAGED under the flags the daemon set, and the next start compiles from it', async () => {
    const tokenFile = join(dir, 'join-token')
    writeFileSync(tokenFile, net.joinToken)
    const socket = join(dir, 'status.sock')
    const config = join(dir, 'node.yaml')
    writeFileSync(
      config,
      net.nodeConfigYaml({
        nodeId: 'cache-node',
        stateDir: join(dir, 'state'),
        joinTokenFile: tokenFile,
        socketPath: socket,
        logLevel: 'warn'
      })
    )
    const packaged = readFileSync(join(ROOT, 'node-core-main.cjs.cache'))

    expect(await startToManaged(config, socket)).toBe(0)
    const data = readFileSync(RUN_CACHE)
    const header = JSON.parse(data.subarray(0, data.indexOf(10)).toString()) as { v8Flags: string; execArgv: string[]; bundle: string }
    expect(header).toEqual({ v8Flags: expect.stringContaining('--no-opt'), execArgv: [], bundle: sha256(BUNDLE) })
    expect(header.v8Flags.split(' ')).toContain('--expose-gc')
    // Every function the start ran, not only the bundle's top level.
    expect(data.length).toBeGreaterThan(4 * packaged.length)
    const written = statSync(RUN_CACHE)

    // Enrolled now: the second start takes the other path (cached identity) and still compiles from the cache.
    expect(await startToManaged(config, socket)).toBe(0)
    const after = statSync(RUN_CACHE)
    expect([after.ino, after.mtimeMs]).toEqual([written.ino, written.mtimeMs])
    // The CLI commands (default V8 flags) kept the package-time cache: `status` did not replace it.
    expect(readFileSync(join(ROOT, 'node-core-main.cjs.cache')).equals(packaged)).toBe(true)
  })

  it('is not used for another bundle of the same length (V8 checks only the length): it is made again', async () => {
    // An install that replaced the bundle in place and left the warm cache: one character of a log line differs.
    const text = readFileSync(BUNDLE, 'latin1')
    const line = 'watchdog: event loop stalled'
    expect(text.includes(line)).toBe(true)
    writeFileSync(BUNDLE, text.replace(line, line.toUpperCase()), 'latin1')
    const stale = statSync(RUN_CACHE)

    expect(await startToManaged(join(dir, 'node.yaml'), join(dir, 'status.sock'))).toBe(0)
    const made = statSync(RUN_CACHE)
    expect(made.ino).not.toBe(stale.ino)
    const data = readFileSync(RUN_CACHE)
    expect((JSON.parse(data.subarray(0, data.indexOf(10)).toString()) as { bundle: string }).bundle).toBe(sha256(BUNDLE))
  })
})
