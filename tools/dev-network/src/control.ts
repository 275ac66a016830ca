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
      return { action: a.action }
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
          const text = await applyFault(net, parseFaultAction(JSON.parse(Buffer.concat(chunks).toString('utf8'))))
          res.writeHead(200, { 'content-type': 'text/plain' }).end(`${text}\n`)
        } catch (err) {
          res.writeHead(400, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`)
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
export async function sendFault(dir: string, action: FaultAction): Promise<string> {
  let control: ControlFile
  try {
    control = JSON.parse(await readFile(join(dir, CONTROL_FILE), 'utf8')) as ControlFile
  } catch {
    throw new NotFoundError(`no running dev-network found in ${dir} (start one with: dev-network up --dir ${dir})`)
  }
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
        res.on('data', (c: Buffer) => chunks.push(c))
        res.on('end', () => {
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
