"""The send stage: one upstream call made safely — breaker around retries around one attempt.

client.py (the only ClientSession user; address guard, TLS, no redirects), bodies.py (bounded
reads and decoding), breaker.py and retry.py, composed by resilience.py.
"""
