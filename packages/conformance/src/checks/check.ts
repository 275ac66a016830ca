import type { CheckContext } from '../context.js'

/** One named check: what it proves, and how. `run` returns a note for the report, throws CheckFailedError or CheckSkippedError. */
export interface Check {
  /** Stable name, "<area>.<what>"; never renamed (CI filters and JUnit history use it). */
  name: string
  /** One sentence: what a pass proves. */
  proves: string
  run(ctx: CheckContext): Promise<string | void>
}
