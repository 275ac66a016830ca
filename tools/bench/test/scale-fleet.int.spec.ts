import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { runScaleFleet } from '../src/scale/fleet-run.js'

/**
 * 300 agents in 3 processes against a dev Network Manager in a process of its
 * own, which is killed and started again (a new process, same state): every
 * agent must come back to MANAGED, the new manager must never admit more than
 * 5 % of the fleet in one second. Refusals are printed, not asserted: how
 * often a node finds its slot taken depends on how late a loaded machine
 * delivers it (8 per node at most at load ~20). Asserts behaviour only: how
 * long it takes is the bench's business (`npm run bench -- --only scale`).
 *
 * The child entries are the bench's build (`npx nx run @mycelium/bench:build`).
 * Behind MYCELIUM_SCALE_TEST=1: on the shared 2-core machine of this wave (load
 * ~20–25) one run took 236 s (fresh start 126 s, back 79 s after the restart),
 * far beyond the suite's budget, so it is not yet part of `npm test`.
 */
const FLEET = 300
const BOUND = Math.floor(0.05 * FLEET)
const entries = {
  manager: join(__dirname, '../dist/scale-manager-host.js'),
  agent: join(__dirname, '../dist/scale-agent-host.js')
}

const describeScale = process.env.MYCELIUM_SCALE_TEST === '1' ? describe : describe.skip

describeScale(`a fleet of ${FLEET} agents across processes`, () => {
  it('returns to MANAGED after a real manager restart, admitted at most 5 % of the fleet per second', async () => {
    expect(existsSync(entries.manager) && existsSync(entries.agent)).toBe(true)
    const r = await runScaleFleet({
      agents: FLEET,
      hosts: 3,
      // The manager admits 12/s + a burst of 2 (≤ 15 in any second) and so advertises a 32 s window.
      registrationRate: { burst: 2, perSecond: 12 },
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
