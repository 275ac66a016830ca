import { readFileSync, readdirSync } from 'node:fs'
import { open, stat, truncate } from 'node:fs/promises'

// Memory and log following for components that outlive the agent (their
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

/**
 * Follows a log file a component appends to, handing over whole lines.
 * Polled from the manager's tick (no timer of its own); truncated in place
 * past `maxBytes` (the writer holds it with O_APPEND).
 */
export class LogFollower {
  private offset = 0
  private partial = ''
  private reading = false

  constructor(
    private readonly path: string,
    private readonly onLine: (line: string) => void,
    private readonly maxBytes: number
  ) {}

  /** `fromEnd` skips what an adopted process wrote before we came (it is in the previous run's log). */
  async begin(fromEnd: boolean): Promise<void> {
    this.offset = fromEnd
      ? await stat(this.path).then(
          (s) => s.size,
          () => 0
        )
      : 0
  }

  async poll(): Promise<void> {
    if (this.reading) return
    this.reading = true
    try {
      const size = await stat(this.path).then(
        (s) => s.size,
        () => 0
      )
      if (size < this.offset) this.offset = 0
      if (size > this.offset) {
        const handle = await open(this.path, 'r')
        try {
          const buf = Buffer.alloc(Math.min(size - this.offset, 1 << 20))
          const { bytesRead } = await handle.read(buf, 0, buf.length, this.offset)
          this.offset += bytesRead
          const lines = (this.partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n')
          this.partial = lines.pop() ?? ''
          for (const line of lines) if (line.trim() !== '') this.onLine(line)
        } finally {
          await handle.close()
        }
      }
      if (this.offset > this.maxBytes) {
        await truncate(this.path, 0)
        this.offset = 0
      }
    } catch {
      // the next poll tries again
    } finally {
      this.reading = false
    }
  }
}
