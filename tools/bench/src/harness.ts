import { cpus, totalmem } from 'node:os'

/** One measured quantity of a scenario. */
export interface Metric {
  name: string
  unit: string
  /** "higher" or "lower" is better. */
  better: 'higher' | 'lower'
  /** The target this metric is judged against, if any (reported, never asserted). */
  target?: number
}

export interface Scenario {
  id: string
  description: string
  metrics: Metric[]
  /** How many times the harness runs it. */
  runs: number
  /** One run: a value per metric name. */
  run(): Promise<Record<string, number>>
  /** Releases what the runs shared (called once, after the last run). */
  teardown?(): Promise<void>
}

export interface MetricResult extends Metric {
  samples: number[]
  min: number
  median: number
  max: number
  /** Whether the median meets the target (undefined without one). */
  meetsTarget?: boolean
}

export interface ScenarioResult {
  id: string
  description: string
  metrics: MetricResult[]
  /** Set when the scenario could not finish (the metrics then hold what was measured before). */
  error?: string
}

export interface Machine {
  cpuModel: string
  cores: number
  memoryGiB: number
  node: string
  platform: string
}

export function machine(): Machine {
  return {
    cpuModel: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform}-${process.arch}`
  }
}

function median(sorted: number[]): number {
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

export async function runScenario(scenario: Scenario, log: (line: string) => void): Promise<ScenarioResult> {
  const samples = new Map<string, number[]>(scenario.metrics.map((m) => [m.name, []]))
  let error: string | undefined
  try {
    for (let i = 0; i < scenario.runs; i++) {
      const values = await scenario.run()
      for (const m of scenario.metrics) {
        const v = values[m.name]
        if (v == null) throw new Error(`scenario ${scenario.id} did not report ${m.name}`)
        samples.get(m.name)!.push(v)
      }
      log(
        `  run ${i + 1}/${scenario.runs}: ${Object.entries(values)
          .map(([k, v]) => `${k}=${round(v)}`)
          .join(' ')}`
      )
    }
  } catch (err) {
    error = (err as Error).message
    log(`  failed: ${error}`)
  } finally {
    await scenario.teardown?.().catch(() => undefined)
  }
  return {
    id: scenario.id,
    description: scenario.description,
    ...(error != null ? { error } : {}),
    metrics: scenario.metrics
      .filter((m) => samples.get(m.name)!.length > 0)
      .map((m) => {
        const s = [...samples.get(m.name)!].sort((a, b) => a - b)
        const med = median(s)
        const result: MetricResult = { ...m, samples: samples.get(m.name)!, min: s[0]!, median: med, max: s[s.length - 1]! }
        if (m.target != null) result.meetsTarget = m.better === 'higher' ? med >= m.target : med <= m.target
        return result
      })
  }
}

export function round(v: number): number {
  return Math.abs(v) >= 100 ? Math.round(v) : Math.round(v * 100) / 100
}

export function markdownReport(m: Machine, results: ScenarioResult[], at: Date): string {
  const lines = [
    `Run ${at.toISOString()} on ${m.cpuModel} (${m.cores} cores, ${m.memoryGiB} GiB), Node ${m.node}, ${m.platform}.`,
    '',
    '| scenario | metric | min | median | max | target | met |',
    '| --- | --- | ---: | ---: | ---: | ---: | :---: |'
  ]
  for (const r of results) {
    if (r.error != null) lines.push(`| ${r.id} | did not finish: ${r.error.replace(/\|/g, '/')} | | | | | |`)
    for (const x of r.metrics) {
      const target = x.target == null ? '—' : `${x.better === 'higher' ? '≥' : '≤'} ${x.target} ${x.unit}`
      const met = x.meetsTarget == null ? '—' : x.meetsTarget ? 'yes' : 'no'
      lines.push(`| ${r.id} | ${x.name} (${x.unit}) | ${round(x.min)} | ${round(x.median)} | ${round(x.max)} | ${target} | ${met} |`)
    }
  }
  return `${lines.join('\n')}\n`
}
