"""Alert rules: their config models now; evaluation lives beside them."""
