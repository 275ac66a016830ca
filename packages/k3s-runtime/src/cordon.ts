import { access } from 'node:fs/promises'
import { UnavailableError, type AbortOptions } from '@mycelium/core-interfaces'
import { anySignal } from '@mycelium/core-utils'

/**
 * Cordon and uncordon a node through the Kubernetes API (what `kubectl
 * cordon` does: a merge patch of `spec.unschedulable`), from the kubeconfig
 * K3s writes. Running pods are untouched: only new ones are no longer
 * scheduled here. @kubernetes/client-node is loaded on first use.
 */
export async function setUnschedulable(
  kubeconfig: string,
  nodeName: string,
  unschedulable: boolean,
  options: AbortOptions & { timeoutMs?: number } = {}
): Promise<void> {
  try {
    await access(kubeconfig)
  } catch {
    throw new UnavailableError(`kubeconfig ${kubeconfig} not written yet (K3s not serving)`)
  }
  const k8s = await import('@kubernetes/client-node')
  const kc = new k8s.KubeConfig()
  kc.loadFromFile(kubeconfig)
  const { signal, dispose } = anySignal([AbortSignal.timeout(options.timeoutMs ?? 5000), options.signal])
  try {
    const patch = kc
      .makeApiClient(k8s.CoreV1Api)
      .patchNode({ name: nodeName, body: { spec: { unschedulable } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch))
    // The generated client takes no signal: the call is abandoned (not waited for) when the signal fires.
    await Promise.race([
      patch,
      new Promise<never>((_resolve, reject) => {
        if (signal.aborted) reject(new Error('timed out or aborted'))
        signal.addEventListener('abort', () => reject(new Error('timed out or aborted')), { once: true })
      })
    ])
  } catch (err) {
    throw new UnavailableError(
      `Kubernetes API ${unschedulable ? 'cordon' : 'uncordon'} node ${nodeName} via ${kubeconfig}: ${(err as Error).message}`,
      undefined,
      { cause: err }
    )
  } finally {
    dispose()
  }
}
