"""Background jobs of the rewards engine."""
