"""riskmon: producers."""
