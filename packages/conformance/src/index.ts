/**
 * @packageDocumentation
 * The conformance kit for the teams who write Mycelium's distributed services:
 * it plays a node against a Network Manager, Command Channel, Spore Manager and
 * Update Manager, over real mTLS with the agent's own enrolment and credential
 * code, and checks every behaviour the agent relies on. Programmatic API
 * (`runConformance`) and the `mycelium-conformance` CLI; reports as text and
 * JUnit XML.
 */
export { runConformance, CONFORMANCE_CHECKS } from './runner.js'
export { formatReport, formatResultLine, formatJUnit, exitCodeOf, MAX_FAILURE_EXIT_CODE } from './report.js'
export { runCli, buildProgram, EXIT_USAGE, type CliIo } from './cli.js'
export { CheckFailedError, isCheckFailedError, CheckSkippedError, isCheckSkippedError } from './errors.js'
export {
  DEFAULT_ADMISSION_BURST,
  DEFAULT_MAX_WAIT_MS,
  DEFAULT_CALL_TIMEOUT_MS,
  type CheckResult,
  type CheckStatus,
  type ConformanceInit,
  type ConformanceReport,
  type ConformanceTargets,
  type ConformanceTriggers,
  type IdentityFiles
} from './types.js'
