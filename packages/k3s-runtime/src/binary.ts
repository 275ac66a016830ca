import { execFile } from 'node:child_process'
import { access, constants } from 'node:fs/promises'
import { delimiter, join } from 'node:path'
import { promisify } from 'node:util'

/**
 * The K3s binary: the configured path, else the first `k3s` on PATH.
 * Returns the path, or why there is none.
 */
export async function findK3sBinary(configured: string, path = ''): Promise<{ binary: string } | { missing: string }> {
  const candidates =
    configured !== ''
      ? [configured]
      : path
          .split(delimiter)
          .filter(Boolean)
          .map((d) => join(d, 'k3s'))
  for (const candidate of candidates) {
    try {
      await access(candidate, constants.X_OK)
      return { binary: candidate }
    } catch {
      // next
    }
  }
  return { missing: configured !== '' ? `k3s binary not executable at ${configured}` : 'no k3s binary on PATH' }
}

/** The version K3s reports ("v1.30.4+k3s1"), or why it could not be read. */
export async function k3sVersion(binary: string, timeoutMs = 5000): Promise<{ version: string } | { error: string }> {
  try {
    const { stdout } = await promisify(execFile)(binary, ['--version'], { timeout: timeoutMs })
    const m = /k3s version (\S+)/.exec(stdout)
    return m != null ? { version: m[1]! } : { error: `unexpected --version output: ${stdout.split('\n')[0]}` }
  } catch (err) {
    return { error: `${binary} --version failed: ${(err as Error).message}` }
  }
}
