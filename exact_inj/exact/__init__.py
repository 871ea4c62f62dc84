"""Exact kernels: linear algebra over Q and modulo primes, and the exact
simplex for small LPs.  No floats decide anything here."""
