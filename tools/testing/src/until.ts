/**
 * Polls `probe` until it gives a value other than undefined/false (returned)
 * or `timeoutMs` passes: then an error naming `what`, with `detail()` as JSON
 * when given (what the test saw last). A probe that throws counts as "not
 * yet". The one wait loop of the test suites and benchmarks.
 */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs = 10_000,
  intervalMs = 20,
  detail?: () => unknown
): Promise<T> {
  const end = Date.now() + timeoutMs
  for (;;) {
    const v = await Promise.resolve()
      .then(probe)
      .catch(() => undefined)
    if (v !== undefined && v !== false) return v
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail != null ? `: ${JSON.stringify(detail())}` : ''}`)
    await new Promise((r) => setTimeout(r, intervalMs))
  }
}
