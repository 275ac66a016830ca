import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** Where `npm run package` (the Nx `package` target, a dependency of `test`) writes the release artifact. */
export const RELEASE_DIR = join(__dirname, '..', '..', 'release')

/** The release tarball of this package's version and this machine's arch. */
export function releaseTarball(): string {
  const { version } = JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }
  const file = join(RELEASE_DIR, `node-core-${version}-linux-${process.arch}.tar.gz`)
  if (!existsSync(file)) throw new Error(`${file} is missing: package first (npx nx run @mycelium/node-core:package)`)
  return file
}

/**
 * The release artifact extracted into a fresh temp dir — no node_modules
 * beside it or above it — as an operator installs it. Returns its directory.
 * Removed after the test file when called at load time of a jest suite.
 */
export function extractRelease(): string {
  const dir = mkdtempSync(join(tmpdir(), 'node-core-release-'))
  execFileSync('tar', ['-xzf', releaseTarball(), '-C', dir])
  const [top] = readdirSync(dir)
  if (typeof afterAll === 'function') afterAll(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, top!)
}
