import { readFileSync } from 'node:fs'

/**
 * Identity of a process that outlives its parent (K3s, dynamic components):
 * its PID plus its start time in clock ticks since boot (field 22 of
 * /proc/<pid>/stat). A PID alone could have been reused by an unrelated
 * process after a reboot or a crash; the pair never matches a reused PID.
 */
export interface ProcessIdentity {
  pid: number
  startTime: string
}

/** The start time of `pid`, or undefined when it is gone or a zombie. */
export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined
    return fields[19]
  } catch {
    return undefined
  }
}

/** True while the very process `id` names runs (not a zombie, not a reuse of its PID). */
export function isAlive(id: ProcessIdentity): boolean {
  return processStartTime(id.pid) === id.startTime
}
