/**
 * @packageDocumentation
 * Example dynamic components and their tooling (never shipped in the core):
 * `node-metrics` (a Prometheus node exporter), `log-shipper` (tails a log
 * into a file sink), a misbehaving `fixture` for tests, the component
 * contract server they share, and the reproducible artifact builder.
 */
export { serveComponent, socketArg, say, type ComponentHandlers } from './component-server.js'
export { renderNodeMetrics, runNodeMetrics } from './node-metrics.js'
export { runLogShipper } from './log-shipper.js'
export { runFixture } from './fixture.js'
export { buildComponentArtifact, COMPONENT_ENTRIES, type BuiltArtifact, type ComponentName } from './build.js'
export { NODE_METRICS_VERSION, LOG_SHIPPER_VERSION } from './versions.js'
