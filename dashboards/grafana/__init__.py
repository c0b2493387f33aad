"""Grafana dashboards as code: typed builders, the two dashboards, provisioning, build and push."""
