/**
 * @packageDocumentation
 * The shipped Mycelium minimal core: composes the libraries into the daemon
 * and its CLI. The only package that reads the environment, owns the log
 * transport and exits the process (in its bin).
 */
export { runCli, buildProgram, EXIT, type CliIo } from './cli.js'
export { loadConfig, parseConfigYaml, configFromEnv, configFromFlags, parseDuration, type LoadConfigOptions } from './config.js'
export { NODE_CONFIG_SCHEMA, type Schema, type Kind } from './config-schema.js'
export { createLogger, type LoggingOptions, type NodeLogger } from './logging.js'
export { MyceliumNode, DEFAULT_STATE_DIR, DEFAULT_HTTP_ADDRESS, type NodeOptions } from './node.js'
export { startDev, devStatusSocket, DevNetworkMissingError, isDevNetworkMissingError, type DevOptions, type DevSession } from './dev.js'
export { StatusServer, protosDir } from './status-server.js'
export { HttpStatusServer } from './http-server.js'
export { fetchStatus, formatStatus, locateStatus, watchStatus, formatStatusLine, type StatusLocation } from './status-command.js'
export { readRuntimeFile, RUNTIME_FILE, type RuntimeInfo } from './runtime-file.js'
export { aggregateHealth, type HealthInput, type AggregatedHealth } from './health.js'
export {
  planReconfiguration,
  validateManagedValues,
  validateAgainstLocal,
  withoutSecrets,
  CONFIG_CONSUMERS,
  LOG_LEVELS,
  type ConfigStep,
  type ConfigStepType
} from './live-config.js'
export { liveHttpsSources, liveFileSource, type HttpsSourcesSettings } from './spore-sources.js'
export { DEFAULT_DAEMON_V8_FLAGS, daemonV8Flags } from './v8-flags.js'
