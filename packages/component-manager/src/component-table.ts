import { DynamicComponentState, type Logger } from '@mycelium/core-interfaces'
import { Backoff, type BackoffOptions } from '@mycelium/core-utils'
import type { ComponentProcess } from './component-process.js'
import type { ComponentSpec } from './planner.js'
import type { LogFollower } from '@mycelium/core-utils'

/** One component as the runner tracks it. */
export interface Entry {
  name: string
  state: DynamicComponentState
  reason: string
  since: Date
  restarts: number
  crashes: number[]
  backoff: Backoff
  /** No install/start of `digest` until `untilMs` (undefined: until the spore names other bytes, or reassignment). */
  blocked?: { digest: string; reason: string; untilMs?: number }
  proc?: ComponentProcess
  follower?: LogFollower
  spec?: ComponentSpec
  assignmentId: string
  /** On-demand: last time it was used (a use() call or work done). */
  lastUseMs?: number
  /** On-demand: a use() waits for it to run. */
  wanted: boolean
  lastWorkCount?: number
}

export interface ComponentTableComponents {
  log: Logger
  /** Something status shows changed (state, reason, a process stopped, a component removed). */
  changed: () => void
}

export interface ComponentTableInit {
  restartBackoff: BackoffOptions
  /** Jitter source in [0, 1). */
  random: () => number
}

/**
 * The entries the manager tracks, one per component name, and the one way
 * their state changes (logged, and `changed` called, only on a real change).
 */
export class ComponentTable {
  private readonly entries = new Map<string, Entry>()

  constructor(
    private readonly components: ComponentTableComponents,
    private readonly init: ComponentTableInit
  ) {}

  get(name: string): Entry | undefined {
    return this.entries.get(name)
  }

  /** The entry for `name`, created (UNSPECIFIED, fresh backoff) when there is none. */
  entry(name: string): Entry {
    let e = this.entries.get(name)
    if (e == null) {
      e = {
        name,
        state: DynamicComponentState.UNSPECIFIED,
        reason: '',
        since: new Date(),
        restarts: 0,
        crashes: [],
        backoff: new Backoff(this.init.restartBackoff, this.init.random),
        assignmentId: '',
        wanted: false
      }
      this.entries.set(name, e)
    }
    return e
  }

  values(): IterableIterator<Entry> {
    return this.entries.values()
  }

  delete(name: string): void {
    this.entries.delete(name)
  }

  clear(): void {
    this.entries.clear()
  }

  setState(e: Entry, state: DynamicComponentState, reason: string): void {
    if (e.state === state && e.reason === reason) return
    e.state = state
    e.reason = reason
    e.since = new Date()
    const failed = state === DynamicComponentState.FAILED || state === DynamicComponentState.BACKOFF
    this.components.log[failed ? 'warn' : 'info']('component state', { name: e.name, state: DynamicComponentState[state], reason })
    this.components.changed()
  }
}
