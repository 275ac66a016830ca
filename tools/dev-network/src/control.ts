import * as grpc from '@grpc/grpc-js'
import { randomBytes, timingSafeEqual } from 'node:crypto'
import { createServer, request, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { InvalidInputError, NotFoundError, UnavailableError, HealthState, NodeConfig, SERVICE_NAMES } from '@mycelium/core-interfaces'
import { writeFileAtomic } from '@mycelium/core-utils'
import type { DevNetwork, ManagerName } from './dev-network.js'
import { assignComponent } from './component-artifacts.js'
import { nodeRows, parseCommandSpec, runCommand, type CommandSpec } from './operator.js'

/**
 * Fault controls of a running `dev-network up`, reachable by `dev-network
 * fault` from another process: a localhost HTTP endpoint guarded by a random
 * bearer token, both written to <dir>/control.json (mode 0600).
 */
export interface ControlFile {
  port: number
  token: string
  pid: number
}

export const CONTROL_FILE = 'control.json'

export type FaultAction =
  | { action: 'stop' | 'start'; manager: ManagerName }
  | { action: 'kill-streams' }
  | { action: 'delay'; manager: ManagerName; ms: number }
  | { action: 'refuse'; manager: ManagerName; code: keyof typeof grpc.status | 'off' }
  | { action: 'refuse-handoff' | 'ignore-handoff'; on: boolean }
  | { action: 'rollback-spore'; name: string }
  | { action: 'republish' }
  | { action: 'join-token' }
  | { action: 'push-config'; config: Record<string, unknown> }
  | { action: 'nodes' }
  | { action: 'assign'; node: string; component: string; state: 'running' | 'stopped' | 'none'; parameters: Record<string, string> }
  /** Every node as JSON (NodeRow[]): `dev-network nodes`. */
  | { action: 'node-list' }
  /** Sends a command to one node; the answer streams CommandEvent JSON lines until a final status. */
  | { action: 'command'; node: string; command: CommandSpec; timeoutMs?: number }

const MANAGERS: ManagerName[] = [SERVICE_NAMES.networkManager, SERVICE_NAMES.sporeManager]

/** Checks an action from outside; errors name the field. */
export function parseFaultAction(input: unknown): FaultAction {
  const a = input as Record<string, unknown>
  const manager = (): ManagerName => {
    if (!MANAGERS.includes(a.manager as ManagerName))
      throw new InvalidInputError(`manager must be one of ${MANAGERS.join(', ')}`, 'control request')
    return a.manager as ManagerName
  }
  switch (a?.action) {
    case 'stop':
    case 'start':
      return { action: a.action, manager: manager() }
    case 'kill-streams':
    case 'republish':
    case 'join-token':
    case 'nodes':
    case 'node-list':
      return { action: a.action }
    case 'command': {
      if (typeof a.node !== 'string' || a.node === '') throw new InvalidInputError('node is required', 'control request')
      const timeoutMs = a.timeoutMs == null ? undefined : Number(a.timeoutMs)
      if (timeoutMs != null && (!Number.isInteger(timeoutMs) || timeoutMs <= 0))
        throw new InvalidInputError('timeoutMs must be a positive integer', 'control request')
      return { action: 'command', node: a.node, command: parseCommandSpec(a.command), ...(timeoutMs != null ? { timeoutMs } : {}) }
    }
    case 'push-config':
      if (typeof a.config !== 'object' || a.config == null || Array.isArray(a.config))
        throw new InvalidInputError('config must be a NodeConfig in proto JSON form', 'control request')
      return { action: 'push-config', config: a.config as Record<string, unknown> }
    case 'delay': {
      const ms = Number(a.ms)
      if (!Number.isInteger(ms) || ms < 0) throw new InvalidInputError('ms must be a non-negative integer', 'control request')
      return { action: 'delay', manager: manager(), ms }
    }
    case 'refuse': {
      const code = String(a.code)
      if (code !== 'off' && !(code in grpc.status))
        throw new InvalidInputError('code must be "off" or a gRPC status name such as UNAVAILABLE', 'control request')
      return { action: 'refuse', manager: manager(), code: code as keyof typeof grpc.status | 'off' }
    }
    case 'refuse-handoff':
    case 'ignore-handoff':
      return { action: a.action, on: a.on === true || a.on === 'on' }
    case 'assign':
      if (typeof a.node !== 'string' || typeof a.component !== 'string' || !['running', 'stopped', 'none'].includes(String(a.state)))
        throw new InvalidInputError('assign needs node, component and state (running, stopped or none)', 'control request')
      return {
        action: 'assign',
        node: a.node,
        component: a.component,
        state: a.state as 'running',
        parameters: (a.parameters ?? {}) as Record<string, string>
      }
    case 'rollback-spore':
      if (typeof a.name !== 'string' || a.name === '') throw new InvalidInputError('name is required', 'control request')
      return { action: 'rollback-spore', name: a.name }
    default:
      throw new InvalidInputError(`unknown action "${String(a?.action)}"`, 'control request')
  }
}

/** Applies an action; returns a line for the operator. */
export async function applyFault(net: DevNetwork, f: FaultAction): Promise<string> {
  switch (f.action) {
    case 'stop':
      await net.stopManager(f.manager)
      return `${f.manager} stopped`
    case 'start':
      await net.startManager(f.manager)
      return `${f.manager} started`
    case 'kill-streams':
      net.killStreams()
      return 'streams killed'
    case 'delay':
      net.faults[f.manager].delayMs = f.ms
      return `${f.manager} delays calls by ${f.ms} ms`
    case 'refuse':
      net.faults[f.manager].refuseWith = f.code === 'off' ? undefined : (grpc.status[f.code] as grpc.status)
      return f.code === 'off' ? `${f.manager} answers again` : `${f.manager} refuses calls with ${f.code}`
    case 'refuse-handoff':
      net.networkManager.handoffFaults.refuseHandoff = f.on
      return `handoff refusal ${f.on ? 'on' : 'off'}`
    case 'ignore-handoff':
      net.networkManager.handoffFaults.ignoreHandoff = f.on
      return `handoff confirmations ${f.on ? 'withheld' : 'given'}`
    case 'rollback-spore':
      net.spores.publishLowerSequence(f.name)
      return `published "${f.name}" with a lower sequence`
    case 'republish':
      await net.publishAll()
      return 'spores republished'
    case 'join-token':
      return net.newJoinToken()
    case 'push-config': {
      // The version defaults to the next one; nodes learn of it from their next heartbeat ack.
      const config = NodeConfig.fromJSON({ networkId: net.networkId, ...f.config })
      if (f.config.version == null) config.version = net.networkManager.desiredConfig.version + 1
      await net.networkManager.setConfig(config)
      return `config v${config.version} offered to every node`
    }
    case 'assign':
      return `${f.node}: ${assignComponent(net, f.node, f.component, f.state, f.parameters).length} assignment(s), generation moved`
    case 'node-list':
      return JSON.stringify(nodeRows(net))
    case 'command': {
      // Without a stream (applyFault called in-process): the events as JSON lines once it ends.
      const lines: string[] = []
      await runCommand(net, f.node, f.command, (e) => lines.push(JSON.stringify(e)), f.timeoutMs != null ? { timeoutMs: f.timeoutMs } : {})
      return lines.join('\n')
    }
    case 'nodes': {
      const rows = [...net.networkManager.nodes.values()].map((n) => {
        const h = n.lastHealth
        const t = h?.lastConfigTrial
        const trial = t != null ? `, last trial v${t.version} ${t.outcome}${t.reason ? `: ${t.reason}` : ''}` : ''
        return `${n.nodeId}: config v${h?.configVersion ?? '?'}, ${h != null ? HealthState[h.state] : 'no heartbeat yet'}${trial}`
      })
      return rows.length > 0 ? rows.join('\n') : 'no nodes registered'
    }
  }
}

export async function startControlServer(net: DevNetwork): Promise<Server> {
  const token = randomBytes(16).toString('hex')
  const server = createServer((req, res) => {
    const auth = Buffer.from(req.headers.authorization ?? '')
    const want = Buffer.from(`Bearer ${token}`)
    if (req.method !== 'POST' || auth.length !== want.length || !timingSafeEqual(auth, want)) {
      res.writeHead(403).end('forbidden\n')
      return
    }
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      void (async () => {
        try {
          const action = parseFaultAction(JSON.parse(Buffer.concat(chunks).toString('utf8')))
          if (action.action === 'command') {
            // Checked before the stream starts, so a refusal is still a 400.
            if (!net.state.nodes[action.node] && !net.networkManager.nodes.has(action.node))
              throw new InvalidInputError(`no node "${action.node}" in this network (see: dev-network nodes)`, 'command --node')
            const gone = new AbortController()
            res.on('close', () => gone.abort())
            res.writeHead(200, { 'content-type': 'application/x-ndjson' })
            await runCommand(net, action.node, action.command, (e) => res.write(`${JSON.stringify(e)}\n`), {
              signal: gone.signal,
              ...(action.timeoutMs != null ? { timeoutMs: action.timeoutMs } : {})
            })
            res.end()
            return
          }
          const text = await applyFault(net, action)
          res.writeHead(200, { 'content-type': 'text/plain' }).end(`${text}\n`)
        } catch (err) {
          if (res.headersSent) res.end()
          else res.writeHead(400, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`)
        }
      })()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const control: ControlFile = { port: (server.address() as AddressInfo).port, token, pid: process.pid }
  await writeFileAtomic(join(net.dir, CONTROL_FILE), JSON.stringify(control), { mode: 0o600 })
  return server
}

/** Sends an action to the `up` running on `dir`. */
export function sendFault(dir: string, action: FaultAction): Promise<string> {
  return sendControl(dir, action)
}

/** The control file of the `up` running on `dir`, or NotFoundError saying how to start one. */
export async function readControlFile(dir: string): Promise<ControlFile> {
  try {
    return JSON.parse(await readFile(join(dir, CONTROL_FILE), 'utf8')) as ControlFile
  } catch {
    throw new NotFoundError(`no running dev-network found in ${dir} (start one with: dev-network up --dir ${dir})`)
  }
}

/**
 * Sends an action; `onLine` (when given) gets each line of the answer as it
 * arrives (a command's progress streams). Resolves with the whole answer.
 */
export async function sendControl(dir: string, action: FaultAction, onLine?: (line: string) => void): Promise<string> {
  const control = await readControlFile(dir)
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: control.port,
        method: 'POST',
        headers: { authorization: `Bearer ${control.token}`, 'content-type': 'application/json' }
      },
      (res) => {
        const chunks: Buffer[] = []
        let pending = ''
        res.on('data', (c: Buffer) => {
          chunks.push(c)
          if (res.statusCode !== 200 || onLine == null) return
          pending += c.toString('utf8')
          const lines = pending.split('\n')
          pending = lines.pop()!
          for (const line of lines) if (line !== '') onLine(line)
        })
        res.on('end', () => {
          if (res.statusCode === 200 && onLine != null && pending !== '') onLine(pending)
          const text = Buffer.concat(chunks).toString('utf8').trim()
          if (res.statusCode === 200) resolve(text)
          else reject(new UnavailableError(text))
        })
      }
    )
    req.on('error', (err) =>
      reject(
        new UnavailableError(`dev-network in ${dir} is not answering (${err.message}); is it still running?`, undefined, { cause: err })
      )
    )
    req.end(JSON.stringify(action))
  })
}
