"""riskmon: alerts."""
