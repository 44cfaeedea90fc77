"""Packet capture: live on the loopback interface, or from pcap files.

`start_capture(ports)` picks the best method this process has:

1. `af_packet`: an AF_PACKET raw socket on `lo` with a classic-BPF filter for the ports,
   kernel timestamps (SO_TIMESTAMPNS), outgoing copies dropped (needs CAP_NET_RAW);
2. `tcpdump`: Debian's tcpdump writing a pcap file, if it is installed and allowed to capture;
3. `none`: no packets, with a one-line note saying why.
"""

from tcpclose.capture.frames import Frame, parse_frame
from tcpclose.capture.session import CaptureResult, CaptureSession, start_capture

__all__ = ["CaptureResult", "CaptureSession", "Frame", "parse_frame", "start_capture"]
