import winston from 'winston'
import type { LogFields, Logger } from '@mycelium/core-interfaces'
import { LOG_LEVELS } from './config-rules.js'
import { DEFAULT_LOG_LEVEL } from './defaults.js'
import { InvalidConfigError } from '@mycelium/core-interfaces'

export interface LoggingOptions {
  /** One of LOG_LEVELS. @default DEFAULT_LOG_LEVEL */
  level?: string
  /** "json" | "pretty". @default pretty on a TTY, else json */
  format?: string
  /** Fields on every line (nodeId). */
  defaults?: LogFields
  /** Where lines go. @default stdout */
  stream?: NodeJS.WritableStream
  /** A stack on every line that logs an error (--debug); otherwise only `error` lines carry one. @default false */
  debug?: boolean
  /** How often one warning (same component and message) may repeat. @default DEFAULT_WARNING_RATE */
  warningRate?: WarningRate
  /** Clock for the warning rate (tests). @default Date.now */
  now?: () => number
}

/** A warning that repeats is logged `perWindow` times per `windowMs`, then counted: the next one says how many were dropped. */
export interface WarningRate {
  perWindow: number
  windowMs: number
  /** Distinct warnings tracked at once; the oldest is forgotten beyond. */
  maxKeys: number
}

/**
 * @default 3 per minute per warning, 1000 warnings tracked: a reconnect loop
 * or a failing source says so a few times a minute, not every attempt.
 */
export const DEFAULT_WARNING_RATE: WarningRate = { perWindow: 3, windowMs: 60_000, maxKeys: 1000 }

/** Drops repeats of one warning beyond the rate; the first line after a dropped run carries `suppressed: n`. */
function warningLimiter(rate: WarningRate, now: () => number) {
  const seen = new Map<string, { windowStart: number; count: number; suppressed: number }>()
  return winston.format((info) => {
    if (info.level !== 'warn') return info
    const key = `${typeof info.component === 'string' ? info.component : ''}\u0000${String(info.message)}`
    const t = now()
    let entry = seen.get(key)
    if (entry == null || t - entry.windowStart >= rate.windowMs) {
      const suppressed = entry?.suppressed ?? 0
      seen.delete(key) // re-inserted last: the map's order is the eviction order
      entry = { windowStart: t, count: 0, suppressed: 0 }
      seen.set(key, entry)
      if (seen.size > rate.maxKeys) seen.delete(seen.keys().next().value!)
      if (suppressed > 0) info.suppressed = suppressed
    }
    entry.count++
    if (entry.count > rate.perWindow) {
      entry.suppressed++
      return false
    }
    return info
  })()
}

const LEVELS: readonly string[] = LOG_LEVELS

/** The process logger: closes its transport, and changes level while running (logging.level from a manager). */
export interface NodeLogger extends Logger {
  close(): void
  setLevel(level: string): void
  level(): string
}

/** Errors become `{ error, name }`, with the stack on `error` lines (every line with `debug`). */
const errorsToFields = winston.format((info, opts: unknown) => {
  const stack = (opts as { debug?: boolean } | undefined)?.debug === true || info.level === 'error'
  for (const [key, value] of Object.entries(info)) {
    if (value instanceof Error) info[key] = { error: value.message, name: value.name, ...(stack ? { stack: value.stack } : {}) }
  }
  return info
})

const pretty = winston.format.printf((info) => {
  const { level, message, timestamp, component, phase, nodeId, ...rest } = info as Record<string, unknown>
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : ''
  const where = [nodeId, component, phase].filter(Boolean).join(' ')
  return `${String(timestamp)} ${String(level).padEnd(5)} ${where ? `[${where}] ` : ''}${String(message)}${extra}`
})

/**
 * The one log transport of the process (libraries only receive a Logger).
 * Every line carries `component`, `phase` (when known) and `nodeId`.
 */
export function createLogger(options: LoggingOptions = {}): NodeLogger {
  const level = options.level ?? DEFAULT_LOG_LEVEL
  if (!LEVELS.includes(level)) throw new InvalidConfigError(`log level "${level}" is not one of ${LEVELS.join(', ')}`, 'logging.level')
  const usePretty = options.format === 'pretty' || (options.format == null && process.stdout.isTTY === true)
  const root = winston.createLogger({
    level,
    defaultMeta: options.defaults ?? {},
    format: winston.format.combine(
      warningLimiter(options.warningRate ?? DEFAULT_WARNING_RATE, options.now ?? Date.now),
      errorsToFields({ debug: options.debug === true }),
      winston.format.timestamp(),
      usePretty ? winston.format.combine(winston.format.colorize(), pretty) : winston.format.json()
    ),
    transports: [new winston.transports.Stream({ stream: options.stream ?? process.stdout })]
  })
  const wrap = (w: winston.Logger): Logger => ({
    error: (msg, fields) => w.error(msg, fields),
    warn: (msg, fields) => w.warn(msg, fields),
    info: (msg, fields) => w.info(msg, fields),
    debug: (msg, fields) => w.debug(msg, fields),
    forComponent: (component) => wrap(w.child({ component })),
    child: (fields) => wrap(w.child(fields))
  })
  return Object.assign(wrap(root), {
    close: () => root.close(),
    setLevel: (next: string) => {
      if (!LEVELS.includes(next)) throw new InvalidConfigError(`log level "${next}" is not one of ${LEVELS.join(', ')}`, 'logging.level')
      // Children share the root's transports and level: one assignment changes every component's logger.
      root.level = next
    },
    level: () => root.level
  })
}
