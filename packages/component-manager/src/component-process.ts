import { spawn, type ChildProcess } from 'node:child_process'
import { openSync, closeSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import * as grpc from '@grpc/grpc-js'
import { ComponentClient, type HealthResponse, type HelloResponse } from '@mycelium/core-interfaces'
import { ComponentStartError } from './errors.js'
import { isAlive, processStartTime, type ProcessIdentity } from '@mycelium/core-utils'
import type { ComponentSpec } from './planner.js'
import { COMPONENT_CONTRACT_VERSION } from './desired.js'

/** What is persisted per running component, so a restarted agent adopts it instead of starting a second one. */
export interface RunRecord extends ProcessIdentity {
  name: string
  digest: string
  version: string
  socket: string
  parametersKey: string
  startedAtMs: number
}

export interface SpawnOptions {
  spec: ComponentSpec
  installDir: string
  socket: string
  logFile: string
  parameters: Record<string, string>
  parametersKey: string
  /** The Node.js executable for JavaScript entries. */
  nodePath: string
  /** V8 heap limit in MiB when the spec sets none (0: none). */
  defaultHeapLimitMb: number
  /** PATH given to the component (its only inherited variable). */
  path: string
}

const JS_ENTRY = /\.(c|m)?js$/

/**
 * One component process: its own process group and session (a signal to
 * the agent's group never reaches it), output appended to its log file (no
 * pipe that would die with the agent), the component contract spoken on its
 * unix socket. Spawned ones report their exit; adopted ones (not our
 * children) are checked through /proc.
 */
export class ComponentProcess {
  private exited?: { code: number | null; signal: NodeJS.Signals | null }
  private readonly exitWaiters = new Set<() => void>()
  private readonly client: ComponentClient

  private constructor(
    readonly record: RunRecord,
    private readonly child?: ChildProcess
  ) {
    // A local socket that appears within milliseconds of the start: retry connecting at that pace,
    // not at grpc's 1 s default backoff (which would add up to a second to every start).
    this.client = new ComponentClient(`unix:${record.socket}`, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 20,
      'grpc.max_reconnect_backoff_ms': 200
    })
    child?.on('exit', (code, signal) => {
      this.exited = { code, signal }
      for (const w of this.exitWaiters) w()
    })
  }

  static async spawn(o: SpawnOptions): Promise<ComponentProcess> {
    await rm(o.socket, { force: true })
    const entry = join(o.installDir, o.spec.entry)
    const heap = o.spec.heapLimitMb || o.defaultHeapLimitMb
    const js = JS_ENTRY.test(entry)
    const argv = ['--socket', o.socket, ...o.spec.args]
    const [cmd, args] = js ? [o.nodePath, [...(heap > 0 ? [`--max-old-space-size=${heap}`] : []), entry, ...argv]] : [entry, argv]
    const fd = openSync(o.logFile, 'a')
    let child: ChildProcess
    try {
      child = spawn(cmd, args, {
        cwd: o.installDir,
        detached: true,
        stdio: ['ignore', fd, fd],
        env: {
          PATH: o.path,
          MYCELIUM_COMPONENT_SOCKET: o.socket,
          MYCELIUM_COMPONENT_NAME: o.spec.name,
          MYCELIUM_COMPONENT_PARAMETERS: JSON.stringify(o.parameters)
        }
      })
    } finally {
      closeSync(fd)
    }
    child.unref()
    const pid = await new Promise<number>((resolve, reject) => {
      child.once('spawn', () => resolve(child.pid!))
      child.once('error', (err) => reject(new ComponentStartError(o.spec.name, `cannot start ${cmd}: ${err.message}`, { cause: err })))
    })
    const record: RunRecord = {
      name: o.spec.name,
      digest: o.spec.digest,
      version: o.spec.version,
      pid,
      startTime: processStartTime(pid) ?? '',
      socket: o.socket,
      parametersKey: o.parametersKey,
      startedAtMs: Date.now()
    }
    return new ComponentProcess(record, child)
  }

  /** A process a previous agent run started, if it still runs (same PID and start time). */
  static adopt(record: RunRecord): ComponentProcess | undefined {
    return isAlive(record) ? new ComponentProcess(record) : undefined
  }

  get adopted(): boolean {
    return this.child == null
  }

  alive(): boolean {
    if (this.child != null) return this.exited == null
    return isAlive(this.record)
  }

  /** How it ended ("exit code 1", "signal SIGKILL"), for reasons. */
  exitText(): string {
    if (this.exited == null) return 'exited'
    return this.exited.signal != null ? `killed by ${this.exited.signal}` : `exit code ${this.exited.code}`
  }

  /**
   * Hello within `timeoutMs` (the socket may not exist yet: the call waits
   * for it), checking the contract version and the name. Throws
   * ComponentStartError naming what went wrong.
   */
  async hello(parameters: Record<string, string>, timeoutMs: number, signal: AbortSignal): Promise<HelloResponse> {
    const name = this.record.name
    const res = await this.call<HelloResponse>(
      (cb, opts, md) =>
        this.client.hello({ contractVersion: COMPONENT_CONTRACT_VERSION, name, version: this.record.version, parameters }, md, opts, cb),
      timeoutMs,
      signal
    ).catch((err: unknown) => {
      if (signal.aborted) throw err
      if (!this.alive()) throw new ComponentStartError(name, `process ${this.exitText()} before answering Hello`)
      throw new ComponentStartError(name, `no Hello answer within ${timeoutMs} ms (${(err as Error).message})`)
    })
    const v = COMPONENT_CONTRACT_VERSION
    if (res.contractVersionMin > v || res.contractVersionMax < v)
      throw new ComponentStartError(
        name,
        `speaks contract versions ${res.contractVersionMin}..${res.contractVersionMax}, this node speaks ${v}`
      )
    if (res.name !== name) throw new ComponentStartError(name, `answered Hello as "${res.name}"`)
    return res
  }

  health(timeoutMs: number, signal: AbortSignal): Promise<HealthResponse> {
    return this.call<HealthResponse>((cb, opts, md) => this.client.health({}, md, opts, cb), timeoutMs, signal)
  }

  /**
   * Stop rpc, then SIGTERM to its group after `graceMs` if it still runs
   * (at once if it did not take the call), then SIGKILL. Resolves once it is gone.
   */
  async stop(reason: string, graceMs: number): Promise<void> {
    const signal = AbortSignal.timeout(graceMs)
    const asked = await this.call((cb, opts, md) => this.client.stop({ reason }, md, opts, cb), graceMs, signal, false).then(
      () => true,
      () => false
    )
    // A component that did not take the Stop call gets SIGTERM now, not after the grace period.
    if (!asked || !(await this.waitGone(graceMs))) {
      this.kill('SIGTERM')
      if (!(await this.waitGone(graceMs))) {
        this.kill('SIGKILL')
        await this.waitGone(graceMs)
      }
    }
    this.client.close()
    await rm(this.record.socket, { force: true })
  }

  kill(sig: NodeJS.Signals): void {
    if (!this.alive()) return
    try {
      process.kill(-this.record.pid, sig) // its own group (detached)
    } catch {
      try {
        process.kill(this.record.pid, sig)
      } catch {
        // already gone
      }
    }
  }

  close(): void {
    this.client.close()
  }

  /** Whether it is gone within `ms`: a child's exit event, an adopted process's /proc entry. */
  private async waitGone(ms: number): Promise<boolean> {
    const deadline = Date.now() + ms
    while (this.alive()) {
      if (Date.now() >= deadline) return false
      if (this.child != null) {
        let done = (): void => undefined
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, Math.max(1, deadline - Date.now()))
          done = () => {
            clearTimeout(t)
            resolve()
          }
          this.exitWaiters.add(done)
        })
        this.exitWaiters.delete(done)
      } else {
        await new Promise((r) => setTimeout(r, 20))
      }
    }
    return true
  }

  private call<T>(
    invoke: (
      cb: (err: grpc.ServiceError | null, res: T) => void,
      opts: Partial<grpc.CallOptions>,
      md: grpc.Metadata
    ) => grpc.ClientUnaryCall,
    timeoutMs: number,
    signal: AbortSignal,
    waitForReady = true
  ): Promise<T> {
    if (signal.aborted) return Promise.reject(signal.reason as Error)
    return new Promise<T>((resolve, reject) => {
      const onExit = (): void => {
        call.cancel()
      }
      const onAbort = (): void => {
        call.cancel()
        reject(signal.reason as Error)
      }
      const call = invoke(
        (err, res) => {
          signal.removeEventListener('abort', onAbort)
          this.exitWaiters.delete(onExit)
          if (err != null) reject(err)
          else resolve(res)
        },
        { deadline: Date.now() + timeoutMs },
        new grpc.Metadata({ waitForReady })
      )
      // A process that dies while we wait for its socket would otherwise hold the call until the deadline.
      this.exitWaiters.add(onExit)
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }
}
