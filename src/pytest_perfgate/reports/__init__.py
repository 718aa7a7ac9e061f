"""Report formatters: pure functions from results to text. Only the CLI and the plugin print."""
