/**
 * Wraps an async job so runs never overlap and requests coalesce: a call
 * while a run is under way queues exactly one follow-up run (which starts
 * after the current one, so it sees every change made before the call);
 * further calls join that queued run. Joining the run already under way
 * would be wrong: it may have read the state before the caller changed it.
 * A queued run uses the arguments of the call that queued it.
 */
export function coalescing<A extends unknown[], T>(job: (...args: A) => Promise<T>): (...args: A) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve()
  let queued: Promise<T> | undefined
  return (...args: A) => {
    if (queued != null) return queued
    const run = tail.then(() => {
      queued = undefined
      return job(...args)
    })
    queued = run
    tail = run.catch(() => undefined)
    return run
  }
}
