import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

// @mycelium/testing is TypeScript source only (never built): bundle it in.
export default defineConfig(
  libraryConfig({ entry: ['src/main.ts'], format: ['esm'], dts: false, shims: true, noExternal: ['@mycelium/testing'] })
)
