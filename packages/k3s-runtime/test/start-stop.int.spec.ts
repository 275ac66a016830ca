/**
 * Start is idempotent and all or nothing, with the stand-in K3s
 * (test/fixtures of @mycelium/testing) as a real child process: repeated and
 * concurrent starts supervise one K3s; stop twice is harmless and never
 * stops K3s.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Availability, K3sConfig, K3sRole } from '@mycelium/core-interfaces'
import { FAKE_K3S, until } from '@mycelium/testing'
import { createK3sRuntime, processStartTime } from '../src/index.js'

describe('K3sRuntime start/stop', () => {
  let root: string
  const pids: number[] = []
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'mycelium-k3s-start-'))
  })
  afterAll(() => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL')
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true })
  })

  it('concurrent and repeated starts supervise one K3s; stop twice is harmless and leaves K3s running', async () => {
    const dataDir = join(root, 'data')
    const k3s = K3sConfig.fromPartial({
      enabled: true,
      role: K3sRole.SERVER,
      binaryPath: FAKE_K3S,
      dataDir,
      extraArgs: ['--https-listen-port', '0'],
      criSocket: join(root, 'no-cri.sock')
    })
    const rt = createK3sRuntime(
      {},
      {
        k3s,
        nodeId: 'node-s',
        stateDir: join(root, 'state'),
        workloadsIntervalMs: 60_000,
        supervisor: { probeIntervalMs: 50, monitorIntervalMs: 50, stopTimeoutMs: 5000, restartBackoff: { initialMs: 100, maxMs: 400 } }
      }
    )
    const starts = (): Array<{ pid: number }> => {
      const file = join(dataDir, 'starts.log')
      return existsSync(file)
        ? readFileSync(file, 'utf8')
            .trim()
            .split('\n')
            .filter(Boolean)
            .map((l) => JSON.parse(l) as { pid: number })
        : []
    }
    const first = rt.start()
    await rt.start() // the second caller returns only once the shared start configured the runtime
    expect(rt.capability().version).not.toBe('')
    await first
    await rt.start()
    try {
      await until(
        'ready',
        () => rt.capability().availability === Availability.AVAILABLE,
        30_000,
        25,
        () => [rt.capability(), rt.processStatus(), starts()]
      )
      pids.push(...starts().map((s) => s.pid))
      expect(starts()).toHaveLength(1)
    } finally {
      rt.stop()
      rt.stop()
    }
    expect(rt.isStarted()).toBe(false)
    expect(processStartTime(starts()[0]!.pid)).not.toBeUndefined() // workloads keep running
    // Started again: it adopts the K3s that kept running instead of starting another.
    await rt.start()
    try {
      await until('adopted and ready', () => rt.capability().availability === Availability.AVAILABLE, 30_000, 25)
      expect(starts()).toHaveLength(1)
      expect(rt.processStatus()?.adopted).toBe(true)
    } finally {
      rt.stop()
    }
  }, 90_000)
})
