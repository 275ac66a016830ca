/**
 * @packageDocumentation
 * The core's own connectivity, independent of the distributed services:
 * identity (key, CSR, certificate chain, trust bundle) and mTLS credentials
 * that check the peer's role; dialing; peer discovery; failure detection and
 * heartbeats; the PeerAssist server.
 */
export { createCsr, parseCertificates } from './x509.js'
export {
  inspectIdentity,
  verifyChain,
  validityProblem,
  type IdentityMaterial,
  type IdentityReport,
  type InspectOptions
} from './identity/inspect.js'
export { loadOrCreateKey, type LoadedKey } from './identity/node-key.js'
export { csrInChildProcess, serveCsrRequest, CsrChildError, CSR_CHILD_TIMEOUT_MS, type CsrMaker } from './identity/csr-child.js'
export {
  createIdentityStore,
  type IdentityStore,
  type IdentityStoreComponents,
  type IdentityStoreInit,
  type IdentityStoreEvents,
  DEFAULT_IDENTITY_RELOAD_INTERVAL_MS
} from './identity/identity-store.js'
export {
  PeerIdentityError,
  isPeerIdentityError,
  checkPeerIdentity,
  spiffeIdFromSubjectAltName,
  type PeerRequirement
} from './tls/peer-identity.js'
export {
  clientCredentials,
  endpointCredentials,
  requirementForEndpoint,
  serverCredentials,
  peerRoleInterceptor,
  callerIdentity,
  defaultChannelOptions,
  DEFAULT_SERVER_OPTIONS
} from './tls/credentials.js'
export {
  createPeerAssistServer,
  type PeerAssistServer,
  type PeerAssistServerComponents,
  type PeerAssistServerInit,
  type SharedSpore,
  type SignedDistressRelay,
  type HeldArtifact,
  DEFAULT_DISTRESS_RATE,
  DEFAULT_MAX_SERVED_ARTIFACT_BYTES,
  DEFAULT_ARTIFACT_STREAMS,
  ARTIFACT_CHUNK_BYTES,
  PEER_ASSIST_MAX_REQUEST_BYTES,
  PEER_ASSIST_MAX_RECEIVE_BYTES,
  DISTRESS_ID_PATTERN,
  DEFAULT_DISTRESS_MEMORY_BYTES
} from './peer-assist-server.js'
export {
  signDistress,
  verifyDistress,
  csrKeyMatches,
  DistressRefusedError,
  isDistressRefusedError,
  DISTRESS_MAX_EVIDENCE,
  type DistressRefusal,
  type VerifiedDistress
} from './distress/envelope.js'
export {
  PhiAccrualDetector,
  DEFAULT_EXPECTED_INTERVAL_MS,
  DEFAULT_SUSPECT_PHI,
  DEFAULT_DETECTOR_WINDOW,
  type PhiAccrualInit,
  type DetectorState,
  type DetectorTransition
} from './failure-detector.js'
export {
  createPeerMonitor,
  type PeerMonitor,
  type PeerMonitorComponents,
  type PeerMonitorInit,
  type PeerMonitorEvents,
  type PeerEntry,
  type PeerSource,
  DEFAULT_PING_INTERVAL_MS,
  DEFAULT_PING_RANDOM
} from './peers/peer-monitor.js'
export {
  signAnnouncement,
  verifyAnnouncement,
  type AnnouncementVerdict,
  type IgnoreReason,
  type VerifyAnnouncementOptions
} from './discovery/announcement.js'
export {
  createMulticastDiscovery,
  type MulticastDiscovery,
  type MulticastDiscoveryComponents,
  type MulticastDiscoveryInit,
  type MulticastDiscoveryEvents,
  type DiscoveredPeer,
  type DiscoveryCounters,
  DEFAULT_MULTICAST_GROUP,
  DEFAULT_MULTICAST_PORT
} from './discovery/multicast-discovery.js'
export {
  dialFirst,
  watchConnectivity,
  type DialOptions,
  type Dialed,
  DEFAULT_DIAL_TIMEOUT_MS,
  DEFAULT_DIAL_STAGGER_MS
} from './channel/dialer.js'
