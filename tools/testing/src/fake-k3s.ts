import { join } from 'node:path'

/**
 * Path of the stand-in K3s executable (fixtures/fake-k3s.mjs): K3s at the
 * process boundary — `--version`, `server|agent --config`, its own PKI, a
 * kubeconfig, /readyz and the node/pod list over HTTPS, crashes on request.
 * K3s itself cannot be installed on the test machines.
 */
export const FAKE_K3S = join(__dirname, '..', 'fixtures', 'fake-k3s.mjs')
