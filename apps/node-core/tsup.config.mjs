import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

export default defineConfig([
  // __dirname shims: the status server finds the shipped .proto files beside the code.
  libraryConfig({ shims: true }),
  // The CLI: one CommonJS file with a shebang, and the v1 protos beside it for server reflection.
  libraryConfig({
    entry: { bin: 'src/bin.ts' },
    format: ['cjs'],
    dts: false,
    clean: false,
    banner: { js: '#!/usr/bin/env node' },
    onSuccess: 'rm -rf dist/protos && mkdir -p dist/protos && cp -r ../../protos/mycelium dist/protos/'
  })
])
