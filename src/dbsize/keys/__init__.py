"""API keys and scopes: who may read, write and administer."""
