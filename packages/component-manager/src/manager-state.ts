import { Assignment, type Logger } from '@mycelium/core-interfaces'
import { readStateFile, writeStateFile } from '@mycelium/core-utils'
import type { RunRecord } from './component-process.js'
import type { ComponentSpec } from './planner.js'
import type { Pin } from './reconcile-inputs.js'

/** The manager's state file (`<dir>/state`) as JSON. */
export interface PersistedState {
  generation: number
  assignments: unknown[]
  known: Record<string, ComponentSpec>
  running: Record<string, RunRecord>
  /** Versions an `update` command put in place of the spore's, while the spore still names `base`. */
  pinned?: Record<string, Pin>
}

/** What the state file holds, decoded. */
export interface ManagerStateData {
  generation: number
  assignments: Assignment[]
  /** The spec last proven (installed, or run) for each component: what runs when its spore is gone. */
  known: Record<string, ComponentSpec>
  /** The processes running when it was written (PID + start time, socket): adopted at the next start. */
  running: Record<string, RunRecord>
  pinned: Record<string, Pin>
}

/** The state file's bytes. Pure. */
export function encodeManagerState(s: ManagerStateData): Buffer {
  const out: PersistedState = {
    generation: s.generation,
    assignments: s.assignments.map((a) => Assignment.toJSON(a)),
    known: s.known,
    running: s.running,
    pinned: s.pinned
  }
  return Buffer.from(JSON.stringify(out))
}

/** The state file's bytes, decoded; a file written before `update` pins existed has none. Pure. */
export function decodeManagerState(data: Buffer): ManagerStateData {
  const s = JSON.parse(data.toString('utf8')) as PersistedState
  return {
    generation: s.generation,
    assignments: s.assignments.map((a) => Assignment.fromJSON(a)),
    known: s.known,
    running: s.running,
    pinned: s.pinned ?? {}
  }
}

/**
 * The state file (atomic, checksummed, the previous copy kept by
 * core-utils): read once at start, written after every change the manager
 * must survive a restart with. A file that cannot be read or written is
 * logged, never thrown: the node keeps running what runs.
 */
export class ManagerStateFile {
  constructor(
    private readonly log: Logger,
    private readonly file: string
  ) {}

  /** The stored state, or undefined when there is none or it is unreadable (logged). */
  async read(): Promise<ManagerStateData | undefined> {
    const file = await readStateFile(this.file).catch((err: unknown) => {
      this.log.error('component state unreadable; starting with no assignments', { err })
      return undefined
    })
    if (file?.recoveredFromPrevious != null) this.log.warn('component state recovered from its previous copy', file.recoveredFromPrevious)
    if (file == null) return undefined
    return decodeManagerState(file.data)
  }

  async write(s: ManagerStateData): Promise<void> {
    try {
      await writeStateFile(this.file, encodeManagerState(s))
    } catch (err) {
      this.log.error('component state not saved', { err })
    }
  }
}
