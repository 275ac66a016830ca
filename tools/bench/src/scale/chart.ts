import { compile, type TopLevelSpec } from 'vega-lite'
import { parse, View } from 'vega'
import type { ScaleRunResult } from './fleet-run.js'

/**
 * The per-second reconnect histograms of the scale runs as one SVG (Vega-Lite
 * compiled to Vega, rendered headless by Vega's SVG renderer: no canvas, no
 * browser): per fleet, the share of the fleet that became MANAGED in each
 * second after the new manager process started, the manager's admitted
 * registrations beside it, and the 5 % bound as a rule.
 */
export async function reconnectChartSvg(runs: ScaleRunResult[], boundPercent = 5): Promise<string> {
  const values = runs.flatMap((r) => [
    ...r.reconnectsPerSecond.map((c, second) => ({
      fleet: `${r.agents} agents`,
      second,
      share: (100 * c) / r.agents,
      series: 'agents MANAGED'
    })),
    ...r.admissionsPerSecond.map((c, second) => ({
      fleet: `${r.agents} agents`,
      second,
      share: (100 * c) / r.agents,
      series: 'registrations admitted'
    }))
  ])
  const spec: TopLevelSpec = {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Reconnections per second after a manager restart (share of the fleet)',
    data: { values },
    facet: { row: { field: 'fleet', type: 'nominal', title: null } },
    spec: {
      width: 640,
      height: 140,
      layer: [
        {
          mark: { type: 'bar' },
          encoding: {
            x: {
              field: 'second',
              type: 'ordinal',
              title: 'seconds after the new manager process started',
              axis: { labelAngle: 0, labelOverlap: true }
            },
            xOffset: { field: 'series' },
            y: { field: 'share', type: 'quantitative', title: '% of fleet' },
            color: { field: 'series', type: 'nominal', title: null, legend: { orient: 'top' } }
          }
        },
        {
          mark: { type: 'rule', color: 'firebrick', strokeDash: [4, 3] },
          encoding: { y: { datum: boundPercent } }
        }
      ]
    },
    resolve: { scale: { x: 'independent' } }
  }
  const view = new View(parse(compile(spec).spec), { renderer: 'none' })
  return view.toSVG()
}
