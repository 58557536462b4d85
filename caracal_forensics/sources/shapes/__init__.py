"""One module per input shape (a ``SourceShape`` subclass); the list of them, in
detection order, is ``sources.registry.SHAPES``."""
