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
}

const LEVELS: readonly string[] = LOG_LEVELS

/** The process logger: closes its transport, and changes level while running (logging.level from a manager). */
export interface NodeLogger extends Logger {
  close(): void
  setLevel(level: string): void
  level(): string
}

/** Errors become `{ error, stack }` so JSON lines keep the stack. */
const errorsToFields = winston.format((info) => {
  for (const [key, value] of Object.entries(info)) {
    if (value instanceof Error) info[key] = { error: value.message, name: value.name, stack: value.stack }
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
      errorsToFields(),
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
