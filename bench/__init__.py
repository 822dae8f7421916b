"""tornpool's benchmarks (peers side by side); run ``python -m bench --help``."""
