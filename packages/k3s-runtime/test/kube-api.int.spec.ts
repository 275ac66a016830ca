/**
 * The Kubernetes API view with the real @kubernetes/client-node against the
 * stand-in K3s's HTTPS API (client-certificate auth, from the kubeconfig it
 * writes): nodes, pods, /readyz. No mocking of the client library.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { isUnavailableError } from '@mycelium/core-interfaces'
import { FAKE_K3S, until } from '@mycelium/testing'
import { KubeApiView } from '../src/kube-api.js'

const waitForFile = (path: string): Promise<true> => until(`${path} to be written`, () => existsSync(path), 15_000)

describe('KubeApiView (real @kubernetes/client-node)', () => {
  let dir: string
  let k3s: ChildProcess
  let view: KubeApiView

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'mycelium-kubeapi-'))
    const kubeconfig = join(dir, 'kubeconfig.yaml')
    writeFileSync(
      join(dir, 'config.yaml'),
      `data-dir: ${dir}/data\nwrite-kubeconfig: ${kubeconfig}\nnode-name: edge-7\nnode-label: [zone=lab]\n`
    )
    const pods = [
      {
        metadata: { namespace: 'kube-system', name: 'coredns-1' },
        spec: { nodeName: 'edge-7' },
        status: { phase: 'Running', containerStatuses: [{ name: 'coredns', restartCount: 2, ready: true, image: 'c', imageID: 'c' }] }
      },
      { metadata: { namespace: 'default', name: 'web-0' }, spec: { nodeName: 'edge-7' }, status: { phase: 'Pending' } }
    ]
    rmSync(join(dir, 'data'), { recursive: true, force: true })
    k3s = spawn(FAKE_K3S, ['server', '--config', join(dir, 'config.yaml'), '--https-listen-port', '0'], { stdio: 'ignore' })
    await waitForFile(join(dir, 'data', 'starts.log'))
    writeFileSync(join(dir, 'data', 'pods.json'), JSON.stringify(pods))
    await waitForFile(kubeconfig)
    view = new KubeApiView({ kubeconfig })
  }, 30_000)

  afterAll(() => {
    k3s?.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  })

  it('answers /readyz through the kubeconfig K3s wrote', async () => {
    await expect(view.readyz()).resolves.toBe(true)
  })

  it('lists the node with its readiness, version and labels', async () => {
    expect(await view.nodes()).toEqual([{ name: 'edge-7', ready: true, kubeletVersion: 'v1.30.4+k3s1', labels: { zone: 'lab' } }])
  })

  it('lists pods in every namespace with phase and restart counts', async () => {
    expect(await view.pods()).toEqual([
      { namespace: 'kube-system', name: 'coredns-1', phase: 'Running', nodeName: 'edge-7', restarts: 2 },
      { namespace: 'default', name: 'web-0', phase: 'Pending', nodeName: 'edge-7', restarts: 0 }
    ])
  })

  it('is unavailable, naming the kubeconfig, before K3s wrote one', async () => {
    const err = await new KubeApiView({ kubeconfig: join(dir, 'absent.yaml') }).pods().catch((e: unknown) => e)
    expect(isUnavailableError(err)).toBe(true)
    expect((err as Error).message).toContain('absent.yaml')
  })

  it('is unavailable when the API refuses the client certificate in the kubeconfig', async () => {
    const bad = join(dir, 'bad.yaml')
    const { readFileSync } = await import('node:fs')
    const good = readFileSync(join(dir, 'kubeconfig.yaml'), 'utf8')
    writeFileSync(
      bad,
      good.replace(/client-certificate-data: \S+/, 'client-certificate-data: ' + Buffer.from('not a cert').toString('base64'))
    )
    const err = await new KubeApiView({ kubeconfig: bad }).nodes().catch((e: unknown) => e)
    expect(isUnavailableError(err)).toBe(true)
  })
})
