"""Past four calls: worker processes behind kamailio (``--workers N``).

A supervisor (:mod:`.supervisor`) starts N worker processes, each the app's SIP server on
its own loopback port with its share of the RTP ports (:mod:`.shares`), then kamailio as
the one public SIP listener (:mod:`.kamailio`, its configuration from the template
``kamailio.cfg.in`` shipped beside this file). kamailio's dispatcher spreads new calls
over the workers, probing each with OPTIONS every 2 s: a worker answers 200 while it has
room and 503 when full or stopping (:mod:`voip.guard`), and a call a worker refuses goes
to the next. Audio flows between the callers and the workers directly. The supervisor
restarts what dies and, on SIGTERM, lets the workers drain before kamailio stops.

The workers' own calls out (and ``--register``'s REGISTERs) go through kamailio, which
relays them from its public address. Another machine's supervisor with ``--join
sip:FRONT`` runs workers only, on its own address, and adds them to the front's
dispatcher at run time (:mod:`.join`). With ``--metrics`` the supervisor serves kamailio's
own statistics beside the workers'.
Rooms and queues span the workers of a machine, joined by SIP calls between them
(:mod:`.places`), the queues' line in a file they share (:mod:`.book`).
"""
