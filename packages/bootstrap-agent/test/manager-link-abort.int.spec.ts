import * as grpc from '@grpc/grpc-js'
import { isAbortError, NetworkManagerService, type RegisterNodeRequest } from '@mycelium/core-interfaces'
import { createTestPki, until, type TestPki } from '@mycelium/testing'
import { ManagerLink } from '../src/manager-link.js'

/**
 * Every unary call of the link takes the agent's AbortSignal: against a real
 * mTLS Network Manager that takes calls and never answers, aborting a
 * register rejects with AbortError and cancels the call at the manager,
 * while the call's own deadline (an hour away) is nowhere near. Without the
 * signal this test would hang until jest's timeout.
 */
describe('manager link: unary calls follow the AbortSignal', () => {
  const NETWORK = 'net1'
  const HOUR_MS = 3_600_000
  let pki: TestPki
  let server: grpc.Server
  let address: string
  let credentials: grpc.ChannelCredentials
  const pending: Array<grpc.ServerUnaryCall<RegisterNodeRequest, unknown>> = []
  let cancelledAtManager = 0

  beforeAll(async () => {
    pki = createTestPki(NETWORK)
    const manager = pki.issue('network-manager', `spiffe://${NETWORK}/manager/network-manager`)
    const node = pki.issue('node-1', `spiffe://${NETWORK}/node/node-1`)
    const unimplemented = (_call: unknown, cb: (err: Partial<grpc.ServiceError>) => void): void => cb({ code: grpc.status.UNIMPLEMENTED })
    // Takes every call and never answers: only the caller can end it.
    const silent = (call: grpc.ServerUnaryCall<RegisterNodeRequest, unknown>): void => {
      pending.push(call)
      call.on('cancelled', () => cancelledAtManager++)
    }
    server = new grpc.Server()
    server.addService(NetworkManagerService, {
      enroll: unimplemented,
      registerNode: silent,
      commitHandoff: silent,
      requestAssignments: unimplemented,
      requestConfigUpdate: silent,
      renewCertificate: silent,
      reportHealth: unimplemented
    } as unknown as grpc.UntypedServiceImplementation)
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(
        '127.0.0.1:0',
        grpc.ServerCredentials.createSsl(pki.caPem, [{ private_key: manager.keyPem, cert_chain: manager.certPem }], true),
        (err, p) => (err != null ? reject(err) : resolve(p))
      )
    )
    address = `127.0.0.1:${port}`
    credentials = grpc.credentials.createSsl(pki.caPem, node.keyPem, node.certPem)
  })
  afterAll(() => {
    server.forceShutdown()
    pki.cleanup()
  })

  const connectedLink = async (): Promise<ManagerLink> => {
    const link = new ManagerLink({ credentials, dialTimeoutMs: HOUR_MS })
    await link.connect(
      [{ address, expectedIdentity: `spiffe://${NETWORK}/manager/network-manager`, zone: '', priority: 0 }],
      new AbortController().signal
    )
    return link
  }

  it('aborting a register rejects with AbortError and cancels the call at the manager', async () => {
    const link = await connectedLink()
    const agent = new AbortController()
    const before = pending.length
    const register = link.register(
      { completedCommandIds: [], configVersion: 0, bootId: 'boot-1', fromPhase: 0 } as unknown as RegisterNodeRequest,
      agent.signal
    )
    const outcome = register.then(
      () => 'answered',
      (err: unknown) => err
    )
    // The manager holds the call: nothing has answered it, and its deadline is an hour away.
    await until('the register call at the manager', () => pending.length > before)
    agent.abort()
    const err = await outcome
    expect(isAbortError(err)).toBe(true)
    await until('the manager sees the call cancelled', () => cancelledAtManager > 0)
    link.close()
  })

  it('commit, renew and config requests end the same way', async () => {
    const link = await connectedLink()
    for (const call of [
      (signal: AbortSignal) => link.commit('handoff-1', 'lease-1', 0, HOUR_MS, signal),
      (signal: AbortSignal) => link.renewCertificate(Buffer.from('csr'), signal),
      (signal: AbortSignal) => link.requestConfig(0, signal)
    ]) {
      const agent = new AbortController()
      const before = pending.length
      const outcome = call(agent.signal).then(
        () => 'answered',
        (err: unknown) => err
      )
      await until('the call at the manager', () => pending.length > before)
      agent.abort()
      expect(isAbortError(await outcome)).toBe(true)
    }
    // A signal already aborted (the agent stopped meanwhile) ends the call before it starts.
    expect(isAbortError(await link.requestConfig(0, AbortSignal.abort()).catch((err: unknown) => err))).toBe(true)
    link.close()
  })
})
