"""Renderers: pure functions from results to text (terminal, Mermaid, SVG/HTML, JSON)."""
