/**
 * Monotonic milliseconds (arbitrary origin), for deadlines and delays that no
 * wall-clock step may move. The same clock as `performance.now()` (libuv's
 * hrtime), without it: the first touch of `performance` — the global or
 * node:perf_hooks — loads eleven internal modules (perf entries, observers,
 * histograms, timerify) that a daemon measuring intervals never uses
 * (tools/bench footprint).
 */
export const monotonicMs = (): number => Number(process.hrtime.bigint()) / 1e6
