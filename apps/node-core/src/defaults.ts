/** Where a node keeps its state unless configured otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/mycelium'
/** The localhost HTTP status address unless configured otherwise. */
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:9464'
/** The level a node logs at unless `logging.level` (or --log-level) says otherwise. */
export const DEFAULT_LOG_LEVEL = 'info'
