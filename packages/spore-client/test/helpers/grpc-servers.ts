import * as grpc from '@grpc/grpc-js'
import {
  PeerAssistService,
  Spore,
  SporeServiceService,
  type PeerAssistServer,
  type SignedSpore,
  type SporeServiceServer,
  type WatchSporesResponse
} from '@mycelium/core-interfaces'
import type { TestPki } from '@mycelium/testing'

/**
 * Real grpc-js servers over mTLS on 127.0.0.1 serving a mutable spore set:
 * SporeService (as the Spore Manager) and PeerAssist.GetSpores (as a peer).
 */
export interface TestSporeServer {
  port: number
  address: string
  /** Replaces the served set and pushes the newer spores to open watch streams. */
  serve(spores: SignedSpore[]): void
  /** While true, unary calls never answer. */
  hang: boolean
  /** Number of WatchSpores streams opened so far. */
  watchesOpened: number
  /** Kills the server and every open stream (like a crash). */
  kill(): void
  /** Starts again on the same port with the same spores. */
  restart(): Promise<void>
  close(): Promise<void>
}

const nameOf = (s: SignedSpore): string => Spore.decode(s.spore).name
const seqOf = (s: SignedSpore): number => Spore.decode(s.spore).sequence

function newer(spores: SignedSpore[], known: Record<string, number>): SignedSpore[] {
  return spores.filter((s) => seqOf(s) > (known[nameOf(s)] ?? 0))
}

export async function startTestSporeServer(pki: TestPki, role: 'manager' | 'peer', port = 0): Promise<TestSporeServer> {
  const identity =
    role === 'manager'
      ? pki.issue(`spore-manager-${Date.now()}`, `spiffe://net1/manager/spore-manager`)
      : pki.issue(`peer-${Date.now()}`, `spiffe://net1/node/peer-1`)
  let spores: SignedSpore[] = []
  let server: grpc.Server
  const watchers = new Set<{ call: grpc.ServerWritableStream<unknown, WatchSporesResponse>; known: Record<string, number> }>()

  const state: TestSporeServer = {
    port,
    address: '',
    hang: false,
    watchesOpened: 0,
    serve(next) {
      spores = next
      for (const w of watchers) {
        const fresh = newer(spores, w.known)
        for (const s of fresh) w.known[nameOf(s)] = seqOf(s)
        if (fresh.length > 0) w.call.write({ spores: fresh, snapshotComplete: false })
      }
    },
    kill() {
      for (const w of watchers) w.call.destroy(new Error('killed'))
      watchers.clear()
      server.forceShutdown()
    },
    async restart() {
      await bind()
    },
    async close() {
      state.kill()
    }
  }

  const sporeService: SporeServiceServer = {
    getSpore(call, cb) {
      const found = spores.find((s) => nameOf(s) === call.request.name)
      if (found == null) cb({ code: grpc.status.NOT_FOUND, details: call.request.name })
      else cb(null, { spore: found })
    },
    listSpores(_call, cb) {
      if (!state.hang) cb(null, { spores })
    },
    watchSpores(call) {
      state.watchesOpened++
      const known = { ...call.request.knownSequences }
      const watcher = { call: call as grpc.ServerWritableStream<unknown, WatchSporesResponse>, known }
      watchers.add(watcher)
      call.on('cancelled', () => watchers.delete(watcher))
      const fresh = newer(spores, known)
      for (const s of fresh) known[nameOf(s)] = seqOf(s)
      call.write({ spores: fresh, snapshotComplete: true })
    }
  }
  const peerAssist: PeerAssistServer = {
    ping(_call, cb) {
      cb(null, { sequence: 0, phase: 0, managersReachable: false })
    },
    getSpores(call, cb) {
      if (!state.hang) cb(null, { spores: newer(spores, call.request.knownSequences) })
    },
    relayDistress(_call, cb) {
      cb(null, { delivered: false, reason: 'test peer' })
    },
    fetchArtifact(call) {
      call.destroy(Object.assign(new Error('test peer holds no artifacts'), { code: grpc.status.NOT_FOUND }))
    }
  }

  async function bind(): Promise<void> {
    server = new grpc.Server()
    if (role === 'manager') server.addService(SporeServiceService, sporeService)
    else server.addService(PeerAssistService, peerAssist)
    const creds = grpc.ServerCredentials.createSsl(pki.caPem, [{ private_key: identity.keyPem, cert_chain: identity.certPem }], true)
    state.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${state.port}`, creds, (err, p) => (err != null ? reject(err) : resolve(p)))
    )
    state.address = `127.0.0.1:${state.port}`
  }
  await bind()
  return state
}

/** Client credentials presenting a node identity of the test PKI. */
export function nodeCredentials(pki: TestPki, nodeId = 'node-1'): grpc.ChannelCredentials {
  const id = pki.issue(`${nodeId}-${Date.now()}`, `spiffe://net1/node/${nodeId}`)
  return grpc.credentials.createSsl(pki.caPem, id.keyPem, id.certPem)
}
