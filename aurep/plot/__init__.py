"""Pictures of ``aurep infer`` results: an AU time series and a tracked-overlay strip."""
