import { createHash } from 'node:crypto'
import {
  isUnavailableError,
  SERVICE_NAMES,
  UnavailableError,
  type Endpoint,
  type Logger,
  type NodeConfig,
  type SignedSpore,
  type TrustBundle
} from '@mycelium/core-interfaces'
import { clientCredentials, defaultChannelOptions, endpointCredentials, type IdentityStore } from '@mycelium/basic-net'
import {
  createSporeClient,
  fileSource,
  httpsSource,
  peerSource,
  sporeServiceSource,
  type SporeClient,
  type SporeFetchOptions,
  type SporeSource
} from '@mycelium/spore-client'
import { sourceTimeoutMs, sporeTimings } from './package-init.js'

/** What the HTTPS spore sources are now: read at every fetch, so a new config applies from the next poll. */
export interface HttpsSourcesSettings {
  /** discovery.httpsUrls plus the verified bootstrap spore's https_urls. */
  urls: string[]
  /** discovery.httpsCaFile's PEM, else the network CA of the trust bundle. */
  caPem: string
  /** discovery.sourceTimeout. */
  timeoutMs: number
}

/**
 * Every HTTPS URL that serves spores, as one source polled by the spore
 * client: each URL is fetched (pinned CA, timeout), the spores of those
 * that answered are returned; it fails only when every URL fails. The
 * per-URL sources are rebuilt when the settings change (their rate limits
 * otherwise kept).
 */
export function liveHttpsSources(settings: () => HttpsSourcesSettings): SporeSource {
  let built: { key: string; sources: SporeSource[] } = { key: '', sources: [] }
  const current = (): SporeSource[] => {
    const s = settings()
    const urls = [...new Set(s.urls)]
    const key = JSON.stringify([urls, createHash('sha256').update(s.caPem).digest('hex'), s.timeoutMs])
    if (key !== built.key) {
      for (const old of built.sources) old.close?.()
      built = { key, sources: urls.map((url) => httpsSource({ url, caPem: s.caPem, timeoutMs: s.timeoutMs })) }
    }
    return built.sources
  }
  return {
    id: 'https',
    kind: 'https',
    async fetch(options: SporeFetchOptions = {}): Promise<SignedSpore[]> {
      const sources = current()
      if (sources.length === 0) return []
      const results = await Promise.allSettled(sources.map((source) => source.fetch(options)))
      const ok = results.filter((r): r is PromiseFulfilledResult<SignedSpore[]> => r.status === 'fulfilled')
      if (ok.length === 0) {
        const first = (results[0] as PromiseRejectedResult).reason as Error
        throw isUnavailableError(first)
          ? first
          : new UnavailableError(`every HTTPS spore URL failed: ${first.message}`, undefined, { cause: first })
      }
      return ok.flatMap((r) => r.value)
    },
    close(): void {
      for (const source of built.sources) source.close?.()
    }
  }
}

/** The bootstrap file source, rebuilt when discovery.sourceTimeout changes. */
export function liveFileSource(path: string, timeoutMs: () => number): SporeSource {
  let built: { timeoutMs: number; source: SporeSource } | undefined
  const current = (): SporeSource => {
    const t = timeoutMs()
    if (built?.timeoutMs !== t) built = { timeoutMs: t, source: fileSource({ path, timeoutMs: t }) }
    return built.source
  }
  const first = current()
  return {
    id: first.id,
    kind: first.kind,
    fetch: (options?: SporeFetchOptions) => current().fetch(options),
    close: () => built?.source.close?.()
  }
}

export interface NodeSporeClientDeps {
  logger: Logger
  identity: IdentityStore
  networkId: string
  /** discovery.bootstrapFile (node-owned: fixed for the process). */
  bootstrapFile?: string
  cachePath: string
  /** The config in force: timings and HTTPS URLs are read from it at each use. */
  effective: () => NodeConfig
  /** discovery.httpsCaFile's PEM, when the config in force names one. */
  httpsCaPem: () => string | undefined
  /** Peers that answer pings, when peer networking runs: asked for spores in FALLBACK. */
  alivePeers?: () => Endpoint[]
  /** Called when a poll of a source ended, answered or not (the watchdog's sign that the refresh loop runs). */
  onPoll?: () => void
}

/**
 * How the node builds its spore client once the trust bundle is known: the
 * bootstrap file, the HTTPS URLs (discovery.httpsUrls and the verified
 * bootstrap spore's, pinned to discovery.httpsCaFile or the network CA),
 * peers, and the Spore Manager once a spore names it.
 */
export function nodeSporeClientFactory(d: NodeSporeClientDeps): (trustBundle: TrustBundle) => SporeClient {
  return (trustBundle) => {
    const sources: SporeSource[] = []
    const timeoutMs = (): number => sourceTimeoutMs(d.effective())
    if (d.bootstrapFile != null) sources.push(liveFileSource(d.bootstrapFile, timeoutMs))
    sources.push(
      liveHttpsSources(() => ({
        urls: [...(d.effective().discovery?.httpsUrls ?? []), ...(client?.bootstrap().httpsUrls ?? [])],
        caPem: d.httpsCaPem() ?? trustBundle.caCertificatesPem.join('\n'),
        timeoutMs: timeoutMs()
      }))
    )
    const channelOptions = defaultChannelOptions(d.networkId)
    const alivePeers = d.alivePeers
    if (alivePeers != null) {
      const peers = peerSource({
        credentials: clientCredentials(d.identity, { networkId: d.networkId, role: 'node' }),
        channelOptions,
        peers: alivePeers
      })
      // No peer alive (a start with no seeds) is nothing to ask, not a failed source: no warning each poll.
      sources.push({
        id: peers.id,
        kind: peers.kind,
        fetch: (options?: SporeFetchOptions) => (alivePeers().length === 0 ? Promise.resolve([]) : peers.fetch(options)),
        close: () => peers.close?.()
      })
    }
    let client: SporeClient | undefined
    client = createSporeClient(
      {
        logger: d.logger,
        sources: sources.map((source) => ({
          ...source,
          fetch: (options?: SporeFetchOptions) => source.fetch(options).finally(() => d.onPoll?.())
        })),
        sporeManager: sporeServiceSource({
          credentials: endpointCredentials(d.identity, { networkId: d.networkId, role: 'manager' }),
          channelOptions,
          endpoints: () => client!.resolveService(SERVICE_NAMES.sporeManager)
        })
      },
      { networkId: d.networkId, trustBundle, cachePath: d.cachePath, ...sporeTimings(d.effective()) }
    )
    return client
  }
}
