"""Radar: API tests and monitors in the Hurl format (https://hurl.dev).

Pure cores (the Hurl model and parser, templates, asserts, the test generator, the JUnit
writer) do no I/O; the runner sends a test's requests through the proxy so that every step
is captured and traced; the monitor runner is a role of its own (README, Architecture).
"""
