"""The dashboard: server-rendered page shells that the browser fills from the public API."""
