"""`tcpclose analyze`: how every TCP connection in a capture ended.

For other parts of tcpclose (the lab's tests, the probe) the entry points are:

    read_connections(paths, filter=None) -> Iterator[ConnectionVerdict]
    analyze_files(paths, filter=None) -> Analysis   (rows with numbers, warnings, counts)
"""

from tcpclose.analyze.reading import Analysis, analyze_files, read_connections, read_rows

__all__ = ["Analysis", "analyze_files", "read_connections", "read_rows"]
