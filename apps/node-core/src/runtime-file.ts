import { readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * `<stateDir>/runtime.json`: where a running daemon actually listens. Ports
 * may be chosen at run time (`127.0.0.1:0`), so the config alone cannot say;
 * `node-core status --config` reads this file to find the daemon and shows
 * it. Written atomically once every component started, removed at a clean
 * stop (a file left by a crash names a socket nothing answers on: status
 * says so and exits 3). Reading it needs only node:fs, so `status` stays light.
 */
export const RUNTIME_FILE = 'runtime.json'

export interface RuntimeInfo {
  /** The daemon's process id. */
  pid: number
  /** node-core's version. */
  version: string
  /** When the components finished starting (ISO 8601). */
  startedAt: string
  /** NodeStatus addresses: "unix:///path" and/or "127.0.0.1:port" (status.socketPath, status.grpcListenAddress). */
  statusAddresses: string[]
  /** HTTP /healthz /readyz /metrics address ("" when off). */
  httpAddress: string
  /** PeerAssist (mTLS) address ("" without peer networking). */
  peerAddress: string
}

export function runtimeFilePath(stateDir: string): string {
  return join(stateDir, RUNTIME_FILE)
}

export async function writeRuntimeFile(stateDir: string, info: RuntimeInfo): Promise<void> {
  const { writeFileAtomic } = await import('@mycelium/core-utils')
  await writeFileAtomic(runtimeFilePath(stateDir), `${JSON.stringify(info, null, 2)}\n`, { mode: 0o644 })
}

/**
 * Removes the runtime file and the temp files of writes a crash cut short
 * (`.runtime.json.<pid>.….tmp`, never this process's): at a clean stop, and
 * at start, where a file left by a crash is stale.
 */
export async function removeRuntimeFile(stateDir: string): Promise<void> {
  await rm(runtimeFilePath(stateDir), { force: true })
  const names = await readdir(stateDir).catch(() => [] as string[])
  const stale = names.filter((n) => n.startsWith(`.${RUNTIME_FILE}.`) && n.endsWith('.tmp') && !n.includes(`.${process.pid}.`))
  for (const name of stale) await rm(join(stateDir, name), { force: true })
}

/** The runtime file, or undefined when there is none (or it cannot be read: status then falls back to the config). */
export async function readRuntimeFile(stateDir: string): Promise<RuntimeInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(runtimeFilePath(stateDir), 'utf8')) as Partial<RuntimeInfo>
    if (!Array.isArray(info.statusAddresses)) return undefined
    return {
      pid: Number(info.pid),
      version: String(info.version ?? ''),
      startedAt: String(info.startedAt ?? ''),
      statusAddresses: info.statusAddresses.map(String),
      httpAddress: String(info.httpAddress ?? ''),
      peerAddress: String(info.peerAddress ?? '')
    }
  } catch {
    return undefined
  }
}

/** Rows for `node-core status`. */
export function runtimeRows(info: RuntimeInfo): Array<[string, string]> {
  return [
    ['daemon', `pid ${info.pid}, node-core ${info.version}, started ${info.startedAt}`],
    [
      'listening',
      [
        ...info.statusAddresses.map((a) => `status ${a}`),
        ...(info.httpAddress ? [`http ${info.httpAddress}`] : []),
        ...(info.peerAddress ? [`peers ${info.peerAddress}`] : [])
      ].join(', ')
    ]
  ]
}
