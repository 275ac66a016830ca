import { isAbortError, isTimeoutError, type SignedSpore } from '@mycelium/core-interfaces'
import { serviceSpore, signSporeForTest, testSigningKey } from '@mycelium/testing'
import { isRateLimitedError, type SourceGuardInit, type SporeSource } from '../src/index.js'

/** What a source implementation provides to the shared compliance suite. */
export interface SourceHarness {
  source: SporeSource
  /** Makes the backend serve exactly these spores. */
  serve(spores: SignedSpore[]): Promise<void>
  /** Makes the backend unreachable. */
  breakBackend(): Promise<void>
  /** Makes the backend accept the call but never answer (omit when impossible, e.g. files). */
  hang?(): void
  close(): Promise<void>
}

const key = testSigningKey()
const spores = [1, 2].map((seq) => signSporeForTest(serviceSpore('net1', `svc-${seq}`, seq, [`127.0.0.1:${7000 + seq}`]), [key]))

const bytes = (list: SignedSpore[]): string[] => list.map((s) => Buffer.from(s.spore).toString('hex')).sort()

/**
 * Every SporeSource behaves alike: it transports exactly what its backend
 * holds, honours AbortSignal, times out, is rate-limited, and names itself
 * in its errors.
 */
export function sporeSourceCompliance(
  name: string,
  make: (init: SourceGuardInit) => Promise<SourceHarness>,
  capabilities: { canHang: boolean } = { canHang: true }
): void {
  describe(`SporeSource compliance: ${name}`, () => {
    let h: SourceHarness | undefined
    const open = async (init: SourceGuardInit = {}): Promise<SourceHarness> => {
      h = await make({ timeoutMs: 2000, rateLimit: { burst: 100, perSecond: 100 }, ...init })
      return h
    }
    afterEach(async () => {
      await h?.close()
      h = undefined
    })

    it('returns exactly the spores its backend holds, signatures included', async () => {
      const { source, serve } = await open()
      await serve(spores)
      const got = await source.fetch()
      expect(bytes(got)).toEqual(bytes(spores))
      expect(got.every((s) => s.signatures.length === 1 && s.signatures[0]!.signature.length === 64)).toBe(true)
    })

    it('sees the backend change between calls', async () => {
      const { source, serve } = await open()
      await serve(spores.slice(0, 1))
      expect(await source.fetch()).toHaveLength(1)
      await serve(spores)
      expect(bytes(await source.fetch())).toEqual(bytes(spores))
    })

    it('refuses an already aborted call with AbortError', async () => {
      const { source, serve } = await open()
      await serve(spores)
      const err = await source.fetch({ signal: AbortSignal.abort() }).catch((e: unknown) => e)
      expect(isAbortError(err)).toBe(true)
    })

    it('is rate-limited: calls beyond the burst are refused with a retry time', async () => {
      const { source, serve } = await open({ rateLimit: { burst: 2, perSecond: 0.5 } })
      await serve(spores)
      await source.fetch()
      await source.fetch()
      const err = await source.fetch().catch((e: unknown) => e)
      expect(isRateLimitedError(err)).toBe(true)
      if (isRateLimitedError(err)) {
        expect(err.retryAfterMs).toBeGreaterThan(0)
        expect(err.retryAfterMs).toBeLessThanOrEqual(2000)
        expect(err.source).toBe(source.id)
      }
    })

    it('fails with an error naming the source when the backend is gone', async () => {
      const { source, serve, breakBackend } = await open()
      await serve(spores)
      await breakBackend()
      const err = (await source.fetch().catch((e: unknown) => e)) as Error
      expect(err).toBeInstanceOf(Error)
      expect(err.message).toContain(source.id)
    })

    // A local file cannot hang, so file sources do not register this case.
    if (capabilities.canHang)
      it('times out when the backend does not answer, and can be aborted mid-call', async () => {
        const harness = await open({ timeoutMs: 300 })
        await harness.serve(spores)
        harness.hang!()
        const timedOut = await harness.source.fetch().catch((e: unknown) => e)
        expect(isTimeoutError(timedOut)).toBe(true)
        const controller = new AbortController()
        setTimeout(() => controller.abort(), 50)
        const aborted = await harness.source.fetch({ signal: controller.signal }).catch((e: unknown) => e)
        expect(isAbortError(aborted)).toBe(true)
      })
  })
}
