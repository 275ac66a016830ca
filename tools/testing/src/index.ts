/**
 * @packageDocumentation
 * Shared test fixtures. Real parts only: the PKI is made by the openssl CLI,
 * signatures by node's Ed25519.
 */
export { createTestPki, type TestPki } from './openssl-pki.js'
export { testSigningKey, testTrustBundle, signSporeForTest, serviceSpore, type TestSigningKey } from './spore-fixtures.js'
export {
  startContainerd,
  containerdMissing,
  buildBusyboxImage,
  runSleepPod,
  PAUSE_IMAGE,
  BUSYBOX_IMAGE,
  type TestContainerd
} from './containerd.js'
export { FAKE_K3S } from './fake-k3s.js'
export { until } from './until.js'
export { encodeVarint } from './wire.js'
