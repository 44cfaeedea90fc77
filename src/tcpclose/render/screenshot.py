"""Open an HTML file in headless Chromium and save a screenshot (the README's picture).

    .venv/bin/python -m tcpclose.render.screenshot FILE.html OUT.png [--width 1280] [--height 1600]

Uses Playwright's Python package driving the system's Chromium (`/usr/bin/chromium`, or
`$TCPCLOSE_CHROMIUM`); nothing is downloaded. The flags keep Chromium off the network.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("TCPCLOSE_CHROMIUM", "/usr/bin/chromium")
#: headless, no sandbox (root in containers), and no background traffic to Google's services
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def browser_missing() -> str | None:
    """Why no browser can be started here, or None when one can."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} is not installed"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright Python package is not installed"
    return None


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser (Playwright's sync API)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=list(CHROMIUM_ARGS))
        try:
            yield browser
        finally:
            browser.close()


def screenshot(html: Path, out: Path, *, width: int = 1280, height: int = 1600) -> Path:
    """Screenshot the top `width` x `height` pixels of the page."""
    with chromium() as browser:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(html.resolve().as_uri())
        page.screenshot(path=str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tcpclose.render.screenshot")
    parser.add_argument("html", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1600)
    args = parser.parse_args(argv)
    if reason := browser_missing():
        sys.stderr.write(f"screenshot: {reason}\n")
        return 1
    screenshot(args.html, args.out, width=args.width, height=args.height)
    sys.stdout.write(f"screenshot: {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
