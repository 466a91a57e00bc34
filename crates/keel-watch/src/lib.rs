//! Metrics exposition, in-process detectors and alert delivery.
