import { tmpdir, userInfo } from 'node:os'
import { join } from 'node:path'

/**
 * Where `node-core status` finds a `dev` agent with no flags: per user, under
 * the temp dir. Its own module so `status` knows it without loading the dev
 * session (and through it the agent).
 */
export function devStatusSocket(): string {
  return join(tmpdir(), `mycelium-dev-${userInfo().uid}`, 'status.sock')
}
