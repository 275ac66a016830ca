import { createHash } from 'node:crypto'
import { open, readFile, rename } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fsyncDir } from '@mycelium/core-utils'

/**
 * The boot record, `<prefix>/boot.json`: the one file the slot launcher
 * (apps/node-core/slot-launcher.cjs, dependency-free) and node-core share.
 * Its format is the contract between them (README.md): `{ record, sha256 }`
 * where sha256 is over `JSON.stringify(record)`; the replaced copy is kept as
 * `boot.json.prev`. Changing a field here means changing the launcher too.
 */
export type Slot = 'a' | 'b'

export interface BootTrial {
  slot: Slot
  previous: Slot
  version: string
  commandId: string
  startedAtMs: number
  /** The new version must be MANAGED and HEALTHY within this; else the launcher boots `previous`. */
  windowMs: number
  /** Boots so far (the launcher counts each before it starts the child). */
  boots: number
  /** When trial children exited (the launcher rolls back after N within M seconds). */
  exits: number[]
  /** Set by the trial version itself to ask for a rollback (the reason). */
  failure?: string
}

export interface BootOutcome {
  outcome: 'committed' | 'rolled-back' | 'manual-rollback'
  slot: Slot
  version: string
  commandId?: string
  reason: string
  atMs: number
  /** The outcome was reported on the command stream. */
  reported: boolean
}

export interface BootRecord {
  format: 1
  active: Slot
  trial?: BootTrial
  last?: BootOutcome
}

export const otherSlot = (slot: Slot): Slot => (slot === 'a' ? 'b' : 'a')
export const bootRecordPath = (prefix: string): string => join(prefix, 'boot.json')

function decode(text: string): BootRecord {
  const parsed = JSON.parse(text) as { record?: BootRecord; sha256?: string }
  if (parsed.sha256 !== createHash('sha256').update(JSON.stringify(parsed.record)).digest('hex')) throw new Error('checksum mismatch')
  if (parsed.record == null || (parsed.record.active !== 'a' && parsed.record.active !== 'b')) throw new Error('no active slot')
  return parsed.record
}

/** The record, else its previous copy, else undefined (as the launcher reads it). */
export async function readBootRecord(prefix: string): Promise<BootRecord | undefined> {
  for (const file of [bootRecordPath(prefix), `${bootRecordPath(prefix)}.prev`]) {
    try {
      return decode(await readFile(file, 'utf8'))
    } catch {
      // missing or damaged: the previous copy
    }
  }
  return undefined
}

/** temp file, fsync, rename, fsync of the directory. */
export async function writeFileDurably(file: string, text: string): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`
  const fd = await open(tmp, 'w', 0o644)
  try {
    await fd.writeFile(text)
    await fd.sync()
  } finally {
    await fd.close()
  }
  await rename(tmp, file)
  await fsyncDir(dirname(file))
}

/** Writes atomically, keeping the replaced (valid) record as boot.json.prev. */
export async function writeBootRecord(prefix: string, record: BootRecord): Promise<void> {
  const file = bootRecordPath(prefix)
  const old = await readFile(file, 'utf8').catch(() => undefined)
  if (old != null) {
    try {
      decode(old)
      await writeFileDurably(`${file}.prev`, old)
    } catch {
      // a damaged record is not worth keeping
    }
  }
  const body = JSON.stringify(record)
  await writeFileDurably(file, `${JSON.stringify({ record, sha256: createHash('sha256').update(body).digest('hex') })}\n`)
}

/** The trial proved itself (pure): its slot is active, the previous one is kept for a manual rollback. */
export function commitTrial(record: BootRecord, nowMs: number): BootRecord {
  const { trial: t, ...rest } = record
  if (t == null) return record
  return {
    ...rest,
    active: t.slot,
    last: { outcome: 'committed', slot: t.slot, version: t.version, commandId: t.commandId, reason: '', atMs: nowMs, reported: false }
  }
}

/**
 * An operator switches slots by hand (`node-core recover rollback`) (pure): a trial in
 * progress is abandoned (the previous slot stays active), else the other slot becomes active.
 */
export function manualRollback(record: BootRecord, reason: string, nowMs: number): BootRecord {
  const { trial, ...rest } = record
  const slot = trial != null ? record.active : otherSlot(record.active)
  return { ...rest, active: slot, last: { outcome: 'manual-rollback', slot, version: '', reason, atMs: nowMs, reported: true } }
}
