import { access } from 'node:fs/promises'
import { UnavailableError, type AbortOptions } from '@mycelium/core-interfaces'
import { anySignal } from '@mycelium/core-utils'
import type * as K8s from '@kubernetes/client-node'

let loaded: Promise<typeof K8s> | undefined

/**
 * @kubernetes/client-node is loaded on first use: it is large, ESM-only, and
 * a node without a running K3s server never needs it.
 */
function loadK8s(): Promise<typeof K8s> {
  loaded ??= import('@kubernetes/client-node')
  return loaded
}

/** A Kubernetes node as the core reports it. */
export interface KubeNode {
  name: string
  ready: boolean
  kubeletVersion: string
  labels: Record<string, string>
}

/** A pod as the core reports it. */
export interface KubePod {
  namespace: string
  name: string
  phase: string
  nodeName: string
  /** Sum of the pod's container restarts, as the kubelet counts them. */
  restarts: number
}

/**
 * The Kubernetes API view of the node, through the real
 * `@kubernetes/client-node`, from the kubeconfig K3s writes. Only useful
 * while K3s's API answers; the CRI view covers the time it does not.
 */
export class KubeApiView {
  constructor(private readonly init: { kubeconfig: string; timeoutMs?: number }) {}

  private async config(): Promise<{ k8s: typeof K8s; kc: K8s.KubeConfig }> {
    try {
      await access(this.init.kubeconfig)
    } catch {
      throw new UnavailableError(`kubeconfig ${this.init.kubeconfig} not written yet`)
    }
    const k8s = await loadK8s()
    const kc = new k8s.KubeConfig()
    kc.loadFromFile(this.init.kubeconfig)
    return { k8s, kc }
  }

  /** The API's /readyz: true only on 200. */
  async readyz(options: AbortOptions = {}): Promise<boolean> {
    const { k8s, kc } = await this.config()
    // anySignal, not AbortSignal.any: the caller's signal outlives this probe (see anySignal).
    const { signal, dispose } = anySignal([AbortSignal.timeout(this.init.timeoutMs ?? 3000), options.signal])
    try {
      return await new k8s.Health(kc).readyz({ signal } as object)
    } catch (err) {
      throw new UnavailableError(`GET /readyz via ${this.init.kubeconfig}: ${(err as Error).message}`, undefined, { cause: err })
    } finally {
      dispose()
    }
  }

  async nodes(): Promise<KubeNode[]> {
    const list = await this.core('list nodes', (api) => api.listNode())
    return list.items.map((n) => ({
      name: n.metadata?.name ?? '',
      ready: (n.status?.conditions ?? []).some((c) => c.type === 'Ready' && c.status === 'True'),
      kubeletVersion: n.status?.nodeInfo?.kubeletVersion ?? '',
      labels: n.metadata?.labels ?? {}
    }))
  }

  async pods(): Promise<KubePod[]> {
    const list = await this.core('list pods', (api) => api.listPodForAllNamespaces())
    return list.items.map((p) => ({
      namespace: p.metadata?.namespace ?? '',
      name: p.metadata?.name ?? '',
      phase: p.status?.phase ?? 'Unknown',
      nodeName: p.spec?.nodeName ?? '',
      restarts: (p.status?.containerStatuses ?? []).reduce((sum, c) => sum + (c.restartCount ?? 0), 0)
    }))
  }

  /** One CoreV1 call; failures are UnavailableError naming the call and the kubeconfig. */
  private async core<T>(what: string, call: (api: K8s.CoreV1Api) => Promise<T>): Promise<T> {
    const { k8s, kc } = await this.config()
    try {
      return await call(kc.makeApiClient(k8s.CoreV1Api))
    } catch (err) {
      throw new UnavailableError(`Kubernetes API ${what} via ${this.init.kubeconfig}: ${(err as Error).message}`, undefined, { cause: err })
    }
  }
}
