import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { until } from '@mycelium/testing'
import { extractRelease } from './release.js'

/**
 * The shipped daemon — the release artifact (`npm run package`) extracted
 * into a temp dir with no node_modules — and the command-manager harness (a
 * dev network in its own process) as child processes.
 */
export const BIN = join(extractRelease(), 'node-core.cjs')

/** Runs the built CLI (`bin`: another extracted release's) to its end: exit code and everything it printed (stdout + stderr). */
export function runBin(args: string[], bin = BIN): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let out = ''
    child.stdout.on('data', (d: Buffer) => (out += d.toString()))
    child.stderr.on('data', (d: Buffer) => (out += d.toString()))
    child.on('exit', (code) => resolve({ code, out }))
  })
}
const HARNESS = join(__dirname, 'command-manager.cjs')

export interface ManagerEvent {
  type: string
  id?: string
  state?: string
  replayed?: boolean
  reason?: string
  config?: string
  t: number
}

export interface Manager {
  events: ManagerEvent[]
  config: string
  /** Queues `n` new commands (sent on the open session, or on the next one), of one kind or a mix. */
  send(n: number, kind?: 'restart' | 'reconfigure' | 'slow-reconfigure' | 'update'): void
  stopSending(): void
  /** The updates of one command, in order. */
  updates(id: string): ManagerEvent[]
  stop(): Promise<void>
}

export async function startManager(
  dir: string,
  nodeId: string,
  options: { perSession?: number; stateDir?: string } = {}
): Promise<Manager> {
  const child = spawn(
    process.execPath,
    [HARNESS, dir, nodeId, String(options.perSession ?? 0), ...(options.stateDir != null ? [options.stateDir] : [])],
    { stdio: ['pipe', 'pipe', 'pipe'] }
  )
  const events: ManagerEvent[] = []
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()))
  createInterface({ input: child.stdout! }).on('line', (line) => events.push(JSON.parse(line) as ManagerEvent))
  await until('dev network ready', async () => events.some((e) => e.type === 'ready') || stderr !== '', 30_000)
  if (stderr !== '') throw new Error(stderr)
  return {
    events,
    config: events.find((e) => e.type === 'ready')!.config!,
    send: (n, kind) => child.stdin!.write(`send ${n}${kind != null ? ` ${kind}` : ''}\n`),
    stopSending: () => child.stdin!.write('stop-sending\n'),
    updates: (id) => events.filter((e) => e.type === 'update' && e.id === id),
    stop: async () => {
      child.stdin!.end()
      if (child.exitCode != null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    }
  }
}

export interface Daemon {
  child: ChildProcess
  logs: string[]
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  kill(signal?: NodeJS.Signals): Promise<void>
}

export function startDaemon(config: string, onLine: (line: string) => void = () => undefined): Daemon {
  const child = spawn(process.execPath, [BIN, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  const logs: string[] = []
  const line = (l: string): void => {
    logs.push(l)
    onLine(l)
  }
  createInterface({ input: child.stdout! }).on('line', line)
  createInterface({ input: child.stderr! }).on('line', line)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal }))
  )
  return {
    child,
    logs,
    exited,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode == null && child.signalCode == null) child.kill(signal)
      await exited
    }
  }
}

/** `node-core status --json` of the daemon on `socket`. */
export function statusJson(
  socket: string
): Promise<{ phase: string; components: Array<{ name: string; state: string; reason: string }> } | undefined> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [BIN, 'status', '--socket', socket, '--json'], { stdio: ['ignore', 'pipe', 'ignore'] })
    let out = ''
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()))
    child.on('exit', (code) => {
      try {
        resolve(code === 0 ? JSON.parse(out) : undefined)
      } catch {
        resolve(undefined)
      }
    })
  })
}
