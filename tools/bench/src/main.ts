import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { Command } from 'commander'
import { machine, markdownReport, runScenario, type Scenario, type ScenarioResult } from './harness.js'
import { agentScenarios } from './scenarios/agent-scenarios.js'
import { fleetScenarios, scaleSeries } from './scenarios/fleet-scenarios.js'
import { scaleReport } from './scale/report.js'
import { runtimeScenarios } from './scenarios/runtime-scenarios.js'
import { sporeVerifyScenarios } from './scenarios/spore-verify.js'
import { componentScenarios } from './scenarios/component-scenarios.js'
import { distressScenarios } from './scenarios/distress-scenarios.js'
import { selfUpdateScenarios } from './scenarios/self-update.js'

const ALL: Scenario[] = [
  ...agentScenarios(),
  ...fleetScenarios(),
  ...sporeVerifyScenarios,
  ...runtimeScenarios,
  ...componentScenarios,
  ...distressScenarios(),
  ...selfUpdateScenarios()
]

const program = new Command('bench')
  .description('Run the Mycelium core benchmarks and write bench-results.json and bench-results.md')
  .option('--only <ids...>', 'scenario ids or id prefixes to run (default: all)')
  .option('--out <prefix>', 'report path prefix', 'bench-results')
  .option('--list', 'list scenarios and exit')
  .option(
    '--soak-minutes <n>',
    'footprint: churn this many minutes (growth every 10 min), post-GC heap samples and snapshots (--expose-gc)'
  )
  .option('--merge', "keep the results of scenarios not run now from the report's existing JSON")
  .parse()

const opts = program.opts<{ only?: string[]; out: string; list?: boolean; soakMinutes?: string; merge?: boolean }>()
if (opts.soakMinutes != null) {
  const soakMinutes = Number(opts.soakMinutes)
  if (!Number.isInteger(soakMinutes) || soakMinutes < 1) {
    console.error(`--soak-minutes must be a whole number of minutes ≥ 1, not ${opts.soakMinutes}`)
    process.exit(2)
  }
  const soak = agentScenarios({ soakMinutes }).find((s) => s.id === 'footprint')!
  ALL.splice(
    ALL.findIndex((s) => s.id === 'footprint'),
    1,
    soak
  )
}
if (opts.list === true) {
  for (const s of ALL) console.log(`${s.id}\t${s.description}`)
  process.exit(0)
}
const chosen = opts.only == null ? ALL : ALL.filter((s) => opts.only!.some((o) => s.id === o || s.id.startsWith(o)))
if (chosen.length === 0) {
  console.error(`no scenario matches ${opts.only!.join(', ')}; try --list`)
  process.exit(2)
}

// Made now, not at the end: a run of many minutes must not be lost to a missing folder in --out.
await mkdir(dirname(resolve(opts.out)), { recursive: true })

const m = machine()
console.log(`machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}`)
const results: ScenarioResult[] = []
for (const s of chosen) {
  console.log(`${s.id}: ${s.description}`)
  results.push(await runScenario(s, (line) => console.log(line)))
}
if (opts.merge === true) {
  const kept = await readFile(`${opts.out}.json`, 'utf8').then(
    (t) => (JSON.parse(t) as { results: ScenarioResult[] }).results,
    () => []
  )
  results.unshift(...kept.filter((k) => !results.some((r) => r.id === k.id)))
}
const at = new Date()
const md = markdownReport(m, results, at) + (await scaleReport(scaleSeries, opts.out))
await writeFile(`${opts.out}.json`, `${JSON.stringify({ at: at.toISOString(), machine: m, results }, null, 2)}\n`)
await writeFile(`${opts.out}.md`, md)
console.log(`\n${md}`)
console.log(`wrote ${opts.out}.json and ${opts.out}.md`)
