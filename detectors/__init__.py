"""riskmon: detectors."""
