import { AbortError, TimeoutError, type AbortOptions, type SignedSpore } from '@mycelium/core-interfaces'
import { anySignal, TokenBucket, type RateLimit } from '@mycelium/core-utils'
import { RateLimitedError } from '../errors.js'

export type SporeSourceKind = 'bootstrap-file' | 'https' | 'spore-manager' | 'peers'

export interface SporeFetchOptions extends AbortOptions {
  /** Highest trusted sequence per name; sources that can filter skip those. */
  knownSequences?: Record<string, number>
}

/**
 * Somewhere signed spores come from. Sources only transport bytes: every
 * spore they return is verified by the client. A call takes an AbortSignal,
 * ends with TimeoutError after the source's timeout, and is refused with
 * RateLimitedError beyond the source's rate.
 */
export interface SporeSource {
  /** Stable id used in logs, errors and status, e.g. "file:/etc/mycelium/bootstrap.json". */
  readonly id: string
  readonly kind: SporeSourceKind
  fetch(options?: SporeFetchOptions): Promise<SignedSpore[]>
  /** Releases connections; the client calls it on stop. */
  close?(): void
}

/** A source that can also push changes as they happen. */
export interface WatchableSporeSource extends SporeSource {
  /**
   * Batches of new spores until the stream fails (throws) or the signal is
   * aborted (ends quietly). Opening the stream counts against the rate limit.
   */
  watch(options: SporeFetchOptions): AsyncIterable<SignedSpore[]>
}

export interface SourceGuardInit {
  /** Timeout of one call. @default 10000 */
  timeoutMs?: number
  /** @default DEFAULT_RATE_LIMIT */
  rateLimit?: RateLimit
}

export const DEFAULT_SOURCE_TIMEOUT_MS = 10_000

/**
 * The shared discipline of every source call: refuse when aborted or over
 * the rate, combine the caller's signal with the timeout, and translate the
 * abort into AbortError or TimeoutError.
 */
export class SourceGuard {
  readonly timeoutMs: number
  private readonly bucket: TokenBucket

  constructor(
    private readonly sourceId: string,
    init: SourceGuardInit = {}
  ) {
    this.timeoutMs = init.timeoutMs ?? DEFAULT_SOURCE_TIMEOUT_MS
    this.bucket = new TokenBucket(init.rateLimit)
  }

  /** Checks abort and rate limit; call once per logical request. */
  admit(options: AbortOptions = {}): void {
    if (options.signal?.aborted === true) throw new AbortError(`${this.sourceId}: aborted`)
    const waitMs = this.bucket.take()
    if (waitMs > 0) throw new RateLimitedError(this.sourceId, waitMs)
  }

  /** Runs `fn` with a signal that also fires on the timeout. */
  async run<T>(options: AbortOptions, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    this.admit(options)
    const timeout = AbortSignal.timeout(this.timeoutMs)
    // anySignal, not AbortSignal.any: the caller's signal may outlive this request (see anySignal).
    const any = options.signal != null ? anySignal([options.signal, timeout]) : undefined
    try {
      return await fn(any?.signal ?? timeout)
    } catch (err) {
      throw this.translate(err, options.signal, timeout)
    } finally {
      any?.dispose()
    }
  }

  /** Maps an error thrown while `signal`s were live to AbortError/TimeoutError. */
  translate(err: unknown, caller: AbortSignal | undefined, timeout?: AbortSignal): unknown {
    if (caller?.aborted === true) return new AbortError(`${this.sourceId}: aborted`, { cause: err })
    if (timeout?.aborted === true) {
      return new TimeoutError(`${this.sourceId}: no answer within ${this.timeoutMs} ms`, this.timeoutMs, { cause: err })
    }
    return err
  }
}
