"""Video probing, decoding and writing; atomic file writes."""
