"""Loading the configuration: YAML with line numbers and ${VAR} expansion, the main-file models, the loader."""
