"""``aurep prepare``: build or complete prepared datasets (flow targets, and later raw sources)."""
