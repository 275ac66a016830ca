/** Versions of the example components (published in their spores). */
export const NODE_METRICS_VERSION = '1.0.0'
export const LOG_SHIPPER_VERSION = '1.0.0'
