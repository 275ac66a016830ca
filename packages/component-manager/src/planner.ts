/**
 * The component planner: what to do to bring the node's dynamic components
 * from what is there to what the assignments want. Pure — the runner
 * (ComponentManager) executes the steps one at a time, in order: stops and
 * removals first (they free memory and disk), then installs, then starts.
 *
 * Invariants: a component with a problem (no verified spore, bad spore
 * field) is refused without touching what already runs; a component
 * blocked (backoff after a crash, failed install of the same digest,
 * restart budget spent) gets no install or start until unblocked; an
 * upgrade keeps the old version installed until the new one is healthy (the
 * runner rolls back otherwise); an on-demand component is installed at
 * assignment but started only while in use.
 */

/** A component as its verified spore describes it (ComponentBody, defaults applied). */
export interface ComponentSpec {
  name: string
  version: string
  /** "sha256:<hex>" */
  digest: string
  urls: string[]
  /** Path of the entry inside the unpacked artifact. */
  entry: string
  args: string[]
  /** Exact artifact size; 0 = unknown. */
  sizeBytes: number
  contractVersion: number
  memoryLimitBytes: number
  cpuMillis: number
  heapLimitMb: number
  onDemand: boolean
  idleTimeoutMs: number
}

export interface DesiredComponent {
  name: string
  assignmentId: string
  /** The assignment's desired state is "running". */
  run: boolean
  parameters: Record<string, string>
  /** Absent when `problem` says why the component cannot be placed. */
  spec?: ComponentSpec
  problem?: string
}

export interface ObservedComponent {
  name: string
  /** Digests installed (complete, verified installs only). */
  installed: string[]
  /** The process that runs now (starting or running). */
  running?: { digest: string; parametersKey: string }
  /** No install or start now: backoff after an exit, a failed install of this digest, budget spent. */
  blocked?: { digest: string; reason: string }
  /** On-demand: a use is pending or the component is used within its idle time. */
  inUse?: boolean
}

export type ComponentStep =
  | { type: 'refuse'; name: string; reason: string }
  | { type: 'stop'; name: string; reason: string }
  | { type: 'remove'; name: string; reason: string }
  | { type: 'install'; name: string; spec: ComponentSpec }
  | { type: 'start'; name: string; spec: ComponentSpec; parameters: Record<string, string>; reason: string }
  | { type: 'restart'; name: string; spec: ComponentSpec; parameters: Record<string, string>; reason: string }
  | { type: 'upgrade'; name: string; from: string; spec: ComponentSpec; parameters: Record<string, string> }

/** A stable key of assignment parameters: a change restarts the component. */
export function parametersKey(parameters: Record<string, string>): string {
  return JSON.stringify(
    Object.keys(parameters)
      .sort()
      .map((k) => [k, parameters[k]])
  )
}

const ORDER: Record<ComponentStep['type'], number> = { refuse: 0, stop: 1, remove: 2, install: 3, restart: 4, upgrade: 5, start: 6 }

export function planComponents(observed: ObservedComponent[], desired: DesiredComponent[]): ComponentStep[] {
  const steps: ComponentStep[] = []
  const wanted = new Map(desired.map((d) => [d.name, d]))
  for (const o of observed) {
    if (wanted.has(o.name)) continue
    if (o.running != null) steps.push({ type: 'stop', name: o.name, reason: 'no longer assigned' })
    steps.push({ type: 'remove', name: o.name, reason: 'no longer assigned' })
  }
  const seen = new Map(observed.map((o) => [o.name, o]))
  for (const d of desired) {
    const o = seen.get(d.name) ?? { name: d.name, installed: [] }
    if (d.spec == null) {
      steps.push({ type: 'refuse', name: d.name, reason: d.problem ?? 'no spore' })
      continue
    }
    const spec = d.spec
    if (!d.run) {
      if (o.running != null) steps.push({ type: 'stop', name: d.name, reason: 'assignment desired state is "stopped"' })
      continue
    }
    const wantsProcess = !spec.onDemand || o.inUse === true
    if (o.running != null && !wantsProcess) {
      steps.push({ type: 'stop', name: d.name, reason: 'on-demand component idle' })
      continue
    }
    if (o.blocked != null && o.blocked.digest === spec.digest) continue
    if (!o.installed.includes(spec.digest)) steps.push({ type: 'install', name: d.name, spec })
    if (!wantsProcess) continue
    const key = parametersKey(d.parameters)
    if (o.running == null) {
      steps.push({ type: 'start', name: d.name, spec, parameters: d.parameters, reason: spec.onDemand ? 'first use' : 'assigned' })
    } else if (o.running.digest !== spec.digest) {
      steps.push({ type: 'upgrade', name: d.name, from: o.running.digest, spec, parameters: d.parameters })
    } else if (o.running.parametersKey !== key) {
      steps.push({ type: 'restart', name: d.name, spec, parameters: d.parameters, reason: 'assignment parameters changed' })
    }
  }
  // Stable: by kind, then in the order they were planned.
  return steps
    .map((s, i) => ({ s, i }))
    .sort((a, b) => ORDER[a.s.type] - ORDER[b.s.type] || a.i - b.i)
    .map((x) => x.s)
}
