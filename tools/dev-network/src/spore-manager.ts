import * as grpc from '@grpc/grpc-js'
import { killStream } from './faults.js'
import { NotFoundError, Spore, type SignedSpore, type SporeServiceServer, type WatchSporesResponse } from '@mycelium/core-interfaces'
import { signSpore, type SigningPrivateKey } from '@mycelium/spore-tools'
import type { DevNetworkState } from './state.js'

type Body = NonNullable<Spore['body']>
type Watcher = { call: grpc.ServerWritableStream<unknown, WatchSporesResponse>; prefix: string; known: Record<string, number> }

export interface SporeManagerInit {
  /** Validity of published spores. @default 24 h */
  ttlMs?: number
}

/**
 * The Spore Manager: publishes this network's spores signed by k of its n
 * keys, bumping each name's sequence (persisted), and serves them with
 * GetSpore, ListSpores and WatchSpores.
 */
export class DevSporeManager {
  private readonly current = new Map<string, SignedSpore>()
  private readonly watchers = new Set<Watcher>()

  constructor(
    private readonly state: DevNetworkState,
    private readonly keys: SigningPrivateKey[],
    private readonly save: () => Promise<void>,
    private readonly init: SporeManagerInit = {}
  ) {}

  /** Signs `body` under `name` with the next sequence and pushes it to watchers. */
  async publish(name: string, body: Body): Promise<SignedSpore> {
    const sequence = (this.state.sequences[name] ?? 0) + 1
    this.state.sequences[name] = sequence
    await this.save()
    return this.put(this.sign(name, sequence, body))
  }

  /**
   * Fault control: publishes `name` again with a LOWER sequence than the
   * current one (a rollback attempt nodes must refuse).
   */
  publishLowerSequence(name: string): SignedSpore {
    const spore = this.current.get(name)
    if (spore == null) throw new NotFoundError(`no spore "${name}" to roll back`)
    const decoded = Spore.decode(spore.spore)
    return this.put(this.sign(name, Math.max(0, decoded.sequence - 1), decoded.body!), { force: true })
  }

  list(prefix = ''): SignedSpore[] {
    return [...this.current.entries()].filter(([n]) => n.startsWith(prefix)).map(([, s]) => s)
  }

  /** Ends every watch stream (as a crash would). */
  killStreams(): void {
    for (const w of this.watchers) killStream(w.call)
    this.watchers.clear()
  }

  private sign(name: string, sequence: number, body: Body): SignedSpore {
    const now = Date.now()
    const spore: Spore = {
      networkId: this.state.networkId,
      name,
      sequence,
      issuedAt: new Date(now - 1000),
      expiresAt: new Date(now + (this.init.ttlMs ?? 86_400_000)),
      body
    }
    return signSpore(spore, this.keys.slice(0, this.state.sporeThreshold))
  }

  private put(signed: SignedSpore, options: { force?: boolean } = {}): SignedSpore {
    const { name, sequence } = Spore.decode(signed.spore)
    this.current.set(name, signed)
    for (const w of this.watchers) {
      if (!name.startsWith(w.prefix)) continue
      if (!options.force && sequence <= (w.known[name] ?? 0)) continue
      w.known[name] = Math.max(sequence, w.known[name] ?? 0)
      w.call.write({ spores: [signed], snapshotComplete: false })
    }
    return signed
  }

  handlers(): SporeServiceServer {
    return {
      getSpore: (call, cb) => {
        const spore = this.current.get(call.request.name)
        if (spore == null) cb({ code: grpc.status.NOT_FOUND, details: `no spore named "${call.request.name}"` })
        else cb(null, { spore })
      },
      listSpores: (call, cb) => cb(null, { spores: this.list(call.request.namePrefix) }),
      watchSpores: (call) => {
        const watcher: Watcher = { call, prefix: call.request.namePrefix, known: { ...call.request.knownSequences } }
        const snapshot = this.list(watcher.prefix).filter((s) => {
          const { name, sequence } = Spore.decode(s.spore)
          return sequence > (watcher.known[name] ?? 0)
        })
        for (const s of snapshot) {
          const { name, sequence } = Spore.decode(s.spore)
          watcher.known[name] = sequence
        }
        this.watchers.add(watcher)
        const done = (): void => {
          this.watchers.delete(watcher)
        }
        call.on('cancelled', done)
        call.on('error', done)
        call.on('close', done)
        call.write({ spores: snapshot, snapshotComplete: true })
      }
    }
  }
}
