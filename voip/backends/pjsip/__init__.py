"""The PJSIP backend: real SIP calls through the pjsua2 bindings.

:mod:`.server` answers incoming calls, :mod:`.dial` places outgoing ones, :mod:`.stack`
owns the endpoint and the one thread that talks to it, :mod:`.calls` the pjsua2
subclasses. Importing this package does not import pjsua2.
"""
