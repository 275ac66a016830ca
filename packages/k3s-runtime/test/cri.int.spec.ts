/**
 * The CRI view against a real containerd + runc (Debian's), started by the
 * test with its own root/state/socket: a sandbox and a container started
 * through the CRI are what the runtime lists and reports.
 */
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isUnavailableError } from '@mycelium/core-interfaces'
import { containerdMissing, runSleepPod, startContainerd, type TestContainerd } from '@mycelium/testing'
import { CriClient, cri } from '../src/index.js'

const missing = containerdMissing()
const describeIf = missing == null ? describe : describe.skip
if (missing != null) console.warn(`skipping CRI tests against containerd: ${missing}`)

describeIf('CRI view against real containerd', () => {
  let ctrd: TestContainerd
  let client: CriClient
  let logs: string

  beforeAll(async () => {
    ctrd = await startContainerd()
    client = new CriClient({ socket: ctrd.socket, callTimeoutMs: 10_000 })
    logs = mkdtempSync(join(tmpdir(), 'mycelium-podlogs-'))
  }, 60_000)

  afterAll(async () => {
    client?.close()
    await ctrd?.stop()
    rmSync(logs, { recursive: true, force: true })
  }, 60_000)

  it('reports the runtime: containerd, its version, RuntimeReady', async () => {
    const info = await client.info()
    expect(info.runtimeName).toBe('containerd')
    expect(info.runtimeVersion).toMatch(/1\.6/)
    expect(info.runtimeApiVersion).toBe('v1')
    expect(info.conditions.RuntimeReady).toBe(true)
  })

  it('lists a pod sandbox and a container started through the CRI, running, with their ids', async () => {
    const { podId, containerId } = await runSleepPod(client.raw, ctrd.busyboxImage, 'web', logs)
    const workloads = await client.workloads()
    expect(workloads).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ id: podId, kind: 'pod', name: 'web', namespace: 'default', state: 'ready' }),
        expect.objectContaining({ id: containerId, kind: 'container', name: 'sleeper', namespace: 'default', state: 'running' })
      ])
    )
    const status = await client.containerStatus(containerId)
    expect(status.state).toBe(cri.ContainerState.CONTAINER_RUNNING)
    expect(status.metadata?.attempt).toBe(0)
    const created = workloads.find((w) => w.id === containerId)!.createdAt!
    expect(Math.abs(created.getTime() - Date.now())).toBeLessThan(120_000)
  }, 60_000)

  it('fails with UnavailableError naming the socket when no runtime answers there', async () => {
    const gone = new CriClient({ socket: join(logs, 'nothing.sock'), callTimeoutMs: 500 })
    try {
      const err = await gone.workloads().catch((e: unknown) => e)
      expect(isUnavailableError(err)).toBe(true)
      expect((err as Error).message).toContain('nothing.sock')
    } finally {
      gone.close()
    }
  })
})
