import * as grpc from '@grpc/grpc-js'
import { AbortError, TimeoutError, UnavailableError, type AbortOptions, type Endpoint } from '@mycelium/core-interfaces'

export interface DialOptions extends AbortOptions {
  /** Time one endpoint gets to become ready. @default 5000 */
  timeoutMs?: number
  /** Head start of each endpoint before the next is tried in parallel (happy eyeballs). @default 250 */
  staggerMs?: number
}

export interface Dialed<C extends grpc.Client> {
  client: C
  endpoint: Endpoint
  /** Milliseconds from the call to a ready channel. */
  elapsedMs: number
}

export const DEFAULT_DIAL_TIMEOUT_MS = 5000
export const DEFAULT_DIAL_STAGGER_MS = 250

/**
 * Connects to the first endpoint that becomes ready, in order, happy-eyeballs
 * style: endpoint i+1 starts when endpoint i fails or after `staggerMs`,
 * whichever is first, so a dead first endpoint costs at most the stagger.
 * Losers are closed. All failing → UnavailableError naming each endpoint's
 * reason; abort → AbortError, with every channel closed.
 */
export function dialFirst<C extends grpc.Client>(
  endpoints: Endpoint[],
  connect: (endpoint: Endpoint) => C,
  options: DialOptions = {}
): Promise<Dialed<C>> {
  const timeoutMs = options.timeoutMs ?? DEFAULT_DIAL_TIMEOUT_MS
  const staggerMs = options.staggerMs ?? DEFAULT_DIAL_STAGGER_MS
  const started = Date.now()
  return new Promise((resolve, reject) => {
    if (endpoints.length === 0) {
      reject(new UnavailableError('no endpoints to dial'))
      return
    }
    if (options.signal?.aborted === true) {
      reject(new AbortError('dial aborted'))
      return
    }
    const clients: Array<C | undefined> = []
    const failures: string[] = []
    let next = 0
    let settled = false
    let timer: NodeJS.Timeout | undefined

    const finish = (winner?: number): void => {
      settled = true
      clearTimeout(timer)
      options.signal?.removeEventListener('abort', onAbort)
      clients.forEach((c, i) => {
        if (i !== winner) c?.close()
      })
    }
    const onAbort = (): void => {
      if (settled) return
      finish()
      reject(new AbortError('dial aborted'))
    }
    options.signal?.addEventListener('abort', onAbort, { once: true })

    const launch = (): void => {
      clearTimeout(timer)
      if (settled || next >= endpoints.length) return
      const i = next++
      const endpoint = endpoints[i]!
      const client = connect(endpoint)
      clients[i] = client
      waitForReady(client, Date.now() + timeoutMs, (err) => {
        if (settled) return
        if (err == null) {
          finish(i)
          resolve({ client, endpoint, elapsedMs: Date.now() - started })
          return
        }
        client.close()
        clients[i] = undefined
        failures[i] = `${endpoint.address}: ${err.message}`
        if (failures.filter(Boolean).length === endpoints.length) {
          finish()
          reject(new UnavailableError(`no endpoint became ready (${failures.join('; ')})`))
          return
        }
        launch()
      })
      timer = setTimeout(launch, staggerMs)
      timer.unref()
    }
    launch()
  })
}

/** Longest single wait on a channel's state; bounds timers left behind by a closed channel. */
const WATCH_SLICE_MS = 250

/**
 * Like grpc-js `waitForReady`, but waits in short slices: grpc-js does not
 * wake a pending `waitForReady` when its channel is closed, so a long
 * deadline kept a timer (and the process) alive long after an abort.
 */
function waitForReady(client: grpc.Client, deadline: number, callback: (err?: Error) => void): void {
  const channel = client.getChannel()
  const check = (): void => {
    let state: grpc.connectivityState
    try {
      state = channel.getConnectivityState(true)
    } catch {
      callback(new UnavailableError('the channel was closed'))
      return
    }
    if (state === grpc.connectivityState.READY) {
      callback()
      return
    }
    if (state === grpc.connectivityState.SHUTDOWN) {
      callback(new UnavailableError('the channel was closed'))
      return
    }
    // A failed connection attempt fails the endpoint now: the caller's own
    // backoff (or the next endpoint) decides what happens next, not grpc's.
    if (state === grpc.connectivityState.TRANSIENT_FAILURE) {
      callback(new UnavailableError('connection failed'))
      return
    }
    if (Date.now() >= deadline) {
      callback(new TimeoutError(`not ready before the deadline (last state ${grpc.connectivityState[state]})`))
      return
    }
    try {
      channel.watchConnectivityState(state, Math.min(deadline, Date.now() + WATCH_SLICE_MS), () => check())
    } catch {
      callback(new UnavailableError('the channel was closed'))
    }
  }
  setImmediate(check)
}

/**
 * Calls `onChange` with every connectivity state change of the client's
 * channel ("CONNECTING", "READY", "TRANSIENT_FAILURE", "IDLE", "SHUTDOWN")
 * until the signal aborts or the channel shuts down.
 */
export function watchConnectivity(client: grpc.Client, onChange: (state: string) => void, signal: AbortSignal): void {
  const channel = client.getChannel()
  const watch = (current: grpc.connectivityState): void => {
    if (signal.aborted || current === grpc.connectivityState.SHUTDOWN) return
    // The deadline only bounds one wait (see WATCH_SLICE_MS); the loop re-arms it.
    channel.watchConnectivityState(current, Date.now() + WATCH_SLICE_MS, () => {
      if (signal.aborted) return
      const state = channel.getConnectivityState(false)
      if (state !== current) onChange(grpc.connectivityState[state])
      watch(state)
    })
  }
  watch(channel.getConnectivityState(false))
}
