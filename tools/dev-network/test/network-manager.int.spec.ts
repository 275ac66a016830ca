import * as grpc from '@grpc/grpc-js'
import {
  CommandChannelClient,
  CommandState,
  HandoffOutcome,
  NodeConfig,
  Phase,
  RETRY_AFTER_METADATA_KEY,
  supportedContractVersions,
  type OpenResponse,
  type RegisterNodeResponse,
  type ReportHealthResponse
} from '@mycelium/core-interfaces'
import { clientCredentials, defaultChannelOptions, type IdentityStore } from '@mycelium/basic-net'
import { startDevNetwork, type DevNetwork } from '../src/index.js'
import { enrolledNode, enrollmentClient, managerClient, nodeStore, unary } from './helpers/node.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const capabilities = {
  cpuCores: 2,
  cpuModel: 'test',
  memoryBytes: 1 << 30,
  os: 'linux',
  osRelease: '6',
  arch: 'x64',
  components: [],
  labels: {},
  agentVersion: '0.1.0'
}

let net: DevNetwork
let dir: string
let node: IdentityStore
const closers: Array<() => void> = []

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'dev-net-nm-'))
  net = await startDevNetwork({
    networkId: 'net1',
    heartbeatIntervalMs: 200,
    leaseTtlMs: 600,
    registrationRate: { burst: 1000, perSecond: 1000 }
  })
  node = (await enrolledNode(net, 'node-1', dir)).store
})
afterAll(async () => {
  for (const c of closers) c()
  node?.stop()
  await net?.stop()
  rmSync(dir, { recursive: true, force: true })
})

function nm() {
  const c = managerClient(net, node)
  closers.push(() => c.close())
  return c
}

const register = (client = nm(), contractVersions = supportedContractVersions(), nodeId = 'node-1'): Promise<RegisterNodeResponse> =>
  unary(client.registerNode.bind(client), {
    identity: { networkId: 'net1', nodeId, spiffeId: `spiffe://net1/node/${nodeId}`, certificateSha256: '' },
    capabilities,
    contractVersions,
    configVersion: 0,
    bootId: 'boot-1',
    fromPhase: Phase.DISCOVERY,
    completedCommandIds: []
  })

describe('Enroll', () => {
  it('issues a certificate chain and the trust bundle for a join token + CSR', async () => {
    const { response, store } = await enrolledNode(net, 'node-2', dir)
    expect(response.certificateChainPem[0]).toContain('BEGIN CERTIFICATE')
    expect(response.trustBundle?.sporeThreshold).toBe(2)
    expect(store.report().spiffeId?.name).toBe('node-2')
    store.stop()
  })

  it.each([
    [
      'a bad join token',
      async () => ({ joinToken: 'myc1.net1.abcdef.' + 'x'.repeat(32) + '.' + 'a'.repeat(64) }),
      grpc.status.UNAUTHENTICATED,
      'join token not recognised'
    ],
    ['garbage instead of a token', async () => ({ joinToken: 'hello' }), grpc.status.UNAUTHENTICATED, 'not a join token'],
    [
      'a CSR for another network',
      async () => ({ csrDer: await (await nodeStore(net, 'node-x', dir, 'net9')).createCsr(), nodeId: 'node-x' }),
      grpc.status.INVALID_ARGUMENT,
      'CSR is for network "net9"'
    ],
    [
      'an unsupported contract version',
      async () => ({ contractVersions: { min: 7, max: 9 } }),
      grpc.status.FAILED_PRECONDITION,
      'unsupported contract versions 7–9'
    ],
    ['a CSR that is not one', async () => ({ csrDer: Buffer.from('not a csr') }), grpc.status.INVALID_ARGUMENT, 'EnrollRequest.csr_der']
  ])('refuses %s', async (_what, override, code, details) => {
    const store = await nodeStore(net, 'node-3', dir)
    const client = enrollmentClient(net)
    closers.push(() => client.close())
    const req = {
      joinToken: await net.newJoinToken(),
      csrDer: await store.createCsr(),
      networkId: 'net1',
      nodeId: 'node-3',
      contractVersions: supportedContractVersions(),
      ...(await override())
    }
    const err = (await unary(client.enroll.bind(client), req).catch((e: unknown) => e)) as grpc.ServiceError
    store.stop()
    expect(err.code).toBe(code)
    expect(err.details).toContain(details)
  })

  it('refuses a token already used by another node', async () => {
    const token = await net.newJoinToken()
    ;(await enrolledNode(net, 'node-4', dir, token)).store.stop()
    const err = (await enrolledNode(net, 'node-5', dir, token).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.PERMISSION_DENIED)
    expect(err.details).toContain('already used by node "node-4"')
  })
})

describe('NetworkManager over mTLS', () => {
  it('registers with a lease, heartbeat interval and handoff, and confirms the handoff', async () => {
    const client = nm()
    const res = await register(client)
    expect(res.contractVersion).toBe(1)
    expect(res.heartbeatInterval).toEqual({ seconds: 0, nanos: 200_000_000 })
    expect(res.lease?.leaseId).toMatch(/[0-9a-f-]{36}/)
    const commit = await unary(client.commitHandoff.bind(client), {
      handoffId: res.handoffId,
      leaseId: res.lease!.leaseId,
      configVersion: 0
    })
    expect(commit.outcome).toBe(HandoffOutcome.CONFIRMED)
    expect(net.networkManager.nodes.get('node-1')?.managed).toBe(true)
  })

  it('refuses an unsupported contract version, and a handoff when told to', async () => {
    const err = (await register(nm(), { min: 5, max: 6 }).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION)
    net.networkManager.handoffFaults.refuseHandoff = true
    try {
      const client = nm()
      const res = await register(client)
      const commit = await unary(client.commitHandoff.bind(client), {
        handoffId: res.handoffId,
        leaseId: res.lease!.leaseId,
        configVersion: 0
      })
      expect(commit.outcome).toBe(HandoffOutcome.REFUSED)
      expect(commit.reason).toContain('refused')
    } finally {
      net.networkManager.handoffFaults.refuseHandoff = false
    }
  })

  it('serves assignments and config updates by version', async () => {
    const client = nm()
    const res = await register(client)
    net.networkManager.setAssignments('node-1', [
      { assignmentId: 'a1', componentSpore: 'component/log-shipper', desiredState: 'running', parameters: {} }
    ])
    const a = await unary(client.requestAssignments.bind(client), { leaseId: res.lease!.leaseId, knownGeneration: 0 })
    expect(a.changed).toBe(true)
    expect(a.assignments.map((x) => x.assignmentId)).toEqual(['a1'])
    expect(
      (await unary(client.requestAssignments.bind(client), { leaseId: res.lease!.leaseId, knownGeneration: a.generation })).changed
    ).toBe(false)

    const version = net.networkManager.desiredConfig.version + 1
    await net.networkManager.setConfig(NodeConfig.fromPartial({ version, networkId: 'net1', labels: { tier: 'edge' } }))
    const update = await unary(client.requestConfigUpdate.bind(client), { currentVersion: version - 1 })
    expect(update.config?.labels).toEqual({ tier: 'edge' })
    expect((await unary(client.requestConfigUpdate.bind(client), { currentVersion: version })).config).toBeUndefined()
  })

  it('acks heartbeats with lease renewals, and revokes an expired lease', async () => {
    const client = nm()
    const res = await register(client)
    const leaseId = res.lease!.leaseId
    const acks: ReportHealthResponse[] = []
    const stream = client.reportHealth()
    stream.on('data', (a: ReportHealthResponse) => acks.push(a))
    const ended = new Promise<void>((resolve) => stream.on('end', resolve).on('error', () => resolve()))
    for (let seq = 1; seq <= 3; seq++) {
      stream.write({
        leaseId,
        sequence: seq,
        sentAt: new Date(),
        phase: Phase.MANAGED,
        state: 1,
        components: [],
        workloads: [],
        configVersion: 0,
        dynamicComponents: [],
        appliedAssignmentsGeneration: 0
      })
      await new Promise((r) => setTimeout(r, 100))
    }
    expect(acks.map((a) => a.sequence)).toEqual([1, 2, 3])
    expect(acks.every((a) => !a.leaseRevoked && a.leaseExpiresAt!.getTime() > Date.now())).toBe(true)
    // Silence beyond the lease TTL (600 ms): the lease expires.
    await new Promise((r) => setTimeout(r, 900))
    stream.write({
      leaseId,
      sequence: 4,
      sentAt: new Date(),
      phase: Phase.MANAGED,
      state: 1,
      components: [],
      workloads: [],
      configVersion: 0,
      dynamicComponents: [],
      appliedAssignmentsGeneration: 0
    })
    await ended
    expect(acks.at(-1)).toMatchObject({ sequence: 4, leaseRevoked: true })
    expect(acks.at(-1)?.reason).toContain('expired')
  })

  it('renews a certificate for the caller only', async () => {
    const client = nm()
    const renewed = await unary(client.renewCertificate.bind(client), { csrDer: await node.createCsr() })
    expect(renewed.certificateChainPem[0]).toContain('BEGIN CERTIFICATE')
  })

  it('answers a registration burst with RESOURCE_EXHAUSTED and a retry-after', async () => {
    const burstNet = await startDevNetwork({ networkId: 'net1', registrationRate: { burst: 3, perSecond: 1 } })
    try {
      const burstNode = (await enrolledNode(burstNet, 'node-b', dir)).store
      const client = managerClient(burstNet, burstNode)
      const results = await Promise.allSettled(
        Array.from({ length: 10 }, () =>
          register(client, supportedContractVersions(), 'node-b').catch((e: grpc.ServiceError) => Promise.reject(e))
        )
      )
      client.close()
      burstNode.stop()
      const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as grpc.ServiceError)
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(3)
      expect(refused).toHaveLength(7)
      for (const e of refused) {
        expect(e.code).toBe(grpc.status.RESOURCE_EXHAUSTED)
        expect(Number(e.metadata.get(RETRY_AFTER_METADATA_KEY)[0])).toBeGreaterThan(0)
      }
    } finally {
      await burstNet.stop()
    }
  })

  it('refuses a client without a certificate', async () => {
    const anonymous = enrollmentClient(net)
    closers.push(() => anonymous.close())
    const noCert = new (anonymous.constructor as typeof import('@mycelium/core-interfaces').NetworkManagerClient)(
      net.endpoints.networkManager,
      grpc.credentials.createSsl(Buffer.from(net.caPem), null, null, { checkServerIdentity: () => undefined })
    )
    closers.push(() => noCert.close())
    const err = (await register(noCert).catch((e: unknown) => e)) as grpc.ServiceError
    expect(err.code).toBe(grpc.status.UNAVAILABLE)
  })
})

describe('CommandChannel.Open', () => {
  it('delivers queued and live commands and records their statuses in order', async () => {
    const client = nm()
    const res = await register(client)
    net.commands.send('node-1', {
      commandId: 'c-queued',
      issuedAt: new Date(),
      deadline: new Date(Date.now() + 60_000),
      issuer: 'test',
      kind: { $case: 'restart', value: { component: 'k3s-runtime' } }
    })
    const channel = new CommandChannelClient(
      net.endpoints.networkManager,
      clientCredentials(node, { networkId: 'net1', role: 'manager' }),
      defaultChannelOptions('net1')
    )
    closers.push(() => channel.close())
    const session = channel.open()
    const received: string[] = []
    session.on('data', (msg: OpenResponse) => {
      if (msg.message?.$case !== 'command') return
      const id = msg.message.value.commandId
      received.push(id)
      for (const state of [CommandState.ACCEPTED, CommandState.RUNNING, CommandState.SUCCEEDED]) {
        session.write({ message: { $case: 'update', value: { commandId: id, state, reason: '', at: new Date(), replayed: false } } })
      }
    })
    session.on('error', () => undefined)
    session.write({
      message: {
        $case: 'hello',
        value: {
          identity: { networkId: 'net1', nodeId: 'node-1', spiffeId: '', certificateSha256: '' },
          contractVersions: supportedContractVersions(),
          leaseId: res.lease!.leaseId
        }
      }
    })
    const queued = await net.commands.waitForOutcome('c-queued')
    expect(queued.map((u) => u.state)).toEqual([CommandState.ACCEPTED, CommandState.RUNNING, CommandState.SUCCEEDED])
    net.commands.send('node-1', {
      commandId: 'c-live',
      issuedAt: new Date(),
      deadline: new Date(Date.now() + 60_000),
      issuer: 'test',
      kind: { $case: 'restart', value: { component: '' } }
    })
    expect((await net.commands.waitForOutcome('c-live')).map((u) => u.state)).toEqual([
      CommandState.ACCEPTED,
      CommandState.RUNNING,
      CommandState.SUCCEEDED
    ])
    expect(received).toEqual(['c-queued', 'c-live'])
    session.end()
  })

  it('refuses a session whose hello names a lease it does not hold', async () => {
    const channel = new CommandChannelClient(
      net.endpoints.networkManager,
      clientCredentials(node, { networkId: 'net1', role: 'manager' }),
      defaultChannelOptions('net1')
    )
    closers.push(() => channel.close())
    const session = channel.open()
    const err = await new Promise<grpc.ServiceError>((resolve) => {
      session.on('error', resolve)
      session.on('data', () => undefined)
      session.write({
        message: {
          $case: 'hello',
          value: {
            identity: { networkId: 'net1', nodeId: 'node-1', spiffeId: '', certificateSha256: '' },
            contractVersions: supportedContractVersions(),
            leaseId: 'nope'
          }
        }
      })
    })
    expect(err.code).toBe(grpc.status.FAILED_PRECONDITION)
    expect(err.details).toContain('lease "nope" is not valid')
  })
})

describe('failover grace', () => {
  it('a manager that just started grants leases longer by the grace, and the configured length once it has passed', async () => {
    const graceDir = mkdtempSync(join(tmpdir(), 'dev-net-grace-'))
    const graced = await startDevNetwork({ networkId: 'net1', heartbeatIntervalMs: 200, leaseTtlMs: 600, failoverGraceMs: 1500 })
    const { store } = await enrolledNode(graced, 'node-g', graceDir)
    const client = managerClient(graced, store)
    try {
      const inGrace = await register(client, supportedContractVersions(), 'node-g')
      expect(inGrace.lease?.ttl).toEqual({ seconds: 2, nanos: 100_000_000 })
      // Past the grace (counted from the manager's start): the configured lease again.
      while (graced.networkManager.leaseTtlNow() !== 600) await new Promise((resolve) => setTimeout(resolve, 50))
      const after = await register(client, supportedContractVersions(), 'node-g')
      expect(after.lease?.ttl).toEqual({ seconds: 0, nanos: 600_000_000 })
    } finally {
      client.close()
      store.stop()
      await graced.stop()
      rmSync(graceDir, { recursive: true, force: true })
    }
  })
})
