import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ComponentBody, type Logger, type LogFields } from '@mycelium/core-interfaces'
import { buildComponentArtifact, type BuiltArtifact, type ComponentName } from '@mycelium/components'
import { createTestPki, type TestPki } from '@mycelium/testing'

/** A logger that keeps every line with its component, for asserting what reached the agent's log. */
export function recordingLogger(lines: Array<{ level: string; component: string; msg: string; fields?: LogFields }> = []): Logger & {
  lines: typeof lines
} {
  const make = (component: string): Logger => ({
    error: (msg, fields) => lines.push({ level: 'error', component, msg, ...(fields != null ? { fields } : {}) }),
    warn: (msg, fields) => lines.push({ level: 'warn', component, msg, ...(fields != null ? { fields } : {}) }),
    info: (msg, fields) => lines.push({ level: 'info', component, msg, ...(fields != null ? { fields } : {}) }),
    debug: () => undefined,
    forComponent: (name) => make(name),
    child: () => make(component)
  })
  return Object.assign(make(''), { lines })
}

/** A real HTTPS server (certificate from a throwaway CA) serving artifacts by path. */
export interface ArtifactHost {
  pki: TestPki
  files: Map<string, Buffer>
  url(path: string): string
  /** Requests per path. */
  hits: Map<string, number>
  close(): Promise<void>
}

export async function artifactHost(): Promise<ArtifactHost> {
  const pki = createTestPki('cm-net')
  const { keyPem, certPem } = pki.issue('artifacts', 'spiffe://cm-net/manager/artifacts')
  const files = new Map<string, Buffer>()
  const hits = new Map<string, number>()
  const server: Server = createServer({ key: keyPem, cert: certPem }, (req, res) => {
    const path = req.url ?? ''
    hits.set(path, (hits.get(path) ?? 0) + 1)
    const body = files.get(path)
    if (body == null) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, { 'content-length': body.length }).end(body)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const port = (server.address() as AddressInfo).port
  return {
    pki,
    files,
    hits,
    url: (path) => `https://127.0.0.1:${port}${path}`,
    close: async () => {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      pki.cleanup()
    }
  }
}

/** Builds the named components once per suite, serving each at /<name>.tar.gz. */
export async function buildAndHost(host: ArtifactHost, names: ComponentName[]): Promise<Record<string, BuiltArtifact & { bytes: Buffer }>> {
  const dir = mkdtempSync(join(tmpdir(), 'cm-art-'))
  try {
    const out: Record<string, BuiltArtifact & { bytes: Buffer }> = {}
    for (const n of names) {
      const a = await buildComponentArtifact(n, dir)
      const bytes = await readFile(a.path)
      host.files.set(`/${n}.tar.gz`, bytes)
      out[n] = { ...a, bytes }
    }
    // The fixture again with one more file: a second version (another digest) of the same component.
    if (names.includes('fixture')) {
      const a = await buildComponentArtifact('fixture', dir, { extraFiles: { 'CHANGES.txt': 'v2\n' }, fileName: 'fixture-v2.tar.gz' })
      const bytes = await readFile(a.path)
      host.files.set('/fixture-v2.tar.gz', bytes)
      out['fixture-v2'] = { ...a, bytes }
    }
    return out
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** A component spore body for a built artifact. */
export function bodyFor(host: ArtifactHost, a: BuiltArtifact, over: Partial<ComponentBody> = {}): ComponentBody {
  return ComponentBody.fromPartial({
    name: a.name,
    version: '1.0.0',
    artifactDigest: a.digest,
    artifactUrls: [host.url(`/${a.path.slice(a.path.lastIndexOf('/') + 1)}`)],
    entry: a.entry,
    artifactSizeBytes: a.sizeBytes,
    ...over
  })
}

/** PIDs of processes whose command line names `socketDir` (the components a manager runs there). */
export function processesUnder(socketDir: string): number[] {
  const out: number[] = []
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8')
      const st = readFileSync(`/proc/${p}/stat`, 'utf8')
      if (cmd.includes(`\0--socket\0${socketDir}/`) && !/\) [ZX] /.test(st)) out.push(Number(p))
    } catch {
      // gone
    }
  }
  return out
}
