import type { AbortOptions } from './abort.js'

/**
 * A component with a lifecycle. node-core starts components in a logged order
 * and stops them in reverse.
 *
 * Invariants every implementation keeps:
 * - `start()` and `stop()` are safe to call twice (the second call is a no-op);
 * - a failed `start()` releases what it acquired, then rethrows;
 * - `stop()` never throws for "not started" and aborts the component's loops.
 */
export interface Startable {
  start(options?: AbortOptions): void | Promise<void>
  stop(options?: AbortOptions): void | Promise<void>
  /** True between a successful `start()` and the next `stop()`. */
  isStarted(): boolean
}

export function isStartable(obj: unknown): obj is Startable {
  return (
    obj != null &&
    typeof (obj as Startable).start === 'function' &&
    typeof (obj as Startable).stop === 'function' &&
    typeof (obj as Startable).isStarted === 'function'
  )
}
