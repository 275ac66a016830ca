import { defineConfig } from 'tsup'
import { libraryConfig } from '../../tsup.preset.mjs'

export default defineConfig(libraryConfig())
