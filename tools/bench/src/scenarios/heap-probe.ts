import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * A preload (`node -r`) for the agent under the footprint bench with
 * `BENCH_HEAP_SNAPSHOTS=<dir>` or `--soak-minutes`: on SIGUSR2 it forces two
 * full GCs (the agent runs with --expose-gc), then writes a heap snapshot and
 * `process.memoryUsage()` to the paths in PROBE_SNAP / PROBE_OUT; on SIGWINCH
 * the same without the snapshot (a cheap post-GC heap sample: writing a
 * snapshot allocates tens of MB that would disturb the RSS series the soak
 * records). Nothing of it is in the daemon itself.
 */
const PRELOAD = `
const fs = require('fs'), v8 = require('v8')
const sample = (snapshot) => {
  global.gc(); global.gc()
  if (snapshot) v8.writeHeapSnapshot(process.env.PROBE_SNAP)
  fs.writeFileSync(process.env.PROBE_OUT + '.tmp', JSON.stringify(process.memoryUsage()))
  fs.renameSync(process.env.PROBE_OUT + '.tmp', process.env.PROBE_OUT)
}
process.on('SIGUSR2', () => sample(true))
process.on('SIGWINCH', () => sample(false))
`

export function writeHeapProbe(dir: string): string {
  const path = join(dir, 'heap-probe.cjs')
  writeFileSync(path, PRELOAD)
  return path
}

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[]] } }
  nodes: number[]
  strings: string[]
}

/** Self size and count per "type:constructor" of a .heapsnapshot file. */
export function heapByConstructor(file: string): Map<string, { bytes: number; count: number }> {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot
  const fields = s.snapshot.meta.node_fields
  const width = fields.length
  const [type, name, self] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f)) as [number, number, number]
  const types = s.snapshot.meta.node_types[0]
  const out = new Map<string, { bytes: number; count: number }>()
  for (let i = 0; i < s.nodes.length; i += width) {
    const t = types[s.nodes[i + type]!]!
    // Strings and closures by content/name would not aggregate: group them by type only.
    const n = t === 'object' || t === 'native' || t === 'hidden' ? s.strings[s.nodes[i + name]!]!.slice(0, 60) : ''
    const key = `${t}:${n}`
    const a = out.get(key) ?? { bytes: 0, count: 0 }
    a.bytes += s.nodes[i + self]!
    a.count++
    out.set(key, a)
  }
  return out
}

/** The `top` entries that changed most (by bytes) from snapshot `a` to `b`, one line each. */
export function heapDiff(a: string, b: string, top = 15): string[] {
  const before = heapByConstructor(a)
  const after = heapByConstructor(b)
  const keys = new Set([...before.keys(), ...after.keys()])
  return [...keys]
    .map((k) => ({
      k,
      bytes: (after.get(k)?.bytes ?? 0) - (before.get(k)?.bytes ?? 0),
      count: (after.get(k)?.count ?? 0) - (before.get(k)?.count ?? 0)
    }))
    .filter((d) => d.bytes !== 0 || d.count !== 0)
    .sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes))
    .slice(0, top)
    .map((d) => `${d.bytes >= 0 ? '+' : ''}${d.bytes} B ${d.count >= 0 ? '+' : ''}${d.count} × ${d.k}`)
}
