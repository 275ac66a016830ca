import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Phase } from '@mycelium/core-interfaces'
import { startDevNetwork, type DevNetwork } from '@mycelium/dev-network'
import { until as untilTrue } from '@mycelium/testing'
import { fetchStatus } from '../src/status-command.js'
import { BIN } from './helpers/daemon.js'

/**
 * The shipped daemon (the release artifact, test/helpers/release.ts) with a wrong wall clock, against a dev
 * network in this (unfaked) process: libfaketime (Debian `faketime`) is
 * preloaded into the child only. DONT_FAKE_MONOTONIC=1 is the realistic
 * case — the wall clock is wrong or jumps, the monotonic clock is fine — and
 * it keeps libuv's timers (monotonic) sane. The offset comes from a
 * timestamp file that libfaketime re-reads (cache of 1 s), so the test moves
 * the clock while the daemon runs.
 *
 * Heartbeats every 500 ms give a 1.5 s lease: ±10 s of skew is ~7 lease
 * lengths, a ±2 h jump thousands.
 */
const LIBFAKETIME = ['/usr/lib', ...readdirSync('/usr/lib').map((d) => join('/usr/lib', d))]
  .map((d) => join(d, 'faketime', 'libfaketime.so.1'))
  .find((p) => existsSync(p))

const until = (what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 30_000, detail?: () => unknown): Promise<true> =>
  untilTrue(what, probe, timeoutMs, 100, detail)

describe('node-core under clock skew (libfaketime, the bundled daemon as a child)', () => {
  let net: DevNetwork
  let dir: string
  let child: ChildProcess | undefined
  let logs = ''

  beforeAll(async () => {
    if (!existsSync(BIN)) throw new Error(`${BIN} is missing: package first (npx nx run @mycelium/node-core:package)`)
    if (LIBFAKETIME == null) throw new Error('libfaketime is missing: apt-get install faketime (listed in .ci/run)')
    dir = mkdtempSync(join(tmpdir(), 'node-core-skew-'))
    net = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 500 })
  })
  afterEach(() => {
    child?.kill('SIGKILL')
    child = undefined
  })
  afterAll(async () => {
    await net?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it.each([
    ['10 s ahead, then jumps 2 h ahead', '+10s', '+2h', 10_000, 7_200_000],
    ['10 s behind, then jumps 2 h back', '-10s', '-2h', -10_000, -7_200_000]
  ])(
    'node clock %s: reaches MANAGED and stays MANAGED',
    async (_what, offset, jump, offsetMs, jumpMs) => {
      const nodeId = offsetMs > 0 ? 'skew-ahead' : 'skew-behind'
      const tokenFile = join(dir, `${nodeId}.token`)
      writeFileSync(tokenFile, await net.newJoinToken())
      const socket = join(dir, nodeId, 'run', 'status.sock')
      const config = join(dir, `${nodeId}.yaml`)
      writeFileSync(
        config,
        net.nodeConfigYaml({ nodeId, stateDir: join(dir, nodeId, 'state'), joinTokenFile: tokenFile, socketPath: socket })
      )
      const clockFile = join(dir, `${nodeId}.faketime`)
      writeFileSync(clockFile, `${offset}\n`)
      logs = ''
      child = spawn(process.execPath, [BIN, 'run', '--config', config], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: {
          ...process.env,
          LD_PRELOAD: LIBFAKETIME,
          FAKETIME_TIMESTAMP_FILE: clockFile,
          FAKETIME_CACHE_DURATION: '1',
          DONT_FAKE_MONOTONIC: '1'
        }
      })
      child.stdout!.on('data', (d: Buffer) => (logs += d.toString()))
      child.stderr!.on('data', (d: Buffer) => (logs += d.toString()))

      const status = () => fetchStatus(socket).catch(() => undefined)
      /** The node's wall clock minus ours, read from the lease expiry it shows (its clock + time left). */
      const nodeClockOffset = async (): Promise<number> => {
        const s = await status()
        const expires = s?.managers[0]?.leaseExpiresAt?.getTime()
        return expires == null ? Number.NaN : expires - Date.now()
      }
      await until(
        'MANAGED',
        async () => (await status())?.phase === Phase.MANAGED,
        30_000,
        () => logs.split('\n').slice(-5)
      )
      // The preload works: the node's clock really is off by the offset (± a lease length).
      expect(Math.abs((await nodeClockOffset()) - offsetMs)).toBeLessThan(2000)

      const record = () => net.networkManager.nodes.get(nodeId)!
      const leftManaged = async (): Promise<string[]> =>
        ((await status())?.history ?? []).filter((h) => h.from === Phase.MANAGED || h.to === Phase.FALLBACK).map((h) => h.reason)

      let reports = record().healthReports
      await until('10 heartbeats (~3 lease lengths) under skew', () => record().healthReports >= reports + 10)
      expect(await leftManaged()).toEqual([])
      expect(record().managed).toBe(true)

      writeFileSync(clockFile, `${jump}\n`)
      await until('the jump reached the node', async () => Math.abs((await nodeClockOffset()) - jumpMs) < 5000, 10_000)
      reports = record().healthReports
      await until('10 heartbeats after the jump', () => record().healthReports >= reports + 10)
      expect(await leftManaged()).toEqual([])
      expect((await status())?.phase).toBe(Phase.MANAGED)
      expect(record().managed).toBe(true)
      // The skew was noticed and said so (deadlines stay on the monotonic clock).
      expect(logs).toContain('clock skew with the Network Manager')
    },
    90_000
  )
})
