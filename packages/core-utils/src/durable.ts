import { open, readdir } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * fsync of a directory: a rename or a new entry in it survives a power cut
 * only once the directory itself is synced (state files, installs, slots).
 */
export async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r')
  try {
    await handle.sync()
  } finally {
    await handle.close()
  }
}

/**
 * fsync of every file and directory under `root`, deepest first, then `root`:
 * an unpacked tree is on disk before the rename that publishes it, so a crash
 * never leaves a published install with empty files.
 */
export async function fsyncTree(root: string): Promise<void> {
  for (const entry of await readdir(root, { withFileTypes: true })) {
    const path = join(root, entry.name)
    if (entry.isDirectory()) await fsyncTree(path)
    else if (entry.isFile()) {
      const handle = await open(path, 'r')
      try {
        await handle.sync()
      } finally {
        await handle.close()
      }
    }
  }
  await fsyncDir(root)
}
