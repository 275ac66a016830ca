import type { TrustBundle } from '@mycelium/core-interfaces'

export type CheckStatus = 'passed' | 'failed' | 'skipped'

/** The outcome of one check. */
export interface CheckResult {
  /** Stable name ("handoff.deadline"); JUnit test case name. */
  name: string
  /** One sentence: what a pass proves about the implementation. */
  proves: string
  status: CheckStatus
  /** Why it failed or was skipped; for a pass, what was seen (may be empty). */
  detail: string
  durationMs: number
}

/** Everything one run found. */
export interface ConformanceReport {
  results: CheckResult[]
  passed: number
  failed: number
  skipped: number
  startedAt: Date
  durationMs: number
}

/** Where the implementations under test listen. Each missing target skips the checks that need it. */
export interface ConformanceTargets {
  /** NetworkManager (mTLS), "host:port". */
  networkManager?: string
  /** NetworkManager.Enroll (TLS, no client certificate), "host:port". @default networkManager */
  enrollment?: string
  /** CommandChannel (mTLS), "host:port". @default networkManager */
  commandChannel?: string
  /** SporeService (mTLS), "host:port". */
  sporeService?: string
  /** The https URL of one artifact the Update Manager serves. */
  updateManager?: string
}

/** The node identity the kit presents (PEM files), as a node-core state directory holds them. */
export interface IdentityFiles {
  caFile: string
  certificateFile: string
  keyFile: string
}

/**
 * Ways to make the implementation under test do what only it can start: send
 * this node a command, publish a spore change. Without one, the checks that
 * need it are skipped with the reason.
 */
export interface ConformanceTriggers {
  /** Make the manager send the node a command of `kind` on its command channel; resolves when the trigger is done. */
  sendCommand?: (request: { nodeId: string; networkId: string; kind: 'restart' | 'emergency'; signal: AbortSignal }) => Promise<void>
  /** Make the Spore Manager publish a newer sequence of any spore; resolves when done. */
  changeSpores?: (request: { networkId: string; signal: AbortSignal }) => Promise<void>
}

export interface ConformanceInit extends ConformanceTargets {
  /** The node identity to present. Unset: the identity enrolment gives (needs `joinToken`). */
  identity?: IdentityFiles
  /** A fresh join token: the enrolment checks run and the kit uses the identity they obtain. */
  joinToken?: string
  /** Node id to enrol as. @default "conformance-<random>" */
  nodeId?: string
  /** The network's trust bundle (spore and operator keys); enrolment provides one. Unset and not enrolled: signatures are not verified and the emergency check is skipped. */
  trustBundle?: TrustBundle
  /** Expected "sha256:<hex>" of the `updateManager` artifact. Unset: only consistency of the ranges is checked. */
  artifactDigest?: string
  triggers?: ConformanceTriggers
  /** Only these checks (by name or name prefix, e.g. "handoff."). @default every check */
  only?: string[]
  /** Concurrent registrations sent to provoke RESOURCE_EXHAUSTED. @default 200 */
  admissionBurst?: number
  /** Longest the kit waits for a manager's deadline (handoff, lease, retry-after) to pass; a longer one skips the check. @default 30000 */
  maxWaitMs?: number
  /** Deadline of each call and of each awaited message. @default 5000 */
  callTimeoutMs?: number
  /** Called as each check finishes (progress output). */
  onResult?: (result: CheckResult) => void
  signal?: AbortSignal
}

export const DEFAULT_ADMISSION_BURST = 200
export const DEFAULT_MAX_WAIT_MS = 30_000
export const DEFAULT_CALL_TIMEOUT_MS = 5000
