/**
 * @packageDocumentation
 * A small, honest reference implementation of the distributed side of every
 * v1 contract — Network Manager (enrolment, registration, leases, handoff,
 * health, config, assignments), Command Channel and Spore Manager — with
 * fault controls, for node-core's tests, `npm start` and manager teams.
 */
export { DevNetwork, startDevNetwork, type DevNetworkInit, type DevNetworkEndpoints, type ManagerName } from './dev-network.js'
export {
  DevNetworkManager,
  type NetworkManagerInit,
  type ManagerClockFaults,
  type NodeRecord,
  type HandoffFaults,
  type NetworkManagerEvents
} from './network-manager.js'
export { AdmissionLimiter, DEFAULT_ADMISSION, type AdmissionInit, type AdmissionDecision } from './admission.js'
export { DistressDesk, type DistressDeskComponents, type DistressRecord, type DistressDeskEvents } from './distress-desk.js'
export { DevCommandChannel, type CommandRecord, type CommandChannelEvents } from './command-channel.js'
export { DevSporeManager, type SporeManagerInit } from './spore-manager.js'
export { type Faults, faultInterceptor, noFaults } from './faults.js'
export { type DevNetworkState, STATE_FILE, loadState } from './state.js'
export { runCli, buildProgram, type CliIo, EXIT_OK, EXIT_FAILED, EXIT_USAGE } from './cli.js'
export { DevArtifactServer, publishComponent, assignComponent, type DevComponent } from './component-artifacts.js'
export {
  applyFault,
  parseFaultAction,
  sendFault,
  sendControl,
  readControlFile,
  startControlServer,
  type FaultAction,
  type ControlFile,
  CONTROL_FILE
} from './control.js'
export {
  nodeRows,
  formatNodeRows,
  parseCommandSpec,
  buildCommand,
  runCommand,
  formatCommandEvent,
  EMERGENCY_ACTION_NAMES,
  type NodeRow,
  type CommandSpec,
  type CommandEvent
} from './operator.js'
export {
  DevUpdateManager,
  type UpdateManagerComponents,
  type UpdateManagerInit,
  type ArtifactFaults,
  type Artifact
} from './update-manager.js'
