/**
 * @packageDocumentation
 * The node's container orchestration foundation, K3s: its config derived
 * from NodeConfig (stripped down by default), a pure planner deciding when a
 * restart is needed, binary discovery, and the runtime capability the agent
 * reports. It never stops K3s, so workloads outlive any failure above them.
 */
export { renderK3s, k3sConfigYaml, validateK3sConfig, STRIPPED_COMPONENTS, type RenderedK3s } from './k3s-config.js'
export { planK3s, describeChanges, type K3sStep, type K3sObserved } from './planner.js'
export { findK3sBinary, k3sVersion } from './binary.js'
export { createK3sRuntime, type K3sRuntime, type K3sRuntimeComponents, type K3sRuntimeInit } from './runtime.js'
export { K3sSupervisor, type K3sSupervisorInit, type K3sProcessState, type K3sProcessStatus, type RestartBudget } from './supervisor.js'
export {
  DEFAULT_K3S_STOP_TIMEOUT_MS,
  K3S_KILL_WAIT_MS,
  DEFAULT_K3S_MONITOR_INTERVAL_MS,
  DEFAULT_K3S_PROBE_INTERVAL_MS,
  DEFAULT_WORKLOADS_INTERVAL_MS
} from './defaults.js'
export { processStartTime, isAlive, type ProcessIdentity } from '@mycelium/core-utils'
export { CriClient, criTime, DEFAULT_CRI_SOCKET, type CriClientInit, type CriRuntimeInfo } from './cri.js'
export type { KubeApiView, KubeNode, KubePod } from './kube-api.js'
// The Kubernetes CRI subset (package runtime.v1, upstream names and numbers),
// generated from protos/runtime by `npm run generate`: not a Mycelium
// contract, only this package speaks it, so it lives here in its own namespace.
export * as cri from './generated/runtime/v1/api.js'
