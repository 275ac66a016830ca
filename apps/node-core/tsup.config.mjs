import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

// Both configs run concurrently, so neither cleans (one's clean would delete
// the other's output): the `build` script empties dist first and copies the
// protos (copy-protos.mjs) after tsup has exited.
export default defineConfig([
  // __dirname shims: the status server finds the shipped .proto files beside the code.
  libraryConfig({ shims: true, clean: false, external: ['@mycelium/dev-network'] }),
  // The CLI: one CommonJS file with a shebang. No rollup tree-shaking: it hoists every
  // require to the top, and each command's dynamic imports (cli.ts) must stay lazy.
  libraryConfig({
    entry: { bin: 'src/bin.ts' },
    format: ['cjs'],
    dts: false,
    clean: false,
    treeshake: false,
    // A devDependency (tsup would inline it): `node-core dev` loads it on demand, and the release has none.
    external: ['@mycelium/dev-network'],
    // A command's lazy `import()` of a workspace library becomes a lazy require: an import()
    // would load the library's ESM build beside the CommonJS one the rest requires (two
    // copies of the contracts, two of every error class).
    esbuildOptions(options) {
      options.supported = { ...options.supported, 'dynamic-import': false }
    },
    banner: { js: '#!/usr/bin/env node' }
  })
])
