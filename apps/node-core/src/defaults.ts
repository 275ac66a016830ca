/** Where a node keeps its state unless configured otherwise. */
export const DEFAULT_STATE_DIR = '/var/lib/mycelium'
/** The localhost HTTP status address unless configured otherwise. */
export const DEFAULT_HTTP_ADDRESS = '127.0.0.1:9464'
/** The level a node logs at unless `logging.level` (or --log-level) says otherwise. */
export const DEFAULT_LOG_LEVEL = 'info'
/** The config file `node-core status` reads to find the daemon unless --config or --socket says otherwise (the systemd unit's). */
export const DEFAULT_CONFIG_FILE = '/etc/mycelium/node.yaml'
