"""riskmon core: settings, event contract, wire formats, embedded broker and the command line."""
__version__ = "0.1.0"
