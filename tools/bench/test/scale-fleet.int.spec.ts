import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { runScaleFleet } from '../src/scale/fleet-run.js'

/**
 * 300 agents in 3 processes against a dev Network Manager in a process of its
 * own, which is killed and started again (a new process, same state): every
 * agent must come back to MANAGED, and the new manager must never admit more
 * than 5 % of the fleet in one second. Refusals are printed, not asserted: how
 * often a node finds its slot taken depends on how late a loaded machine
 * delivers it. Asserts behaviour only: how long it takes is the bench's
 * business (`npm run bench -- --only scale`).
 *
 * The child entries are the bench's build (the test target depends on it).
 */
const FLEET = 300
const BOUND = Math.floor(0.05 * FLEET)
const entries = {
  manager: join(__dirname, '../dist/scale-manager-host.js'),
  agent: join(__dirname, '../dist/scale-agent-host.js')
}

describe(`a fleet of ${FLEET} agents across processes`, () => {
  it('returns to MANAGED after a real manager restart, admitted at most 5 % of the fleet per second', async () => {
    expect(existsSync(entries.manager) && existsSync(entries.agent)).toBe(true)
    const r = await runScaleFleet({
      agents: FLEET,
      hosts: 3,
      // The manager admits 12/s + a burst of 2 (≤ 15 in any second) and so advertises a 32 s window.
      registrationRate: { burst: 2, perSecond: 12 },
      // The fresh start is not what is asserted: the first manager admits faster, so the test reaches the restart sooner.
      startRegistrationRate: { burst: 20, perSecond: 100 },
      // 300 agents share 2 cores here (a real node has its own): 5 s heartbeats keep them alive under load.
      heartbeatIntervalMs: 5000,
      steadyMs: 0,
      budgetMs: 240_000,
      entries,
      log: (line) => process.stdout.write(`${line}\n`)
    })
    process.stdout.write(
      `${FLEET} agents: back in ${r.restartToAllManagedS} s; admitted per second ${r.admissionsPerSecond.join(' ')}; MANAGED per second ${r.reconnectsPerSecond.join(' ')}; refusals ${r.refusals} (max per node ${r.maxRefusalsPerNode})\n`
    )
    expect(r.notManagedAgain).toBe(0)
    expect(r.maxAdmissionsInOneSecond).toBeLessThanOrEqual(BOUND)
  }, 300_000)
})
