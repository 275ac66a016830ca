import { open, stat, truncate } from 'node:fs/promises'

export interface LogFollowerInit {
  /** Past this many bytes the file is truncated in place (its lines are in our log already). */
  maxBytes: number
  /** Poll on a timer of our own every this many ms; without it the owner calls `poll()` from its own tick. */
  intervalMs?: number
}

/**
 * Follows a log file a child process appends to (K3s, a component), handing
 * over whole lines. Polling, not fs.watch: it works on every filesystem and
 * survives the file being truncated or replaced. The child may outlive us:
 * `begin(true)` skips what it wrote before we came (that is in the previous
 * run's log).
 */
export class LogFollower {
  private offset = 0
  private partial = ''
  private running: Promise<void> | undefined
  private queued: Promise<void> | undefined
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly path: string,
    private readonly onLine: (line: string) => void,
    private readonly init: LogFollowerInit
  ) {}

  /** Sets where reading starts: the end of the file (`fromEnd`) or its start. */
  async begin(fromEnd: boolean): Promise<void> {
    this.offset = fromEnd
      ? await stat(this.path).then(
          (s) => s.size,
          () => 0
        )
      : 0
  }

  /** `begin`, then polls on the timer `intervalMs` asks for (unref'd: following never keeps the process alive). */
  async start(fromEnd: boolean): Promise<void> {
    await this.begin(fromEnd)
    if (this.init.intervalMs == null || this.timer != null) return
    this.timer = setInterval(() => void this.poll(), this.init.intervalMs)
    this.timer.unref()
  }

  /**
   * Reads what was appended up to now (at most 1 MiB per read). Never throws:
   * the next poll tries again. While a read runs (the timer's), the caller
   * gets one more read after it — that one may have looked at the file before
   * the caller's lines landed (a crashed child's last words are quoted).
   */
  poll(): Promise<void> {
    if (this.running == null) {
      this.running = this.read().finally(() => {
        this.running = undefined
      })
      return this.running
    }
    // Every caller that comes while a read runs shares the one queued after it.
    this.queued ??= this.running.then(() => {
      this.queued = undefined
      return this.poll()
    })
    return this.queued
  }

  private async read(): Promise<void> {
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
    }
  }

  stop(): void {
    clearInterval(this.timer)
    this.timer = undefined
  }
}
