import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

// @mycelium/testing and @mycelium/components are TypeScript source only (never built): bundle them in.
export default defineConfig(
  libraryConfig({
    entry: ['src/main.ts'],
    format: ['esm'],
    dts: false,
    shims: true,
    noExternal: ['@mycelium/testing', '@mycelium/components'],
    // The artifact builder's compiler stays a package (it has a native binary).
    external: ['esbuild']
  })
)
