"""The model layer: declared measurements; their schema, encoders and row mappers."""
