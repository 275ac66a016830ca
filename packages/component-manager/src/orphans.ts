import { readFileSync, readdirSync } from 'node:fs'
import { processStartTime } from '@mycelium/core-utils'

/**
 * The socket a component process was started with, when its command line
 * (`/proc/<pid>/cmdline`, NUL-separated) names one under `runDir`; else
 * undefined. Pure.
 */
export function socketInCmdline(cmdline: string, runDir: string): string | undefined {
  const line = `\0${cmdline}`
  const needle = `\0--socket\0${runDir}/`
  const at = line.indexOf(needle)
  if (at < 0) return undefined
  return line.slice(at + '\0--socket\0'.length).split('\0')[0]!
}

/**
 * Processes whose command line names one of our sockets but that we do not
 * track (`tracked` PIDs): a state file lost while they ran. The caller stops
 * them, so the planner starts exactly one of each.
 */
export function findOrphans(runDir: string, tracked: ReadonlySet<number>): Array<{ pid: number; socket: string }> {
  const out: Array<{ pid: number; socket: string }> = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p) || Number(p) === process.pid || tracked.has(Number(p))) continue
    let cmdline: string
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8')
    } catch {
      continue
    }
    const socket = socketInCmdline(cmdline, runDir)
    if (socket == null || processStartTime(Number(p)) == null) continue
    out.push({ pid: Number(p), socket })
  }
  return out
}
