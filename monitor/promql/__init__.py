"""PromQL: parsing through promql-parser and evaluation with Prometheus semantics over scraped samples (docs/configuration.md, "metrics")."""
