import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

export default defineConfig([
  libraryConfig(),
  // The CLI: one CommonJS file with a shebang, dependencies left in node_modules.
  libraryConfig({ entry: { bin: 'src/bin.ts' }, format: ['cjs'], dts: false, clean: false, banner: { js: '#!/usr/bin/env node' } })
])
