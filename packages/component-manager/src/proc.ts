import { readFileSync, readdirSync } from 'node:fs'

// Memory of components that outlive the agent (their
// identity, PID plus start time, is @mycelium/core-utils' ProcessIdentity).

/** Resident set size of a process and its descendants in bytes (0 when gone). */
export function rssOfTree(pid: number): number {
  let total = rssOf(pid)
  for (const child of childrenOf(pid)) total += rssOfTree(child)
  return total
}

export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m != null ? Number(m[1]) * 1024 : 0
  } catch {
    return 0
  }
}

function childrenOf(pid: number): number[] {
  const out: number[] = []
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      const text = readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').trim()
      if (text !== '') out.push(...text.split(' ').map(Number))
    }
  } catch {
    // gone, or no /proc children file on this kernel
  }
  return out
}
