"""`python -m tcpclose` runs the tcpclose command line."""

from tcpclose.cli import run

if __name__ == "__main__":
    run()
