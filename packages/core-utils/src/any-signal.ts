/** A signal that aborts when any of its inputs does, detachable from them. */
export interface AnySignal {
  readonly signal: AbortSignal
  /** Detaches from the inputs (idempotent). Call it when the work the signal guards is done. */
  dispose(): void
}

/**
 * Like `AbortSignal.any`, but detachable — use it whenever an input outlives
 * the work (a component's stop signal, a caller's signal reused by a loop).
 * Node 20's `AbortSignal.any` records each result in every input's
 * dependant-signal set (a WeakRef each) and never removes the entries: a
 * long-lived input grows by one per call for its whole life, which the
 * footprint bench saw as steady growth under manager churn. Here each input
 * holds one listener only until `dispose()` or the first abort. The result
 * aborts with the reason of the first input that aborted; `undefined`
 * inputs are skipped.
 */
export function anySignal(signals: ReadonlyArray<AbortSignal | undefined>): AnySignal {
  const controller = new AbortController()
  const inputs = signals.filter((s): s is AbortSignal => s != null)
  const aborted = inputs.find((s) => s.aborted)
  if (aborted != null) {
    controller.abort(aborted.reason)
    return { signal: controller.signal, dispose: () => undefined }
  }
  const dispose = (): void => {
    for (const s of inputs) s.removeEventListener('abort', onAbort)
  }
  function onAbort(this: AbortSignal): void {
    dispose()
    controller.abort(this.reason)
  }
  for (const s of inputs) s.addEventListener('abort', onAbort)
  return { signal: controller.signal, dispose }
}
