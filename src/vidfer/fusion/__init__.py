"""Decision-level fusion of class-probability scores."""
