/**
 * @packageDocumentation
 * Verified spores from every source, cached for offline boot.
 *
 * Not built yet: issue #3 delivers this package. It exists now so the
 * workspace has its final shape and every later change lands in place.
 */
export {}
