// The shared library's namespaces the daemon uses throughout (errno names, the namespace thread,
// the metrics endpoint and Prometheus writer), imported once for the project.
global using L2Balance.Common.Linux;
global using L2Balance.Common.Metrics;
