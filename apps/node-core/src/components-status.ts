import { DynamicComponentState, type StatusReport } from '@mycelium/core-interfaces'

// Dynamic components in `node-core status` and /metrics. Kept apart from
// components.ts so the status command never loads the component manager.

/** `node-core status` rows for dynamic components. */
export function componentStatusRows(s: StatusReport): Array<[string, string]> {
  return s.dynamicComponents.map((c): [string, string] => [
    `component/${c.name}`,
    `${c.version} ${DynamicComponentState[c.state] ?? '?'}${c.pid ? ` pid ${c.pid}, ${Math.round(c.rssBytes / 1048576)} MiB` : ''}${c.restarts ? `, ${c.restarts} restarts` : ''}${c.onDemand ? ', on-demand' : ''}${c.reason ? ` (${c.reason})` : ''}`
  ])
}

/** Prometheus gauges for dynamic components (http-server.ts registers them). */
export function registerComponentMetrics(
  Gauge: typeof import('prom-client').Gauge,
  registry: import('prom-client').Registry,
  status: () => StatusReport
): void {
  new Gauge({
    name: 'mycelium_dynamic_component_rss_bytes',
    help: 'Resident memory of a dynamic component process tree (0 when not running)',
    labelNames: ['component', 'version'],
    registers: [registry],
    collect() {
      this.reset()
      for (const c of status().dynamicComponents) this.set({ component: c.name, version: c.version }, c.rssBytes)
    }
  })
  new Gauge({
    name: 'mycelium_dynamic_component_state',
    help: '1 for the state a dynamic component is in, by component and state',
    labelNames: ['component', 'state'],
    registers: [registry],
    collect() {
      this.reset()
      for (const c of status().dynamicComponents) this.set({ component: c.name, state: DynamicComponentState[c.state] ?? '?' }, 1)
    }
  })
  new Gauge({
    name: 'mycelium_dynamic_component_restarts',
    help: 'Restarts of a dynamic component since the agent started supervising it',
    labelNames: ['component'],
    registers: [registry],
    collect() {
      this.reset()
      for (const c of status().dynamicComponents) this.set({ component: c.name }, c.restarts)
    }
  })
  new Gauge({
    name: 'mycelium_assignments_generation',
    help: 'The assignment generation the node has applied',
    registers: [registry],
    collect() {
      this.set(status().assignmentsGeneration)
    }
  })
}
