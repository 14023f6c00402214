"""Prometheus metrics: process counters (HTTP, ingestion) and ledger facts read at scrape time."""
