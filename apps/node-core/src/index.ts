/**
 * @packageDocumentation
 * The shipped Mycelium minimal core daemon and its CLI.
 *
 * Not built yet: issue #9 delivers this package. It exists now so the
 * workspace has its final shape and every later change lands in place.
 */
export {}
