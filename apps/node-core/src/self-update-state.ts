import { join } from 'node:path'
import type { Logger } from '@mycelium/core-interfaces'
import { readStateFile, writeStateFile } from '@mycelium/core-utils'

/**
 * The self-update state that survives restarts: an operator's downgrade
 * allowance and when the channel watch last started an update. Its own module
 * so the file's format, its reading (an unreadable file is no allowance, said
 * loudly — never a boot loop) and the allowance's expiry live in one place,
 * apart from the update flow that uses them.
 */

/** The file under the state directory holding the downgrade allowance and the watch's last start (survive restarts). */
export const SELF_UPDATE_STATE_FILE = 'self-update.state'

/** What survives a restart (SELF_UPDATE_STATE_FILE). */
export interface SelfUpdateState {
  /** An ALLOW_DOWNGRADE in force until then (0: none). */
  downgradeAllowedUntilMs: number
  downgradeReason: string
  /** When the channel watch last started an update. */
  watchLastStartMs: number
}

export const NO_SELF_UPDATE_STATE: Readonly<SelfUpdateState> = { downgradeAllowedUntilMs: 0, downgradeReason: '', watchLastStartMs: 0 }

/** The file's text: a field missing or of another type reads as none; throws on text that is not a JSON object. */
export function parseSelfUpdateState(text: string): SelfUpdateState {
  const p = JSON.parse(text) as Partial<SelfUpdateState>
  return {
    downgradeAllowedUntilMs: typeof p.downgradeAllowedUntilMs === 'number' ? p.downgradeAllowedUntilMs : 0,
    downgradeReason: typeof p.downgradeReason === 'string' ? p.downgradeReason : '',
    watchLastStartMs: typeof p.watchLastStartMs === 'number' ? p.watchLastStartMs : 0
  }
}

/** The state in force, written through to SELF_UPDATE_STATE_FILE (memory only without a state directory). */
export class SelfUpdateStateFile {
  current: SelfUpdateState = { ...NO_SELF_UPDATE_STATE }

  constructor(
    private readonly stateDir: string | undefined,
    private readonly log: Logger
  ) {}

  get downgradeAllowed(): boolean {
    return Date.now() < this.current.downgradeAllowedUntilMs
  }

  private get path(): string | undefined {
    return this.stateDir != null ? join(this.stateDir, SELF_UPDATE_STATE_FILE) : undefined
  }

  /** Reads the file (a missing one keeps what is in memory); an allowance that expired unused is cleared on disk. */
  async load(): Promise<void> {
    const path = this.path
    if (path == null) return
    try {
      const content = await readStateFile(path)
      if (content == null) return
      this.current = parseSelfUpdateState(content.data.toString('utf8'))
      if (this.current.downgradeAllowedUntilMs !== 0 && !this.downgradeAllowed) {
        this.log.info('the downgrade allowance expired unused', { reason: this.current.downgradeReason })
        await this.save({ ...this.current, downgradeAllowedUntilMs: 0, downgradeReason: '' })
      }
    } catch (err) {
      // Never a boot loop: an unreadable file means no allowance (the safe side), said loudly.
      this.log.error('self-update state unreadable; no downgrade allowance', { path, err })
      this.current = { ...NO_SELF_UPDATE_STATE }
    }
  }

  async save(next: SelfUpdateState): Promise<void> {
    this.current = next
    const path = this.path
    if (path != null) await writeStateFile(path, Buffer.from(JSON.stringify(next)))
  }
}
