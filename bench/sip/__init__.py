"""Processes for the SIP benchmarks: a pjsua2 caller, a bare pjsua2 answerer, a voip app.

Each runs as its own program (``python bench/sip/caller.py ...``) so that its CPU and
timing are its own; :mod:`bench.call_setup` starts them.
"""
