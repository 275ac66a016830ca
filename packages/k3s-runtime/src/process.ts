import { readdirSync, readFileSync } from 'node:fs'
import { open, stat, truncate } from 'node:fs/promises'
import { processStartTime, type ProcessIdentity } from '@mycelium/core-utils'

/**
 * Follows a log file another process appends to, handing over whole lines.
 * Polling (not fs.watch): it works on every filesystem and survives the
 * file being truncated or replaced.
 */
export class LogFollower {
  private offset = 0
  private partial = ''
  private timer: NodeJS.Timeout | undefined
  private reading = false

  constructor(
    private readonly path: string,
    private readonly onLine: (line: string) => void,
    private readonly init: { intervalMs: number; maxBytes: number }
  ) {}

  /** Starts following; `fromEnd` skips what is already there (an adopted process's old output). */
  async start(fromEnd: boolean): Promise<void> {
    this.offset = fromEnd
      ? await stat(this.path).then(
          (s) => s.size,
          () => 0
        )
      : 0
    this.timer = setInterval(() => void this.poll(), this.init.intervalMs)
    this.timer.unref()
  }

  /** Reads what was appended since the last poll. */
  async poll(): Promise<void> {
    if (this.reading) return
    this.reading = true
    try {
      const size = await stat(this.path).then(
        (s) => s.size,
        () => 0
      )
      if (size < this.offset) this.offset = 0 // truncated or replaced
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
      // The writer holds the file open with O_APPEND, so truncating in place
      // is the only rotation it follows; the lines are in our log already.
      if (this.offset > this.init.maxBytes) {
        await truncate(this.path, 0)
        this.offset = 0
      }
    } catch {
      // the next poll tries again
    } finally {
      this.reading = false
    }
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}

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
