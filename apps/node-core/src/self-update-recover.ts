import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { NotFoundError } from '@mycelium/core-interfaces'
import { manualRollback, otherSlot, readBootRecord, writeBootRecord } from '@mycelium/self-update'

/** Where `recover rollback` looks without --prefix (the unit's layout). */
export const DEFAULT_SLOT_PREFIX = '/opt/mycelium'

/**
 * `node-core recover rollback`: the other slot boots next (a trial in
 * progress is abandoned instead). Refused when that slot holds no release.
 * The switch is one atomic boot-record write; restart the unit to boot it.
 */
export async function rollbackSlots(prefix: string, reason: string): Promise<string> {
  const record = (await readBootRecord(prefix)) ?? { format: 1 as const, active: 'a' as const }
  const next = manualRollback(record, reason, Date.now())
  if (!existsSync(join(prefix, 'slots', next.active, 'node-core.cjs')))
    throw new NotFoundError(`slot ${next.active} in ${prefix}/slots holds no release: nothing to roll back to`)
  await writeBootRecord(prefix, next)
  const from = record.trial != null ? `the trial in slot ${record.trial.slot}` : `slot ${otherSlot(next.active)}`
  return `rolled back from ${from} to slot ${next.active} (${prefix}/boot.json); restart the agent (systemctl restart mycelium-node) to boot it`
}
