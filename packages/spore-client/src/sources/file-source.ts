import { readFile } from 'node:fs/promises'
import { UnavailableError, type SignedSpore } from '@mycelium/core-interfaces'
import { parseSporeBundle } from '../bundle-format.js'
import { SourceGuard, type SourceGuardInit, type SporeFetchOptions, type SporeSource } from './source.js'

export interface FileSourceInit extends SourceGuardInit {
  /** Path of a SporeBundle (JSON or binary), e.g. the bootstrap file shipped with the node. */
  path: string
}

class FileSporeSource implements SporeSource {
  readonly id: string
  readonly kind = 'bootstrap-file' as const
  private readonly guard: SourceGuard

  constructor(private readonly init: FileSourceInit) {
    this.id = `file:${init.path}`
    this.guard = new SourceGuard(this.id, init)
  }

  fetch(options: SporeFetchOptions = {}): Promise<SignedSpore[]> {
    return this.guard.run(options, async (signal) => {
      let bytes: Buffer
      try {
        bytes = await readFile(this.init.path, { signal })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          throw new UnavailableError(`${this.id}: no such file`, undefined, { cause: err })
        }
        throw err
      }
      return parseSporeBundle(bytes, this.init.path)
    })
  }
}

/** Spores from a local SporeBundle file (the bootstrap file shipped with the node). */
export function fileSource(init: FileSourceInit): SporeSource {
  return new FileSporeSource(init)
}
