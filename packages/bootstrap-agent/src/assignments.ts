import {
  silentLogger,
  type Assignment,
  type DynamicComponentStatus,
  type Logger,
  type RegisterNodeResponse,
  type ReportHealthResponse
} from '@mycelium/core-interfaces'
import type { ManagerLink } from './manager-link.js'

/** A full set of assignments from the Network Manager, with its generation. */
export interface AssignmentsUpdate {
  generation: number
  assignments: Assignment[]
  /** Where it came from: the registration reply, or RequestAssignments after an ack announced a newer generation. */
  source: 'registration' | 'request'
}

/** What the node's component manager reports back (heartbeats): its components and the generation it applied. */
export interface ComponentsReport {
  components: DynamicComponentStatus[]
  generation: number
}

/**
 * Follows the node's assignments: the registration reply carries the full
 * set and its generation; each heartbeat ack carries the current generation,
 * and when it moves past the one the node holds, RequestAssignments fetches
 * the new set (one call at a time; a failed call is tried again on the next
 * ack — acks come on the heartbeat interval, so retries are paced by the
 * manager's own schedule and end with the lease). Every new set goes to
 * `onAssignments` (node-core's component manager persists and reconciles it).
 */
export class AssignmentFollower {
  private known = 0
  private requesting = false
  private readonly log: Logger

  constructor(
    private readonly link: ManagerLink,
    private readonly onAssignments: ((update: AssignmentsUpdate) => void) | undefined,
    logger: Logger = silentLogger()
  ) {
    this.log = logger
  }

  /** The generation the node holds (0: none yet in this run). */
  get generation(): number {
    return this.known
  }

  /** A registration reply states the whole set: applied as it is (a manager restart may have reset its generations). */
  onRegistered(res: RegisterNodeResponse): void {
    this.known = res.assignmentsGeneration
    this.deliver({ generation: res.assignmentsGeneration, assignments: res.assignments, source: 'registration' })
  }

  /** Each heartbeat ack: fetch the set when the manager's generation moved past ours. */
  onAck(ack: ReportHealthResponse, leaseId: string, signal: AbortSignal | undefined): void {
    if (signal == null || this.requesting || ack.assignmentsGeneration <= this.known) return
    this.requesting = true
    const wanted = ack.assignmentsGeneration
    void this.link
      .requestAssignments(leaseId, this.known, signal)
      .then((res) => {
        if (signal.aborted || !res.changed || res.generation <= this.known) return
        this.known = res.generation
        this.deliver({ generation: res.generation, assignments: res.assignments, source: 'request' })
      })
      .catch((err: unknown) => {
        if (!signal.aborted) this.log.warn('RequestAssignments failed; asking again on the next ack', { generation: wanted, err })
      })
      .finally(() => {
        this.requesting = false
      })
  }

  private deliver(update: AssignmentsUpdate): void {
    this.log.info('assignments', {
      generation: update.generation,
      source: update.source,
      assignments: update.assignments.map((a) => `${a.componentSpore}=${a.desiredState}`)
    })
    try {
      this.onAssignments?.(update)
    } catch (err) {
      this.log.error('assignments handler failed', { err })
    }
  }
}

/** The heartbeat fields a component report fills (none without a component manager). */
export function componentsReportFields(report: (() => ComponentsReport) | undefined): {
  dynamicComponents: DynamicComponentStatus[]
  appliedAssignmentsGeneration: number
} {
  const r = report?.()
  return { dynamicComponents: r?.components ?? [], appliedAssignmentsGeneration: r?.generation ?? 0 }
}
