/**
 * @packageDocumentation
 * The handoff state machine: bootstrap, discovery, registration, handoff, monitoring, fallback.
 *
 * Not built yet: issue #6 delivers this package. It exists now so the
 * workspace has its final shape and every later change lands in place.
 */
export {}
