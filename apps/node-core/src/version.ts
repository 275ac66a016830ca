import pkg from '../package.json' with { type: 'json' }

/**
 * The daemon's version as built: taken from this package's package.json at
 * build time (the bundle inlines it), reported at registration and in status.
 */
export const NODE_CORE_VERSION: string = pkg.version
