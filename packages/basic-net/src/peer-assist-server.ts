import * as grpc from '@grpc/grpc-js'
import {
  PeerAssistService,
  Phase,
  silentLogger,
  strictService,
  RETRY_AFTER_METADATA_KEY,
  type DistressAnswer,
  type DistressEnvelope,
  type DistressSignal,
  type Logger,
  type PeerAssistServer as PeerAssistHandlers,
  type SignedSpore,
  type Startable,
  type FetchArtifactResponse,
  type FetchArtifactRequest
} from '@mycelium/core-interfaces'
import { open, type FileHandle } from 'node:fs/promises'
import { DEFAULT_SERVER_OPTIONS, callerIdentity, serverCredentials } from './tls/credentials.js'
import type { IdentityStore } from './identity/identity-store.js'
import { TokenBucket, DEFAULT_RATE_LIMIT, type RateLimit } from '@mycelium/core-utils'
import { DISTRESS_ID_PATTERN, isDistressRefusedError, verifyDistress, type VerifiedDistress } from './distress/envelope.js'

/** A spore this node trusts, as spore-client lists it. */
export interface SharedSpore {
  name: string
  sequence: number
  signed: SignedSpore
}

export interface PeerAssistServerComponents {
  logger?: Logger
  identity: IdentityStore
  /** Verified spores to share with peers (spore-client's `list()`). */
  spores?: () => SharedSpore[]
  /** This node's phase and whether it reaches a Network Manager. */
  state?: () => { phase: Phase; managersReachable: boolean }
  /**
   * Delivers a distress signal toward the managers (bootstrap-agent wires it
   * to the Network Manager when MANAGED). Without it nothing is delivered.
   */
  onDistress?: (signal: DistressSignal) => Promise<{ delivered: boolean; reason: string }>
  /**
   * Delivers a signed call for help (already verified: signed by a member
   * of the network, naming its signer) toward the managers and returns
   * their answer. `envelope.hopsRemaining` is already decremented; `from`
   * is the peer that sent it (the node itself or a relay). Without it
   * nothing is delivered.
   */
  onSignedDistress?: (relay: SignedDistressRelay) => Promise<{ delivered: boolean; reason: string; answer?: DistressAnswer }>
  /**
   * The artifact this node holds with `digest` ("sha256:<hex>"), for FetchArtifact; undefined
   * when it holds none. Without it FetchArtifact answers NOT_FOUND to every digest.
   */
  artifacts?: (digest: string) => Promise<HeldArtifact | undefined>
}

/** A release artifact this node holds and serves to peers by digest (FetchArtifact). */
export interface HeldArtifact {
  /** The file (already verified by its digest when it was fetched). */
  path: string
  size: number
}

/** A verified envelope handed to `onSignedDistress`. */
export interface SignedDistressRelay {
  envelope: DistressEnvelope
  verified: VerifiedDistress
  /** Node id of the peer that sent it. */
  from: string
}

export interface PeerAssistServerInit {
  networkId: string
  nodeId: string
  /** "host:port"; port 0 picks one. @default "127.0.0.1:0" */
  listenAddress?: string
  /** Distress ids remembered to drop repeats. @default 1024 */
  distressMemory?: number
  /** Bytes of distress ids remembered (oldest forgotten first). @default DEFAULT_DISTRESS_MEMORY_BYTES */
  distressMemoryBytes?: number
  /** Calls for help accepted per sending peer (beyond: RESOURCE_EXHAUSTED with retry-after). @default DEFAULT_DISTRESS_RATE */
  distressRate?: RateLimit
  /** Largest artifact FetchArtifact serves (a larger one is NOT_FOUND). @default DEFAULT_MAX_SERVED_ARTIFACT_BYTES */
  maxServedArtifactBytes?: number
  /** FetchArtifact streams at once, over all peers (beyond: RESOURCE_EXHAUSTED with retry-after). @default DEFAULT_ARTIFACT_STREAMS */
  artifactStreams?: number
}

/** Largest artifact a node serves to peers. @default 256 MiB */
export const DEFAULT_MAX_SERVED_ARTIFACT_BYTES = 256 * 1024 * 1024
/** FetchArtifact streams served at once (an artifact is large; peers wait their turn). @default 2 */
export const DEFAULT_ARTIFACT_STREAMS = 2
/** Bytes per FetchArtifactResponse chunk. */
export const ARTIFACT_CHUNK_BYTES = 64 * 1024
const ARTIFACT_DIGEST = /^sha256:[0-9a-f]{64}$/

/** Per sending peer: a burst of 5 calls for help, then one every 2 s. */
export const DEFAULT_DISTRESS_RATE: Required<RateLimit> = { ...DEFAULT_RATE_LIMIT, burst: 5, perSecond: 0.5 }
/** Sending peers whose rate is tracked (the oldest forgotten first). */
const DISTRESS_RATE_PEERS = 256

/** Largest request each PeerAssist rpc accepts (a peer is not trusted with more). */
export const PEER_ASSIST_MAX_REQUEST_BYTES = {
  /** A sequence and a phase. */
  ping: 1024,
  /** Known sequences of at most ~1024 spore names. */
  getSpores: 128 * 1024,
  /** One signal: id, node identity, reason. */
  relayDistress: 16 * 1024,
  /** A digest and an offset. */
  fetchArtifact: 1024
} as const
/** Receive limit of the PeerAssist server: the largest of the per-rpc limits. */
export const PEER_ASSIST_MAX_RECEIVE_BYTES = Math.max(...Object.values(PEER_ASSIST_MAX_REQUEST_BYTES))
export { DISTRESS_ID_PATTERN }
export const DEFAULT_DISTRESS_MEMORY_BYTES = 64 * 1024

/** An Error grpc-js sends as its status (code, details, metadata). */
const statusError = (code: grpc.status, details: string, metadata = new grpc.Metadata()): grpc.ServiceError =>
  Object.assign(new Error(details), { code, details, metadata })

/**
 * Serves PeerAssist over mTLS to node identities only: Ping (for failure
 * detectors), GetSpores (verified spores; the caller verifies again),
 * RelayDistress (deduplicated, hop-limited) and FetchArtifact (release
 * artifacts held by digest, size- and concurrency-limited).
 */
class DefaultPeerAssistServer implements PeerAssistServer {
  private readonly log: Logger
  private server?: grpc.Server
  private boundPort = 0
  private readonly seenDistress = new Set<string>()
  private seenDistressBytes = 0
  private readonly distressRates = new Map<string, TokenBucket>()
  private artifactStreams = 0

  constructor(
    private readonly components: PeerAssistServerComponents,
    private readonly init: PeerAssistServerInit
  ) {
    this.log = (components.logger ?? silentLogger()).forComponent('basic-net:peer-assist')
  }

  get port(): number {
    return this.boundPort
  }

  get address(): string {
    const host = (this.init.listenAddress ?? '127.0.0.1:0').replace(/:\d+$/, '')
    return `${host}:${this.boundPort}`
  }

  isStarted(): boolean {
    return this.server != null
  }

  async start(): Promise<void> {
    if (this.server != null) return
    // Bounded before anything is buffered (grpc-js refuses a larger message
    // with RESOURCE_EXHAUSTED), then per rpc and strictly decoded.
    const server = new grpc.Server({
      ...DEFAULT_SERVER_OPTIONS,
      'grpc.max_receive_message_length': PEER_ASSIST_MAX_RECEIVE_BYTES
    })
    server.addService(strictService(PeerAssistService, { maxBytesPerMethod: PEER_ASSIST_MAX_REQUEST_BYTES }), this.handlers())
    const creds = serverCredentials(this.components.identity, { networkId: this.init.networkId, role: 'node' })
    try {
      this.boundPort = await new Promise<number>((resolve, reject) =>
        server.bindAsync(this.init.listenAddress ?? '127.0.0.1:0', creds, (err, port) => (err != null ? reject(err) : resolve(port)))
      )
    } catch (err) {
      server.forceShutdown()
      throw err
    }
    this.server = server
    this.log.info('PeerAssist serving', { address: this.address })
  }

  async stop(): Promise<void> {
    const server = this.server
    if (server == null) return
    this.server = undefined
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        server.forceShutdown()
        resolve()
      }, 2000)
      force.unref()
      server.tryShutdown(() => {
        clearTimeout(force)
        resolve()
      })
    })
  }

  private handlers(): PeerAssistHandlers {
    const required = { networkId: this.init.networkId, role: 'node' as const }
    return {
      ping: (call, callback) => {
        const state = this.components.state?.() ?? { phase: Phase.UNSPECIFIED, managersReachable: false }
        callback(null, {
          sequence: call.request.sequence,
          phase: state.phase,
          managersReachable: state.managersReachable,
          identity: {
            networkId: this.init.networkId,
            nodeId: this.init.nodeId,
            spiffeId: this.components.identity.spiffeId,
            certificateSha256: this.components.identity.report().certificateSha256 ?? ''
          }
        })
      },
      getSpores: (call, callback) => {
        const known = call.request.knownSequences
        const spores = (this.components.spores?.() ?? []).filter((s) => s.sequence > (known[s.name] ?? 0)).map((s) => s.signed)
        callback(null, { spores })
      },
      fetchArtifact: (call) => {
        void this.serveArtifact(call, callerIdentity(call, required).name)
      },
      relayDistress: (call, callback) => {
        if (call.request.envelope != null) {
          this.relaySigned(call.request.envelope, callerIdentity(call, required).name).then(
            (res) => callback(null, res),
            (err: Partial<grpc.ServiceError>) => callback(err)
          )
          return
        }
        const signal = call.request.signal
        if (signal == null || signal.distressId === '') {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: 'RelayDistressRequest.signal.distress_id is required' })
          return
        }
        if (!DISTRESS_ID_PATTERN.test(signal.distressId)) {
          callback({
            code: grpc.status.INVALID_ARGUMENT,
            details: `RelayDistressRequest.signal.distress_id must match ${DISTRESS_ID_PATTERN.source}`
          })
          return
        }
        if (this.seenDistress.has(signal.distressId)) {
          callback(null, { delivered: false, reason: 'already relayed' })
          return
        }
        this.remember(signal.distressId)
        if (signal.hopsRemaining === 0) {
          callback(null, { delivered: false, reason: 'hop limit reached' })
          return
        }
        const from = callerIdentity(call, required)
        this.log.warn('distress signal from peer', {
          from: from.name,
          node: signal.node?.nodeId.slice(0, 64),
          reason: signal.reason.slice(0, 256)
        })
        const relay = this.components.onDistress
        if (relay == null) {
          callback(null, { delivered: false, reason: 'this node has no route to a manager' })
          return
        }
        relay({ ...signal, hopsRemaining: signal.hopsRemaining - 1 }).then(
          (result) => callback(null, result),
          (err: unknown) => callback(null, { delivered: false, reason: `relay failed: ${(err as Error).message}` })
        )
      }
    }
  }

  /**
   * A signed call for help: rate-limited per sending peer, verified (a
   * member of the network signed it and it names its signer: a relay cannot
   * forge another node's call), deduplicated by distress id, hop-limited,
   * then handed to `onSignedDistress` with one hop less.
   */
  private async relaySigned(
    envelope: DistressEnvelope,
    from: string
  ): Promise<{ delivered: boolean; reason: string; answer?: DistressAnswer }> {
    const waitMs = this.rateOf(from).take()
    if (waitMs > 0) {
      const metadata = new grpc.Metadata()
      metadata.set(RETRY_AFTER_METADATA_KEY, String(Math.ceil(waitMs)))
      throw statusError(grpc.status.RESOURCE_EXHAUSTED, `too many distress calls from ${from}; retry later`, metadata)
    }
    let verified: VerifiedDistress
    try {
      verified = verifyDistress(envelope, { networkId: this.init.networkId, caPem: this.components.identity.material()?.caPem ?? '' })
    } catch (err) {
      if (!isDistressRefusedError(err)) throw err
      this.log.warn('distress refused', { from, refusal: err.reason, detail: err.message })
      throw statusError(err.reason === 'malformed' ? grpc.status.INVALID_ARGUMENT : grpc.status.PERMISSION_DENIED, err.message)
    }
    const id = verified.distress.distressId
    if (this.seenDistress.has(id)) return { delivered: false, reason: 'already relayed' }
    this.remember(id)
    if (envelope.hopsRemaining === 0) return { delivered: false, reason: 'hop limit reached' }
    this.log.warn('distress call from peer', {
      from,
      node: verified.nodeId,
      distressId: id,
      problem: verified.distress.problem,
      evidence: verified.distress.evidence.slice(0, 4)
    })
    const relay = this.components.onSignedDistress
    if (relay == null) return { delivered: false, reason: 'this node has no route to a manager' }
    try {
      return await relay({ envelope: { ...envelope, hopsRemaining: envelope.hopsRemaining - 1 }, verified, from })
    } catch (err) {
      return { delivered: false, reason: `relay failed: ${(err as Error).message}` }
    }
  }

  /**
   * FetchArtifact: only an artifact this node holds by its digest, no larger than
   * `maxServedArtifactBytes`, from the offset asked, in ARTIFACT_CHUNK_BYTES chunks written
   * as the peer reads them (backpressure); at most `artifactStreams` at once. The
   * fetching peer checks size and sha256 itself: nothing here is trusted by it.
   */
  private async serveArtifact(call: grpc.ServerWritableStream<FetchArtifactRequest, FetchArtifactResponse>, from: string): Promise<void> {
    // grpc-js sends the status of an 'error' event on a server stream (and ends it).
    const fail = (code: grpc.status, details: string, metadata?: grpc.Metadata): void => {
      call.emit('error', statusError(code, details, metadata))
    }
    const { digest, offset } = call.request
    if (!ARTIFACT_DIGEST.test(digest))
      return fail(grpc.status.INVALID_ARGUMENT, 'FetchArtifactRequest.digest must be sha256:<64 lowercase hex>')
    const held = await this.components.artifacts?.(digest).catch(() => undefined)
    if (held == null || held.size > (this.init.maxServedArtifactBytes ?? DEFAULT_MAX_SERVED_ARTIFACT_BYTES))
      return fail(grpc.status.NOT_FOUND, `this peer holds no artifact ${digest}`)
    if (offset > held.size) return fail(grpc.status.OUT_OF_RANGE, `offset ${offset} is beyond the artifact's ${held.size} bytes`)
    if (this.artifactStreams >= (this.init.artifactStreams ?? DEFAULT_ARTIFACT_STREAMS)) {
      const metadata = new grpc.Metadata()
      metadata.set(RETRY_AFTER_METADATA_KEY, '1000')
      return fail(grpc.status.RESOURCE_EXHAUSTED, 'this peer serves as many artifacts as it can; retry later', metadata)
    }
    this.artifactStreams++
    this.log.info('serving an artifact to a peer', { from, digest, offset, size: held.size })
    let file: FileHandle | undefined
    try {
      file = await open(held.path, 'r')
      let at = offset
      while (at < held.size && !call.cancelled && !call.destroyed) {
        const buf = Buffer.alloc(Math.min(ARTIFACT_CHUNK_BYTES, held.size - at))
        const { bytesRead } = await file.read(buf, 0, buf.length, at)
        if (bytesRead === 0) break
        const more = call.write({ offset: at, data: buf.subarray(0, bytesRead), totalSize: held.size })
        at += bytesRead
        if (!more)
          await new Promise<void>((resolve) => {
            call.once('drain', resolve)
            call.once('close', resolve)
          })
      }
      call.end()
    } catch (err) {
      this.log.warn('artifact not served', { from, digest, err })
      fail(grpc.status.UNAVAILABLE, `artifact ${digest} could not be read`)
    } finally {
      this.artifactStreams--
      await file?.close().catch(() => undefined)
    }
  }

  private rateOf(peer: string): TokenBucket {
    let bucket = this.distressRates.get(peer)
    if (bucket == null) {
      bucket = new TokenBucket(this.init.distressRate ?? DEFAULT_DISTRESS_RATE)
      this.distressRates.set(peer, bucket)
      if (this.distressRates.size > DISTRESS_RATE_PEERS) this.distressRates.delete(this.distressRates.keys().next().value as string)
    }
    return bucket
  }

  /** Remembers an id; the memory is bounded by count and by bytes (ids are bounded too). */
  private remember(id: string): void {
    this.seenDistress.add(id)
    this.seenDistressBytes += id.length
    const maxCount = this.init.distressMemory ?? 1024
    const maxBytes = this.init.distressMemoryBytes ?? DEFAULT_DISTRESS_MEMORY_BYTES
    while (this.seenDistress.size > maxCount || this.seenDistressBytes > maxBytes) {
      // Sets iterate in insertion order: drop the oldest.
      const oldest = this.seenDistress.values().next().value as string
      this.seenDistress.delete(oldest)
      this.seenDistressBytes -= oldest.length
    }
  }

  /** What the dedup memory holds (for tests and metrics). */
  distressMemoryUsage(): { ids: number; bytes: number } {
    return { ids: this.seenDistress.size, bytes: this.seenDistressBytes }
  }
}

/** The PeerAssist mTLS server (see `createPeerAssistServer`); start/stop are idempotent. */
export interface PeerAssistServer extends Startable {
  /** The bound port (after start). */
  readonly port: number
  /** "host:port" as peers dial it (after start). */
  readonly address: string
  start(): Promise<void>
  stop(): Promise<void>
  /** What the distress dedup memory holds (for tests and metrics). */
  distressMemoryUsage(): { ids: number; bytes: number }
}

export function createPeerAssistServer(components: PeerAssistServerComponents, init: PeerAssistServerInit): PeerAssistServer {
  return new DefaultPeerAssistServer(components, init)
}
