"""The wire contract: records (pydantic v2), the codec (bytes ⇄ records) and JSON-schema export."""
