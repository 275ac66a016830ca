import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A throwaway PKI made with the real `openssl` CLI: a network CA and leaf
 * certificates whose URI SAN carries a SPIFFE ID. Only for this package's
 * tests (basic-net owns identity in the product).
 */
export interface TestPki {
  dir: string
  caPem: Buffer
  issue(name: string, spiffeId: string): { keyPem: Buffer; certPem: Buffer }
  cleanup(): void
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] })
}

export function createTestPki(networkId = 'net1'): TestPki {
  const dir = mkdtempSync(join(tmpdir(), 'mycelium-pki-'))
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir)
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', `/CN=${networkId} test CA`, '-out', 'ca.crt'], dir)
  return {
    dir,
    caPem: readFileSync(join(dir, 'ca.crt')),
    issue(name, spiffeId) {
      openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', `${name}.key`], dir)
      openssl(['req', '-new', '-key', `${name}.key`, '-subj', `/CN=${name}`, '-out', `${name}.csr`], dir)
      writeFileSync(
        join(dir, `${name}.ext`),
        `subjectAltName=URI:${spiffeId},IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n`
      )
      openssl(
        [
          'x509',
          '-req',
          '-in',
          `${name}.csr`,
          '-CA',
          'ca.crt',
          '-CAkey',
          'ca.key',
          '-CAcreateserial',
          '-days',
          '1',
          '-sha256',
          '-extfile',
          `${name}.ext`,
          '-out',
          `${name}.crt`
        ],
        dir
      )
      return { keyPem: readFileSync(join(dir, `${name}.key`)), certPem: readFileSync(join(dir, `${name}.crt`)) }
    },
    cleanup() {
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
