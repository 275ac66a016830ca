/**
 * @mycelium/self-update — node-core updates itself through A/B slots: a pure
 * planner (`planUpdate`), one runner (`SelfUpdater`: disk check, ranged HTTPS
 * download with size and sha256 checks, atomic unpack into the inactive slot,
 * trial in the boot record) and the boot record the slot launcher reads.
 */
export {
  type Slot,
  type BootTrial,
  type BootOutcome,
  type BootRecord,
  otherSlot,
  bootRecordPath,
  readBootRecord,
  writeBootRecord,
  commitTrial,
  manualRollback
} from './boot-record.js'
export {
  type UpdateRequest,
  type UpdateFacts,
  type UpdatePlan,
  type RefusalCode,
  type ReleaseDemands,
  type ReleaseOffer,
  DEFAULT_UPDATE_CHANNEL,
  compareVersions,
  planUpdate,
  releaseRefusal,
  networkContractMax,
  watchDecision,
  type WatchDecision,
  requiredBytes
} from './planner.js'
export {
  type SelfUpdaterComponents,
  type SelfUpdaterInit,
  type InstallTarget,
  type ArtifactPiece,
  type PeerArtifactSource,
  SelfUpdater,
  DEFAULT_TRIAL_WINDOW_MS,
  DEFAULT_DOWNLOAD_ATTEMPTS,
  DEFAULT_RETRY_BASE_MS,
  DEFAULT_UNPACK_FACTOR,
  DEFAULT_RESERVE_BYTES
} from './runner.js'
export {
  UpdateRefusedError,
  isUpdateRefusedError,
  ArtifactFetchError,
  isArtifactFetchError,
  ArtifactNotHeldError,
  isArtifactNotHeldError
} from './errors.js'
