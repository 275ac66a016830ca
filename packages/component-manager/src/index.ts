/**
 * @packageDocumentation
 * Dynamic components: the catalogue of verified `component/<name>` spores,
 * the node's assignments (persisted, kept through manager loss), a pure
 * planner (current vs desired → install / start / stop / remove / upgrade)
 * executed by one runner, artifacts fetched over HTTPS by digest into a
 * content-addressed store with a size cap and garbage collection, atomic
 * installs, and each component run as its own child process speaking the
 * component contract (component.proto) on a unix socket — adopted after an
 * agent restart, never duplicated, unloaded to free memory.
 */
export { ComponentManager, type ComponentManagerComponents, type ComponentManagerInit, type ComponentManagerEvents } from './manager.js'
export {
  planComponents,
  parametersKey,
  type ComponentSpec,
  type ComponentStep,
  type DesiredComponent,
  type ObservedComponent
} from './planner.js'
export { desiredComponents, specOf, COMPONENT_CONTRACT_VERSION, COMPONENT_SPORE_PREFIX, type SpecLimits } from './desired.js'
export { ArtifactStore, type ArtifactStoreInit } from './artifact-store.js'
export { detectCgroupV2, type CgroupSupport } from './cgroup.js'
export { rssOf, rssOfTree } from './proc.js'
export {
  ComponentSporeError,
  isComponentSporeError,
  ArtifactVerificationError,
  isArtifactVerificationError,
  ArtifactFetchError,
  isArtifactFetchError,
  ArtifactTooLargeError,
  isArtifactTooLargeError,
  ComponentInstallError,
  isComponentInstallError,
  ComponentStartError,
  isComponentStartError
} from './errors.js'
export * from './defaults.js'
