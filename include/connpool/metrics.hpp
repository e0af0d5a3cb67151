// connpool: metrics export, with no dependency beyond the standard library.
//
//   connpool::metrics::to_instruments(name, pool.stats())      OpenTelemetry-style data points
//   connpool::metrics::to_prometheus_text(name, pool.stats())  Prometheus text exposition format
//   connpool::metrics::pool_registry                           several pools by name, for a /metrics endpoint
//
// The names follow the OpenTelemetry database-client semantic conventions
// (db.client.connection.*), plus connpool's own counters (connpool.*); docs/observability.md
// lists them with their Prometheus spelling. For prometheus-cpp, see connpool/prometheus.hpp.
#ifndef CONNPOOL_METRICS_HPP
#define CONNPOOL_METRICS_HPP

#include <connpool/metrics/instruments.hpp>
#include <connpool/metrics/prometheus_names.hpp>
#include <connpool/metrics/prometheus_text.hpp>
#include <connpool/metrics/registry.hpp>

#endif  // CONNPOOL_METRICS_HPP
