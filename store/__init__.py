"""The Qdrant collection that holds the poster embeddings: schema, connection, reading back."""
