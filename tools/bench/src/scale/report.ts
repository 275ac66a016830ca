import { writeFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { reconnectChartSvg } from './chart.js'
import type { ScaleRunResult } from './fleet-run.js'

/**
 * The scale runs' part of the report: writes `<out>-scale-reconnects.svg`
 * (the per-second histograms) and returns the markdown that shows it next to
 * the raw per-second counts and the load average of each run. Empty when no
 * scale scenario ran.
 */
export async function scaleReport(runs: ScaleRunResult[], out: string): Promise<string> {
  if (runs.length === 0) return ''
  const svg = `${out}-scale-reconnects.svg`
  await writeFile(svg, await reconnectChartSvg(runs))
  const lines = ['', '### Reconnections per second after a manager restart', '', `![reconnections per second](${basename(svg)})`, '']
  for (const r of runs) {
    const l = r.loadAverage
    lines.push(
      `- ${r.agents} agents over ${r.hosts} processes (load average 1 min: start ${l.start}, steady ${l.steady}, restart ${l.restart}, end ${l.end}):`,
      `  agents MANAGED per second ${r.reconnectsPerSecond.map((c, s) => `${s}s:${c}`).join(' ')};`,
      `  registrations admitted per second ${r.admissionsPerSecond.map((c, s) => `${s}s:${c}`).join(' ')}`
    )
  }
  return `${lines.join('\n')}\n`
}
