import { readdirSync, readFileSync } from 'node:fs'
import { processStartTime, type ProcessIdentity } from '@mycelium/core-utils'

/**
 * A running process whose command line has `--config <configPath>`: the K3s
 * we started, found even when our state file was lost, so a second K3s is
 * never started beside it.
 */
export function findByConfigArg(configPath: string): ProcessIdentity | undefined {
  const needle = `\0--config\0${configPath}\0`
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue
    try {
      if (!`\0${readFileSync(`/proc/${entry}/cmdline`, 'utf8')}`.includes(needle)) continue
    } catch {
      continue
    }
    const startTime = processStartTime(Number(entry))
    if (startTime != null) return { pid: Number(entry), startTime }
  }
  return undefined
}
