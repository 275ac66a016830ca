import { configure as configureStringify } from 'safe-stable-stringify'
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

/** One log line being built: winston's "info" object (level, message, fields). */
type Info = Record<string, unknown> & { level: string; message: unknown }

/** Drops repeats of one warning beyond the rate; the first line after a dropped run carries `suppressed: n`. */
function warningLimiter(rate: WarningRate, now: () => number): (info: Info) => boolean {
  const seen = new Map<string, { windowStart: number; count: number; suppressed: number }>()
  return (info) => {
    if (info.level !== 'warn') return true
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
    return true
  }
}

const LEVELS: readonly string[] = LOG_LEVELS

/** The process logger: closes its transport, and changes level while running (logging.level from a manager). */
export interface NodeLogger extends Logger {
  close(): void
  setLevel(level: string): void
  level(): string
}

/** Errors become `{ error, name }`, with the stack on `error` lines (every line with `debug`). */
function errorsToFields(info: Info, debug: boolean): void {
  const stack = debug || info.level === 'error'
  for (const [key, value] of Object.entries(info)) {
    if (value instanceof Error) info[key] = { error: value.message, name: value.name, ...(stack ? { stack: value.stack } : {}) }
  }
}

/** JSON of a line: keys sorted, cycles as "[Circular]", bigints as strings (the format winston's `json()` wrote). */
const toJson = configureStringify({})
const bigintAsString = (_key: string, value: unknown): unknown => (typeof value === 'bigint' ? value.toString() : value)

/** The level coloured as winston's colorize() did: npm's colours, always (pretty is for people at a terminal). */
const LEVEL_COLOURS: Record<string, number> = { error: 31, warn: 33, info: 32, debug: 34 }
const colourLevel = (level: string): string => `\u001b[${LEVEL_COLOURS[level] ?? 39}m${level}\u001b[39m`

function pretty(info: Info): string {
  const { level, message, timestamp, component, phase, nodeId, ...rest } = info
  const extra = Object.keys(rest).length > 0 ? ` ${JSON.stringify(rest)}` : ''
  const where = [nodeId, component, phase].filter(Boolean).join(' ')
  return `${String(timestamp)} ${colourLevel(level).padEnd(5)} ${where ? `[${where}] ` : ''}${String(message)}${extra}`
}

/**
 * The one log transport of the process (libraries only receive a Logger).
 * Every line carries `component`, `phase` (when known) and `nodeId`.
 */
export function createLogger(options: LoggingOptions = {}): NodeLogger {
  let level = options.level ?? DEFAULT_LOG_LEVEL
  if (!LEVELS.includes(level)) throw new InvalidConfigError(`log level "${level}" is not one of ${LEVELS.join(', ')}`, 'logging.level')
  const usePretty = options.format === 'pretty' || (options.format == null && process.stdout.isTTY === true)
  const stream = options.stream ?? process.stdout
  const defaults = options.defaults ?? {}
  const limit = warningLimiter(options.warningRate ?? DEFAULT_WARNING_RATE, options.now ?? Date.now)
  const debug = options.debug === true
  let closed = false
  // The order of winston's pipeline, kept: the warning rate counts every warning (also those the
  // level then hides), then the level, errors as fields, the timestamp (a `timestamp` field is kept).
  const write = (info: Info): void => {
    if (closed || !limit(info)) return
    if (LEVELS.indexOf(info.level) > LEVELS.indexOf(level)) return
    errorsToFields(info, debug)
    info.timestamp ??= new Date().toISOString()
    stream.write(`${usePretty ? pretty(info) : toJson(info, bigintAsString)}\n`)
  }
  // Precedence as winston's: level and message, then the line's fields, the logger's defaults, then
  // the fields of child loggers, the innermost first (`context` is outermost first). A `message`
  // field is appended to the message.
  const logger = (context: LogFields[]): Logger => {
    const emit =
      (lineLevel: string) =>
      (message: string, fields?: LogFields): void => {
        const info = Object.assign({}, ...context, defaults, fields, { level: lineLevel, message }) as Info
        // (winston's template string: whatever the field holds, stringified)
        if (fields?.message) info.message = `${message} ${fields.message as string}`
        write(info)
      }
    return {
      error: emit('error'),
      warn: emit('warn'),
      info: emit('info'),
      debug: emit('debug'),
      forComponent: (component) => logger([...context, { component }]),
      child: (fields) => logger([...context, fields])
    }
  }
  return Object.assign(logger([]), {
    close: () => {
      closed = true
    },
    setLevel: (next: string) => {
      if (!LEVELS.includes(next)) throw new InvalidConfigError(`log level "${next}" is not one of ${LEVELS.join(', ')}`, 'logging.level')
      // Children share this one level: one assignment changes every component's logger.
      level = next
    },
    level: () => level
  })
}
