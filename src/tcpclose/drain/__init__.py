"""`tcpclose drain`: requests lost when a server stops or reloads under load, and why.

records    one record per request, outcomes, the accounting identity
protocol   what is sent, when an answer is complete
load       the asyncio load generator (new / reuse / check clients)
supervisor, processes   the server under drain's control, signals, no orphans
capture    tcpdump writing the run's pcap
causes     why a request was lost, from its connection's packets (the decision table)
explain    pcap -> verdicts (the analyser's reader) -> causes, diagrams
run        one run, start to end
present, report   summary, sparkline, JSON; the HTML report
"""
