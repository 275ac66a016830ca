import { DistressProblem, type StatusReport } from '@mycelium/core-interfaces'

const seconds = (d: Date | undefined): number => (d != null ? d.getTime() / 1000 : 0)

/**
 * Emergency contact on /metrics, from status (StatusReport fields 40–42):
 * calls for help sent, when the last was sent (labelled with its problem and
 * whether it was answered), and when help was last received.
 */
export function registerDistressMetrics(
  Counter: typeof import('prom-client').Counter,
  Gauge: typeof import('prom-client').Gauge,
  registry: import('prom-client').Registry,
  status: () => StatusReport
): void {
  new Counter({
    name: 'mycelium_distress_rounds_total',
    help: 'Calls for help sent to peers (one per round) since the agent started',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(status().distressRounds)
    }
  })
  new Gauge({
    name: 'mycelium_distress_last_sent_timestamp_seconds',
    help: 'When the last call for help was sent (unix seconds), labelled with its problem and whether a peer answered it; absent when none was sent',
    labelNames: ['problem', 'answered'],
    registers: [registry],
    collect() {
      this.reset()
      const last = status().lastDistressSent
      if (last != null)
        this.set({ problem: DistressProblem[last.problem] ?? String(last.problem), answered: String(last.answered) }, seconds(last.sentAt))
    }
  })
  new Gauge({
    name: 'mycelium_distress_last_answered_timestamp_seconds',
    help: 'When the last answered call for help was sent (unix seconds): the help received through a peer; 0 when none was answered',
    registers: [registry],
    collect() {
      this.set(seconds(status().lastDistressAnswered?.sentAt))
    }
  })
}
