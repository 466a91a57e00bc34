//! Keel's data plane: listeners, routing through the active generation, balancing, health checks, upstream connection pools.
