/**
 * @packageDocumentation
 * Node identity, mTLS channels, peer discovery and failure detection for the Mycelium core.
 *
 * Not built yet: issue #4 delivers this package. It exists now so the
 * workspace has its final shape and every later change lands in place.
 */
export {}
