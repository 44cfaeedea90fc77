"""`tcpclose trace`: any program's socket calls (through strace) and its packets on one timeline.

strace.py    strace's output grammar -> typed records (pure)
sockets.py   records -> per-connection application events, in the lab's vocabulary (pure)
tracer.py    running strace on a command or attached to PIDs
capture.py   a wide AF_PACKET capture (all TCP) while the program's ports are unknown
session.py   tracer + capture -> one judged run per connection
"""
