/**
 * Every async network or process call takes these options. Aborting the
 * signal ends the call promptly with an `AbortError`.
 */
export interface AbortOptions {
  signal?: AbortSignal
}
