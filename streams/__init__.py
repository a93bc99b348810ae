"""riskmon: streams."""
