"""Feature extraction into the feature store, and what is learned on stored features."""
