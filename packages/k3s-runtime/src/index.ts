/**
 * @packageDocumentation
 * Configures, supervises and observes the node's K3s without ever stopping its workloads.
 *
 * Not built yet: issue #8 delivers this package. It exists now so the
 * workspace has its final shape and every later change lands in place.
 */
export {}
