import * as grpc from '@grpc/grpc-js'
import { NotFoundError, type AbortOptions, type WorkloadStatus } from '@mycelium/core-interfaces'
import { callUnary, unavailable, type UnaryMethod } from '@mycelium/core-utils'
import * as cri from './generated/runtime/v1/api.js'

/** K3s's embedded containerd serves the CRI here unless `k3s.criSocket` says otherwise. */
export const DEFAULT_CRI_SOCKET = '/run/k3s/containerd/containerd.sock'

export interface CriClientInit {
  /** Unix socket path of the CRI runtime. */
  socket: string
  /** Per-call deadline. Default 2000 ms: a local socket that takes longer is as good as down. */
  callTimeoutMs?: number
}

/** What the runtime says about itself. */
export interface CriRuntimeInfo {
  runtimeName: string
  runtimeVersion: string
  runtimeApiVersion: string
  /** Condition type → holds? (RuntimeReady, NetworkReady). */
  conditions: Record<string, boolean>
}

const CONTAINER_STATES: Record<number, string> = {
  [cri.ContainerState.CONTAINER_CREATED]: 'created',
  [cri.ContainerState.CONTAINER_RUNNING]: 'running',
  [cri.ContainerState.CONTAINER_EXITED]: 'exited',
  [cri.ContainerState.CONTAINER_UNKNOWN]: 'unknown'
}

/** The kubelet's labels on CRI objects, which carry the Kubernetes names. */
const POD_NAMESPACE_LABEL = 'io.kubernetes.pod.namespace'

/** CRI nanosecond timestamps (int64 as a decimal string) → Date; "0" → undefined. */
export function criTime(nanos: string): Date | undefined {
  if (nanos === '' || nanos === '0') return undefined
  return new Date(Number(BigInt(nanos) / 1_000_000n))
}

/**
 * A read-only view of the node's containers through the Kubernetes CRI
 * (`runtime.v1.RuntimeService`) on a unix socket: it works when the
 * Kubernetes API and the managers are gone, because it only needs the
 * container runtime itself. Every call has a deadline and honours an
 * AbortSignal; failures are UnavailableError naming the socket and the call.
 */
export class CriClient {
  readonly socket: string
  private readonly client: cri.RuntimeServiceClient
  private readonly timeoutMs: number

  constructor(init: CriClientInit) {
    this.socket = init.socket
    this.timeoutMs = init.callTimeoutMs ?? 2000
    // A private subchannel and fail-fast calls: this view polls, so a down
    // runtime must answer "unavailable" now rather than after reconnect waits.
    this.client = new cri.RuntimeServiceClient(`unix://${init.socket}`, grpc.credentials.createInsecure(), {
      'grpc.use_local_subchannel_pool': 1,
      // A busy node's ListContainers outgrows gRPC's 4 MiB default; the kubelet allows 16 MiB.
      'grpc.max_receive_message_length': 16 * 1024 * 1024,
      'grpc.initial_reconnect_backoff_ms': 200,
      'grpc.max_reconnect_backoff_ms': 2000
    })
  }

  /** The raw generated client, for callers that create sandboxes (diagnostics, tests). */
  get raw(): cri.RuntimeServiceClient {
    return this.client
  }

  private async call<Req, Res>(name: string, method: UnaryMethod<Req, Res>, request: Req, options: AbortOptions = {}): Promise<Res> {
    const signal = options.signal ?? new AbortController().signal
    try {
      return await callUnary<Req, Res>(method.bind(this.client), request, signal, this.timeoutMs)
    } catch (err) {
      throw unavailable(`CRI ${name} on ${this.socket}`, err as grpc.ServiceError)
    }
  }

  async info(options?: AbortOptions): Promise<CriRuntimeInfo> {
    const version = await this.call<cri.VersionRequest, cri.VersionResponse>('Version', this.client.version, { version: 'v1' }, options)
    const status = await this.call<cri.StatusRequest, cri.StatusResponse>('Status', this.client.status, { verbose: false }, options)
    return {
      runtimeName: version.runtimeName,
      runtimeVersion: version.runtimeVersion,
      runtimeApiVersion: version.runtimeApiVersion,
      conditions: Object.fromEntries((status.status?.conditions ?? []).map((c) => [c.type, c.status]))
    }
  }

  async listPodSandboxes(options?: AbortOptions): Promise<cri.PodSandbox[]> {
    const res = await this.call<cri.ListPodSandboxRequest, cri.ListPodSandboxResponse>(
      'ListPodSandbox',
      this.client.listPodSandbox,
      {},
      options
    )
    return res.items
  }

  async listContainers(options?: AbortOptions): Promise<cri.Container[]> {
    const res = await this.call<cri.ListContainersRequest, cri.ListContainersResponse>(
      'ListContainers',
      this.client.listContainers,
      {},
      options
    )
    return res.containers
  }

  async containerStatus(containerId: string, options?: AbortOptions): Promise<cri.ContainerStatus> {
    const res = await this.call<cri.ContainerStatusRequest, cri.ContainerStatusResponse>(
      'ContainerStatus',
      this.client.containerStatus,
      { containerId, verbose: false },
      options
    )
    if (res.status == null) throw new NotFoundError(`CRI ContainerStatus on ${this.socket}: no status for container ${containerId}`)
    return res.status
  }

  /** Every sandbox and container as the node reports them (status, heartbeats). */
  async workloads(options?: AbortOptions): Promise<WorkloadStatus[]> {
    const [pods, containers] = await Promise.all([this.listPodSandboxes(options), this.listContainers(options)])
    const podNamespace = new Map(pods.map((p) => [p.id, p.metadata?.namespace ?? '']))
    return [
      ...pods.map((p): WorkloadStatus => ({
        id: p.id,
        name: p.metadata?.name ?? '',
        namespace: p.metadata?.namespace ?? '',
        kind: 'pod',
        state: p.state === cri.PodSandboxState.SANDBOX_READY ? 'ready' : 'notready',
        createdAt: criTime(p.createdAt)
      })),
      ...containers.map((c): WorkloadStatus => ({
        id: c.id,
        name: c.metadata?.name ?? '',
        namespace: c.labels[POD_NAMESPACE_LABEL] ?? podNamespace.get(c.podSandboxId) ?? '',
        kind: 'container',
        state: CONTAINER_STATES[c.state] ?? 'unknown',
        createdAt: criTime(c.createdAt)
      }))
    ]
  }

  close(): void {
    this.client.close()
  }
}
