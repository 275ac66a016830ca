/** Structured fields attached to a log line. Never use `message` as a key. */
export type LogFields = Record<string, unknown>

/**
 * The logging contract libraries receive. node-core owns the transport
 * (winston); libraries never configure logging themselves.
 */
export interface Logger {
  error(msg: string, fields?: LogFields): void
  warn(msg: string, fields?: LogFields): void
  info(msg: string, fields?: LogFields): void
  debug(msg: string, fields?: LogFields): void
  /** A logger whose lines carry `component: name` (e.g. "basic-net:heartbeat"). */
  forComponent(name: string): Logger
  /** A logger whose lines also carry `fields` (e.g. `{ nodeId }`). */
  child(fields: LogFields): Logger
}

const noop = (): void => {}

/** A logger that drops everything: the default when none is given. */
export function silentLogger(): Logger {
  const logger: Logger = {
    error: noop,
    warn: noop,
    info: noop,
    debug: noop,
    forComponent: () => logger,
    child: () => logger
  }
  return logger
}
