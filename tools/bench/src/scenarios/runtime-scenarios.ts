import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { K3sConfig, K3sRole } from '@mycelium/core-interfaces'
import { CriClient, createK3sRuntime } from '@mycelium/k3s-runtime'
import { containerdMissing, runSleepPod, startContainerd, until, type TestContainerd } from '@mycelium/testing'
import type { Scenario } from '../harness.js'

/** The stand-in K3s of the test fixtures (dist/main.js → tools/testing/fixtures). */
const FAKE_K3S = fileURLToPath(new URL('../../testing/fixtures/fake-k3s.mjs', import.meta.url))

/** 5 ms polls: the waits are what these scenarios measure. */
const waitFor = (what: string, check: () => boolean): Promise<true> => until(what, check, 30_000, 5)

/**
 * The supervisor's own overhead around a (stand-in) K3s: spawn → ready, and
 * crash → detected → respawned → ready with the backoff set to ~0 and a 20 ms
 * probe, so the numbers are the supervisor plus the stand-in's own start
 * (a node process), not the production waits (backoff from 0–1 s, probe 2 s).
 */
const supervision: Scenario = (() => {
  let root: string | undefined
  let n = 0
  const pids = new Set<number>()
  return {
    id: 'k3s-supervision',
    description: 'stand-in K3s under K3sSupervisor: spawn → /readyz ready; SIGKILL → detected, respawned, ready (backoff ~0, probe 20 ms)',
    runs: 5,
    metrics: [
      { name: 'start-to-ready', unit: 'ms', better: 'lower' },
      { name: 'crash-to-ready', unit: 'ms', better: 'lower' },
      { name: 'crash-to-respawn', unit: 'ms', better: 'lower' }
    ],
    async run() {
      root ??= mkdtempSync(join(tmpdir(), 'bench-k3s-'))
      const dir = join(root, `run-${n++}`)
      const runtime = createK3sRuntime(
        {},
        {
          k3s: K3sConfig.fromPartial({
            enabled: true,
            role: K3sRole.SERVER,
            binaryPath: FAKE_K3S,
            dataDir: join(dir, 'data'),
            extraArgs: ['--https-listen-port', '0'],
            criSocket: join(dir, 'none.sock')
          }),
          nodeId: 'bench',
          stateDir: dir,
          workloadsIntervalMs: 60_000,
          supervisor: { probeIntervalMs: 20, monitorIntervalMs: 20, restartBackoff: { initialMs: 1, maxMs: 1 } }
        }
      )
      const t0 = performance.now()
      await runtime.start()
      try {
        await waitFor('ready', () => runtime.processStatus()?.state === 'ready')
        const startToReady = performance.now() - t0
        const pid = runtime.processStatus()!.pid!
        pids.add(pid)
        const t1 = performance.now()
        process.kill(pid, 'SIGKILL')
        await waitFor('respawn', () => (runtime.processStatus()?.pid ?? pid) !== pid)
        const crashToRespawn = performance.now() - t1
        pids.add(runtime.processStatus()!.pid!)
        await waitFor('ready again', () => runtime.processStatus()?.state === 'ready')
        return { 'start-to-ready': startToReady, 'crash-to-ready': performance.now() - t1, 'crash-to-respawn': crashToRespawn }
      } finally {
        runtime.stop()
      }
    },
    async teardown() {
      for (const pid of pids) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
      if (root != null) rmSync(root, { recursive: true, force: true })
    }
  }
})()

const PODS = 20

/**
 * The CRI view's cost against a real containerd + runc with 20 running pods
 * (20 sandboxes + 20 containers): one full workload list (ListPodSandbox +
 * ListContainers), which the runtime does every 5 s. Needs root and
 * Debian's containerd/runc/busybox-static.
 */
const criWorkloads: Scenario = (() => {
  let ctrd: TestContainerd | undefined
  let client: CriClient | undefined
  let logs: string | undefined
  const ensure = async (): Promise<CriClient> => {
    if (client != null) return client
    const missing = containerdMissing()
    if (missing != null) throw new Error(`containerd cannot run here: ${missing}`)
    ctrd = await startContainerd()
    client = new CriClient({ socket: ctrd.socket, callTimeoutMs: 30_000 })
    logs = mkdtempSync(join(tmpdir(), 'bench-cri-logs-'))
    for (let i = 0; i < PODS; i++) await runSleepPod(client.raw, ctrd.busyboxImage, `bench-${i}`, logs)
    return client
  }
  return {
    id: 'cri-workloads',
    description: `CriClient.workloads() against real containerd + runc with ${PODS} running pods (${PODS * 2} workloads): latency of one list, lists per second`,
    runs: 5,
    metrics: [
      { name: 'list-latency', unit: 'ms', better: 'lower' },
      { name: 'lists-per-second', unit: '/s', better: 'higher' }
    ],
    async run() {
      const cri = await ensure()
      const once = performance.now()
      const list = await cri.workloads()
      const latency = performance.now() - once
      if (list.length !== PODS * 2) throw new Error(`expected ${PODS * 2} workloads, CRI listed ${list.length}`)
      const start = performance.now()
      let count = 0
      while (performance.now() - start < 1000) {
        await cri.workloads()
        count++
      }
      return { 'list-latency': latency, 'lists-per-second': count / ((performance.now() - start) / 1000) }
    },
    async teardown() {
      client?.close()
      await ctrd?.stop()
      if (logs != null) rmSync(logs, { recursive: true, force: true })
    }
  }
})()

export const runtimeScenarios: Scenario[] = [supervision, criWorkloads]
