"""vidfer."""
