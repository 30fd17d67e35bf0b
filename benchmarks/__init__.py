"""Benchmarks (commands that print figures) and the process harness they share with the
end-to-end tests."""
