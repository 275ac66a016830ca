import { isDeepStrictEqual } from 'node:util'
import type { RenderedK3s } from './k3s-config.js'

/**
 * What to do to bring K3s from what runs to what is desired. Pure; the
 * supervisor executes the steps. K3s is never killed to "disable" it: pods
 * keep running, as K3s itself promises, and the node simply stops managing it.
 */
export type K3sStep =
  | { type: 'write-config'; yaml: string }
  | { type: 'start'; reason: string }
  | { type: 'restart'; reason: string }
  | { type: 'unmanage'; reason: string }

export interface K3sObserved {
  /** What K3s was last started with (undefined: never started by us). */
  applied?: RenderedK3s
  running: boolean
}

export function planK3s(observed: K3sObserved, desired: RenderedK3s | undefined, yaml: (r: RenderedK3s) => string): K3sStep[] {
  if (desired == null) {
    return observed.running ? [{ type: 'unmanage', reason: 'k3s disabled in NodeConfig: left running, no longer supervised' }] : []
  }
  const applied = observed.applied
  const changes = applied == null ? ['first start'] : describeChanges(applied, desired)
  const write: K3sStep[] = changes.length > 0 ? [{ type: 'write-config', yaml: yaml(desired) }] : []
  if (!observed.running)
    return [
      ...write,
      { type: 'start', reason: applied == null ? 'k3s not running' : `k3s not running (${changes.join(', ') || 'same config'})` }
    ]
  if (changes.length === 0) return []
  return [...write, { type: 'restart', reason: `changed: ${changes.join(', ')}` }]
}

/** Which parts differ, by name, for the restart reason and the logs. */
export function describeChanges(a: RenderedK3s, b: RenderedK3s): string[] {
  const out: string[] = []
  if (a.role !== b.role) out.push(`role ${a.role} → ${b.role}`)
  if (a.binary !== b.binary) out.push('binary')
  if (!isDeepStrictEqual(a.extraArgs, b.extraArgs)) out.push('extra args')
  const keys = new Set([...Object.keys(a.config), ...Object.keys(b.config)])
  for (const k of [...keys].sort()) if (!isDeepStrictEqual(a.config[k], b.config[k])) out.push(k)
  return out
}
