"""Backends: where calls come from (the simulator; PJSIP for real SIP)."""
