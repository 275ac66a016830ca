import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

// @mycelium/testing and @mycelium/components are TypeScript source only (never built): bundle them in.
export default defineConfig(
  libraryConfig({
    // The scale bench's child processes are entries of their own, forked from main.
    entry: {
      main: 'src/main.ts',
      'scale-manager-host': 'src/scale/manager-host.ts',
      'scale-agent-host': 'src/scale/agent-host.ts'
    },
    format: ['esm'],
    dts: false,
    shims: true,
    noExternal: ['@mycelium/testing', '@mycelium/components'],
    // The artifact builder's compiler stays a package (it has a native binary).
    external: ['esbuild']
  })
)
