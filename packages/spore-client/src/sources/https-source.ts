import { request } from 'node:https'
import { isUnavailableError, UnavailableError, type SignedSpore } from '@mycelium/core-interfaces'
import { parseSporeBundle } from '../bundle-format.js'
import { SourceGuard, type SourceGuardInit, type SporeFetchOptions, type SporeSource } from './source.js'

export interface HttpsSourceInit extends SourceGuardInit {
  /** https:// URL serving a SporeBundle (JSON or binary). */
  url: string
  /**
   * PEM CA certificate(s) the server must chain to. Pinned: the system
   * roots are not trusted for spores.
   */
  caPem: string | Buffer
  /** Largest body accepted. @default 4 MiB */
  maxBytes?: number
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024

class HttpsSporeSource implements SporeSource {
  readonly id: string
  readonly kind = 'https' as const
  private readonly guard: SourceGuard
  private readonly maxBytes: number

  constructor(private readonly init: HttpsSourceInit) {
    const url = new URL(init.url)
    if (url.protocol !== 'https:') throw new TypeError(`spore URL must be https: ${init.url}`)
    this.id = init.url
    this.guard = new SourceGuard(this.id, init)
    this.maxBytes = init.maxBytes ?? DEFAULT_MAX_BYTES
  }

  fetch(options: SporeFetchOptions = {}): Promise<SignedSpore[]> {
    return this.guard.run(options, async (signal) => {
      const body = await this.get(signal)
      return parseSporeBundle(body, this.id)
    })
  }

  private get(signal: AbortSignal): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const req = request(
        this.init.url,
        {
          method: 'GET',
          ca: this.init.caPem,
          signal,
          minVersion: 'TLSv1.2',
          headers: { accept: 'application/x-protobuf, application/json' }
        },
        (res) => {
          if (res.statusCode !== 200) {
            res.resume()
            const retryAfterS = Number(res.headers['retry-after'])
            reject(
              new UnavailableError(`${this.id}: HTTP ${res.statusCode}`, Number.isFinite(retryAfterS) ? retryAfterS * 1000 : undefined)
            )
            return
          }
          const chunks: Buffer[] = []
          let size = 0
          res.on('data', (chunk: Buffer) => {
            size += chunk.length
            if (size > this.maxBytes) {
              req.destroy(new UnavailableError(`${this.id}: body larger than ${this.maxBytes} bytes`))
              return
            }
            chunks.push(chunk)
          })
          res.on('end', () => resolve(Buffer.concat(chunks)))
          res.on('error', reject)
        }
      )
      req.on('error', (err) =>
        reject(isUnavailableError(err) ? err : new UnavailableError(`${this.id}: ${err.message}`, undefined, { cause: err }))
      )
      req.end()
    })
  }
}

/** Spores from an HTTPS URL whose server must chain to a pinned CA. */
export function httpsSource(init: HttpsSourceInit): SporeSource {
  return new HttpsSporeSource(init)
}
