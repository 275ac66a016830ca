// Shared tsup settings for every library: ESM + CJS + .d.ts for Node 20.
/** @returns {import('tsup').Options} */
export function libraryConfig(overrides = {}) {
  return {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    target: 'node20',
    platform: 'node',
    dts: true,
    sourcemap: true,
    clean: true,
    splitting: false,
    treeshake: true,
    ...overrides
  }
}
